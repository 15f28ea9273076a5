"""Stage 4 of the request path: the request to a replica of its route's service, and the
answer back to the client.

The request's headers are rewritten on the way (hop-by-hop ones dropped, X-Forwarded-*
and X-Request-ID set: gateway/headers.py); the answer is relayed in one write when it is
small and complete, streamed with backpressure when it is large, and an upstream failure
becomes the family's envelope (502, or 504 for the read timeout).
"""

from __future__ import annotations

import functools
import logging
from http import HTTPStatus

from . import headers as hdr
from .balancing import Service
from .connection import UpstreamConnection
from .http import ClientConnection, Request
from .location import LocationGuard
from .replies import json_head
from .routing import MESSAGES, Family, Route, cached_error_body, error_body
from .upstream import NoReplicaReachable, UpstreamError, UpstreamTimeout

log = logging.getLogger("gateway")

# An answer bigger than this is streamed to the client instead of sent in one write.
BUFFER_LIMIT = 64 * 1024


class Forwarder:
    """Sends each request to its route's service; a Relay carries the answer back."""

    def __init__(self, services: dict[str, Service], locations: LocationGuard) -> None:
        self.services = services
        self.locations = locations

    def __call__(self, request: Request, client: ClientConnection, route: Route) -> None:
        body = b"".join(request.body) if request.body else b""
        head = hdr.build_request_head(
            request.method,
            request.target,
            request.headers,
            request.peer,
            "http",
            len(body),
            request.request_id,
            request.connection,
        )
        relay = Relay(request, client, route.family, route.json_only, self.locations)
        self.services[route.service].send(request.method, head + body, relay)


class Relay:
    """Carries one upstream answer back to the client: in one write when it is small
    and complete, streamed when it is large; errors become the family's envelope."""

    __slots__ = (
        "body",
        "client",
        "family",
        "headers",
        "json_only",
        "locations",
        "request",
        "size",
        "status",
        "streaming",
        "upstream",
    )

    def __init__(
        self,
        request: Request,
        client: ClientConnection,
        family: Family,
        json_only: bool = True,
        locations: LocationGuard | None = None,
    ) -> None:
        self.request = request
        self.client = client
        self.family = family
        self.json_only = json_only
        self.locations = locations
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.streaming = False
        self.upstream: UpstreamConnection | None = None

    def upstream_head(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: UpstreamConnection
    ) -> None:
        self.status = status
        self.headers = headers
        self.upstream = conn

    def upstream_body(self, chunk: bytes) -> None:
        if self.streaming:
            if not self.client.stream(self.request, chunk):
                self._pause_upstream()
            return
        self.body.append(chunk)
        self.size += len(chunk)
        if self.size > BUFFER_LIMIT:
            self._start_streaming()

    def upstream_end(self) -> None:
        if self.streaming:
            self.client.end_stream(self.request, self.status)
            return
        if self.status >= 400 and self.json_only and _is_html(self.headers):
            self._replace_html_error()
            return
        head, upstream_length = hdr.response_head(self.headers, self._safe_location)
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if _bodiless(self.request.method, self.status):
            if upstream_length is not None:
                head += b"content-length: " + upstream_length + b"\r\n"
            self.client.respond(self.request, self.status, head, body, content_length=False)
        else:
            self.client.respond(self.request, self.status, head, body)

    def upstream_failed(self, error: UpstreamError) -> None:
        if self.streaming:
            log.warning(
                "upstream failed mid-response",
                extra={"error": str(error), "request_id": self.request.request_id.decode()},
            )
            self.client.abort(self.request, self.status)
            return
        status = 504 if isinstance(error, UpstreamTimeout) else 502
        if not isinstance(error, UpstreamTimeout):
            log.warning(
                "upstream failed",
                extra={
                    "error": str(error),
                    "unreachable": isinstance(error, NoReplicaReachable),
                    "request_id": self.request.request_id.decode(),
                },
            )
        body = cached_error_body(self.family, status)
        self.client.respond(self.request, status, json_head(self.client.state), body)

    def _replace_html_error(self) -> None:
        """An HTML error page on a JSON API path (a server or proxy refusing the request
        before the app saw it, e.g. gunicorn's 400/414/431 pages) becomes the family's
        envelope with the same status: a JSON client must never have to parse HTML. Only
        error statuses and whole (buffered) answers are checked, so the hot path pays one
        comparison; a streamed (over 64 KiB) HTML error page is relayed as it is."""
        body = _html_replacement(self.family, self.status)
        self.client.respond(self.request, self.status, json_head(self.client.state), body)

    def _start_streaming(self) -> None:
        self.streaming = True
        head, upstream_length = hdr.response_head(self.headers, self._safe_location)
        self.client.start_stream(self.request, self.status, head, upstream_length)
        chunks, self.body = self.body, []
        for chunk in chunks:
            self.client.stream(self.request, chunk)

    def _safe_location(self, value: bytes) -> bytes | None:
        """A Location never names an internal address or echoes the request's Host."""
        if self.locations is None:
            return value
        return self.locations.safe(value, self.request.host)

    def _pause_upstream(self) -> None:
        """Backpressure: stop reading the upstream until the client drained its buffer."""
        conn = self.upstream
        if conn is None:
            return
        if self.client.closed:
            conn.close()  # nobody to read it: stop the upstream instead of waiting
            return
        conn.pause()
        self.client.on_drain = conn.resume


def _bodiless(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304)


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.lstrip().lower().startswith(b"text/html")
    return False


@functools.cache
def _html_replacement(family: Family, status: int) -> bytes:
    if status in MESSAGES:
        return cached_error_body(family, status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Upstream error"
    return error_body(family, status, phrase)
