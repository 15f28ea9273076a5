"""A WSGI app for the worker's response-path tests: a body of a chosen size, with a
Content-Length or streamed without one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

BIG_BODY_BYTES = 200_000  # well over the worker's one-send limit
# More than a loopback socket's send buffer takes at once, even auto-tuned (4 MB here).
OVER_SOCKET_BUFFER_BYTES = 12_000_000


def body_of(size: int) -> bytes:
    """`size` bytes that show where a cut or a reordering happened."""
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """`/size/N`: N bytes with a Content-Length; `/stream/N`: the same in three pieces and
    without a length (so the server frames it); `/dated`: a Date of the app's own."""
    _, kind, *rest = environ["PATH_INFO"].split("/")
    if kind == "dated":
        start_response("200 OK", [("Date", "Thu, 01 Jan 1970 00:00:00 GMT")])
        return [b"dated"]
    body = body_of(int(rest[0]) if rest else 0)
    if kind == "stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _pieces(body)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _pieces(body: bytes) -> Iterator[bytes]:
    third = len(body) // 3
    yield body[:third]
    yield body[third : 2 * third]
    yield body[2 * third :]
