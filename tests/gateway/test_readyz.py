"""`/readyz` cannot be used to multiply load (issue 12, item 6): one check per second
answers every call, and the path is rate-limited like every other."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from gateway.readiness import READY_CACHE_SECONDS

from .conftest import Upstream

READY_CHECK_ID = "gateway-readyz"  # the X-Request-ID of the gateway's own check


def ready_checks(upstream: Upstream) -> int:
    """How many readiness checks reached this upstream (it logs every request id)."""
    return upstream.received_ids().count(READY_CHECK_ID)


def test_readyz_flood_costs_one_upstream_check_per_second(
    start_gateway, start_upstream, redis_url: str
) -> None:
    ussd, sabong = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="1000000",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong.address,
    )
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: gateway.request("GET", "/readyz"), range(40)))
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [200] * 40
    # Without GATEWAY_USSD_LOGIN_UPSTREAMS logins go to the USSD replicas: both are checked.
    assert answers[0].json()["data"] == {
        "redis": "ok",
        "ussd": "ok",
        "ussd-login": "ok",
        "sabong": "ok",
    }
    # One check per cache period the burst spanned (one, unless this box stalled); the
    # USSD replica answers for itself and as the login pool.
    allowed = 1 + int(elapsed / READY_CACHE_SECONDS)
    assert 1 <= ready_checks(ussd) <= 2 * allowed, (ready_checks(ussd), elapsed)
    assert 1 <= ready_checks(sabong) <= allowed, (ready_checks(sabong), elapsed)
    before = ready_checks(sabong)
    time.sleep(READY_CACHE_SECONDS + 0.2)
    assert gateway.request("GET", "/readyz").status == 200
    assert ready_checks(sabong) == before + 1  # the answer expired: checked afresh


def test_readyz_gets_429_under_the_rate_limit(
    start_gateway, start_upstream, redis_url: str
) -> None:
    ussd, sabong = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="5",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong.address,
    )
    answers = [gateway.request("GET", "/readyz") for _ in range(7)]
    assert [a.status for a in answers] == [200] * 5 + [429] * 2
    refused = answers[-1]
    assert int(refused.header("retry-after") or 0) >= 1
    assert refused.json() == {"status": 429, "message": "Too many requests", "data": None}


def test_readyz_shares_the_client_budget_of_every_other_path(
    start_gateway, start_upstream, redis_url: str
) -> None:
    """One budget per client: /readyz calls are not a free channel beside the API."""
    sabong = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url, GATEWAY_RATE_LIMIT="4", GATEWAY_SABONG_UPSTREAMS=sabong.address
    )
    statuses = [gateway.request("GET", "/api/v1/me").status for _ in range(3)]
    statuses.append(gateway.request("GET", "/readyz").status)
    statuses.append(gateway.request("GET", "/readyz").status)
    assert statuses[:3] == [200] * 3
    assert statuses[3] != 429  # the fourth request of the minute (503: ussd is down)
    assert statuses[4] == 429


def test_healthz_stays_outside_the_rate_limit(start_gateway, redis_url: str) -> None:
    """No I/O to protect, and an orchestrator's probe must not be throttled."""
    gateway = start_gateway(REDIS_URL=redis_url, GATEWAY_RATE_LIMIT="2")
    assert [gateway.request("GET", "/healthz").status for _ in range(5)] == [200] * 5
