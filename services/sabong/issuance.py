"""Issuing login tokens: validation, the token in Redis and the user in PostgreSQL, all or
nothing, and the response data.

The order keeps every contract with one wait on each store (SPEC section 6: one Redis
round trip per issuance):

1. one Redis script: SET NX the replay guard and, if the signature is fresh, SET the token
   (naming its user by clientId: the user id is not known yet) with its TTL. A replay
   answers 401 `Duplicate request signature` and a Redis error 500, both before the
   database is touched;
2. one PostgreSQL statement, its own transaction: upsert the user (+ wallet when new) and
   insert the audit row. Should it fail, the token and the guard are deleted again (best
   effort): no token for a user that does not exist, and the partner may resend the very
   request it got a 500 for (a PostgreSQL outage included).

Redis goes first because a replay must write nothing durable, and only Redis knows a
replay. The earlier order (BEGIN, upsert, Redis, COMMIT) waited on four round trips.
Signing in looks the user up by clientId (signin.py): one indexed read when a player
follows the link, at most once per token, rather than a second Redis write on every
issuance to put the user id into the token (2026-12-03 to 2026-12-06; tokens written
then still sign in without the read).

The commit is synchronous, like every commit here. Measured on this machine (one
PostgreSQL, 16 threads): asynchronous commit saved ~5 ms of latency per issuance when
alone but no throughput under load (group commit), while a database crash could then
lose users the partner was already given, and hand their ids to other clients.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from shared.exceptions import BadRequest
from shared.timestamps import iso_from_epoch_ms
from shared.web import parse_json_object

from .models import MAX_CLIENT_ID_CHARS
from .rules import is_missing
from .store import SabongStore
from .user_store import Issuance, IssueResult, UserStore, upsert_user
from .validation import TokenRequest, validate_token_request

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


def generate_auth_token(
    users: UserStore,
    store: SabongStore,
    body: bytes,
    signature: str,
    now: float,
    login_base_url: str,
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
    result = issue(users, store, _issuance(fields, ttl, now_ms), token, signature)
    return {
        "token": token,
        "expiration": iso_from_epoch_ms(now_ms + ttl * 1000),
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


def issue(
    users: UserStore, store: SabongStore, item: Issuance, token: str, signature: str
) -> IssueResult:
    """The token (Redis), then the user and audit (PostgreSQL): all or nothing (see above)."""
    store.store_token(token, item.expires_in, item.client_id, signature)
    try:
        with users.database.statement() as conn:
            return upsert_user(conn, item)
    except BaseException:
        # Nothing was written, or the outcome is unknown (the connection died at the
        # commit): either way, take the token back so that nobody signs in as a user who
        # may not exist, and free the signature so that the partner can resend.
        store.forget_token(token, item.client_id, signature)
        raise


def _issuance(fields: TokenRequest, ttl: int, now_ms: int) -> Issuance:
    """The database's view of one issuance."""
    return Issuance(
        client_id=fields.client_id,
        username=fields.username,
        display_name=fields.display_name,
        ip_address=fields.ip_address,
        expires_in=ttl,
        issued_at=datetime.fromtimestamp(now_ms // 1000, UTC).replace(
            microsecond=now_ms % 1000 * 1000
        ),
        password_hash=unusable_password_hash(),
    )


def replay_client_id(body: bytes) -> str | None:
    """The clientId an invalid body names, if usable as a key group; else None."""
    try:
        value = parse_json_object(body).get("clientId")
    except BadRequest:
        return None
    if isinstance(value, str) and not is_missing(value) and len(value) <= MAX_CLIENT_ID_CHARS:
        return value
    return None
