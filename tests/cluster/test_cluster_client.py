"""`redis+cluster://` and `redis+sentinel://` URLs, one-slot scripts, and error translation."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as redis_py
from redis.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.sentinel import MasterNotFoundError

from devtools.cluster import LocalRedisCluster, LocalRedisSentinel, free_cluster_port
from shared import redis as shared_redis
from shared.exceptions import ConfigError, StoreUnavailable

# Both keys of a pair are written by one script; the tag keeps them in one slot.
TRANSFER = """
redis.call('DECRBY', KEYS[1], ARGV[1])
return redis.call('INCRBY', KEYS[2], ARGV[1])
"""


def _keys_on_different_masters(cluster: LocalRedisCluster) -> tuple[str, str]:
    """Two untagged keys that live on different master nodes."""
    first = "wallet:alice"
    first_owner = cluster.master_for_slot(shared_redis.hash_slot(first)).port
    for n in range(1000):
        other = f"wallet:bob:{n}"
        if cluster.master_for_slot(shared_redis.hash_slot(other)).port != first_owner:
            return first, other
    raise AssertionError("no key on another master in 1000 tries")


def test_cluster_url_gives_a_cluster_client_spread_over_every_master(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    assert shared_redis.is_cluster(cluster_client)
    assert isinstance(cluster_client, RedisCluster)
    assert shared_redis.ping(cluster_client) is True
    keys = [f"user:{n}" for n in range(60)]
    for key in keys:
        cluster_client.set(key, key.upper())
    assert [cluster_client.get(key) for key in keys] == [key.upper() for key in keys]
    owners = {redis_cluster.master_for_slot(shared_redis.hash_slot(k)).port for k in keys}
    assert len(owners) == 3  # the data really is sharded over the three masters


def test_single_server_client_is_not_a_cluster(single_redis_url: str) -> None:
    client = shared_redis.connect(single_redis_url)
    assert not shared_redis.is_cluster(client)
    assert shared_redis.ping(client) is True
    client.close()


def test_hash_tagged_lua_script_runs_atomically_on_one_slot(
    cluster_client: redis_py.Redis,
) -> None:
    source, target = "{client:42}:balance", "{client:42}:escrow"
    assert shared_redis.same_slot(source, target)
    cluster_client.set(source, 100)
    transfer = cluster_client.register_script(TRANSFER)
    assert transfer(keys=[source, target], args=[30]) == 30
    assert cluster_client.get(source) == "70"
    # EVALSHA keeps working after the script cache is flushed: redis-py reloads on NOSCRIPT.
    cluster_client.script_flush()
    assert transfer(keys=[source, target], args=[5]) == 35


def test_untagged_multi_key_script_is_refused_with_crossslot(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    source, target = _keys_on_different_masters(redis_cluster)
    assert not shared_redis.same_slot(source, target)
    transfer = cluster_client.register_script(TRANSFER)
    # redis-py refuses before sending ...
    with pytest.raises(RedisClusterException, match="same key slot"):
        transfer(keys=[source, target], args=[1])
    # ... and the server itself refuses: this is a real cluster, not one Redis.
    owner = redis_cluster.master_for_slot(shared_redis.hash_slot(source))
    node = redis_py.Redis(host=owner.host, port=owner.port, decode_responses=True)
    try:
        with pytest.raises(redis_py.ResponseError) as refused:
            node.eval(TRANSFER, 2, source, target, 1)
        assert getattr(refused.value, "status_code", "CROSSSLOT") == "CROSSSLOT"
        assert "same slot" in str(refused.value)
    finally:
        node.close()
    assert cluster_client.get(source) is None  # nothing ran


def test_script_touching_an_undeclared_key_on_another_node_fails(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    declared, hidden = _keys_on_different_masters(redis_cluster)
    sneaky = cluster_client.register_script(
        "redis.call('SET', KEYS[1], 1) return redis.call('GET', ARGV[1])"
    )
    # A programming error, not an outage: translate_errors lets it through unchanged.
    call = shared_redis.translate_errors(lambda: sneaky(keys=[declared], args=[hidden]))
    with pytest.raises(redis_py.ResponseError) as failed:
        call()
    assert not isinstance(failed.value, StoreUnavailable)


def test_multi_key_commands_and_transactions_need_one_slot(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    tagged = ["{user:9}:a", "{user:9}:b"]
    cluster_client.mset({tagged[0]: "1", tagged[1]: "2"})
    assert cluster_client.mget(tagged) == ["1", "2"]
    with cluster_client.pipeline(transaction=True) as tx:
        tx.incr(tagged[0]).expire(tagged[0], 60).incr(tagged[1])
        assert tx.execute() == [2, True, 3]
    spread = list(_keys_on_different_masters(redis_cluster))
    with cluster_client.pipeline(transaction=True) as tx, pytest.raises(RedisClusterException):
        tx.set(spread[0], 1).set(spread[1], 1)
        tx.execute()
    # A non-transactional pipeline may span slots: redis-py splits it per node (not atomic).
    with cluster_client.pipeline(transaction=False) as pipe:
        pipe.set(spread[0], "x").set(spread[1], "y")
        assert pipe.execute() == [True, True]


def test_cluster_url_options_and_malformed_urls(redis_cluster: LocalRedisCluster) -> None:
    first, second = redis_cluster.nodes[0], redis_cluster.nodes[1]
    url = f"redis+cluster://{first.host}:{first.port},{second.host}:{second.port}/0"
    client = shared_redis.connect(f"{url}?socket_timeout=0.25")
    assert isinstance(client, RedisCluster)
    assert client.nodes_manager.connection_kwargs["socket_timeout"] == 0.25
    assert client.nodes_manager.connection_kwargs["socket_connect_timeout"] == 0.5
    assert client.nodes_manager.connection_kwargs["decode_responses"] is True
    assert client.retry.get_retries() == shared_redis.CLUSTER_RETRIES
    assert len(client.get_primaries()) == 3  # discovered from two startup nodes
    client.close()
    for bad in (
        f"redis+cluster://{first.host}:{first.port}/1",
        "redis+cluster:///0",
        "redis+cluster://host:notaport",
        f"redis+cluster://{first.host}:{first.port}?socket_timeout=soon",
    ):
        with pytest.raises(ConfigError):
            shared_redis.connect(bad)


def test_unreachable_cluster_is_store_unavailable_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        shared_redis.connect(f"redis+cluster://127.0.0.1:{free_cluster_port()}")
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "error",
    [
        ClusterDownError("The cluster is down"),
        ClusterError("TTL exhausted."),
        TryAgainError("Multiple keys request during rehashing of slot"),
        SlotNotCoveredError('Slot "42" is not covered by the cluster.'),
        MasterNotFoundError("No master found for 'platform'"),
        RedisClusterException("Redis Cluster cannot be connected. Please provide ..."),
        redis_py.ReadOnlyError("You can't write against a read only replica."),
    ],
)
def test_cluster_and_sentinel_transients_become_store_unavailable(error: Exception) -> None:
    @shared_redis.translate_errors
    def failing() -> None:
        raise error

    with pytest.raises(StoreUnavailable):
        failing()


def test_cluster_programming_errors_are_not_hidden() -> None:
    @shared_redis.translate_errors
    def cross_slot() -> None:
        raise RedisClusterException("EVALSHA - all keys must map to the same key slot")

    with pytest.raises(RedisClusterException):
        cross_slot()


def test_sentinel_url_follows_the_named_master(redis_sentinel: LocalRedisSentinel) -> None:
    client = shared_redis.connect(redis_sentinel.url)
    assert not shared_redis.is_cluster(client)
    assert client.incr("counter") == 1
    master = redis_sentinel.current_master()
    direct = redis_py.Redis(host=master.host, port=master.port, decode_responses=True)
    assert direct.get("counter") == "1"  # the write went to the master Sentinel names
    direct.close()
    client.close()
    with pytest.raises(ConfigError):
        shared_redis.connect(redis_sentinel.url.rsplit("/", 1)[0])  # no master name
    with pytest.raises(ConfigError):
        shared_redis.connect(f"{redis_sentinel.url}/notadb")
    unknown = shared_redis.translate_errors(
        shared_redis.connect(f"{redis_sentinel.url}-unknown").ping
    )
    with pytest.raises(StoreUnavailable):
        unknown()


def test_async_clients_speak_every_url_form(
    cluster_url: str, redis_sentinel: LocalRedisSentinel, single_redis_url: str
) -> None:
    async def exercise(url: str) -> tuple[bool, int, int]:
        client = shared_redis.connect_async(url)
        try:
            first = await client.incr("{gw:10.0.0.1}:hits")
            script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            second = await script(keys=["{gw:10.0.0.1}:hits"], args=[5])
            return shared_redis.is_cluster(client), int(first), int(second)
        finally:
            await client.aclose()

    assert asyncio.run(exercise(cluster_url)) == (True, 1, 6)
    assert asyncio.run(exercise(redis_sentinel.url)) == (False, 1, 6)
    assert asyncio.run(exercise(single_redis_url)) == (False, 1, 6)
    with pytest.raises(ConfigError):
        shared_redis.connect_async(cluster_url + "/3")
