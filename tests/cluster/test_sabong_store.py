"""The Sabong store on a real Redis Cluster: one slot per script, races, partial failures.

The contract suite runs on a cluster too (`TEST_REDIS=cluster pytest tests/sabong`); these
tests cover what it cannot: every key name, the store's own races without HTTP in between,
and what a dead master leaves behind in the middle of an issuance.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_py
from hypothesis import given
from hypothesis import strategies as st

from services.sabong import store
from services.sabong.issuance import new_login_token, unusable_password_hash
from shared import redis as shared_redis
from shared.cluster import LocalRedisCluster
from shared.exceptions import SignatureRejected, StoreUnavailable
from tests.sabong.test_concurrency import all_at_once
from tests.sabong.test_memory import drop_replay_guards, issue

REPLAY_TTL = 660
MEMORY_CLIENT = "CLIENT_000001"
# Measured: the same SET costs about this much more on a Redis 6.2 cluster node than on a
# single server (the cluster's per-key slot index; Redis 7 made it much smaller).
SLOT_INDEX_BYTES_PER_KEY = 130


def issuance(client_id: str, token: str | None = None) -> store.Issuance:
    return store.Issuance(
        client_id=client_id,
        username="user",
        display_name="User",
        ip_address="10.0.0.1",
        token=token or new_login_token(),
        token_ttl=120,
        now_iso="2026-01-01T00:00:00.000Z",
        year=2026,
        password_hash=unusable_password_hash(),
    )


@given(client_id=st.text(min_size=1, max_size=255), signature=st.text(min_size=1, max_size=70))
def test_every_key_of_a_client_script_shares_one_slot(client_id: str, signature: str) -> None:
    # Even a clientId holding braces cannot split a client's keys over two slots: they all
    # start with the same "sabong:{c:<clientId>", so the same first "}" ends the tag.
    assert shared_redis.same_slot(*store.client_script_keys(client_id, signature))


def test_global_keys_share_one_slot_and_tokens_spread() -> None:
    assert shared_redis.same_slot(store.NEXT_ID_KEY, store.IDS_KEY)
    token_slots = {shared_redis.hash_slot(store.token_key(new_login_token())) for _ in range(200)}
    assert len(token_slots) > 150  # tokens are spread over the whole cluster


def test_store_picks_the_cluster_path_once(cluster_client: redis_py.Redis, redis_url: str) -> None:
    assert store.SabongStore(cluster_client, 100, REPLAY_TTL).cluster is True
    single = redis_py.Redis.from_url(redis_url, decode_responses=True)
    assert store.SabongStore(single, 100, REPLAY_TTL).cluster is False
    single.close()


def test_concurrent_first_calls_create_one_user_and_one_winner(
    cluster_client: redis_py.Redis,
) -> None:
    sabong = store.SabongStore(cluster_client, 100, REPLAY_TTL)
    results = all_at_once(20, lambda i: sabong.issue_token(issuance("RACE"), signature=f"sig-{i}"))
    assert sum(result.is_new for result in results) == 1
    (user_id,) = {result.user_id for result in results}
    assert cluster_client.hgetall(store.IDS_KEY) == {str(user_id): "RACE"}
    assert cluster_client.hget(store.user_key("RACE"), "id") == str(user_id)
    assert cluster_client.xlen(store.audit_key("RACE")) == 20

    token = new_login_token()
    sabong.issue_token(issuance("RACE", token), signature="sig-login")
    winners = [w for w in all_at_once(20, lambda _: sabong.consume_token(token)) if w]
    assert winners == [(user_id, "RACE")]


def test_replayed_signature_is_refused_for_new_and_existing_users(
    cluster_client: redis_py.Redis,
) -> None:
    sabong = store.SabongStore(cluster_client, 100, REPLAY_TTL)
    results = all_at_once(
        10, lambda _: _outcome(lambda: sabong.issue_token(issuance("NEW"), signature="same"))
    )
    assert sorted(results) == ["ok"] + ["replayed"] * 9
    sabong.issue_token(issuance("NEW"), signature="other")
    with pytest.raises(SignatureRejected):
        sabong.issue_token(issuance("NEW"), signature="other")
    # A refused replay wrote no token.
    assert cluster_client.xlen(store.audit_key("NEW")) == 2


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except SignatureRejected:
        return "replayed"
    return "ok"


def _master_port(cluster: LocalRedisCluster, key: str) -> int:
    return cluster.master_for_slot(shared_redis.hash_slot(key)).port


def _key_on(cluster: LocalRedisCluster, port: int, make_key: Callable[[str], str]) -> str:
    """A random name whose key (`make_key(name)`) lives on the master at `port`."""
    for _ in range(1000):
        name = secrets.token_hex(8)
        if _master_port(cluster, make_key(name)) == port:
            return name
    raise AssertionError(f"no key on master {port} in 1000 tries")


def _token_on(cluster: LocalRedisCluster, port: int) -> str:
    for _ in range(1000):
        token = new_login_token()
        if _master_port(cluster, store.token_key(token)) == port:
            return token
    raise AssertionError(f"no token on master {port} in 1000 tries")


def test_a_dead_master_mid_issuance_leaves_nothing_that_breaks_a_partner(
    tmp_path: Path,
) -> None:
    # No replicas: a killed master stays dead, so each step's failure can be looked at.
    with LocalRedisCluster(tmp_path / "cluster", replicas_per_master=0) as cluster:
        client = shared_redis.connect(cluster.url)
        sabong = store.SabongStore(client, 100, REPLAY_TTL)
        counter_port = _master_port(cluster, store.NEXT_ID_KEY)
        token_port, client_port = (
            node.port for node in cluster.master_nodes() if node.port != counter_port
        )
        alice, bob = (_key_on(cluster, client_port, store.user_key) for _ in range(2))
        dead_token = _token_on(cluster, token_port)
        live_tokens = [_token_on(cluster, client_port) for _ in range(3)]

        # The token's master is dead: the user exists (and is listed), but no token was
        # handed out, so the signature is free again: the same request works later.
        cluster.kill_master(slot=shared_redis.hash_slot(store.token_key(dead_token)))
        with pytest.raises(StoreUnavailable):
            sabong.issue_token(issuance(alice, dead_token), signature="s1")
        assert client.hget(store.user_key(alice), "id") == "1"
        assert client.hgetall(store.IDS_KEY) == {"1": alice}
        assert not client.exists(store.client_replay_key(alice, "s1"))
        retried = sabong.issue_token(issuance(alice, live_tokens[0]), signature="s1")
        assert (retried.user_id, retried.is_new) == (1, False)

        # The counter's master is dead: a new user cannot get an id, and nothing of the
        # attempt is left; existing users keep getting tokens and signing in.
        cluster.kill_master(slot=shared_redis.hash_slot(store.NEXT_ID_KEY))
        with pytest.raises(StoreUnavailable):
            sabong.issue_token(issuance(bob, live_tokens[1]), signature="s2")
        assert client.exists(*store.client_script_keys(bob, "s2")) == 0
        assert not client.exists(store.token_key(live_tokens[1]))
        assert sabong.issue_token(issuance(alice, live_tokens[2]), signature="s3").user_id == 1
        assert sabong.consume_token(live_tokens[2]) == (1, alice)
        client.close()


def test_memory_per_live_token_in_a_cluster(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    # The single-server budget (250 bytes, SPEC) is tests/sabong/test_memory.py. In a
    # cluster a token's value also carries its clientId (+16 bytes here), and Redis 6.2
    # indexes every key by slot (about 130 bytes a token key), so the cluster figure is
    # compared with that budget plus the index.
    tokens = 5000
    sabong = store.SabongStore(cluster_client, 100, REPLAY_TTL)
    for index in range(1000):  # warm up: user, wallet, a full (capped) audit stream, scripts
        issue(sabong, index, MEMORY_CLIENT)
    drop_replay_guards(cluster_client, MEMORY_CLIENT)
    before = _used_memory(redis_cluster)
    for index in range(1000, 1000 + tokens):
        issue(sabong, index, MEMORY_CLIENT)
    drop_replay_guards(cluster_client, MEMORY_CLIENT)
    per_token = (_used_memory(redis_cluster) - before) / tokens
    print(f"\nRedis Cluster memory per live login token: {per_token:.1f} bytes ({tokens} tokens)")
    assert 0 < per_token <= 250 + SLOT_INDEX_BYTES_PER_KEY


def _used_memory(cluster: LocalRedisCluster) -> int:
    """used_memory summed over the masters (tokens are spread over all of them)."""
    total = 0
    for node in cluster.master_nodes():
        server = redis_py.Redis(host=node.host, port=node.port)
        total += int(server.info("memory")["used_memory"])
        server.close()
    return total
