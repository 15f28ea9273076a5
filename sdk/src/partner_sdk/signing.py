"""Sabong request signing, as SPEC section 3 defines it (a copy: the SDK imports no server code)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

# How far `x-timestamp` may be from the server's clock; a signature is unique within it.
SIGNATURE_WINDOW_SECONDS = 300


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """GET payload: decoded query parameters sorted by key, as `key=value` joined by `&`."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    # A stable sort keeps repeated keys in the order they were sent.
    return "&".join(f"{key}={value}" for key, value in sorted(pairs, key=lambda p: p[0]))


def string_to_sign(method: str, path: str, timestamp: str, payload: bytes) -> bytes:
    """The exact bytes that are signed: no separators, payload as raw bytes."""
    return method.upper().encode("utf-8") + path.encode("utf-8") + timestamp.encode() + payload


def sign(secret: str, method: str, path: str, timestamp: str | int, payload: bytes | str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign: the `x-signature` value."""
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    message = string_to_sign(method, path, str(timestamp), body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
