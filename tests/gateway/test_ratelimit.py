"""Rate limits held in Redis: shared by gateway replicas, per route, failing open."""

from __future__ import annotations

import pytest
import redis as redis_py

from devtools.embedded import EmbeddedRedis, free_port
from gateway.config import GatewayConfig
from gateway.fastredis import supports
from shared.config import Settings
from shared.exceptions import ConfigError

SABONG_PATH = "/api/v1/generate-auth-token"


def test_rate_limit_is_shared_across_two_gateway_processes(
    start_gateway, start_upstream, redis_url: str
) -> None:
    upstream = start_upstream("sabong")
    settings = {
        "REDIS_URL": redis_url,
        "GATEWAY_RATE_LIMIT": "6",
        "GATEWAY_SABONG_UPSTREAMS": upstream.address,
    }
    first, second = start_gateway(**settings), start_gateway(**settings)
    statuses = [
        gateway.request("POST", SABONG_PATH, body=b"{}").status
        for _ in range(5)
        for gateway in (first, second)
    ]
    assert statuses.count(200) == 6, statuses  # one budget for both, not 6 each
    assert statuses.count(429) == 4
    assert statuses[:6] == [200] * 6


@pytest.mark.parametrize("query", ["", "?db=3"])
def test_rate_limit_over_a_unix_socket_takes_the_fast_client(
    start_gateway, start_upstream, tmp_path_factory: pytest.TempPathFactory, query: str
) -> None:
    """`make run` hands the gateway its Redis's Unix socket: the pipelined client speaks it."""
    directory = tmp_path_factory.mktemp("redis-unix")  # short enough for a socket path
    with EmbeddedRedis(directory, appendonly=False, unix_socket=True) as server:
        url = server.local_url.replace("?db=0", query)
        assert url.startswith("unix://") and supports(url)
        upstream = start_upstream("sabong")
        gateway = start_gateway(
            REDIS_URL=url, GATEWAY_RATE_LIMIT="3", GATEWAY_SABONG_UPSTREAMS=upstream.address
        )
        statuses = [gateway.request("POST", SABONG_PATH, body=b"{}").status for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        database = int(query.removeprefix("?db=") or 0)
        buckets = redis_py.Redis(port=server.port, db=database).keys("gw:*")
        assert buckets == [b"gw:{127.0.0.1}:*"]


def test_the_fast_client_takes_only_urls_it_speaks() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("unix:///var/run/redis.sock")
    assert supports("unix:///var/run/redis.sock?db=2")
    assert not supports("unix:///var/run/redis.sock?db=2&protocol=2")
    assert not supports("unix:///var/run/redis.sock?db=x")
    assert not supports("rediss://127.0.0.1:6379/0")
    assert not supports("redis://127.0.0.1:6379/0?protocol=2")


def test_rate_limit_keys_are_prefixed_and_hash_tagged_per_client(
    start_gateway, start_upstream, redis_url: str, redis_client: redis_py.Redis
) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="100",
        GATEWAY_RATE_LIMIT_ROUTES="/api/auth/=10",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    gateway.request("POST", SABONG_PATH, body=b"{}")
    gateway.request("POST", "/api/auth/login", body=b"{}")
    keys = sorted(redis_client.keys("*"))
    assert keys == ["gw:{127.0.0.1}:*", "gw:{127.0.0.1}:/api/auth/"]
    assert all(0 < redis_client.pttl(key) <= 60_000 for key in keys)


def test_a_very_high_limit_is_enforced_not_failed_open(
    start_gateway, start_upstream, redis_url: str, redis_client: redis_py.Redis
) -> None:
    """Benchmarks set huge limits: the bucket must still be written (no script error)."""
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="1000000000",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    before = _script_calls(redis_client)
    assert [gateway.request("GET", "/api/v1/me").status for _ in range(5)] == [200] * 5
    assert _script_calls(redis_client) - before >= 5
    assert "letting requests through" not in gateway.log()


def _script_calls(client: redis_py.Redis) -> int:
    """Successful EVAL/EVALSHA calls Redis has served so far."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(name, {}).get("calls", 0)) - int(stats.get(name, {}).get("failed_calls", 0))
        for name in ("cmdstat_evalsha", "cmdstat_eval")
    )


def test_rate_limit_per_route_prefix(start_gateway, start_upstream, redis_url: str) -> None:
    ussd, sabong = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="1000",
        GATEWAY_RATE_LIMIT_ROUTES="/api/auth/=2, /api/v1/=0",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong.address,
    )
    logins = [gateway.request("POST", "/api/auth/login", body=b"{}").status for _ in range(4)]
    assert logins == [200, 200, 429, 429]
    # Other routes have their own (default) budget; `=0` turns a route's limit off.
    assert gateway.request("POST", "/api/clients/generate-service-id").status == 200
    assert [gateway.request("GET", "/api/v1/me").status for _ in range(10)] == [200] * 10


def test_spoofed_forwarded_for_does_not_evade_the_rate_limit(
    start_gateway, start_upstream, redis_url: str
) -> None:
    """The limit keys on the TCP peer, never on a header the client writes."""
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url, GATEWAY_RATE_LIMIT="3", GATEWAY_SABONG_UPSTREAMS=upstream.address
    )
    statuses = [
        gateway.request(
            "GET",
            "/api/v1/me",
            headers=[("X-Forwarded-For", f"10.0.0.{i}"), ("X-Real-IP", f"10.0.1.{i}")],
        ).status
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_rate_limit_fails_open_when_redis_is_unreachable(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        GATEWAY_RATE_LIMIT="2",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    answers = [gateway.request("GET", "/api/v1/me") for _ in range(6)]
    assert [a.status for a in answers] == [200] * 6
    assert max(a.elapsed for a in answers) < 1.0
    assert "rate limiter cannot reach Redis" in gateway.log()


def test_rate_limit_recovers_when_redis_comes_back(
    start_gateway, start_upstream, own_redis: EmbeddedRedis
) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=own_redis.url, GATEWAY_RATE_LIMIT="2", GATEWAY_SABONG_UPSTREAMS=upstream.address
    )
    own_redis.stop()
    assert [gateway.request("GET", "/api/v1/me").status for _ in range(3)] == [200] * 3
    own_redis.start()
    import time

    deadline = time.monotonic() + 10
    statuses: list[int] = []
    while time.monotonic() < deadline and 429 not in statuses:
        statuses.append(gateway.request("GET", "/api/v1/me").status)
        time.sleep(0.1)
    assert 429 in statuses, statuses


def test_rate_limit_zero_turns_it_off_and_needs_no_redis(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_RATE_LIMIT_ROUTES="/api/v1/=1",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    assert [gateway.request("GET", "/api/v1/me").status for _ in range(5)] == [200] * 5


def test_rate_limit_on_without_redis_url_is_a_clear_startup_error() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL is not set.*GATEWAY_RATE_LIMIT=0"):
        GatewayConfig.from_settings(Settings({"GATEWAY_RATE_LIMIT": "100"}))


def test_gateway_process_refuses_to_start_without_redis_url(start_gateway) -> None:
    with pytest.raises(RuntimeError, match="REDIS_URL is not set"):
        start_gateway()
