"""POST /api/auth/login: throttled password check, then a login JWT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.exceptions import AccountDisabled, InvalidCredentials
from shared.observability import LOGIN_FAILURES, RATE_LIMITED

from .accounts import public_user
from .credentials import issue_login_token
from .exceptions import HashingBusy, LoginThrottled
from .passwords import hash_password, needs_rehash, verify_password
from .runtime import LoginLimits, Runtime

# Beyond this a login is refused with 503 rather than parked (gunicorn's timeout is 30 s).
HASH_SLOT_WAIT_SECONDS = 10.0
# A username's slowdown starts at this fraction of USSD_LOGIN_MAX_DELAY_MS.
FIRST_DELAY_FRACTION = 1 / 8


def login(ctx: Runtime, username: str, password: str, address: str) -> dict[str, Any]:
    """`{"token", "user"}` for good credentials; throttled, invalid or disabled otherwise."""
    # Checked before hashing, so a locked-out guesser costs us no scrypt at all.
    username_failures = check_throttle(ctx, username, address)
    slow_down(ctx, slowdown_seconds(username_failures, ctx.limits))
    with hash_slot(ctx):
        # Again with the slot held, and a failure recorded before it is released: logins
        # queued for the slot were checked before the failures of those ahead of them, and
        # a burst of concurrent guesses must not overshoot the limits by that queue.
        check_throttle(ctx, username, address)
        record, password_ok = _check_password(ctx, username, password)
        if record is None or not password_ok:
            ctx.store.record_login_failure(username, address, ctx.limits.window)
            LOGIN_FAILURES.labels("bad_credentials").inc()
            raise InvalidCredentials()
    # Only someone who knows the password learns that the account is disabled.
    if record.get("is_active") != "1":
        LOGIN_FAILURES.labels("disabled").inc()
        raise AccountDisabled()
    ctx.store.clear_username_failures(username, address)
    _upgrade_hash(ctx, record, password)
    token = issue_login_token(ctx, record["id"], int(record["gen"]))
    return {"token": token, "user": public_user(record)}


def check_throttle(ctx: Runtime, username: str, address: str) -> int:
    """The username's failures from every address; LoginThrottled when this (username,
    address) pair or this address is at its limit."""
    limits = ctx.limits
    wait, username_failures = ctx.store.login_wait(
        username, address, (limits.per_username, limits.per_address), limits.window
    )
    if wait:
        LOGIN_FAILURES.labels("rate_limited").inc()
        RATE_LIMITED.labels("ussd").inc()
        raise LoginThrottled(wait)
    return username_failures


def slowdown_seconds(username_failures: int, limits: LoginLimits) -> float:
    """How long a login for a username waits, given its failures from every address.

    Nothing below `slowdown_after`; then 1/8 of the maximum, doubling every further
    `slowdown_after` failures, up to the maximum. It never refuses: the owner with the
    right password gets in, at worst this much later, whatever others sent.
    """
    if username_failures < limits.slowdown_after:
        return 0.0
    doublings = min((username_failures - limits.slowdown_after) // limits.slowdown_after, 8)
    delay_ms: float = limits.max_delay_ms * FIRST_DELAY_FRACTION * 2**doublings
    return min(delay_ms, limits.max_delay_ms) / 1000


def slow_down(ctx: Runtime, seconds: float) -> None:
    """Sleep `seconds` while holding one of the process's few delay slots.

    A sleeping login holds a server thread, so an attacker who could make many logins
    sleep at once would park every thread. With every slot taken the login goes on at
    once: the delay is a brake on guessing (which the per-address limits and the hashing
    bound cap anyway), never a way to tie up the server or to refuse the owner.
    """
    if seconds <= 0 or not ctx.delay_slots.acquire(blocking=False):
        return
    try:
        time.sleep(seconds)
    finally:
        ctx.delay_slots.release()


def _check_password(
    ctx: Runtime, username: str, password: str
) -> tuple[dict[str, str] | None, bool]:
    """The client record (None when unknown) and whether `password` is its password.

    Called with a hash slot held. An unknown user is hashed against a dummy with the same
    cost, so the two failures look alike in content and in time.
    """
    record = _record_for(ctx, username)
    stored_hash = record["password_hash"] if record else None
    password_ok = verify_password(password, stored_hash or ctx.dummy_hash)
    return record, record is not None and password_ok


def _record_for(ctx: Runtime, username: str) -> dict[str, str] | None:
    """The client record for `username` (PostgreSQL, with the password hash), or None.

    Read from PostgreSQL, not the Redis cache: the password hash never leaves the
    database, and the indexed lookup is nothing next to the hash check that follows."""
    return ctx.accounts.client_by_username(username)


def _upgrade_hash(ctx: Runtime, record: dict[str, str], password: str) -> None:
    """Re-hash with the current scrypt cost when the stored hash used another one."""
    if needs_rehash(record["password_hash"], ctx.scrypt):
        with hash_slot(ctx):
            replacement = hash_password(password, ctx.scrypt)
        ctx.accounts.upgrade_password_hash(record["id"], record["password_hash"], replacement)


@contextmanager
def hash_slot(ctx: Runtime) -> Iterator[None]:
    """Hold one of the process's password-hash slots (HashingBusy after the wait bound)."""
    if not ctx.hash_slots.acquire(timeout=HASH_SLOT_WAIT_SECONDS):
        raise HashingBusy()
    try:
        yield
    finally:
        ctx.hash_slots.release()
