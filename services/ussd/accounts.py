"""Client accounts: creation and admin changes (the CLI), and their public JSON form."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .context import UssdContext
from .exceptions import ClientNotFound, InvalidAccountField, UsernameTaken
from .inputs import MAX_PASSWORD_CHARS, bounded_text
from .passwords import hash_password

USERNAME = re.compile(r"[\w.@+-]{1,100}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
MSISDN = re.compile(r"\+?[0-9]{6,20}")
ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MIN_PASSWORD_CHARS = 8
DEFAULT_ROLE = "client"
# A fresh UUID whose 8-hex tag is already taken is retried; 5 misses in a row would mean
# billions of clients, so the loop is a guard, not a real path.
TAG_ATTEMPTS = 5


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, as JavaScript's toISOString() writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    return iso_utc(datetime.now(UTC))


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
    ctx: UssdContext,
    username: str,
    password: str,
    email: str = "",
    msisdn: str | None = None,
    role: str = DEFAULT_ROLE,
) -> dict[str, Any]:
    """Create an active client; UsernameTaken / InvalidAccountField when refused."""
    _check_fields(username, email, msisdn or "", role)
    _check_password(password)
    now = utc_now_iso()
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
        if ctx.store.insert_client_record(record):
            break
    else:
        raise InvalidAccountField("could not allocate a unique client id; try again")
    # The record is written first and the name claimed second: a crash in between leaves
    # an unreachable record, never a username pointing at nothing.
    if not ctx.store.claim_username(username, record["id"]):
        ctx.store.delete_client_record(record["id"])
        raise UsernameTaken(f"username {username!r} is already taken")
    return public_user(record)


def find_client(ctx: UssdContext, username: str) -> dict[str, str]:
    """The full record of the client with this username (case-insensitive) or ClientNotFound."""
    client_uuid = ctx.store.client_uuid_for(username)
    record = ctx.store.client(client_uuid) if client_uuid else None
    if record is None:
        raise ClientNotFound(f"no client with username {username!r}")
    return record


def set_active(ctx: UssdContext, username: str, active: bool) -> dict[str, Any]:
    """Enable or disable a client. Disabling kills its login JWTs and Service IDs at once."""
    record = find_client(ctx, username)
    changes = {"is_active": "1" if active else "0", "updated_at": utc_now_iso()}
    if not ctx.store.update_client(record["id"], changes, bump_gen=not active):
        raise ClientNotFound(f"no client with username {username!r}")
    return public_user({**record, **changes})


def reset_password(ctx: UssdContext, username: str, password: str) -> dict[str, Any]:
    """Set a new password; every login JWT and Service ID issued before stops working."""
    _check_password(password)
    record = find_client(ctx, username)
    changes = {"password_hash": hash_password(password, ctx.scrypt), "updated_at": utc_now_iso()}
    if not ctx.store.update_client(record["id"], changes, bump_gen=True):
        raise ClientNotFound(f"no client with username {username!r}")
    return public_user({**record, **changes})


def list_clients(ctx: UssdContext) -> list[dict[str, Any]]:
    """Every client, oldest first."""
    records = sorted(ctx.store.all_clients(), key=lambda r: (r.get("created_at", ""), r["id"]))
    return [public_user(record) for record in records]


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
