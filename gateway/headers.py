"""Header rewriting in both directions: hop-by-hop removal, request id, X-Forwarded-*."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from .location import LOCATION_FIELDS

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Proxy-Connection
# is the pre-standard spelling some clients still send.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Rewritten by the gateway rather than copied. Content-Length: the body is buffered
# and re-framed. Expect: the gateway already answered any 100-continue itself.
# X-Forwarded-Protocol and X-Forwarded-Ssl: gunicorn reads the scheme from them (its
# secure_scheme_headers) when they come from a proxy it trusts, as the gateway is; only
# the gateway may say what the scheme was (X-Forwarded-Proto).
_REQUEST_REWRITTEN = frozenset(
    {
        b"content-length",
        b"expect",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-protocol",
        b"x-forwarded-ssl",
        b"x-forwarded-host",
    }
)
# The upstream's Server would only leak what runs behind the gateway; X-Request-ID is
# set by the gateway; the body is re-framed (Transfer-Encoding is hop-by-hop already).
_RESPONSE_REWRITTEN = frozenset({b"server", b"x-request-id"})

REQUEST_ID_HEADER = b"x-request-id"
_random_bits = random.getrandbits
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def new_request_id() -> bytes:
    """A fresh request id: 32 hex characters.

    A correlation id, not a secret: Python's PRNG (seeded from the OS, reseeded in every
    forked worker) is enough and saves a system call per request.
    """
    return b"%032x" % _random_bits(128)


def sane_request_id(value: bytes | None) -> bytes:
    """The client's request id if it is short and plain, else a new one.

    Anything longer or with other characters could forge log lines or headers
    downstream, so it is replaced rather than escaped.
    """
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


def connection_tokens(value: bytes) -> set[bytes]:
    """Header names listed in a Connection header (they are hop-by-hop too)."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def build_request_head(
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    peer: str | None,
    scheme: str,
    body_length: int,
    request_id: bytes,
    connection: bytes | None = None,
) -> bytes:
    """The upstream request line and headers, hop-by-hop stripped, X-Forwarded-* set.

    `connection` is the client's Connection header: the names it lists are hop-by-hop
    too. `headers` have lower-case names.
    """
    dropped = _listed_in_connection(connection) if connection else None
    out = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    forwarded_for: list[bytes] = []
    host: bytes | None = None
    for name, value in headers:
        action = _REQUEST_ACTIONS.get(name)
        if action is None:
            if dropped is None or name not in dropped:
                out += (name, b": ", value, b"\r\n")
        elif action is _HOST:
            host = value
            out += (name, b": ", value, b"\r\n")
        elif action is _FORWARDED_FOR:
            forwarded_for.append(value)
        # else: hop-by-hop or rewritten below
    if peer:
        forwarded_for.append(peer.encode("ascii", "replace"))
    if forwarded_for:
        out += (b"x-forwarded-for: ", b", ".join(forwarded_for), b"\r\n")
    out += (b"x-forwarded-proto: ", scheme.encode("ascii", "replace"), b"\r\n")
    if host is not None:
        out += (b"x-forwarded-host: ", host, b"\r\n")
    out += (b"x-request-id: ", request_id, b"\r\n")
    if body_length or method not in _BODILESS_METHODS:
        out += (b"content-length: ", str(body_length).encode("ascii"), b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


_HOST = "host"
_FORWARDED_FOR = "forwarded-for"
_SKIP = "skip"
_REQUEST_ACTIONS: dict[bytes, str] = {
    **{name: _SKIP for name in HOP_BY_HOP | _REQUEST_REWRITTEN},
    b"host": _HOST,
    b"x-forwarded-for": _FORWARDED_FOR,
}
_BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
_connection_cache: dict[bytes, frozenset[bytes] | None] = {}


def _listed_in_connection(value: bytes) -> frozenset[bytes] | None:
    """Names a Connection header adds to the hop-by-hop set (None when it adds none)."""
    cached = _connection_cache.get(value, False)
    if cached is not False:
        return cached  # type: ignore[return-value]
    extra = frozenset(connection_tokens(value) - HOP_BY_HOP - {b"close"})
    result = extra or None
    if len(_connection_cache) < 256:  # the usual values repeat ("keep-alive", "close")
        _connection_cache[value] = result
    return result


def response_head(
    upstream: list[tuple[bytes, bytes]],
    safe_location: Callable[[bytes], bytes | None] | None = None,
) -> tuple[bytes, bytes | None]:
    """The upstream's response headers for the client, as header lines, and its
    Content-Length (the gateway re-frames the body, so both framing headers go).

    `safe_location` rewrites (or, returning None, drops) a Location or Content-Location
    value: see gateway.location.
    """
    out: list[bytes] = []
    dropped: frozenset[bytes] | None = None
    length: bytes | None = None
    for name, value in upstream:
        lowered = _response_names.get(name)
        if lowered is None:
            lowered = _classify_response_name(name)
        if lowered is _DROP:
            if name.lower() == b"connection":
                dropped = _listed_in_connection(value)
            continue
        if lowered is _LENGTH:
            length = value
            continue
        if safe_location is not None and lowered in LOCATION_FIELDS:
            kept = safe_location(value)
            if kept is None:
                continue
            value = kept
        out += (lowered, b": ", value, b"\r\n")
    if dropped:
        return _without(out, dropped), length
    return b"".join(out), length


_DROP = b"\x00drop"
_LENGTH = b"\x00length"
_response_names: dict[bytes, bytes] = {}


def _classify_response_name(name: bytes) -> bytes:
    """Lower-case `name`, or a marker: dropped (hop-by-hop, rewritten) or the length."""
    lowered = name.lower()
    if lowered in HOP_BY_HOP or lowered in _RESPONSE_REWRITTEN:
        result = _DROP
    elif lowered == b"content-length":
        result = _LENGTH
    else:
        result = lowered
    if len(_response_names) < 512:  # names repeat; the cache stays tiny
        _response_names[name] = result
    return result


def _without(lines: list[bytes], names: frozenset[bytes]) -> bytes:
    """Header lines (as built above, 4 parts each) minus those whose name is in `names`."""
    kept = [lines[i : i + 4] for i in range(0, len(lines), 4) if lines[i] not in names]
    return b"".join(part for line in kept for part in line)
