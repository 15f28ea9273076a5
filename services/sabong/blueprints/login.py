"""The login link: GET shows a self-submitting page, POST consumes the token."""

from __future__ import annotations

from flask import Blueprint, redirect
from flask.typing import ResponseReturnValue

from shared.observability import LOGIN_TOKENS_CONSUMED

from .. import pages
from ..origin import same_origin_only
from ..runtime import now, runtime
from ..signin import login_link_is_live, sign_in_with_token

bp = Blueprint("login", __name__)


@bp.get("/login/<token>")
def show_login(token: str) -> ResponseReturnValue:
    """Consumes nothing, so link scanners and chat previews cannot burn the token."""
    if not login_link_is_live(runtime().store, token):
        return pages.expired_page()
    return pages.login_page()


# The POST is authorised by the single-use, unguessable login token in its URL. It is
# still refused from another origin: a site holding a link must not be able to sign the
# visitor into that account behind their back (login CSRF), nor burn the link.
@bp.post("/login/<token>")
@same_origin_only
def consume_login(token: str) -> ResponseReturnValue:
    """Exactly one of any number of concurrent POSTs wins; the rest get 410."""
    rt = runtime()
    if not sign_in_with_token(rt.store, rt.users, rt.sessions, token, now()):
        LOGIN_TOKENS_CONSUMED.labels("gone").inc()
        return pages.expired_page()
    LOGIN_TOKENS_CONSUMED.labels("ok").inc()
    response = redirect(rt.app_url, code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
