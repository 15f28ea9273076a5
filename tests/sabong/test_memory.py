"""Redis memory per live login token (SPEC: <= 250 bytes), measured with INFO memory."""

from __future__ import annotations

import os

import pytest
import redis as redis_py

from services.sabong import store
from services.sabong.issuance import new_login_token

# SABONG_MEMORY_TOKENS=100000 reproduces the reported figure; the suite uses fewer to stay fast.
TOKENS = int(os.environ.get("SABONG_MEMORY_TOKENS", "5000"))
BUDGET_BYTES = 250


def issue(sabong: store.SabongStore, index: int, client_id: str = "MEM") -> None:
    """One issuance's Redis writes (replay guard and token) through the real store."""
    sabong.store_token(new_login_token(), 86400, client_id, signature=f"{index:064x}")


def used_memory(client: redis_py.Redis) -> int:
    return int(client.info("memory")["used_memory"])


@pytest.mark.waits  # waits out a production timeout: full tier only
@pytest.mark.single_redis("INFO memory of one server; tests/cluster measures the cluster")
def test_memory_per_live_token_is_within_budget(
    redis_client: redis_py.Redis, redis_url: str
) -> None:
    sabong = store.SabongStore(redis_py.Redis.from_url(redis_url, decode_responses=True), 660)
    for index in range(1000):  # warm up: the script is cached, the allocator settled
        issue(sabong, index)
    drop_replay_guards(redis_client)
    before = used_memory(redis_client)
    for index in range(1000, 1000 + TOKENS):
        issue(sabong, index)
    # Replay guards belong to requests (660 s), not to tokens: leave them out of the count.
    drop_replay_guards(redis_client)
    per_token = (used_memory(redis_client) - before) / TOKENS
    print(f"\nRedis memory per live login token: {per_token:.1f} bytes ({TOKENS} tokens)")
    assert redis_client.dbsize() >= TOKENS
    assert 0 < per_token <= BUDGET_BYTES


def drop_replay_guards(client: redis_py.Redis, client_id: str = "MEM") -> None:
    """Delete a client's replay guards (all in its slot, so one UNLINK per batch)."""
    keys = list(client.scan_iter(store.client_replay_key(client_id, "*"), count=5000))
    for start in range(0, len(keys), 5000):
        client.unlink(*keys[start : start + 5000])
