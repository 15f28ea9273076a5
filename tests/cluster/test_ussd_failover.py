"""The USSD service on a Redis Cluster with a master down: one none of its keys live on,
and the one its client's keys live on (its replica takes over).

Every USSD script keeps its keys in one slot and runs through shared.redis.StoreScript:
EVALSHA, and EVAL on NOSCRIPT, both sent only to the master owning those keys. redis-py's
own `register_script` answers NOSCRIPT with SCRIPT LOAD on every master, so a node that
has not seen a script yet (a restart, a promoted replica, a fresh one) would make every
request fail while any other master is down. A promoted replica has an empty script
cache (scripts are not replicated), so every script meets NOSCRIPT there first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py
from flask.testing import FlaskClient

from devtools.cluster import LocalRedisCluster
from services.ussd import accounts, create_app
from services.ussd.runtime import EXTENSION, Runtime
from services.ussd.store import ISSUE_SERVICE_ID, client_cache_key, login_counter_keys
from shared import redis as shared_redis
from tests.ussd.conftest import ussd_config
from tests.ussd.helpers import (
    PASSWORD,
    Partner,
    assert_envelope,
    bearer,
    login_token,
    new_service_id,
)

GENERATE = "/api/clients/generate-service-id"
# The promoted replica takes over in about 2-3 s (node timeout 1 s); the client then
# finds the new owner on its next call.
RECOVERY_BOUND_SECONDS = 15.0


@pytest.fixture
def cluster_without_replicas(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """3 masters and no replica: a killed master stays down for the whole test."""
    with LocalRedisCluster(tmp_path / "cluster", masters=3, replicas_per_master=0) as cluster:
        yield cluster


def _k2_flow(client: FlaskClient, token: str) -> list[int]:
    """Statuses of every Service-ID endpoint, in order, for one login JWT."""
    service_id = new_service_id(client, token)
    return [
        client.get("/api/clients/me", headers=bearer(service_id)).status_code,
        client.post("/api/clients/generate-api-key", headers=bearer(token),
                    json={"service_id": service_id}).status_code,
        client.post("/api/clients/revoke-service-id", headers=bearer(service_id)).status_code,
    ]  # fmt: skip


def _owner_port(cluster: LocalRedisCluster, key: str) -> int:
    return cluster.master_for_slot(shared_redis.hash_slot(key)).port


def test_ussd_requests_succeed_while_an_unrelated_master_is_down(
    cluster_without_replicas: LocalRedisCluster,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = cluster_without_replicas
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / ".env"))
    app = create_app(ussd_config(cluster.url))
    ctx: Runtime = app.extensions[EXTENSION]
    client = app.test_client()
    partner = Partner("failover", PASSWORD, accounts.create_client(ctx, "failover", PASSWORD))
    token = login_token(client, partner)
    used = {
        _owner_port(cluster, client_cache_key(partner.record["id"])),
        # All login counters share the {lf} slot: the first one names its master.
        _owner_port(cluster, login_counter_keys(partner.username, "127.0.0.1")[0]),
    }
    victim = next(node for node in cluster.master_nodes() if node.port not in used)
    owner = cluster.node_at(_owner_port(cluster, client_cache_key(partner.record["id"])))
    # The client's master has never run the scripts: the first call of each meets NOSCRIPT.
    with redis_py.Redis(host=owner.host, port=owner.port) as plain:
        plain.script_flush()
    victim.stop(kill=True)

    assert _k2_flow(client, token) == [200, 201, 200]
    # Later, once the cluster has marked the node failed, and after a login too.
    time.sleep(cluster.node_timeout_ms / 1000 * 3)
    assert _k2_flow(client, login_token(client, partner)) == [200, 201, 200]
    # The harness does reproduce the failure StoreScript avoids: register_script's
    # NOSCRIPT fallback (SCRIPT LOAD on every master) fails with the victim down.
    raw = shared_redis.connect(cluster.url)
    try:
        with redis_py.Redis(host=owner.host, port=owner.port) as plain:
            plain.script_flush()
        script = raw.register_script("return redis.call('EXISTS', KEYS[1])")
        with pytest.raises((redis_py.RedisError, redis_py.exceptions.RedisClusterException)):
            script(keys=[client_cache_key(partner.record["id"])])
    finally:
        raw.close()


def test_ussd_survives_a_master_failover(
    own_redis_cluster: LocalRedisCluster,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = own_redis_cluster
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / ".env"))
    app = create_app(ussd_config(cluster.url))
    ctx: Runtime = app.extensions[EXTENSION]
    client = app.test_client()
    hit, spared = _partners_on_two_masters(cluster, ctx)
    tokens = {partner.username: login_token(client, partner) for partner in (hit, spared)}
    for partner in (hit, spared):
        assert _k2_flow(client, tokens[partner.username]) == [200, 201, 200]
    for node in cluster.live_nodes():  # no master, and no replica that takes over, has them
        with redis_py.Redis(host=node.host, port=node.port) as plain:
            plain.script_flush()
    slot = shared_redis.hash_slot(client_cache_key(hit.record["id"]))
    victim = cluster.kill_master(slot=slot)

    # At once, before any replica is promoted: a client on another master is served, its
    # master being sent every script again (register_script's SCRIPT LOAD on every master
    # would fail here, on the dead one).
    assert _k2_flow(client, tokens[spared.username]) == [200, 201, 200]
    promoted = cluster.wait_failover(slot, victim)
    assert promoted.port != victim.port
    # The dead master's client: only the documented 503 until the app finds the new owner.
    deadline = time.monotonic() + RECOVERY_BOUND_SECONDS
    response = client.post(GENERATE, headers=bearer(tokens[hit.username]))
    while response.status_code != 201 and time.monotonic() < deadline:
        assert_envelope(response, 503, "Service temporarily unavailable")
        time.sleep(0.2)
        response = client.post(GENERATE, headers=bearer(tokens[hit.username]))
    assert response.status_code == 201, response.get_json()
    # The promoted replica got the scripts by EVAL on NOSCRIPT, from this app alone.
    with redis_py.Redis(host=promoted.host, port=promoted.port) as plain:
        assert plain.script_exists(shared_redis.StoreScript(plain, ISSUE_SERVICE_ID).sha) == [True]
    # With the old master still dead: every endpoint, the same login JWT and a new login.
    assert _k2_flow(client, tokens[hit.username]) == [200, 201, 200]
    assert _k2_flow(client, login_token(client, hit)) == [200, 201, 200]


def _partners_on_two_masters(cluster: LocalRedisCluster, ctx: Runtime) -> tuple[Partner, Partner]:
    """Two partners whose client records live on different masters."""
    first = Partner("hit", PASSWORD, accounts.create_client(ctx, "hit", PASSWORD))
    first_port = _owner_port(cluster, client_cache_key(first.record["id"]))
    for attempt in range(20):  # each new client lands elsewhere with probability 2/3
        name = f"spared-{attempt}"
        other = Partner(name, PASSWORD, accounts.create_client(ctx, name, PASSWORD))
        if _owner_port(cluster, client_cache_key(other.record["id"])) != first_port:
            return first, other
    raise AssertionError("every client landed on one master")
