"""The Redis cache of K2 client records: filled from PostgreSQL on a miss, failing closed.

Why it cannot serve a stale record (the reasoning the code below relies on):

- A miss never authenticates: a per-request script that finds no cached record answers
  "miss" (services/ussd/store.py), and only a record read from PostgreSQL fills it. After
  a FLUSHALL every client is a miss, so a disabled client is read as disabled.
- Admin changes (accounts.py) write the changed record to the cache BEFORE the
  PostgreSQL commit, while the UPDATE holds the row lock, then commit:
  * the change takes effect at the next request (no waiting for the cache TTL);
  * Redis unreachable: the write raises, the transaction rolls back, and the operator
    is told nothing changed. Committing without the cache write would leave a disabled
    client active in a cache that comes back with its data (AOF) until the TTL;
  * the commit fails after the write: the cache holds a state PostgreSQL never got.
    That fails closed: a disable or reset bumps `gen`, so every token is refused; an
    enable writes no `gen` any token carries (login reads PostgreSQL, which still says
    disabled). After the TTL the entry is rebuilt from PostgreSQL; the operator retries.
- A fill must not write a record read before an admin change over that change. Two
  guards: the fill's read is `FOR SHARE` (it waits for an admin change holding the row
  lock, then reads it committed), and the fill is written under a lease: BEGIN_FILL
  leaves a lease in the empty entry before the read, and the fill is written only while
  that lease is still there. An admin write replaces the entry (the lease goes with it),
  as do a FLUSHALL and a failover that lost it, so a fill that raced any of them is
  dropped and the request simply runs the lookup again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

from shared.exceptions import PlatformError, StoreUnavailable

from .runtime import Runtime
from .store import ClientNotCached

R = TypeVar("R")
# Misses in a row before giving up with 503: each round fills the entry or finds it filled
# by someone else, so a second miss needs a write in between (an admin change, a flush).
MAX_ATTEMPTS = 3


def with_client_cached(
    ctx: Runtime, tagged: str, call: Callable[[], R], refusal: type[PlatformError]
) -> R:
    """`call()` (a per-request script); on a miss, load the client with `tagged`'s tag into
    the cache and call again. `refusal` when PostgreSQL has no such client."""
    for _ in range(MAX_ATTEMPTS):
        try:
            return call()
        except ClientNotCached:
            if not load_into_cache(ctx, tagged):
                raise refusal() from None
    # Each attempt raced a write that removed the entry again: temporary, never a yes.
    raise StoreUnavailable("client cache kept missing")


def load_into_cache(ctx: Runtime, tagged: str) -> bool:
    """Cache the committed record of the client; False when PostgreSQL has no such client."""
    lease = ctx.store.begin_client_fill(tagged, secrets.token_hex(8))
    if not lease:
        return True  # cached meanwhile by another request
    record = ctx.accounts.client_for_cache(tagged)
    if record is None:
        return False
    ctx.store.fill_client_cache(record, lease)  # dropped when anything wrote since the lease
    return True
