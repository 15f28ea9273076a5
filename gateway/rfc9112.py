"""What the gateway refuses before a request can reach a service: RFC 9112 framing, and
whatever gunicorn (the services' server, gunicorn 27 defaults) would refuse.

Why: a request the gateway reads one way and a server behind it another is the root of
request smuggling, and a request gunicorn refuses gets its HTML page instead of the
API's envelope. So the gateway is never laxer than either: it refuses first, in the
envelope of the path's family, and closes the connection. Most rules are enforced by
httptools (llhttp) already; these are the ones llhttp lets through.

Each function answers 0 (acceptable) or the status to refuse with: 400, 505 for an HTTP
version other than 1.0/1.1 (RFC 9110 15.6.6), 501 for a transfer coding the gateway does
not implement (RFC 9112 6.1), 417 for an expectation it cannot meet (RFC 9110 10.1.1).
"""

from __future__ import annotations

import re

SUPPORTED_VERSIONS = frozenset({"1.0", "1.1"})
# RFC 9110 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 3.2 and RFC 3986 3.2.2: Host = uri-host [ ":" port ], where uri-host is an
# IP-literal in brackets or a reg-name (unreserved, pct-encoded, sub-delims; may be empty).
_HOST_VALUE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
# RFC 9110 6.5.1: fields that alter routing, framing or authentication must not come in a
# trailer section; gunicorn refuses them there (the rest are dropped by the gateway).
FORBIDDEN_TRAILERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"trailer", b"authorization", b"te"}
)
# RFC 9110 5.3: fields whose grammar admits one member only; gunicorn refuses a repeat.
SINGLETON_FIELDS = frozenset({b"host", b"content-type"})


def request_line_status(
    head: bytes | bytearray, method: str, url: bytes, version: str, body_tail: bytes = b""
) -> int:
    """Whether the request line in `head` (the bytes the head was read from) is exactly
    `method SP target SP HTTP/x.y CRLF` (RFC 9112 3), as gunicorn requires.

    llhttp accepts several spaces between the parts and reads a line without a version
    as HTTP/0.9; it reports only the parts, so the line is looked for as it must be.
    `body_tail`: the last bytes of the previous request's Content-Length body, which a
    pipelined request line follows directly.
    """
    if version == "0.9":
        # An explicit "HTTP/0.9" is a version the gateway does not speak; no version at
        # all is a malformed line.
        return 505 if _has_line(head, method, url, b"HTTP/0.9", body_tail) else 400
    if not _has_line(head, method, url, b"HTTP/" + version.encode("ascii"), body_tail):
        return 400
    return 0 if version in SUPPORTED_VERSIONS else 505


def _has_line(
    head: bytes | bytearray, method: str, url: bytes, version: bytes, body_tail: bytes
) -> bool:
    line = b"%b %b %b\r\n" % (method.encode("ascii"), url, version)
    if head.startswith(line):
        return True
    # Else where a line starts: after an earlier line's LF (a pipelined request, or the
    # empty line RFC 9112 2.2 lets a client send first), or right after the body of
    # the request before it.
    at = head.find(line, 1)
    while at > 0:
        if head[at - 1] == 0x0A or (body_tail and head.endswith(body_tail, 0, at)):
            return True
        at = head.find(line, at + 1)
    return False


def parser_error_status(message: str) -> int:
    """The status for an httptools parse error: 505 when it is about the version."""
    # llhttp's reasons: "Invalid HTTP version" (HTTP/1.2, HTTP/3.0...), and its pause on
    # the HTTP/2 connection preface ("PRI * HTTP/2.0") sent over plain HTTP/1.1.
    if message in ("Invalid HTTP version", "Pause on PRI/Upgrade"):
        return 505
    return 400


def target_status(method: str, url: bytes) -> int:
    """The request-target's form must suit the method (RFC 9112 3.2), as in gunicorn.

    origin-form (`/path`) always; absolute-form (`http://host/path`) with an http(s)
    scheme; asterisk-form (`*`) only for OPTIONS. Authority-form (`host:port`) is only
    for CONNECT, which a reverse proxy does not tunnel (llhttp already refuses it).
    """
    if url.startswith(b"/"):
        return 0
    if url == b"*":
        return 0 if method == "OPTIONS" else 400
    lowered = url[:8].lower()
    if lowered.startswith(b"http://") or lowered.startswith(b"https://"):
        return 0
    return 400


def host_status(version: str, host: bytes | None) -> int:
    """RFC 9112 3.2: an HTTP/1.1 request needs a Host, with a valid value (a second Host
    is refused as it is read)."""
    if host is None:
        return 400 if version == "1.1" else 0  # HTTP/1.0 predates Host
    return 0 if _HOST_VALUE.fullmatch(host.strip(b" \t")) else 400


def transfer_coding_status(value: bytes, version: str) -> int:
    """Only `Transfer-Encoding: chunked`, once, on HTTP/1.1.

    HTTP/1.0 with any Transfer-Encoding is faulty framing (RFC 9112 6.1, gunicorn 400);
    so is a request whose last coding is not chunked, or that chunks twice (RFC 9112
    6.3: its length cannot be determined). Another coding before chunked (`gzip,
    chunked`) cannot be forwarded: the gateway re-frames the body with a Content-Length
    and does not decode the coding, so 501 (RFC 9112 6.1).
    """
    if version != "1.1":
        return 400
    codings = [coding.strip(b" \t").lower() for coding in value.split(b",")]
    if codings == [b"chunked"]:
        return 0
    if not all(_TOKEN.fullmatch(coding) for coding in codings):
        return 400
    if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
        return 400
    return 501


def expect_status(value: bytes) -> int:
    """`Expect: 100-continue` is the only expectation there is (RFC 9110 10.1.1)."""
    return 0 if value.strip(b" \t").lower() == b"100-continue" else 417


def absolute_form_authority(url: bytes) -> bytes | None:
    """The authority of an absolute-form target (`http://host:port/x` -> `host:port`),
    or None when it has no host or carries userinfo (RFC 9110 4.2.4: refuse it)."""
    rest = url.split(b"://", 1)[1]
    authority = re.split(rb"[/?#]", rest, maxsplit=1)[0]
    if not authority or b"@" in authority:
        return None
    return authority
