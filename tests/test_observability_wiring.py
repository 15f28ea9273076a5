"""The services' metrics and access logs, driven through their real apps and a real Redis.

Metrics live in the process-wide registry, so every check compares before and after.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gunicorn.config import Config
from prometheus_client.parser import text_string_to_metric_families

from scripts.gunicorn_hooks import JsonLogger, service_name
from services.sabong import create_app as create_sabong
from services.ussd import accounts
from services.ussd import create_app as create_ussd
from services.ussd.runtime import EXTENSION
from shared import observability, signing

PASSWORD = "correct horse battery staple"
SABONG_SECRET = "wiring-test-sabong-secret-0123456789"
SETTINGS = {
    "APP_ENV": "development",
    "USSD_LOGIN_JWT_SECRET": "wiring-login-jwt-secret-0123456789abcdef",
    "USSD_SERVICE_ID_SECRET": "wiring-service-id-secret-0123456789abcdef",
    "USSD_SCRYPT_N": "16",
    "USSD_LOGIN_MAX_FAILURES_PER_USERNAME": "2",
    "SABONG_CLIENT_SECRETS": SABONG_SECRET,
    "SABONG_SESSION_SECRET": "wiring-session-secret-0123456789abcdef",
}
TOKEN_PATH = "/api/v1/generate-auth-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A throwaway `.env`, no inherited service settings, one process's metrics."""
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / ".env"))
    for name in list(os.environ):
        if name.startswith(("USSD_", "SABONG_")) or name in ("REDIS_URL", "APP_ENV"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def ussd(redis_url: str) -> Flask:
    return create_ussd({**SETTINGS, "REDIS_URL": redis_url})


@pytest.fixture
def sabong(redis_url: str) -> Flask:
    return create_sabong({**SETTINGS, "REDIS_URL": redis_url})


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access-log lines captured so far, as the JSON the services write."""
    formatter = observability.JsonFormatter("sabong")
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name.endswith(".access")
    ]


def metrics(client: FlaskClient) -> Samples:
    """Every sample the app's /metrics shows, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def changes(before: Samples, after: Samples) -> dict[tuple[str, frozenset[Any]], float]:
    """Samples whose value moved, by how much (the counters of interest only)."""
    names = {
        "k2_service_ids_issued_total",
        "k2_login_failures_total",
        "rate_limited_total",
        "sabong_login_tokens_issued_total",
        "sabong_login_tokens_consumed_total",
        "sabong_signature_failures_total",
    }
    moved = {}
    for key, new in after.items():
        delta = new - before.get(key, 0.0)
        if key[0] in names and delta:
            moved[key] = delta
    return moved


def counted(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def login(client: FlaskClient, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return client.post("/api/auth/login", json=body).status_code


def test_ussd_counts_service_ids_and_each_kind_of_login_failure(ussd: Flask) -> None:
    ctx = ussd.extensions[EXTENSION]
    accounts.create_client(ctx, "wired", PASSWORD)
    accounts.create_client(ctx, "switched-off", PASSWORD)
    accounts.set_active(ctx, "switched-off", False)
    client = ussd.test_client()
    before = metrics(client)

    answer = client.post("/api/auth/login", json={"username": "wired", "password": PASSWORD})
    token = answer.get_json()["data"]["token"]
    created = client.post(
        "/api/clients/generate-service-id", headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201
    assert login(client, "switched-off", PASSWORD) == 403
    # The limit is 2 failures per username: two wrong passwords, then the throttle.
    assert [login(client, "wired", "wrong password!") for _ in range(3)] == [401, 401, 429]

    assert changes(before, metrics(client)) == {
        counted("k2_service_ids_issued_total"): 1,
        counted("k2_login_failures_total", reason="disabled"): 1,
        counted("k2_login_failures_total", reason="bad_credentials"): 2,
        counted("k2_login_failures_total", reason="rate_limited"): 1,
        counted("rate_limited_total", service="ussd"): 1,
    }


def test_ussd_requests_are_counted_and_timed_by_route_and_status(ussd: Flask) -> None:
    client = ussd.test_client()
    before = metrics(client)
    for _ in range(3):
        client.get("/api/clients/me", headers={"Authorization": "Bearer nonsense"})
    client.get("/no/such/path")
    after = metrics(client)

    labels = {"service": "ussd", "route": "/api/clients/me", "method": "GET"}
    requests = "http_requests_total"
    assert (
        value(after, requests, **labels, status="401")
        - value(before, requests, **labels, status="401")
        == 3
    )
    unmatched = {"service": "ussd", "route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, requests, **unmatched) - value(before, requests, **unmatched) == 1
    timed = "http_request_duration_seconds_count"
    route = {"service": "ussd", "route": "/api/clients/me"}
    assert value(after, timed, **route) - value(before, timed, **route) == 3


def sign(body: bytes, secret: str = SABONG_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "x-signature": signing.sign(secret, "POST", TOKEN_PATH, stamp, body),
        "x-timestamp": stamp,
        "Content-Type": "application/json",
    }


def token_body() -> bytes:
    fields = {
        "clientId": f"WIRED_{uuid.uuid4().hex[:8]}",
        "username": "wired",
        "displayName": "Wired User",
        "ipAddress": "192.0.2.10",
    }
    return json.dumps(fields).encode()


def test_sabong_counts_tokens_link_uses_and_signature_failures(sabong: Flask) -> None:
    client = sabong.test_client()
    before = metrics(client)

    body = token_body()
    headers = sign(body)
    issued = client.post(TOKEN_PATH, data=body, headers=headers)
    assert issued.status_code == 200
    token = issued.get_json()["data"]["token"]
    assert client.get(f"/login/{token}").status_code == 200  # a GET consumes nothing
    assert client.post(f"/login/{token}").status_code == 303
    assert client.post(f"/login/{token}").status_code == 410
    assert client.post(TOKEN_PATH, data=body, headers=headers).status_code == 401  # replay
    assert client.post(TOKEN_PATH, data=body, headers=sign(body, "wrong")).status_code == 401
    assert client.post(TOKEN_PATH, data=body).status_code == 401  # unsigned

    assert changes(before, metrics(client)) == {
        counted("sabong_login_tokens_issued_total"): 1,
        counted("sabong_login_tokens_consumed_total", outcome="ok"): 1,
        counted("sabong_login_tokens_consumed_total", outcome="gone"): 1,
        counted("sabong_signature_failures_total", reason="replayed"): 1,
        counted("sabong_signature_failures_total", reason="signature_mismatch"): 1,
        counted("sabong_signature_failures_total", reason="missing_headers"): 1,
    }


def test_access_lines_carry_the_route_pattern_never_the_token(
    sabong: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = sabong.test_client()
    body = token_body()
    with caplog.at_level(logging.INFO):
        issued = client.post(TOKEN_PATH, data=body, headers=sign(body))
        token = issued.get_json()["data"]["token"]
        client.get(f"/login/{token}", headers={"X-Request-ID": "wiring-req-1"})

    lines = access_lines(caplog)
    assert [line["route"] for line in lines] == [TOKEN_PATH, "/login/<token>"]
    line = lines[1]
    assert line["request_id"] == "wiring-req-1"
    assert (line["method"], line["status"], line["level"]) == ("GET", 200, "info")
    assert isinstance(line["duration_ms"], float)
    assert {"ts", "service", "pid", "logger", "msg"} <= set(line)
    assert token not in json.dumps(lines)


def test_request_id_does_not_outlive_its_request(ussd: Flask) -> None:
    ussd.test_client().get("/healthz", headers={"X-Request-ID": "short-lived"})
    assert observability.request_id_var.get() == "-"


def test_gunicorn_lines_are_json_with_urls_masked() -> None:
    """gunicorn's error log (start-up, worker and bad-request lines) goes through JsonLogger."""
    config = Config()
    config.set("default_proc_name", "services.sabong.wsgi:app")
    logger = JsonLogger(config)
    stream = io.StringIO()
    for handler in logger.error_log.handlers:
        handler.setStream(stream)  # type: ignore[attr-defined]
    logger.info("Booting worker with pid: %s", 4242)
    logger.error("Error handling request %s", "/login/" + "T" * 64 + "?sig=abc")

    booting, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (booting["service"], booting["msg"]) == ("sabong", "Booting worker with pid: 4242")
    assert booting["request_id"] == "-"
    assert failed["msg"] == "Error handling request /login/<token>?<query>"


@pytest.mark.parametrize(
    ("app_uri", "service"),
    [("services.ussd.wsgi:app", "ussd"), ("services.sabong.wsgi:app", "sabong"), ("x:y", "x:y")],
)
def test_service_name_of_a_gunicorn_app(app_uri: str, service: str) -> None:
    assert service_name(app_uri) == service
