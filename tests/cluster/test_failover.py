"""Failover under traffic: a master dies (or hangs), a replica takes over, the client follows.

Each test prints one line with the figures docs/scaling.md quotes: run
`.venv/bin/pytest tests/cluster -m slow -s` to see them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis as redis_py

from devtools.cluster import LocalRedisCluster, LocalRedisSentinel
from devtools.embedded import EmbeddedRedis
from shared import redis as shared_redis

from .traffic import Report, Traffic, summarise

RECOVERY_BOUND_SECONDS = 15.0
# No call may hold a worker longer than this, failover or not: shared.redis bounds a
# cluster call by (1 + CLUSTER_RETRIES) * COMMAND_TIMEOUT_SECONDS.
CALL_BOUND_SECONDS = (1 + shared_redis.CLUSTER_RETRIES) * shared_redis.COMMAND_TIMEOUT_SECONDS + 1
WARM_UP_SECONDS = 1.0
STEADY_AFTER_RECOVERY_SECONDS = 1.0
KEYS_PER_MASTER = 4
INCR_SCRIPT = "return redis.call('INCR', KEYS[1])"


def _assert_failover_was_survived(report: Report) -> None:
    unexpected = {kind: n for kind, n in report.errors_by_kind.items() if kind.startswith("unex")}
    assert not unexpected, f"errors other than StoreUnavailable: {unexpected}"
    assert report.recovery_seconds is not None, "the affected keys never worked again"
    assert report.recovery_seconds < RECOVERY_BOUND_SECONDS
    assert report.longest_call_seconds < CALL_BOUND_SECONDS


def _keys_per_master(cluster: LocalRedisCluster) -> dict[int, list[str]]:
    """KEYS_PER_MASTER counter keys on each master, by master port."""
    keys_by_master: dict[int, list[str]] = {node.port: [] for node in cluster.master_nodes()}
    for n in range(10_000):
        key = f"counter:{n}"
        group = keys_by_master[cluster.master_for_slot(shared_redis.hash_slot(key)).port]
        if len(group) < KEYS_PER_MASTER:
            group.append(key)
        if all(len(group) == KEYS_PER_MASTER for group in keys_by_master.values()):
            return keys_by_master
    raise AssertionError("could not spread keys over every master")


def _store_like_increment(client: redis_py.Redis, keys: list[str]) -> Callable[[str], int]:
    """INCR the way the service stores talk to Redis, each way on its own keys.

    A registered Lua script (EVALSHA), a MULTI/EXEC transaction on one slot, and a plain
    command; all wrapped in translate_errors as the stores are.
    """
    incr_script = client.register_script(INCR_SCRIPT)
    scripted, transactional = set(keys[0::3]), set(keys[1::3])

    @shared_redis.translate_errors
    def increment(key: str) -> int:
        if key in scripted:
            return int(incr_script(keys=[key]))
        if key in transactional:
            with client.pipeline(transaction=True) as tx:
                value, _ = tx.incr(key).expire(key, 3600).execute()
            return int(value)
        return int(client.incr(key))

    return increment


@pytest.mark.slow
@pytest.mark.parametrize("disruption", ["SIGKILL", "SIGSTOP"])
def test_cluster_master_failover_under_traffic(
    own_redis_cluster: LocalRedisCluster, disruption: str
) -> None:
    cluster = own_redis_cluster
    client = shared_redis.connect(cluster.url)
    keys_by_master = _keys_per_master(cluster)
    keys = sorted(key for group in keys_by_master.values() for key in group)
    victim_port = next(iter(keys_by_master))
    affected = set(keys_by_master[victim_port])
    slot = shared_redis.hash_slot(next(iter(affected)))
    traffic = Traffic(_store_like_increment(client, keys), keys).start()
    victim: EmbeddedRedis | None = None
    try:
        time.sleep(WARM_UP_SECONDS)
        if disruption == "SIGKILL":
            victim = cluster.kill_master(slot=slot)
        else:  # a hung master: the kernel still accepts connections, nothing answers
            victim = cluster.freeze_master(slot=slot)
        disrupted_at = time.monotonic()
        recovered_at = traffic.wait_for_success(affected, disrupted_at, RECOVERY_BOUND_SECONDS + 5)
        others_served = any(
            call.key not in affected and call.error is None and call.started >= disrupted_at
            for call in traffic.snapshot()
            if recovered_at is None or call.ended < recovered_at
        )
        time.sleep(STEADY_AFTER_RECOVERY_SECONDS)
    finally:
        traffic.stop()
    promoted = cluster.wait_failover(slot, victim)
    final_values = {key: int(client.get(key) or 0) for key in keys}
    client.close()

    report = summarise(traffic.calls, affected, disrupted_at, recovered_at, final_values)
    print("\n" + report.line(f"cluster {disruption} {victim.port} -> {promoted.port}"))
    _assert_failover_was_survived(report)
    assert promoted.port != victim.port
    if disruption == "SIGKILL":
        assert report.affected_errors > 0, "the kill never reached the traffic"
    else:
        assert report.longest_call_seconds >= shared_redis.COMMAND_TIMEOUT_SECONDS * 0.9
    # The other masters kept serving their slots while one was being replaced.
    assert others_served


@pytest.mark.slow
def test_sentinel_master_failover_under_traffic(redis_sentinel: LocalRedisSentinel) -> None:
    client = shared_redis.connect(redis_sentinel.url)
    keys = [f"counter:{n}" for n in range(9)]
    traffic = Traffic(_store_like_increment(client, keys), keys).start()
    try:
        time.sleep(WARM_UP_SECONDS)
        victim = redis_sentinel.kill_master()
        killed_at = time.monotonic()
        recovered_at = traffic.wait_for_success(set(keys), killed_at, RECOVERY_BOUND_SECONDS + 5)
        time.sleep(STEADY_AFTER_RECOVERY_SECONDS)
    finally:
        traffic.stop()
    promoted = redis_sentinel.wait_failover(victim)
    final_values = {key: int(client.get(key) or 0) for key in keys}
    client.close()

    report = summarise(traffic.calls, set(keys), killed_at, recovered_at, final_values)
    print("\n" + report.line(f"sentinel SIGKILL {victim.port} -> {promoted.port}"))
    _assert_failover_was_survived(report)
    assert report.affected_errors > 0, "the kill never reached the traffic"
    assert promoted.port != victim.port
