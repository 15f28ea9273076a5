"""Redis stopped mid-test: every K2 endpoint answers 503 quickly, then recovers by itself."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from devtools.embedded import EmbeddedRedis
from services.ussd import accounts
from services.ussd.runtime import EXTENSION
from services.ussd.store import service_id_key

from .helpers import (
    PASSWORD,
    Partner,
    assert_envelope,
    bearer,
    jwt_parts,
    login,
    login_token,
    new_service_id,
)

UNAVAILABLE = "Service temporarily unavailable"
BOUND_SECONDS = 2.0


def _every_endpoint(client: FlaskClient, token: str, service_id: str) -> list[TestResponse]:
    return [
        login(client, "outage", PASSWORD),
        client.post("/api/clients/generate-service-id", headers=bearer(token)),
        client.post("/api/clients/generate-api-key", headers=bearer(token),
                    json={"service_id": service_id}),
        client.get("/api/clients/me", headers=bearer(service_id)),
        client.post("/api/clients/revoke-service-id", headers=bearer(service_id)),
        client.get("/readyz"),
    ]  # fmt: skip


def _timed(call: Callable[[], list[TestResponse]]) -> tuple[list[TestResponse], float]:
    start = time.monotonic()
    responses = call()
    return responses, (time.monotonic() - start) / len(responses)


def _prepared(
    make_app: Callable[..., Flask], server: EmbeddedRedis
) -> tuple[FlaskClient, str, str]:
    app = make_app(redis=server.url)
    accounts.create_client(app.extensions[EXTENSION], "outage", PASSWORD)
    client = app.test_client()
    token = login_token(client, Partner("outage", PASSWORD, {}))
    return client, token, new_service_id(client, token)


def _wait_for_aof(server: EmbeddedRedis, key: str, timeout: float = 10.0) -> None:
    """Block until `key` is in the append-only file (a crash must not be what loses it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(key.encode() in path.read_bytes() for path in server.data_dir.rglob("*.aof*")):
            return
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached the AOF")


def test_redis_stopped_gives_503_fast_then_recovers(make_app, own_redis: EmbeddedRedis) -> None:
    client, token, service_id = _prepared(make_app, own_redis)
    own_redis.stop()
    responses, seconds_each = _timed(lambda: _every_endpoint(client, token, service_id))
    for response in responses:
        assert_envelope(response, 503, UNAVAILABLE)
    assert seconds_each < BOUND_SECONDS
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    own_redis.start()
    # Same app, no restart: pooled connections are replaced and scripts reloaded.
    assert client.get("/api/clients/me", headers=bearer(service_id)).status_code == 200
    assert client.post("/api/clients/generate-service-id", headers=bearer(token)).status_code == 201
    assert login(client, "outage", PASSWORD).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_redis_crash_gives_503_then_recovers_with_data(make_app, own_redis: EmbeddedRedis) -> None:
    client, token, service_id = _prepared(make_app, own_redis)
    _wait_for_aof(own_redis, service_id_key(jwt_parts(service_id)[1]["serviceId"]))
    own_redis.stop(kill=True)
    responses, seconds_each = _timed(lambda: _every_endpoint(client, token, service_id))
    assert all(r.status_code == 503 for r in responses)
    assert seconds_each < BOUND_SECONDS
    own_redis.start()
    assert client.get("/api/clients/me", headers=bearer(service_id)).status_code == 200


def test_frozen_redis_gives_503_within_the_timeouts(make_app, own_redis: EmbeddedRedis) -> None:
    # A Redis that accepts connections but never answers (SIGSTOP): the command timeout,
    # not the kernel, has to end the wait.
    client, _, service_id = _prepared(make_app, own_redis)
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        response = client.get("/api/clients/me", headers=bearer(service_id))
        elapsed = time.monotonic() - start
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert_envelope(response, 503, UNAVAILABLE)
    # shared.redis: 1 s command timeout, one retry on a fresh connection.
    assert elapsed < 3.0, elapsed
    assert client.get("/api/clients/me", headers=bearer(service_id)).status_code == 200
