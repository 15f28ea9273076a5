"""The signed-in user's session: /me (page and JSON), /logout, /logout/all, the
not-signed-in page."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask.typing import ResponseReturnValue

from shared.responses import sabong_body
from shared.web import json_response

from .. import pages
from ..origin import same_origin_only
from ..runtime import runtime
from ..signin import current_profile, sign_out, sign_out_everywhere

bp = Blueprint("session", __name__)


@bp.get("/me")
def me_page() -> ResponseReturnValue:
    profile = current_profile(runtime().users, runtime().sessions)
    if profile is None:
        return redirect(url_for("session.not_signed_in"), code=303)
    return pages.me_page(profile["user"], profile["wallet"])


@bp.get("/api/v1/me")
def me_json() -> ResponseReturnValue:
    """Authenticated by the session cookie, not by a partner signature."""
    profile = current_profile(runtime().users, runtime().sessions)
    if profile is None:
        return json_response(sabong_body("error", "Not signed in"), 401)
    body = sabong_body("success", "Profile retrieved successfully", profile)
    return json_response(body, 200, {"Cache-Control": "no-store"})


@bp.post("/logout")
@same_origin_only
def logout() -> ResponseReturnValue:
    """End this session on the server (its cookie never works again) and drop the cookie."""
    sign_out(runtime().sessions)
    return redirect(url_for("session.not_signed_in", signed_out=1), code=303)


# Under /logout so that the gateway, which routes /logout and its sub-paths, serves it.
@bp.post("/logout/all")
@same_origin_only
def logout_everywhere() -> ResponseReturnValue:
    """End every session of the signed-in player: other browsers and devices too."""
    sign_out_everywhere(runtime().sessions)
    return redirect(url_for("session.not_signed_in", signed_out=1), code=303)


# Lives under /login/ so the gateway, which routes /login/ to this service, serves it.
@bp.get("/login/")
def not_signed_in() -> ResponseReturnValue:
    return pages.not_signed_in_page(signed_out=request.args.get("signed_out") == "1")
