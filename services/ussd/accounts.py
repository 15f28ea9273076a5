"""Client accounts: creation and admin changes (the CLI), and their public JSON form.

Accounts live in PostgreSQL (account_store.py). Every admin change also rewrites the
client's Redis cache entry before it commits, so it takes effect at the next request;
client_cache.py explains why that order fails closed.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from shared.timestamps import iso_utc, utc_datetime

from .exceptions import ClientNotFound, InvalidAccountField, UsernameTaken
from .models import MAX_PASSWORD_CHARS
from .passwords import hash_password
from .runtime import Runtime
from .validation import bounded_text

USERNAME = re.compile(r"[\w.@+-]{1,100}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
MSISDN = re.compile(r"\+?[0-9]{6,20}")
ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MIN_PASSWORD_CHARS = 8
DEFAULT_ROLE = "client"
# A fresh UUID whose 8-hex tag is already taken is retried; 5 misses in a row would mean
# billions of clients, so the loop is a guard, not a real path.
TAG_ATTEMPTS = 5


def public_user(record: Mapping[str, str]) -> dict[str, Any]:
    """The `user` object of the contract; never the password hash or internal fields."""
    return {
        "id": record["id"],
        "client_id": record["client_id"],
        "username": record["username"],
        "email": record.get("email", ""),
        "role": record.get("role", DEFAULT_ROLE),
        "is_active": 1 if record.get("is_active") == "1" else 0,
        "msisdn": record.get("msisdn") or None,
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "deleted_at": None,
    }


def create_client(
    ctx: Runtime,
    username: str,
    password: str,
    email: str = "",
    msisdn: str | None = None,
    role: str = DEFAULT_ROLE,
) -> dict[str, Any]:
    """Create an active client; UsernameTaken / InvalidAccountField when refused."""
    _check_fields(username, email, msisdn or "", role)
    _check_password(password)
    # To the millisecond: what PostgreSQL stores and gives back.
    now = iso_utc(utc_datetime(ctx.clock()))
    record = {
        "client_id": "K2-" + secrets.token_hex(5).upper(),
        "username": username,
        "email": email,
        "role": role,
        "is_active": "1",
        "msisdn": msisdn or "",
        "created_at": now,
        "updated_at": now,
        "password_hash": hash_password(password, ctx.scrypt),
        "gen": "1",
    }
    for _ in range(TAG_ATTEMPTS):
        record["id"] = str(uuid.uuid4())
        outcome = ctx.accounts.insert_client(record)
        if outcome.created:
            return public_user(record)
        if outcome.username_taken:
            raise UsernameTaken(f"username {username!r} is already taken")
    raise InvalidAccountField("could not allocate a unique client id; try again")


def set_active(ctx: Runtime, username: str, active: bool) -> dict[str, Any]:
    """Enable or disable a client. Disabling kills its login JWTs and Service IDs at once."""
    record = ctx.accounts.set_active(
        username, active, utc_datetime(ctx.clock()), ctx.store.replace_client_cache
    )
    if record is None:
        raise ClientNotFound(f"no client with username {username!r}")
    return public_user(record)


def reset_password(ctx: Runtime, username: str, password: str) -> dict[str, Any]:
    """Set a new password; every login JWT and Service ID issued before stops working."""
    _check_password(password)
    password_hash = hash_password(password, ctx.scrypt)
    record = ctx.accounts.set_password_hash(
        username, password_hash, utc_datetime(ctx.clock()), ctx.store.replace_client_cache
    )
    if record is None:
        raise ClientNotFound(f"no client with username {username!r}")
    return public_user(record)


def list_clients(ctx: Runtime) -> list[dict[str, Any]]:
    """Every client, oldest first."""
    return [public_user(record) for record in ctx.accounts.all_clients()]


def _check_fields(username: str, email: str, msisdn: str, role: str) -> None:
    if USERNAME.fullmatch(username) is None:
        raise InvalidAccountField("username: 1-100 letters, digits or . _ @ + -")
    if email and EMAIL.fullmatch(email) is None:
        raise InvalidAccountField("email: not an e-mail address")
    if msisdn and MSISDN.fullmatch(msisdn) is None:
        raise InvalidAccountField("msisdn: 6-20 digits, optionally starting with +")
    if ROLE.fullmatch(role) is None:
        raise InvalidAccountField("role: 1-32 lowercase letters, digits, _ or -")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS or not bounded_text(password, MAX_PASSWORD_CHARS):
        raise InvalidAccountField(
            f"password: {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters of valid text"
        )
