"""Many clients at once against a real gunicorn server (gthread workers)."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import redis as redis_py

from services.ussd import store

from .helpers import Partner, jwt_parts

CONCURRENCY = 50


def request(
    base_url: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def all_at_once(count: int, call: Any) -> list[tuple[int, dict[str, Any]]]:
    """Run `call` from `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(_: int) -> tuple[int, dict[str, Any]]:
        barrier.wait(timeout=30)
        result: tuple[int, dict[str, Any]] = call()
        return result

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_50_concurrent_logins_for_one_client_all_succeed(
    ussd_server: str, partner: Partner, db
) -> None:
    credentials = {"username": partner.username, "password": partner.password}
    results = all_at_once(
        CONCURRENCY, lambda: request(ussd_server, "POST", "/api/auth/login", credentials)
    )
    assert [status for status, _ in results] == [200] * CONCURRENCY, results[:3]
    assert all(body["data"]["user"]["id"] == partner.record["id"] for _, body in results)
    # The server's cost (N=1024) replaced the cheap test hash exactly as a compare-and-set.
    (stored,) = db.execute(
        "SELECT password_hash FROM k2_clients WHERE id = %s", (partner.record["id"],)
    ).fetchone()
    assert stored.startswith("scrypt$1024$")
    assert request(ussd_server, "POST", "/api/auth/login", credentials)[0] == 200


def test_50_concurrent_service_ids_for_one_client_all_succeed(
    ussd_server: str, partner: Partner, redis_client: redis_py.Redis
) -> None:
    credentials = {"username": partner.username, "password": partner.password}
    status, body = request(ussd_server, "POST", "/api/auth/login", credentials)
    assert status == 200
    token = body["data"]["token"]
    results = all_at_once(
        CONCURRENCY,
        lambda: request(ussd_server, "POST", "/api/clients/generate-service-id", token=token),
    )
    assert [status for status, _ in results] == [201] * CONCURRENCY, results[:3]
    tokens = [body["data"]["SERVICE_ID"] for _, body in results]
    service_ids = {jwt_parts(token)[1]["serviceId"] for token in tokens}
    assert len(service_ids) == CONCURRENCY
    assert all(redis_client.exists(store.service_id_key(sid)) for sid in service_ids)
    me = all_at_once(
        CONCURRENCY // 5,
        lambda: request(ussd_server, "GET", "/api/clients/me", token=tokens[0]),
    )
    assert all(status == 200 for status, _ in me)
