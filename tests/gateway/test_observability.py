"""The gateway's /metrics (by route prefix, never a path), upstream errors, rate limits,
several workers in multiprocess mode, and its JSON log lines."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded import free_port

from .conftest import GatewayProcess, Upstream

SABONG_PATH = "/api/v1/generate-auth-token"
TOKEN = "T0k3n" * 12 + "abcd"  # shaped like a login token (64 letters and digits)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: GatewayProcess) -> Samples:
    """Every sample of the gateway's /metrics, by name and labels."""
    answer = gateway.request("GET", "/metrics")
    assert answer.status == 200
    assert (answer.header("content-type") or "").startswith("text/plain")
    text = answer.body.decode()
    assert TOKEN not in text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, route: str, method: str, status: int) -> float:
    labels = {"service": "gateway", "route": route, "method": method, "status": str(status)}
    return value(samples, "http_requests_total", **labels)


def test_requests_are_counted_by_route_prefix_and_status(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway = shared_platform[0]
    before = scrape(gateway)
    for _ in range(3):
        assert gateway.request("POST", SABONG_PATH, body=b"{}").status == 200
    assert gateway.request("GET", f"/login/{TOKEN}").status == 200
    assert gateway.request("GET", f"/no/such/{TOKEN}").status == 404
    after = scrape(gateway)  # a scrape folds this worker's latest counts in first

    def moved(route: str, method: str, status: int) -> float:
        return requests_of(after, route, method, status) - requests_of(
            before, route, method, status
        )

    assert moved("/api/v1/", "POST", 200) == 3
    assert moved("/login/", "GET", 200) == 1
    assert moved("unmatched", "GET", 404) == 1
    latency = "http_request_duration_seconds_count"
    route = {"service": "gateway", "route": "/api/v1/"}
    assert value(after, latency, **route) - value(before, latency, **route) == 3


def test_upstream_errors_are_counted_by_service_and_kind(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0", GATEWAY_USSD_UPSTREAMS=f"127.0.0.1:{free_port()}"
    )
    path = "/api/clients/generate-service-id"
    assert gateway.request("POST", path, body=b"{}").status == 502
    samples = scrape(gateway)
    errors = "gateway_upstream_errors_total"
    assert value(samples, errors, service="ussd", kind="connect_refused") == 1
    assert value(samples, errors, service="ussd", kind="no_replica") == 1
    assert requests_of(samples, "/api/clients/", "POST", 502) == 1


def test_rate_limited_requests_are_counted(
    start_gateway: Callable[..., GatewayProcess],
    start_upstream: Callable[..., Upstream],
    redis_url: str,
) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url, GATEWAY_RATE_LIMIT="2", GATEWAY_SABONG_UPSTREAMS=upstream.address
    )
    statuses = [gateway.request("POST", SABONG_PATH, body=b"{}").status for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    samples = scrape(gateway)
    assert value(samples, "rate_limited_total", service="gateway") == 2
    assert requests_of(samples, "/api/v1/", "POST", 429) == 2


def served_by(gateway: GatewayProcess, prefix: str, count: int) -> set[int]:
    """The worker pids whose access lines carry request ids starting with `prefix`."""
    deadline = time.monotonic() + 3
    while True:
        entries = [e for e in gateway.log_entries() if e["request_id"].startswith(prefix)]
        if len(entries) == count:
            return {int(e["pid"]) for e in entries}
        assert time.monotonic() < deadline, f"{len(entries)} of {count} access lines"
        time.sleep(0.05)


def test_workers_report_one_sum_including_a_stopped_one(
    start_gateway: Callable[..., GatewayProcess],
    start_upstream: Callable[..., Upstream],
    tmp_path: Path,
) -> None:
    """Multiprocess mode, as scripts.serve sets it up: any worker's /metrics counts what
    every worker served, also one that has stopped since (counters never go back).

    A worker hands its counts to the shared files once a second and when it stops, so the
    sum may trail the last second of another worker's requests: polled for, bounded."""
    upstream = start_upstream("sabong")
    metrics_dir = tmp_path / "gateway-metrics"
    metrics_dir.mkdir()
    gateway = start_gateway(
        workers=2,
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    batch = 20
    for index in range(batch):
        headers = [("X-Request-ID", f"first-{index}")]
        assert gateway.request("POST", SABONG_PATH, body=b"{}", headers=headers).status == 200
    # The kernel may hand every connection to one worker: stopping the workers that
    # answered makes the next requests land on other processes for certain.
    first = served_by(gateway, "first-", batch)
    for pid in first:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in first):
        assert time.monotonic() < deadline, "the signalled workers did not stop"
        time.sleep(0.05)
    for index in range(batch):
        headers = [("X-Request-ID", f"second-{index}")]
        assert gateway.request("POST", SABONG_PATH, body=b"{}", headers=headers).status == 200
    assert not served_by(gateway, "second-", batch) & first

    deadline = time.monotonic() + 5
    while (counted := requests_of(scrape(gateway), "/api/v1/", "POST", 200)) != 2 * batch:
        assert counted < 2 * batch, counted
        assert time.monotonic() < deadline, f"{counted} of {2 * batch} after 5 s"
        time.sleep(0.2)


def test_log_lines_are_json_with_the_shared_fields(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway = shared_platform[0]
    gateway.request("GET", f"/login/{TOKEN}", headers=[("X-Request-ID", "obs-1")])
    deadline = time.monotonic() + 3
    while not (found := [e for e in gateway.log_entries() if e["request_id"] == "obs-1"]):
        assert time.monotonic() < deadline, "no access line within 3 s"
        time.sleep(0.05)
    (entry,) = found
    assert entry["route"] == entry["path"] == "/login/"
    assert (entry["service"], entry["logger"], entry["method"]) == (
        "gateway",
        "gateway.access",
        "GET",
    )
    assert entry["ts"].endswith("Z") and isinstance(entry["pid"], int)
    lines = gateway.log().splitlines()
    assert lines and all(line.startswith("{") for line in lines)  # nothing but JSON
    assert all("request_id" in entry for entry in gateway.log_entries())
    assert TOKEN not in gateway.log()
