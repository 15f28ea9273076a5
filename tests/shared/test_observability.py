"""JSON logs, request ids and metrics of shared.observability."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from shared import observability


def test_sane_request_id_is_kept() -> None:
    assert observability.new_request_id("abc-123_X.y") == "abc-123_X.y"


@pytest.mark.parametrize(
    "spoofed", ["", "a" * 129, "x\r\nSet-Cookie: s=1", '{"level":"error"}', "id with spaces"]
)
def test_log_injection_via_request_id_is_replaced(spoofed: str) -> None:
    replaced = observability.new_request_id(spoofed)
    assert replaced != spoofed
    assert len(replaced) == 32 and replaced.isalnum()


def test_json_formatter_writes_one_object_with_request_id_and_extras() -> None:
    formatter = observability.JsonFormatter("unit")
    token = observability.request_id_var.set("req-1")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
        record.status = 201
        line = formatter.format(record)
    finally:
        observability.request_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["service"] == "unit"
    assert entry["request_id"] == "req-1"
    assert entry["msg"] == "hello you"
    assert entry["status"] == 201
    assert entry["ts"].endswith("Z")


def test_flask_requests_get_request_ids_metrics_and_access_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask("unit")

    @app.get("/items/<item_id>")
    def item(item_id: str) -> str:
        return item_id

    observability.init_flask(app, "unittest")
    client = app.test_client()
    with caplog.at_level(logging.INFO):
        given = client.get("/items/secret-token-value", headers={"X-Request-ID": "given-1"})
        fresh = client.get("/items/2")
    assert given.headers["X-Request-ID"] == "given-1"
    assert len(fresh.headers["X-Request-ID"]) == 32
    access = [r for r in caplog.records if r.name == "unittest.access"]
    assert [getattr(r, "route", None) for r in access] == ["/items/<item_id>"] * 2
    assert "secret-token-value" not in caplog.text
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'http_requests_total{method="GET",route="/items/<item_id>",service="unittest",status="200"}'
        in metrics
    )
    assert "http_request_duration_seconds_bucket" in metrics


def _samples_of(service: str, route: str) -> dict[tuple[str, str], float]:
    """This service's request and latency samples for `route`, keyed without the route."""
    body, _ = observability.render_metrics()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # creation times differ by when the label set was first used
            labels = dict(sample.labels)
            if labels.get("service") == service and labels.pop("route", None) == route:
                found[(sample.name, json.dumps(labels, sort_keys=True))] = sample.value
    return found


def test_request_tally_exposes_exactly_what_observe_would() -> None:
    service = "tally-unit"
    durations = [0.0004, 0.001, 0.003, 0.003, 0.07, 0.9, 7.5]
    statuses = [200, 200, 201, 200, 404, 200, 504]
    tally = observability.RequestTally(service)
    for seconds, status in zip(durations, statuses, strict=True):
        tally.count("/tallied", "GET", status, seconds)
        observability.HTTP_REQUESTS.labels(service, "/observed", "GET", str(status)).inc()
        observability.HTTP_LATENCY.labels(service, "/observed").observe(seconds)
    assert _samples_of(service, "/tallied") == {}  # nothing shows before the flush
    tally.flush()
    tallied = _samples_of(service, "/tallied")
    assert tallied == _samples_of(service, "/observed")
    assert tallied[("http_request_duration_seconds_count", '{"service": "tally-unit"}')] == 7


def test_request_tally_flush_adds_only_what_is_new() -> None:
    service = "tally-twice"
    tally = observability.RequestTally(service)
    tally.count("/x", "POST", 201, 0.002)
    tally.flush()
    tally.flush()
    tally.count("/x", "POST", 201, 0.002)
    tally.flush()
    key = ("http_requests_total", '{"method": "POST", "service": "tally-twice", "status": "201"}')
    assert _samples_of(service, "/x")[key] == 2


def test_exceptions_are_logged_by_type_only() -> None:
    formatter = observability.JsonFormatter("unit")
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert entry["exc_type"] == "ValueError"
    assert "hunter2" not in json.dumps(entry)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1769903999.9994, "2026-01-31T23:59:59.999Z"),
        (1769904000.125, "2026-02-01T00:00:00.125Z"),
        (1769904000.5, "2026-02-01T00:00:00.500Z"),
    ],
)
def test_iso_timestamp(epoch: float, expected: str) -> None:
    assert observability.iso_timestamp(epoch) == expected
    assert observability.iso_timestamp(epoch) == expected  # the cached second too


def test_access_line_written_directly_is_what_the_formatter_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production fast path (no LogRecord) writes the very line `logging` would."""
    direct, via_logging = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", direct)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        observability.configure_logging("fast")
        token = observability.request_id_var.set("req-fast")
        assert observability.AccessLog("fast")._direct_handler() is not None
        observability.AccessLog("fast").write("req-fast", "/r/<x>", "POST", 201, 0.0123456)
        # Any second handler (here a capture like pytest's) means the ordinary path.
        capture = logging.StreamHandler(via_logging)
        capture.setFormatter(observability.JsonFormatter("fast"))
        root.addHandler(capture)
        assert observability.AccessLog("fast")._direct_handler() is None
        observability.AccessLog("fast").write("req-fast", "/r/<x>", "POST", 201, 0.0123456)
        observability.request_id_var.reset(token)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = direct.getvalue().splitlines()[0], via_logging.getvalue().splitlines()[0]
    without_time = [
        {k: v for k, v in json.loads(line).items() if k != "ts"} for line in (first, second)
    ]
    assert without_time[0] == without_time[1]
    assert list(json.loads(first)) == list(json.loads(second))  # same keys, same order
    assert without_time[0]["request_id"] == "req-fast" and without_time[0]["status"] == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"route": "/api/v1/credit-balance", "method": "POST", "status": 200, "duration_ms": 1.5},
        {"route": "/caf\u00e9/\u65e5\u672c", "method": "GET", "status": 404, "duration_ms": 0.0},
        {"route": 'quote " and \\ and \n', "method": "GET", "status": 500, "duration_ms": 1e-7},
        {"route": "/x", "method": "GET", "status": 200, "duration_ms": float("inf")},
        {"route": Path("/not/json/typed"), "method": None, "status": True, "duration_ms": 3},
    ],
)
def test_access_line_is_the_text_json_dumps_gives(fields: dict[str, Any]) -> None:
    """The prebuilt encoder writes what json.dumps(default=str, ensure_ascii=False) does."""
    line = observability.JsonFormatter("svc").access_line("svc.access", "req-1", fields)
    entry = json.loads(line)
    assert line == json.dumps(
        {**{k: entry[k] for k in ("ts", "level", "service", "request_id", "pid")},
         "logger": "svc.access", "msg": "request", **fields},
        default=str, ensure_ascii=False,
    )  # fmt: skip


def count_in_threads_while_flushing(count: Callable[[], None], threads: int = 8) -> None:
    """Run `count` in many threads at once (a gthread worker) while another thread keeps
    flushing the tallies, switching threads as often as CPython can: races show."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    counting = threading.Event()

    def flush_meanwhile() -> None:
        while counting.is_set():
            observability.flush_request_tallies()

    try:
        counting.set()
        flusher = threading.Thread(target=flush_meanwhile)
        flusher.start()
        workers = [threading.Thread(target=count) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        counting.clear()
        flusher.join()
    finally:
        sys.setswitchinterval(switch_interval)


def test_requests_counted_by_any_thread_all_reach_the_metrics() -> None:
    """No count is lost when many threads record at once while the tallies are flushed."""
    service, per_thread = "threaded-unit", 2000

    def record() -> None:
        for _ in range(per_thread):
            observability.record_request(service, "/t", "GET", 200, 0.002)

    count_in_threads_while_flushing(record, threads=8)
    key = ("http_requests_total", '{"method": "GET", "service": "threaded-unit", "status": "200"}')
    assert _samples_of(service, "/t")[key] == per_thread * 8


def test_request_counts_reach_the_metrics_within_a_flush_without_a_scrape() -> None:
    """Another worker's /metrics sees this process's counts only once they are folded in:
    a background flusher does that about once a second."""
    service = "flushed-unit"
    labels = {"service": service, "route": "/f", "method": "GET", "status": "200"}
    observability.record_request(service, "/f", "GET", 200, 0.002)
    deadline = time.monotonic() + 5 * observability.TALLY_FLUSH_SECONDS
    # The registry itself, not render_metrics(), which would flush first.
    while REGISTRY.get_sample_value("http_requests_total", labels) is None:
        assert time.monotonic() < deadline, "the tally was never flushed"
        time.sleep(0.05)
    assert REGISTRY.get_sample_value("http_requests_total", labels) == 1


def test_the_flusher_outlives_a_failed_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky_flush() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError("No space left on device")

    monkeypatch.setattr(observability, "flush_request_tallies", flaky_flush)
    monkeypatch.setattr(observability, "TALLY_FLUSH_SECONDS", 0.01)
    flusher = threading.Thread(target=observability._flush_tallies_forever, daemon=True)
    flusher.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3:
        assert time.monotonic() < deadline, "the flusher stopped after a failed flush"
        time.sleep(0.01)
    assert flusher.is_alive()


def test_a_forked_child_never_flushes_its_parents_counts() -> None:
    """Counted before a fork (not yet flushed), counted once: by the parent."""
    observability.record_request("forked-unit", "/p", "GET", 200, 0.002)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when it inherited no tally
        os._exit(len(observability._request_tallies))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "forked-unit" in observability._request_tallies  # the parent still has its own


def test_counted_events_reach_the_metrics_as_inc_would_put_them() -> None:
    counter = observability.WALLET_REFUSALS  # a labelled counter the tests may move
    unlabelled = observability.LOGIN_TOKENS_ISSUED
    labels = {"type": "credit", "reason": "event-unit"}
    before = REGISTRY.get_sample_value("sabong_login_tokens_issued_total") or 0.0
    for _ in range(3):
        observability.count_event(counter, "credit", "event-unit")
    observability.count_event(unlabelled)
    # The registry itself, not render_metrics(), which would flush first; the background
    # flusher may already have run, so only the total after a flush is certain.
    observability.flush_request_tallies()
    observability.flush_request_tallies()  # a second flush adds nothing more
    assert REGISTRY.get_sample_value("sabong_wallet_refusals_total", labels) == 3
    assert REGISTRY.get_sample_value("sabong_login_tokens_issued_total") == before + 1


def test_events_counted_by_any_thread_all_reach_the_metrics() -> None:
    """No event is lost when many threads count at once while the tallies are flushed."""
    per_thread = 2000

    def count() -> None:
        for _ in range(per_thread):
            observability.count_event(observability.WALLET_REFUSALS, "debit", "threaded-event")

    count_in_threads_while_flushing(count, threads=8)
    observability.flush_request_tallies()
    labels = {"type": "debit", "reason": "threaded-event"}
    assert REGISTRY.get_sample_value("sabong_wallet_refusals_total", labels) == per_thread * 8
