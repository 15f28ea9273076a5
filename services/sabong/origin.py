"""Refusing state-changing browser requests that another site started (login CSRF,
logout CSRF)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask.typing import ResponseReturnValue

from shared.web import is_cross_site_request

from . import pages
from .runtime import runtime


def same_origin_only(
    view: Callable[..., ResponseReturnValue],
) -> Callable[..., ResponseReturnValue]:
    """Decorator: 403 for a request another origin started, before the view runs.

    SameSite=Lax keeps the cookie off a cross-site POST, but the browser still applies the
    response's Set-Cookie: a forged POST /logout used to wipe the player's cookie. The
    refusal touches no session, so it sends no Set-Cookie at all.
    """

    @functools.wraps(view)
    def guarded(*args: object, **kwargs: object) -> ResponseReturnValue:
        if is_cross_site_request(runtime().own_origin):
            return pages.error_page(
                403,
                "This request came from another site",
                "Nothing was changed. Please use the Sabong page itself.",
            )
        return view(*args, **kwargs)

    return guarded
