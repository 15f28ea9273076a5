"""The services' gunicorn worker (`--worker-class gevent`): gevent's own WSGI server.

gunicorn's `gevent` worker parses each request with gunicorn's pure-Python parser. Its
`gevent_pywsgi` worker serves the same greenlets through gevent.pywsgi, which costs less
CPU per request, and less again with the header reader below in place of the email
parser gevent uses, and with a response's head and body in one send (README, "CPU per
request"). This module adds what the switch would otherwise lose: gunicorn's request
limits and its refusal of ambiguous framing, an idle timeout (`--keep-alive`), the accept
balance between workers, `Connection: close` while a worker stops, and logs that never
carry a request's contents.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from gevent.pywsgi import OldMessage, format_date_time
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from shared.greenlets import sent_at_once

log = logging.getLogger("gunicorn.error")

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
EXPECTATION_FAILED = (
    b"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
# Framing headers a request may carry at most once (two of them make the body length a
# guess, which is how request smuggling starts); Host and Content-Type, whose grammar
# admits one value (RFC 9110 5.3), as gunicorn and the gateway refuse a repeat.
SINGLE_HEADERS = ("host", "content-length", "transfer-encoding", "content-type")
# RFC 9112 3: exactly `method SP request-target SP HTTP-version CRLF` (gevent would split
# on any run of whitespace, and read a line without a version as HTTP/0.9).
# The method is a token without lower-case letters or "#", as gunicorn requires.
REQUEST_LINE = re.compile(r"[!$%&'*+\-.^_`|~0-9A-Z]+ [^\x00-\x20\x7f]+ HTTP/1\.[01]\r?\n")
# RFC 9110: a field name is a token; a value holds no CR, LF or NUL.
HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")
# A response whose body is at most this long goes out with its head in one send (one
# system call, one TCP segment on the loopback); a longer one is sent after the head, as
# gevent does, rather than copied.
ONE_SEND_MAX_BODY = 64 * 1024
# What "no limit" (0) in gunicorn's limit settings becomes: gunicorn's own maximum number
# of fields, and gevent's longest request line.
UNLIMITED_FIELDS = 32768
UNLIMITED_FIELD_SIZE = 8192


class RefusedRequest(ValueError):
    """A request head this server does not accept: answered 400 and the connection closed."""

    response = BAD_REQUEST


class UnmetExpectation(RefusedRequest):
    """An Expect other than 100-continue (RFC 9110 10.1.1: 417)."""

    response = EXPECTATION_FAILED


class ServiceServer(PyWSGIServer):  # type: ignore[misc]
    """gevent's WSGI server, accepting one connection per wake-up."""

    # As gunicorn's own gevent worker does with several workers: a worker that accepted
    # every waiting connection at once would leave the other workers idle.
    max_accept = 1


class RequestHeaders(OldMessage):  # type: ignore[misc]
    """gevent's request header fields, found by name through an index.

    gevent's type is the email package's Message, which finds a field by lower-casing
    every stored name on every look-up; a request is looked up about a dozen times
    (gevent, check_framing): 112 `str.lower` calls for one of 7 fields. Here the fields
    are indexed by lower-case name, and the index is made again whenever the field list
    changes behind it (every Message method that edits fields adds, removes or reassigns
    them, except `replace_header`, which is overridden). Values come back as Message's
    own would: read as latin-1, a value holds no surrogate for its policy to rewrite.
    With `_headers` below, the bare server handles a request of 6 fields in 256k
    instructions instead of 314k (callgrind).
    """

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        """Headers holding `fields`, (name, value) pairs in the order they were read."""
        super().__init__()
        self._by_name: dict[str, list[str]] = {}
        self._indexed: tuple[list[tuple[str, str]] | None, int] = (None, 0)
        if fields:
            self._headers = fields

    def _index(self) -> dict[str, list[str]]:
        """Lower-case name -> the values of its fields, in order."""
        fields: list[tuple[str, str]] = self._headers
        indexed, count = self._indexed
        if indexed is not fields or count != len(fields):
            by_name: dict[str, list[str]] = {}
            for name, value in fields:
                by_name.setdefault(name.lower(), []).append(value)
            self._by_name = by_name
            self._indexed = (fields, len(fields))
        return self._by_name

    def __setitem__(self, name: str, value: str) -> None:
        index = self._index()
        self._headers.append((name, value))
        index.setdefault(name.lower(), []).append(value)
        self._indexed = (self._headers, len(self._headers))

    def get(self, name: str, failobj: Any = None) -> Any:
        values = self._index().get(name.lower())
        return failobj if values is None else values[0]

    def get_all(self, name: str, failobj: Any = None) -> Any:
        values = self._index().get(name.lower())
        return failobj if values is None else list(values)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index()

    def replace_header(self, name: str, value: str) -> None:
        super().replace_header(name, value)
        self._indexed = (None, 0)  # a value changed in place: index again


class ServiceHandler(PyWSGIHandler):  # type: ignore[misc]
    """gevent's request handler with gunicorn's limits, strict framing and quiet logs."""

    provided_date: Any  # set by gevent's start_response: the application's own Date, or None

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        # gunicorn's settings reach the handler through the logger the worker gives the
        # server (gunicorn's own PyWSGIHandler logs through it too).
        self.cfg = server.log.cfg
        # gunicorn's limits on the request head; 0 means "no limit" to gunicorn. Read once
        # per connection, like the settings below: each read of gunicorn's config is a
        # look-up, and a request would otherwise make several.
        self.max_request_line = self.cfg.limit_request_line
        self.max_fields = self.cfg.limit_request_fields or UNLIMITED_FIELDS
        self.max_field_size = self.cfg.limit_request_field_size or UNLIMITED_FIELD_SIZE
        self.keepalive = self.cfg.keepalive
        self.access_log_on = bool(self.cfg.accesslog)
        # A connection is closed after --keep-alive seconds without a byte from the client,
        # between two requests or within one (nginx's header timeouts work the same way):
        # an idle or trickling client cannot hold a connection forever.
        sock.settimeout(self.keepalive or None)
        super().__init__(sock, address, server, rfile)

    def read_request(self, raw_requestline: str) -> bool:
        """Parse the head as gevent does, refusing what gunicorn would refuse."""
        limit = self.max_request_line
        if limit and len(raw_requestline.rstrip("\r\n")) > limit:
            raise RefusedRequest("request line too long")
        if not REQUEST_LINE.fullmatch(raw_requestline):
            raise RefusedRequest("malformed request line")
        super().read_request(raw_requestline)
        # gunicorn's meaning of --keep-alive 0; and a worker that is shutting down (its
        # server no longer accepts) ends each connection after the request it is serving.
        if not self.keepalive or self.server.closed:
            self.close_connection = True
        return True

    def MessageClass(self, fp: Any, *args: Any) -> OldMessage:
        """The request's header fields, read strictly (gevent's default is the email parser:
        lenient, and about 87 us per request of 7 fields on the bench machine, against 12)."""
        return read_header_block(fp, self.max_fields, self.max_field_size)

    def _headers(self) -> Iterator[tuple[str, str]]:
        """gevent's HTTP_* environ entries, from the fields as read (gevent writes each
        field out as a line and splits it again). The reader refuses folded lines, the
        one case where gevent's line-by-line reading differs."""
        for name, value in self.headers.raw_items():
            if "_" in name:  # as gevent: a name with "_" would pass for one with "-"
                continue
            key = name.replace("-", "_").upper()
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield "HTTP_" + key, value.strip()

    def finalize_headers(self) -> None:
        """gevent's response headers, with a Date made once a second, plus `Connection:
        close` whenever this response ends the connection, so that a client (the gateway's
        pool) does not reuse it."""
        if self.provided_date is None:
            self.response_headers.append((b"Date", http_date(time.time())))
            self.provided_date = True  # gevent's own would format it again, every time
        super().finalize_headers()
        headers = self.response_headers
        if (
            self.close_connection
            and self.request_version == "HTTP/1.1"
            and not any(name.lower() == b"connection" for name, _ in headers)
        ):
            headers.append((b"Connection", b"close"))

    def _write_with_headers(self, data: bytes) -> None:
        """The status line, the headers and a short body in one send (gevent sends the head,
        then the body: two system calls for every response)."""
        if len(data) > ONE_SEND_MAX_BODY:
            super()._write_with_headers(data)
            return
        self.headers_sent = True
        self.finalize_headers()
        if self.response_use_chunked:  # no length known: gevent frames the body in chunks
            self._sendall(self.response_head())
            self._write(data)
            return
        self._sendall(self.response_head() + data)

    def _sendall(self, data: bytes) -> None:
        """gevent's, with the usual one send first (see shared.greenlets.sent_at_once)."""
        sent = sent_at_once(self.socket, data)
        self.response_length += sent  # gevent's own adds the rest, once it is sent
        if sent < len(data):
            super()._sendall(memoryview(data)[sent:])

    def response_head(self) -> bytes:
        """The status line and headers as gevent writes them (already latin-1 bytes)."""
        lines = [b"%s: %s\r\n" % field for field in self.response_headers]
        return b"HTTP/1.1 %s\r\n%s\r\n" % (self.status, b"".join(lines))

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        """A malformed request: 400, logged by type only (its head may carry a token)."""
        log.info("refused a malformed request (%s)", type(ex).__name__)
        response = getattr(ex, "response", BAD_REQUEST)
        return (response.split(b" ", 2)[1].decode("ascii"), response)

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        """An error inside the server: 500, logged by type only (gevent's hub would print
        the WSGI environ: headers, cookies)."""
        log.error("the server failed a request (%s)", getattr(t, "__name__", t))
        self._send_error_response_if_possible(500)

    def log_error(self, msg: str, *args: Any) -> None:
        """gevent's own complaints, without their arguments (they quote the request)."""
        log.warning("http server: %s", msg if args else "refused a request")

    def log_request(self) -> None:
        """gunicorn's access line, only when it is switched on (the services log their own)."""
        if self.access_log_on:
            super().log_request()


_date_cache: tuple[int, bytes] = (-1, b"")  # (the second it was made for, the value)


def http_date(now: float) -> bytes:
    """The Date header's value for `now` (RFC 9110 5.6.7), formatted once per second."""
    global _date_cache
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, format_date_time(second))
    return _date_cache[1]


def read_header_block(fp: Any, max_fields: int, max_field_size: int) -> OldMessage:
    """Read header lines up to the blank line into gevent's header type; RefusedRequest for
    too many or too long fields, a name that is not a token (which also refuses obsolete
    line folding and whitespace before the colon), a control character in a value, a
    malformed or repeated framing header (check_framing)."""
    fields: list[tuple[str, str]] = []
    while True:
        line = fp.readline(max_field_size + 3)  # the field, CRLF, and one byte to tell
        if line in (b"\r\n", b"\n"):
            break
        if not line.endswith(b"\n") or len(line.rstrip(b"\r\n")) > max_field_size:
            raise RefusedRequest("header field too long or cut off")
        name, colon, value = line.partition(b":")
        value = value.rstrip(b"\r\n").strip(b" \t")
        if not colon or not HEADER_NAME.fullmatch(name) or FORBIDDEN_IN_VALUE.search(value):
            raise RefusedRequest("malformed header field")
        if len(fields) >= max_fields:
            raise RefusedRequest("too many header fields")
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
    headers = RequestHeaders(fields)
    check_framing(headers)
    return headers


def check_framing(headers: OldMessage) -> None:
    """RefusedRequest for a repeated framing header, a Content-Length that is not digits
    (Python's int() also reads "+5" and "1_0"), an Expect other than 100-continue, or a
    Transfer-Encoding other than chunked alone (gevent would drop a Content-Length sent
    beside it)."""
    for name in SINGLE_HEADERS:
        if len(headers.get_all(name, ())) > 1:
            raise RefusedRequest(f"repeated {name}")
    length = headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        raise RefusedRequest("malformed content-length")
    expectation = headers.get("expect")
    if expectation is not None and expectation.lower() != "100-continue":
        raise UnmetExpectation("unknown expectation")
    encoding = headers.get("transfer-encoding")
    if encoding is not None and (encoding.lower() != "chunked" or length is not None):
        raise RefusedRequest("unsupported transfer-encoding")


class ServiceWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's gevent_pywsgi worker with ServiceServer and ServiceHandler."""

    server_class = ServiceServer
    wsgi_handler = ServiceHandler
