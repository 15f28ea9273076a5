"""Read a JWT's claims WITHOUT verifying it: a client holds no key, it only needs `exp`."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS as a dict, or None when it is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _numeric_claim(claims: dict[str, Any] | None, name: str) -> float | None:
    """A NumericDate claim as float seconds; booleans and non-numbers are ignored."""
    value = None if claims is None else claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def token_expiry(token: str) -> float | None:
    """The token's `exp` (Unix seconds), or None when absent or unreadable."""
    return _numeric_claim(unverified_claims(token), "exp")


def token_lifetime(token: str) -> float | None:
    """`exp - iat` in seconds, or None when either claim is missing."""
    claims = unverified_claims(token)
    expires, issued = _numeric_claim(claims, "exp"), _numeric_claim(claims, "iat")
    if expires is None or issued is None:
        return None
    return expires - issued
