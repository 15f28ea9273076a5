"""A short real run: the bench's platform, fixtures and wrk script against live servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import endpoints, wrk
from bench.endpoints import DIRECT, GATEWAY
from bench.platform import OTHER_SERVICES, Platform, other
from bench.runner import Bench
from scripts.children import group_members
from shared.config import PROJECT_ROOT

try:
    wrk.wrk_binary()
except wrk.WrkMissing:
    pytest.skip("wrk is not installed", allow_module_level=True)

ONE_SECOND = wrk.Load(threads=2, connections=4, seconds=1)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """The whole platform, with the bench partner and user pool, for this module."""
    workdir = tmp_path_factory.mktemp("bench")
    # One worker each keeps the start-up cheap; the command lines are serve.py's otherwise.
    overrides = {"USSD_WORKERS": "1", "SABONG_WORKERS": "1", "USSD_SCRYPT_N": "1024"}
    # The services are served a second time as `--ab` serves another checkout (this one).
    with Platform(workdir / "platform", overrides, other_tree=PROJECT_ROOT) as platform:
        factory = endpoints.prepare(platform, workdir)
        yield Bench(platform, factory, ONE_SECOND, 0, log=False, retries=0)
    for child in platform.children:
        assert child.process is None or not group_members(child.process.pid)


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        (endpoints.HEALTHZ_SABONG, DIRECT),
        (endpoints.GENERATE_AUTH_TOKEN, DIRECT),
        (endpoints.GENERATE_AUTH_TOKEN, GATEWAY),
        (endpoints.CLIENTS_ME, GATEWAY),
        # Through the gateways with rate limiting on: checked every time, never refused.
        (endpoints.CLIENTS_ME_RATE_LIMITED_FAST, GATEWAY),
        (endpoints.CLIENTS_ME_RATE_LIMITED_ASYNCIO, GATEWAY),
        (endpoints.LOGIN_LINK, DIRECT),
        # The floor app: the services' store calls alone, served like the services.
        (endpoints.FLOOR_REDIS, DIRECT),
        (endpoints.FLOOR_REDIS_POSTGRES, DIRECT),
    ],
)
def test_every_request_succeeds(bench: Bench, endpoint: endpoints.Endpoint, path: str) -> None:
    """Pre-signed requests and login tokens are each sent once: no replay, no 410."""
    row = bench.flat_out(endpoint, path)
    assert row.result.requests > 10
    assert row.result.failures == 0
    if endpoint.kind != "static":
        assert row.result.requests <= row.prepared


def test_refusals_are_counted(bench: Bench, tmp_path: Path) -> None:
    """A pool too small for the run is cycled: the replays come back 401 and are counted."""
    sabong = bench.platform
    file, prepared, _ = bench.factory.build(
        endpoints.GENERATE_AUTH_TOKEN, sabong.host_header("sabong"), 20
    )
    result = wrk.run(sabong.url("sabong"), file, ONE_SECOND)
    assert prepared == 20
    assert result.requests > 20
    assert result.status_errors == result.requests - 20


def test_paced_run_holds_the_offered_rate(bench: Bench) -> None:
    row = bench.paced(endpoints.HEALTHZ_USSD, DIRECT, rate=200)
    assert 120 <= row.result.rate <= 260
    assert row.result.failures == 0


def test_ab_serves_each_service_from_the_other_tree_and_measures_both(bench: Bench) -> None:
    for service in OTHER_SERVICES:
        [leader] = [c.process for c in bench.platform.children if c.name == other(service)]
        assert leader is not None
        environ = Path(f"/proc/{leader.pid}/environ").read_bytes().split(b"\0")
        assert f"PYTHONPATH={PROJECT_ROOT}".encode() in environ
    row = bench.paired(endpoints.HEALTHZ_SABONG, rounds=2)
    assert row.failures == 0
    assert len(row.this_us) == len(row.other_us) == 2
    assert min(row.this_us) > 0 and min(row.other_us) > 0
