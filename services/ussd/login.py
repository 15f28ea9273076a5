"""POST /api/auth/login: throttled password check, then a login JWT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.exceptions import AccountDisabled, InvalidCredentials
from shared.observability import LOGIN_FAILURES, RATE_LIMITED

from .accounts import public_user
from .context import UssdContext
from .credentials import issue_login_token
from .exceptions import HashingBusy, LoginThrottled
from .passwords import hash_password, needs_rehash, verify_password

# Beyond this a login is refused with 503 rather than parked (gunicorn's timeout is 30 s).
HASH_SLOT_WAIT_SECONDS = 10.0


def login(ctx: UssdContext, username: str, password: str, address: str) -> dict[str, Any]:
    """`{"token", "user"}` for good credentials; throttled, invalid or disabled otherwise."""
    limits = ctx.limits
    # Checked before hashing, so a locked-out guesser costs us no scrypt at all.
    wait = ctx.store.login_wait(
        username, address, (limits.per_username, limits.per_address), limits.window
    )
    if wait:
        LOGIN_FAILURES.labels("rate_limited").inc()
        RATE_LIMITED.labels("ussd").inc()
        raise LoginThrottled(wait)
    record = _record_for(ctx, username)
    stored_hash = record["password_hash"] if record else None
    # An unknown user is hashed against a dummy with the same cost, so the two failures
    # look alike in content and in time.
    with hash_slot(ctx):
        password_ok = verify_password(password, stored_hash or ctx.dummy_hash)
    if record is None or stored_hash is None or not password_ok:
        ctx.store.record_login_failure(username, address, limits.window)
        LOGIN_FAILURES.labels("bad_credentials").inc()
        raise InvalidCredentials()
    # Only someone who knows the password learns that the account is disabled.
    if record.get("is_active") != "1":
        LOGIN_FAILURES.labels("disabled").inc()
        raise AccountDisabled()
    ctx.store.clear_username_failures(username)
    _upgrade_hash(ctx, record, password)
    token = issue_login_token(ctx, record["id"], int(record["gen"]))
    return {"token": token, "user": public_user(record)}


def _record_for(ctx: UssdContext, username: str) -> dict[str, str] | None:
    """The client record for `username` (PostgreSQL, with the password hash), or None.

    Read from PostgreSQL, not the Redis cache: the password hash never leaves the
    database, and the indexed lookup is nothing next to the hash check that follows."""
    return ctx.accounts.client_by_username(username)


def _upgrade_hash(ctx: UssdContext, record: dict[str, str], password: str) -> None:
    """Re-hash with the current scrypt cost when the stored hash used another one."""
    if needs_rehash(record["password_hash"], ctx.scrypt):
        with hash_slot(ctx):
            replacement = hash_password(password, ctx.scrypt)
        ctx.accounts.upgrade_password_hash(record["id"], record["password_hash"], replacement)


@contextmanager
def hash_slot(ctx: UssdContext) -> Iterator[None]:
    """Hold one of the process's password-hash slots (HashingBusy after the wait bound)."""
    if not ctx.hash_slots.acquire(timeout=HASH_SLOT_WAIT_SECONDS):
        raise HashingBusy()
    try:
        yield
    finally:
        ctx.hash_slots.release()
