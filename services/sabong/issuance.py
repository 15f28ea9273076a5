"""Issuing login tokens: validation, the atomic store call, and the response data."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from shared.exceptions import BadRequest
from shared.web import parse_json_object

from .store import Issuance, SabongStore
from .validation import TokenRequest, is_missing, validate_token_request

TOKEN_LENGTH = 64
TOKEN_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Rejection sampling: bytes >= 248 (= 4 * 62) are dropped so `byte % 62` is uniform.
_UNBIASED_LIMIT = 256 - 256 % len(TOKEN_ALPHABET)
_BYTE_TO_CHAR = bytes(TOKEN_ALPHABET[b % len(TOKEN_ALPHABET)] for b in range(256))
_BIASED_BYTES = bytes(range(_UNBIASED_LIMIT, 256))


def new_login_token() -> str:
    """64 characters of [A-Za-z0-9] from the OS CSPRNG, uniform (about 381 bits)."""
    chars = b""
    while len(chars) < TOKEN_LENGTH:
        chars += secrets.token_bytes(96).translate(_BYTE_TO_CHAR, _BIASED_BYTES)
    return chars[:TOKEN_LENGTH].decode("ascii")


def is_token_shaped(token: str) -> bool:
    """A possible login token: exactly 64 ASCII letters and digits."""
    return len(token) == TOKEN_LENGTH and token.isascii() and token.isalnum()


def unusable_password_hash() -> str:
    """A hash of random bytes nobody knows; `!` marks it as never usable to log in."""
    return "!" + hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def iso_millis(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, e.g. 2026-02-01T14:59:42.123Z."""
    # gmtime and plain formatting: several times cheaper than datetime + strftime, and
    # this runs twice per issuance on the hot path.
    t = time.gmtime(epoch_ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{epoch_ms % 1000:03d}Z"
    )


def generate_auth_token(
    store: SabongStore, body: bytes, signature: str, now: float, login_base_url: str
) -> dict[str, Any]:
    """Validate the signed body, upsert the user and store a new token; the response data."""
    try:
        fields = validate_token_request(parse_json_object(body))
    except BadRequest:
        # The signature was genuine, so it is spent even though the body is invalid: a
        # replay of it must say "Duplicate request signature", not repeat the 400.
        store.remember_signature(signature, replay_client_id(body))
        raise
    token = new_login_token()
    now_ms = int(now * 1000)
    ttl = fields.expiration_minutes * 60
    result = store.issue_token(_issuance(fields, token, ttl, now_ms), signature)
    return {
        "token": token,
        "expiration": iso_millis(now_ms + ttl * 1000),
        "expiresIn": ttl,
        "loginLink": f"{login_base_url}/login/{token}",
        "user": {
            "id": result.user_id,
            "username": fields.username,
            "displayId": fields.client_id,
            "displayName": fields.display_name,
        },
        "isNewUser": result.is_new,
    }


def _issuance(fields: TokenRequest, token: str, ttl: int, now_ms: int) -> Issuance:
    """The store's view of one issuance."""
    return Issuance(
        client_id=fields.client_id,
        username=fields.username,
        display_name=fields.display_name,
        ip_address=fields.ip_address,
        token=token,
        token_ttl=ttl,
        now_iso=iso_millis(now_ms),
        year=time.gmtime(now_ms // 1000).tm_year,
        password_hash=unusable_password_hash(),
    )


def replay_client_id(body: bytes) -> str | None:
    """The clientId an invalid body names, if usable as a key group; else None."""
    try:
        value = parse_json_object(body).get("clientId")
    except BadRequest:
        return None
    if isinstance(value, str) and not is_missing(value) and len(value) <= 255:
        return value
    return None
