"""The gateway is never laxer than gunicorn (issue 12, item 5), tested against both.

Each malformed request goes straight to the Sabong service's gunicorn and through the
gateway. Whatever gunicorn refuses, the gateway refuses too, in the Sabong envelope,
and never passes to the service. Some the gateway refuses by RFC 9112 while gunicorn
lets them through (an HTTP/1.1 request without Host): those are checked at the gateway.
"""

from __future__ import annotations

import pytest

from .platform import Platform
from .wire import Answer, send_raw

PATH = b"/api/v1/me"  # the service answers a sound request with 401 (no session)
APP_ANSWER = 401


def _get(*fields: bytes, line: bytes = b"GET " + PATH + b" HTTP/1.1") -> bytes:
    return b"\r\n".join([line, b"Host: 127.0.0.1", *fields, b"Connection: close", b"", b""])


def _post(*fields: bytes, body: bytes) -> bytes:
    return _get(*fields, line=b"POST " + PATH + b" HTTP/1.1") + body


GUNICORN_REFUSES = {
    "no version": b"GET /api/v1/me\r\nHost: 127.0.0.1\r\n\r\n",
    "HTTP/2.0 over HTTP/1.1": _get(line=b"GET /api/v1/me HTTP/2.0"),
    "double space after the method": _get(line=b"GET  /api/v1/me HTTP/1.1"),
    "double space before the version": _get(line=b"GET /api/v1/me  HTTP/1.1"),
    "lower-case method": _get(line=b"get /api/v1/me HTTP/1.1"),
    "asterisk target on GET": _get(line=b"GET * HTTP/1.1"),
    "authority-form target on GET": _get(line=b"GET 127.0.0.1:80 HTTP/1.1"),
    "two Host headers": _get(b"Host: evil.example"),
    "two Content-Type headers": _get(b"Content-Type: a/b", b"Content-Type: c/d"),
    "header name with a separator": _get(b"X(a): 1"),
    "obsolete line folding": _get(b"X-A: 1", b" folded"),
    "unknown expectation": _get(b"Expect: 200-ok"),
    "two Content-Length headers": _post(b"Content-Length: 2", b"Content-Length: 2", body=b"{}"),
    "Content-Length and Transfer-Encoding": _post(
        b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"
    ),
    "Transfer-Encoding not ending in chunked": _post(b"Transfer-Encoding: gzip", body=b"{}"),
    "chunk size not hex": _post(b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"),
    "Host in the trailer section": _post(
        b"Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\nHost: evil.example\r\n\r\n"
    ),
    "chunked body on HTTP/1.0": (
        b"POST /api/v1/me HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    ),
}
# Refused by the gateway under RFC 9112 although gunicorn serves them.
RFC_REFUSES = {
    "HTTP/1.1 without Host": b"GET /api/v1/me HTTP/1.1\r\nConnection: close\r\n\r\n",
    "a coding before chunked": _post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
}


def _refused_by_the_gateway(answer: Answer) -> None:
    """A gateway refusal in the envelope: Sabong's for an /api/v1/ target, else K2's (the
    target of `GET *` names no family)."""
    assert answer.status in (400, 417, 501, 505), answer.brief()
    assert answer.headers.get("content-type") == "application/json", answer.brief()
    body = answer.json()
    assert set(body) == {"status", "message", "data"}, answer.brief()
    assert body["status"] in ("error", answer.status), answer.brief()


@pytest.mark.parametrize("case", GUNICORN_REFUSES, ids=list(GUNICORN_REFUSES))
def test_what_gunicorn_refuses_the_gateway_refuses(shared_platform: Platform, case: str) -> None:
    raw = GUNICORN_REFUSES[case]
    direct = send_raw(shared_platform.sabong[0].port, raw, timeout=5)
    assert direct.status >= 400 and direct.status != APP_ANSWER, f"gunicorn: {direct.brief()}"
    _refused_by_the_gateway(send_raw(shared_platform.port, raw, timeout=5))


@pytest.mark.parametrize("case", RFC_REFUSES, ids=list(RFC_REFUSES))
def test_what_rfc_9112_forbids_the_gateway_refuses(shared_platform: Platform, case: str) -> None:
    _refused_by_the_gateway(send_raw(shared_platform.port, RFC_REFUSES[case], timeout=5))


def test_the_same_request_well_formed_reaches_the_service(shared_platform: Platform) -> None:
    """The control: the path answers the service's own 401 through both."""
    for port in (shared_platform.sabong[0].port, shared_platform.port):
        assert send_raw(port, _get()).status == APP_ANSWER
