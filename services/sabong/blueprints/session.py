"""The signed-in user's session: /me (page and JSON), /logout, the not-signed-in page."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask.typing import ResponseReturnValue

from shared.responses import sabong_body
from shared.web import json_response

from .. import pages
from ..accounts import current_profile, sign_out
from ..runtime import runtime

bp = Blueprint("session", __name__)


@bp.get("/me")
def me_page() -> ResponseReturnValue:
    profile = current_profile(runtime().users)
    if profile is None:
        return redirect(url_for("session.not_signed_in"), code=303)
    return pages.me_page(profile["user"], profile["wallet"])


@bp.get("/api/v1/me")
def me_json() -> ResponseReturnValue:
    """Authenticated by the session cookie, not by a partner signature."""
    profile = current_profile(runtime().users)
    if profile is None:
        return json_response(sabong_body("error", "Not signed in"), 401)
    body = sabong_body("success", "Profile retrieved successfully", profile)
    return json_response(body, 200, {"Cache-Control": "no-store"})


# A cross-site POST here carries no cookie (SameSite=Lax), so logout CSRF is moot.
@bp.post("/logout")
def logout() -> ResponseReturnValue:
    sign_out()
    return redirect(url_for("session.not_signed_in", signed_out=1), code=303)


# Lives under /login/ so the gateway, which routes /login/ to this service, serves it.
@bp.get("/login/")
def not_signed_in() -> ResponseReturnValue:
    return pages.not_signed_in_page(signed_out=request.args.get("signed_out") == "1")
