"""A service served by scripts.serve with several gunicorn workers reports one set of metrics
and writes one JSON log line per request."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.embedded import free_port
from devtools.processes import served
from shared.config import SECRET_NAMES
from shared.observability import TALLY_FLUSH_SECONDS

from .conftest import http

BATCH = 20
_HEALTHZ_COUNT = re.compile(r'^http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', re.M)


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and the file its output goes to."""

    base: str
    log: Path


@pytest.fixture
def sabong_two_workers(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    """`python -m scripts.serve sabong` with two workers on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES and k != "APP_ENV"}
    env.update(
        {
            "DOTENV_PATH": str(tmp_path / ".env"),
            "METRICS_DIR": str(tmp_path / "metrics"),
            "REDIS_URL": redis_url,
            "SABONG_PORT": str(port),
            "SABONG_WORKERS": "2",
            "SABONG_THREADS": "4",
        }
    )
    log = tmp_path / "sabong.log"
    base = f"http://127.0.0.1:{port}"
    with served("sabong", env, log, base):
        yield Served(base, log)


def _answers(url: str) -> bool:
    """True when `url` answers at all."""
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False


def healthz_count(base: str) -> float:
    """The /healthz request count that /metrics reports (summed over its label sets)."""
    status, _, body = http("GET", base + "/metrics")
    assert status == 200
    return sum(float(value) for value in _HEALTHZ_COUNT.findall(str(body)))


def log_lines(log: Path) -> list[dict[str, object]]:
    """Every line the server wrote, each parsed as JSON (a line that is not JSON fails)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def healthz_pids(log: Path) -> set[object]:
    """The worker processes that wrote an access line for /healthz."""
    return {line["pid"] for line in log_lines(log) if line.get("route") == "/healthz"}


def wait_for_exit_lines(log: Path, pids: set[object], timeout: float = 15) -> None:
    """Until gunicorn has logged that each of `pids` exited (bounded)."""
    wanted = {f"Worker exiting (pid: {pid})" for pid in pids}
    deadline = time.monotonic() + timeout
    while not wanted <= {str(line["msg"]) for line in log_lines(log)}:
        assert time.monotonic() < deadline, f"workers {pids} did not exit in {timeout} s"
        time.sleep(0.05)


def send_healthz(base: str, count: int) -> None:
    """`count` GET /healthz from 8 threads, each on a new connection; all must be 200."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: http("GET", base + "/healthz")[0], range(count)))
    assert statuses == [200] * count


def settled_healthz_count(base: str, expected: float | None = None) -> float:
    """The /healthz count once every worker has folded in its tally (`expected`: as soon
    as it shows, within a few flushes; else after two flush periods)."""
    if expected is None:
        time.sleep(2 * TALLY_FLUSH_SECONDS)
        return healthz_count(base)
    deadline = time.monotonic() + 5 * TALLY_FLUSH_SECONDS
    while (count := healthz_count(base)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_metrics_are_the_sum_over_all_workers(sabong_two_workers: Served) -> None:
    """Whichever worker answers /metrics, it counts the requests every worker served,
    within a tally flush (about a second), including a worker that has exited since (its
    last requests are flushed as it exits; a counter never goes backwards)."""
    base, log = sabong_two_workers.base, sabong_two_workers.log
    before = settled_healthz_count(base)  # the start-up probes included
    send_healthz(base, BATCH)
    # The kernel may hand every connection to one worker; stopping that worker makes
    # the next requests land on another process for certain (gunicorn starts a new one).
    first_pids = healthz_pids(log)
    for pid in first_pids:
        os.kill(int(str(pid)), signal.SIGTERM)
    wait_for_exit_lines(log, first_pids)
    send_healthz(base, BATCH)
    assert len(healthz_pids(log) - first_pids) >= 1, "no other worker answered"
    assert settled_healthz_count(base, before + 2 * BATCH) == before + 2 * BATCH
    counts = {healthz_count(base) for _ in range(6)}
    assert counts == {before + 2 * BATCH}  # whichever worker answers, and no count twice


def test_every_line_of_the_server_is_json_with_a_request_id(sabong_two_workers: Served) -> None:
    """gunicorn's own lines included; each request has one access line with its id."""
    http("GET", sabong_two_workers.base + "/healthz", headers={"X-Request-ID": "e2e-req-1"})
    lines = log_lines(sabong_two_workers.log)
    assert all(line["service"] == "sabong" and "request_id" in line for line in lines)
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    (access,) = [line for line in lines if line["request_id"] == "e2e-req-1"]
    assert (access["route"], access["method"], access["status"]) == ("/healthz", "GET", 200)
