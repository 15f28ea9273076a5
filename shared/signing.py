"""Sabong request signing: HMAC-SHA256 over METHOD + PATH + TIMESTAMP + PAYLOAD."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Iterable, Mapping

from .exceptions import SignatureRejected

SIGNATURE_WINDOW_SECONDS = 300
_HEX_DIGITS = frozenset("0123456789abcdef")


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """GET payload: decoded query parameters sorted by key, as `key=value` joined by `&`."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    # A stable sort keeps repeated keys in the order they were sent.
    return "&".join(f"{key}={value}" for key, value in sorted(pairs, key=lambda p: p[0]))


def string_to_sign(method: str, path: str, timestamp: str, payload: bytes) -> bytes:
    """The exact bytes that are signed: no separators, payload as raw bytes."""
    return method.upper().encode("utf-8") + path.encode("utf-8") + timestamp.encode() + payload


def sign(secret: str, method: str, path: str, timestamp: str | int, payload: bytes | str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign; what a partner puts in x-signature."""
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    message = string_to_sign(method, path, str(timestamp), body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secrets: Iterable[str],
    method: str,
    path: str,
    timestamp: str | None,
    signature: str | None,
    payload: bytes,
    now: float | None = None,
    window: int = SIGNATURE_WINDOW_SECONDS,
) -> str:
    """Check headers, window and HMAC; return the normalised signature (for replay checks)."""
    keys = [s for s in secrets if s]
    if not timestamp or not signature or not keys:
        raise SignatureRejected("missing_headers")
    stamp = _parse_timestamp(timestamp)
    current = time.time() if now is None else now
    # Whole seconds on both sides: the window is inclusive, so a timestamp exactly 300 s
    # old is accepted however far into that second the server's clock has moved.
    if abs(math.floor(current) - stamp) > window:
        raise SignatureRejected("timestamp_expired")
    presented = signature.strip().lower()
    if len(presented) != 64 or not _HEX_DIGITS.issuperset(presented):
        raise SignatureRejected("signature_mismatch")
    matched = False
    for key in keys:
        # Every key is tried (no early exit) so timing does not reveal which one matched.
        expected = sign(key, method, path, timestamp, payload)
        matched |= hmac.compare_digest(expected, presented)
    if not matched:
        raise SignatureRejected("signature_mismatch")
    return presented


def _parse_timestamp(raw: str) -> int:
    """Unix seconds as a plain decimal integer; anything else is timestamp_invalid."""
    text = raw.strip()
    digits = text[1:] if text[:1] == "-" else text
    if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
        raise SignatureRejected("timestamp_invalid")
    return int(text)
