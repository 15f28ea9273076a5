"""Which service answers a path, and the envelope the gateway's own errors use there."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.responses import k2_body, sabong_body, to_json


class Family(Enum):
    """The API family of a path decides the JSON envelope of gateway-made errors."""

    K2 = "k2"
    SABONG = "sabong"
    # Paths of neither family (unknown paths, /healthz, /readyz) use the K2 shape: it
    # carries the HTTP status in the body, so it reads well without knowing the family.
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class Route:
    """A path prefix served by one upstream service.

    A prefix ending in "/" matches everything under it; one without matches the exact
    path and its sub-paths (`/me`, `/me/x`) but not `/metrics`.
    """

    prefix: str
    service: str
    family: Family
    # `/login/<token>`: the token is a secret, so logs name the prefix only.
    log_prefix_only: bool = False
    # A JSON API: an HTML error page from upstream is replaced by the envelope. False
    # where the service serves HTML pages itself (the login page, its 410, /me).
    json_only: bool = True

    def log_path(self, path: str) -> str:
        return self.prefix if self.log_prefix_only else path


ROUTES: tuple[Route, ...] = (
    # Logins go to the USSD login pool, so their password hashing has a capacity of its
    # own and a login flood cannot starve the other K2 endpoints (scripts/serve.py).
    Route("/api/auth/login", "ussd-login", Family.K2),
    Route("/api/auth/", "ussd", Family.K2),
    Route("/api/clients/", "ussd", Family.K2),
    Route("/api/v1/", "sabong", Family.SABONG),
    Route("/login/", "sabong", Family.SABONG, log_prefix_only=True, json_only=False),
    Route("/me", "sabong", Family.SABONG, json_only=False),
    Route("/logout", "sabong", Family.SABONG, json_only=False),
)


def match(path: str, routes: tuple[Route, ...] = ROUTES) -> Route | None:
    """The first route whose prefix matches `path`, or None."""
    for route in routes:
        prefix = route.prefix
        if path.startswith(prefix) and (
            prefix[-1] == "/" or len(path) == len(prefix) or path[len(prefix)] == "/"
        ):
            return route
    return None


MESSAGES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    414: "Request target too long",
    417: "Expectation failed",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    501: "Transfer coding not implemented",
    502: "Bad gateway",
    504: "Gateway timeout",
    505: "HTTP version not supported",
}
# 5xx statuses that refuse the request itself rather than report a failure upstream.
_REFUSALS_5XX = frozenset({501, 505})


def error_body(family: Family, status: int, message: str | None = None) -> bytes:
    """A gateway-made error in the envelope of `family`.

    Sabong status words: "error" when the gateway refused the request itself (400,
    404, 405, 413, 417, 429, 431, 501, 505, like the API's own auth refusals), "failed"
    when the forwarded request could not be completed upstream (502, 504, like its own
    500).
    """
    text = message or MESSAGES[status]
    if family is Family.SABONG:
        failed = status >= 500 and status not in _REFUSALS_5XX
        return to_json(sabong_body("failed" if failed else "error", text))
    return to_json(k2_body(status, text))


_ERROR_BODIES = {(f, s): error_body(f, s) for f in Family for s in MESSAGES}


def cached_error_body(family: Family, status: int) -> bytes:
    """The precomputed body for the standard message of `status`."""
    return _ERROR_BODIES[(family, status)]
