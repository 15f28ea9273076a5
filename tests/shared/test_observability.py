"""JSON logs, request ids and metrics of shared.observability."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask

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
