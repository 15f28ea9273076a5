"""Stage 2 of the request path: which upstream service and API family a path belongs to.

A path no route serves (or with `.`/`..` segments) gets the 404 envelope; a request the
HTTP layer refused gets its status in the envelope of the family its path names.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from .http import ClientConnection, Request
from .replies import send_error
from .routing import Family, Route, match

RouteStage = Callable[[Request, ClientConnection, Route], None]


class Router:
    """Matches the path to a route and passes the request on to `next` with it."""

    def __init__(self, routes: tuple[Route, ...], next: RouteStage) -> None:
        self.routes = routes
        self.next = next

    def __call__(self, request: Request, client: ClientConnection) -> None:
        path = request.path
        route = None if _has_dot_segment(path) else match(path, self.routes)
        if route is None:
            request.log_path = _redacted(path)
            send_error(request, client, Family.NEUTRAL, 404)
            return
        request.log_path = route.log_path(path)
        request.route = route.prefix
        self.next(request, client, route)

    def refuse(self, request: Request, client: ClientConnection, status: int) -> None:
        """An answer to a request the HTTP layer refused (bad syntax, too large)."""
        # A request refused mid-parse has no path yet: read it from the raw target.
        path = request.path or _path_of_target(request.url)
        route = None if not path else match(path, self.routes)
        request.log_path = route.log_path(path) if route else _redacted(path)
        request.route = route.prefix if route else "unmatched"
        send_error(request, client, route.family if route else Family.NEUTRAL, status)


def _path_of_target(target: bytes) -> str:
    """The path of a raw request target ("" when it is not origin-form)."""
    if not target.startswith(b"/"):
        return ""
    path = target.split(b"?", 1)[0].split(b"#", 1)[0].decode("latin-1")
    return unquote(path, "latin-1") if "%" in path else path


def _has_dot_segment(path: str) -> bool:
    """True for `/./` or `/../` segments: refused rather than passed to a service."""
    if "/." not in path:
        return False
    return any(segment in (".", "..") for segment in path.split("/"))


def _redacted(path: str) -> str:
    """An unrouted path only by its first segment (a mistyped `/login/<token>` must not
    put the token in the log)."""
    first, _, rest = path[1:].partition("/")
    return f"/{first[:64]}/..." if rest else f"/{first[:64]}"
