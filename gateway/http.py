"""The client side: a small HTTP/1.1 server protocol on asyncio, parsed by httptools.

Why not ASGI under uvicorn: measured on this project's 2-core box (same runs, real Sabong
service behind), this gateway as an ASGI app under uvicorn+uvloop+httptools cost about
240 us of gateway CPU per proxied request; this callback-only design with the same
features 140-200 us; nginx 60-110 us. The difference is per-request machinery (a task,
an event, message dicts, two writes per response) that a proxy does not need.

One `ClientConnection` per socket. Requests are answered strictly in order (pipelined
ones wait in `pending`, a 100 Continue waits for every earlier answer, a refusal comes
after them); each complete request goes to the handler (the `Gateway`), which answers
through `respond` or the `start_stream`/`stream`/`end_stream` trio. What the gateway
refuses beyond what llhttp does (to be never laxer than gunicorn): gateway/rfc9112.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

from .headers import sane_request_id
from .rfc9112 import (
    FORBIDDEN_TRAILERS,
    absolute_form_authority,
    expect_status,
    host_status,
    parser_error_status,
    request_line_status,
    target_status,
    transfer_coding_status,
)

log = logging.getLogger("gateway.http")

STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Stop reading a client that pipelines more than this many requests ahead.
MAX_PENDING = 16
# Pause the upstream when this much response data waits for a slow client.
WRITE_HIGH_WATER = 256 * 1024
# How long a refused client may keep sending (discarded) before the socket closes.
LINGER_SECONDS = 2.0


# What the services' gunicorn refuses with an HTML error page (its defaults, checked
# against gunicorn 27: `limit_request_line`, `limit_request_fields`,
# `limit_request_field_size`; scripts/serve.py does not change them). The gateway
# refuses the same requests itself, in the path's JSON envelope, so they never reach
# gunicorn. Its own limits sit below gunicorn's by what it adds when forwarding.
GUNICORN_LIMIT_REQUEST_LINE = 4094  # bytes of "METHOD target HTTP/1.1", without CRLF
GUNICORN_LIMIT_REQUEST_FIELDS = 100  # header fields per request
GUNICORN_LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes of one "name: value\r\n" line
# Header fields the gateway may add (x-forwarded-for/-proto/-host, x-request-id,
# content-length; headers.build_request_head).
ADDED_HEADER_FIELDS = 5
# Room for ", <peer address>" (IPv6 up to 45 characters) appended to X-Forwarded-For.
FORWARDED_FOR_MARGIN = 48
# The forwarded request line is "METHOD <target> HTTP/1.1": target + method + 10 bytes.
MAX_REQUEST_LINE = GUNICORN_LIMIT_REQUEST_LINE - len(b"  HTTP/1.1")  # url + method
MAX_HEADER_FIELDS = GUNICORN_LIMIT_REQUEST_FIELDS - ADDED_HEADER_FIELDS
# Bytes of name + value of one header (and of all X-Forwarded-For values joined).
MAX_HEADER_FIELD_BYTES = GUNICORN_LIMIT_REQUEST_FIELD_SIZE - len(b": \r\n") - FORWARDED_FOR_MARGIN

_NOTED = frozenset(
    {
        b"content-length",
        b"content-type",
        b"expect",
        b"x-request-id",
        b"connection",
        b"host",
        b"transfer-encoding",
        b"x-forwarded-for",
    }
)
# A request line in the bytes of a request the parser refused (its target names the
# API family of the error envelope).
_REQUEST_LINE = re.compile(rb"(?:^|\n)[!-~]+[ \t]+(/[^ \t?#\r\n]*)")


def _note(request: Request, name: bytes, value: bytes) -> None:
    """Keep the first value of a header the gateway acts on."""
    if name == b"content-length":
        if request.declared_length is None:
            request.declared_length = value
    elif name == b"x-request-id":
        if request.request_id_in is None:
            request.request_id_in = value
    elif name == b"expect":
        refusal = expect_status(value)
        if refusal:
            request.refusal = request.refusal or refusal
        else:
            request.expect_continue = True
    elif name == b"host":
        if request.host is not None:
            request.refusal = 400  # two Hosts: which one routes? (RFC 9112 3.2)
        else:
            request.host = value
    elif name == b"content-type":
        if request.content_type_seen:
            request.refusal = request.refusal or 400  # a singleton field, as in gunicorn
        request.content_type_seen = True
    elif name == b"transfer-encoding":
        previous = request.transfer_coding
        request.transfer_coding = value if previous is None else previous + b"," + value
    elif name == b"x-forwarded-for":
        # Joined into one line upstream: it must fit a field as a whole.
        request.forwarded_for_bytes += len(value) + 2
        if request.forwarded_for_bytes > MAX_HEADER_FIELD_BYTES - len(name):
            request.refusal = request.refusal or 431
    elif request.connection is None:
        request.connection = value
    else:
        request.connection += b"," + value


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode()


class Handler(Protocol):
    """What answers requests (the Gateway)."""

    def __call__(self, request: Request, client: ClientConnection) -> None: ...

    def reject(self, request: Request | None, client: ClientConnection, status: int) -> None: ...


class Limits:
    """Client-side limits, in bytes and seconds."""

    def __init__(
        self,
        max_body: int = 65536,
        max_head: int = 32768,
        keepalive: float = 5.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.max_body = max_body
        self.max_head = max_head
        self.keepalive = keepalive
        self.request_timeout = request_timeout


class Request:
    """One client request, complete with its body once handed to the handler."""

    __slots__ = (
        "body",
        "body_size",
        "connection",
        "content_length",
        "content_type_seen",
        "continue_due",
        "declared_length",
        "expect_continue",
        "field_count",
        "forwarded_for_bytes",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "log_path",
        "method",
        "path",
        "peer",
        "query",
        "raw_path",
        "refusal",
        "request_id",
        "request_id_in",
        "route",
        "started",
        "transfer_coding",
        "url",
    )

    def __init__(self, peer: str | None) -> None:
        self.started = time.perf_counter()
        self.peer = peer
        self.url = b""
        self.method = ""
        self.raw_path = b""
        self.path = ""
        self.query = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.content_length: int | None = None
        # First values of the headers the gateway itself acts on, noted while parsing.
        self.declared_length: bytes | None = None
        self.request_id_in: bytes | None = None
        self.connection: bytes | None = None
        self.host: bytes | None = None
        self.transfer_coding: bytes | None = None
        self.content_type_seen = False
        self.forwarded_for_bytes = 0
        # Header fields received, forwarded or not (gunicorn counts dropped ones too).
        self.field_count = 0
        # `Expect: 100-continue`, and whether the 100 waits for earlier answers.
        self.expect_continue = False
        self.continue_due = False
        # A status to refuse the request with once its head is parsed (0: none).
        self.refusal = 0
        self.http_version = "1.1"
        self.keep_alive = True
        self.request_id = b""
        self.log_path = ""
        # The metrics label: a route prefix or local path, from a fixed set (set by the
        # gateway); a path would make one time series per token or typo.
        self.route = "unmatched"

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def target(self) -> bytes:
        """The request target as received: raw path and query, never re-encoded."""
        return self.raw_path + b"?" + self.query if self.query else self.raw_path


class ServerState:
    """What every connection of one server shares: handler, limits, open connections."""

    def __init__(
        self, handler: Handler, limits: Limits, on_finish: Callable[[Request, int], None]
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.on_finish = on_finish
        self.connections: set[ClientConnection] = set()
        self.date_header = b""
        self.stopping = False
        self.tick()

    def tick(self) -> None:
        """Once a second: refresh the Date header, drop idle and too-slow clients."""
        self.date_header = b"date: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"
        now = time.monotonic()
        for conn in list(self.connections):
            conn.check_timeouts(now)


class ClientConnection(asyncio.Protocol):
    """One client socket: parse requests, hand them over in order, write the answers."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.limits = state.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.peer: str | None = None
        self.parsing: Request | None = None
        self.active: Request | None = None
        self.pending: deque[Request] = deque()
        self.head_bytes = 0  # bytes received while a head is incomplete
        self.head_size = 0  # bytes of header names and values in the head being parsed
        self.in_head = True
        self.parse_started = 0.0
        self.rejected = False
        # A refusal that waits for the answers to earlier (pipelined) requests.
        self.refused: tuple[Request, int] | None = None
        # The bytes the current head is being read from (its request line is checked
        # verbatim): the last read, or every read since the head began.
        self.head_window: bytes | bytearray = b""
        # The last bytes of the previous request's Content-Length body: the next request
        # line may follow them directly, not after a line feed.
        self.body_tail = b""
        self.closed = False
        self.last_seen = time.monotonic()
        self.streaming = False
        self.chunked = False
        self.writing_paused = False
        self.on_drain: Callable[[], None] | None = None

    # asyncio protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.rejected:
            return
        if self.in_head:
            self.head_bytes += len(data)
        self._keep_head_bytes(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switching here: the request was answered as plain HTTP; the
            # bytes after it belong to a protocol this gateway does not speak.
            if self.active is not None:
                self.active.keep_alive = False
            self.rejected = True
        except httptools.HttpParserCallbackError:
            log.exception("request parsing failed")  # our bug, not the client's bytes
            self._reject(500, self.parsing)
            return
        except httptools.HttpParserError as exc:
            self._reject(parser_error_status(str(exc)), self._refused_request(data))
            return
        if self.in_head and self.head_bytes > self.limits.max_head:
            # Still no end of headers after this many bytes: refuse before buffering more.
            self._reject(431, self.parsing)

    def _keep_head_bytes(self, data: bytes) -> None:
        """Remember the bytes a head is read from: the last read alone when a head starts
        in it (no copy), every read since when a head spans several (bounded: a head over
        `max_head` bytes is refused)."""
        if self.parsing is not None and self.in_head:
            window = self.head_window
            if isinstance(window, bytes):
                window = self.head_window = bytearray(window)
            window += data
        else:
            self.head_window = data

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.on_drain is not None:
            self.on_drain()

    # httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.parsing = Request(self.peer)
        self.parse_started = time.monotonic()
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.parsing
        if request is None:
            return  # the rest of a refused request
        name = name.lower()
        size = len(name) + len(value)
        self.head_size += size
        if not self.in_head:
            self._on_trailer(request, name)
            return
        request.field_count += 1
        if size > MAX_HEADER_FIELD_BYTES:
            request.refusal = request.refusal or 431
        if b"_" in name:
            # Dropped, as gunicorn drops them from a client (header_map=drop). Forwarded,
            # they would come from a proxy gunicorn trusts (127.0.0.1 by default), whose
            # SCRIPT_NAME and PATH_INFO headers it obeys: `Script_Name: /api/v1` from a
            # client would re-route the request inside the service.
            return
        request.headers.append((name, value))
        if name in _NOTED:
            _note(request, name, value)

    def _on_trailer(self, request: Request, name: bytes) -> None:
        """A field of a chunked body's trailer section: refused or dropped, never forwarded."""
        if self.head_size > self.limits.max_head:
            self._reject(431, request)
        elif name in FORBIDDEN_TRAILERS:
            self._reject(400, request)  # as gunicorn: they would change routing or framing
        # Any other is dropped: the body goes upstream with a Content-Length and no
        # trailer section, and merging trailers into the header section would let them
        # skip the checks made on the head (RFC 9110 6.5.2).

    def on_headers_complete(self) -> None:
        request = self.parsing
        if request is None:
            return
        self.in_head = False
        if self.rejected:
            return  # pipelined after a refused request: never answered
        parser = self.parser
        request.method = parser.get_method().decode("ascii")
        request.http_version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        refusal = self._framing_refusal(request)
        if refusal:
            self._reject(refusal, request)
            return
        try:
            url = httptools.parse_url(request.url)
        except httptools.HttpParserInvalidURLError:
            self._reject(400, request)
            return
        raw_path = url.path or b"/"
        request.raw_path = raw_path
        request.query = url.query or b""
        path = raw_path.decode("latin-1")
        request.path = unquote(path, "latin-1") if "%" in path else path
        request.request_id = sane_request_id(request.request_id_in)
        url_size = len(request.url)
        if (
            request.refusal
            or url_size + len(request.method) > MAX_REQUEST_LINE
            or request.field_count > MAX_HEADER_FIELDS
            or self.head_size + url_size > self.limits.max_head
        ):
            self._reject(self._head_refusal(request), request)
            return
        declared = request.declared_length
        if declared is not None:
            if not declared.isdigit():  # httptools rejects these already; belt and braces
                self._reject(400)
                return
            request.content_length = int(declared)
            if request.content_length > self.limits.max_body:
                self._reject(413, request)
                return
        if request.expect_continue and request.http_version == "1.1":
            # An interim answer must not overtake a final one (responses stay in order):
            # with an earlier request still being answered, the 100 waits for `_finish`.
            # HTTP/1.0 clients do not know 100 (RFC 9110 10.1.1: ignore the expectation).
            if self.active is None and not self.pending:
                self.transport.write(CONTINUE)
            else:
                request.continue_due = True

    def _framing_refusal(self, request: Request) -> int:
        """The status for a head RFC 9112 or gunicorn would refuse (0: none); an
        absolute-form target's authority becomes the Host sent upstream."""
        version = request.http_version
        refusal = (
            request_line_status(
                self.head_window, request.method, request.url, version, self.body_tail
            )
            or target_status(request.method, request.url)
            or host_status(version, request.host)
        )
        if not refusal and request.transfer_coding is not None:
            refusal = transfer_coding_status(request.transfer_coding, version)
        if refusal or request.url[:1] in (b"/", b"*"):
            return refusal
        # RFC 9112 3.2.2: for an absolute-form target the Host header is ignored and
        # replaced by the target's authority (the gateway forwards origin-form).
        authority = absolute_form_authority(request.url)
        if authority is None or host_status(version, authority):
            return 400
        request.headers = [(n, v) for n, v in request.headers if n != b"host"]
        request.headers.append((b"host", authority))
        request.host = authority
        return 0

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None:
            return
        request.body_size += len(body)
        if request.body_size > self.limits.max_body:
            self._reject(413, request)  # chunked bodies can only be counted as they stream
            return
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self.parsing
        if request is None or self.rejected:
            return
        self.parsing = None
        self.in_head = True
        self.head_bytes = 0
        chunked = request.transfer_coding is not None
        self.body_tail = request.body[-1][-16:] if request.body and not chunked else b""
        if self.active is None:
            self._start(request)
        else:
            self.pending.append(request)
            if len(self.pending) >= MAX_PENDING:
                self.transport.pause_reading()

    # answering ----------------------------------------------------------------------
    def _start(self, request: Request) -> None:
        self.active = request
        try:
            self.state.handler(request, self)
        except Exception:
            # A bug must cost one 500 in the envelope, never a hung client or a trace.
            log.exception("request handling failed", extra={"path": request.log_path})
            if self.active is request:
                request.keep_alive = False
                self.state.handler.reject(request, self, 500)

    def _head_refusal(self, request: Request) -> int:
        """The status for a head over a limit or with a conflicting header."""
        if len(request.url) + len(request.method) > MAX_REQUEST_LINE:
            return 414
        return request.refusal or 431

    def _refused_request(self, data: bytes) -> Request:
        """The request the parser refused, with as much of its target as can be read."""
        request = self.parsing or Request(self.peer)
        if not request.url:
            lines = _REQUEST_LINE.findall(data)
            if lines:
                request.url = lines[-1]
        return request

    def _reject(self, status: int, request: Request | None = None) -> None:
        """Answer a request the parser or a limit refused, then close the connection
        (once refused, the framing of whatever follows cannot be trusted)."""
        if self.rejected:
            return
        self.rejected = True
        if self.transport.is_closing():
            # Bytes pipelined after a `Connection: close` request, read in the same
            # feed_data as it: the connection is closed already, so there is nobody to
            # answer (and no request to count in the metrics and the access log).
            self.parsing = None
            return
        self.parsing = None
        target = request or Request(self.peer)
        target.keep_alive = False
        if not target.request_id:
            target.request_id = sane_request_id(target.request_id_in)
        if self.active is None:
            self._answer_refusal(target, status)
        else:
            # The answers to earlier requests go first, in order; this one after them.
            self.refused = (target, status)

    def _answer_refusal(self, request: Request, status: int) -> None:
        self.active = request
        self.state.handler.reject(request, self, status)

    def respond(
        self,
        request: Request,
        status: int,
        head: bytes,
        body: bytes,
        content_length: bool = True,
    ) -> None:
        """Write one whole answer (one write call) and finish the request."""
        if request is not self.active:
            return
        if not self.closed:
            parts = [status_line(status), head]
            if content_length:
                parts.append(b"content-length: %d\r\n" % len(body))
            parts += self._trailing_headers(request)
            if request.method != "HEAD":
                parts.append(body)
            self.transport.write(b"".join(parts))
        self._finish(request, status)

    def start_stream(
        self, request: Request, status: int, head: bytes, content_length: bytes | None
    ) -> None:
        """Send status and headers now; the body follows in `stream` calls."""
        if request is not self.active or self.closed:
            return
        self.streaming = True
        parts = [status_line(status), head]
        if content_length is not None:
            parts.append(b"content-length: " + content_length + b"\r\n")
            self.chunked = False
        elif request.http_version == "1.1":
            parts.append(b"transfer-encoding: chunked\r\n")
            self.chunked = True
        else:
            request.keep_alive = False  # HTTP/1.0 without a length: the close ends it
            self.chunked = False
        parts += self._trailing_headers(request)
        self.transport.write(b"".join(parts))

    def stream(self, request: Request, chunk: bytes) -> bool:
        """Write body bytes; False when the client cannot take more right now."""
        if request is not self.active or self.closed or not chunk or request.method == "HEAD":
            return not self.closed
        if self.chunked:
            self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self.transport.write(chunk)
        return bool(self.transport.get_write_buffer_size() < WRITE_HIGH_WATER)

    def end_stream(self, request: Request, status: int) -> None:
        """Finish a streamed answer."""
        if request is not self.active:
            return
        if self.chunked and not self.closed and request.method != "HEAD":
            self.transport.write(b"0\r\n\r\n")
        self.streaming = self.chunked = False
        self._finish(request, status)

    def abort(self, request: Request, status: int) -> None:
        """The answer cannot be completed after its headers went out: close the socket."""
        if request is self.active:
            self.streaming = False
            request.keep_alive = False
            self._finish(request, status)

    def _trailing_headers(self, request: Request) -> list[bytes]:
        parts = [b"x-request-id: ", request.request_id, b"\r\n"]
        if not request.keep_alive or self.rejected or self.state.stopping:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return parts

    def _finish(self, request: Request, status: int) -> None:
        self.active = None
        self.on_drain = None
        self.last_seen = time.monotonic()
        self.state.on_finish(request, status)
        if self.closed:
            return
        if request.keep_alive and not self.state.stopping:
            if self.pending:
                self.transport.resume_reading()
                self._start(self.pending.popleft())
                return
            if self.refused is not None:
                refused, self.refused = self.refused, None
                self._answer_refusal(*refused)
                return
            if not self.rejected:
                self._send_continue_if_due()
                return
        if self.rejected:
            self._linger()
        else:
            self.transport.close()

    def _send_continue_if_due(self) -> None:
        """Every earlier answer is out: the request being read may have its 100 now."""
        request = self.parsing
        if request is not None and request.continue_due:
            request.continue_due = False
            self.parse_started = time.monotonic()  # its wait for our 100 is not slowness
            self.transport.write(CONTINUE)

    def _linger(self) -> None:
        """Close after refusing a request whose body may still be arriving: half-close,
        discard what comes, close a moment later. Closing at once with unread bytes
        makes the kernel send a reset that can destroy the answer before it is read."""
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    # housekeeping ---------------------------------------------------------------------
    def check_timeouts(self, now: float) -> None:
        """Close a keep-alive connection idle too long, or a client too slow to send."""
        if self.closed or self.active is not None:
            return
        if self.parsing is None:
            if now - self.last_seen > self.limits.keepalive:
                self.transport.close()
        elif now - self.parse_started > self.limits.request_timeout:
            self.transport.close()  # slowloris: a request trickling in forever

    def close_if_idle(self) -> None:
        """During shutdown: close now unless a request is being answered."""
        if self.active is None and not self.closed:
            self.transport.close()
