"""A service served by scripts.serve with several gunicorn workers reports one set of metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.config import PROJECT_ROOT, SECRET_NAMES
from shared.embedded import free_port

from .conftest import http

HEALTHZ_REQUESTS = 40
_HEALTHZ_COUNT = re.compile(r'^http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', re.M)


@pytest.fixture
def sabong_two_workers(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """`python -m scripts.serve sabong` with two workers on a free port; its base URL."""
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
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.serve", "sabong"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(base + "/healthz"):
            assert process.poll() is None, "sabong exited during start-up"
            assert time.monotonic() < deadline, "sabong not up within 30 s"
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _answers(url: str) -> bool:
    """True when `url` answers at all."""
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False


def healthz_count(base: str) -> float:
    """The /healthz request count that /metrics reports (summed over its label sets)."""
    status, _, body = http("GET", base + "/metrics")
    if status == 404:
        pytest.skip("the service has no /metrics endpoint yet")
    assert status == 200
    return sum(float(value) for value in _HEALTHZ_COUNT.findall(str(body)))


def test_metrics_are_the_sum_over_all_workers(sabong_two_workers: str) -> None:
    """Whichever worker answers /metrics, it counts the requests every worker served."""
    base = sabong_two_workers
    before = healthz_count(base)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _: http("GET", base + "/healthz")[0], range(HEALTHZ_REQUESTS))
        )
    assert statuses == [200] * HEALTHZ_REQUESTS
    counts = {healthz_count(base) for _ in range(6)}
    assert counts == {before + HEALTHZ_REQUESTS}
