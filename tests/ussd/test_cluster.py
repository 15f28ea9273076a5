"""The whole K2 flow on a real Redis Cluster: every script's keys share one hash slot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from devtools import cluster
from services.ussd import accounts
from services.ussd.runtime import EXTENSION

from .helpers import PASSWORD, Partner, assert_envelope, bearer, login, login_token, new_service_id


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    with cluster.LocalRedisCluster(tmp_path / "cluster", masters=3, replicas_per_master=0) as c:
        yield c.url


def test_k2_flow_on_a_redis_cluster(make_app: Callable[..., Flask], cluster_url: str) -> None:
    app = make_app(redis=cluster_url)
    ctx = app.extensions[EXTENSION]
    client = app.test_client()
    # Several clients, so their tags land on different masters.
    partners = [Partner(f"c{i}", PASSWORD, accounts.create_client(ctx, f"c{i}", PASSWORD))
                for i in range(4)]  # fmt: skip
    for partner in partners:
        token = login_token(client, partner)
        service_id = new_service_id(client, token)
        assert client.get("/api/clients/me", headers=bearer(service_id)).status_code == 200
        response = client.post("/api/clients/generate-api-key", headers=bearer(token),
                               json={"service_id": service_id})  # fmt: skip
        assert response.status_code == 201
        assert (
            client.post("/api/clients/revoke-service-id", headers=bearer(service_id)).status_code
            == 200
        )
        assert login(client, partner.username, "wrong password").status_code == 401
    # Another client's Service ID (another slot) is refused without a cross-slot script.
    first, second = (login_token(client, p) for p in partners[:2])
    foreign = new_service_id(client, second)
    response = client.post("/api/clients/generate-api-key", headers=bearer(first),
                           json={"service_id": foreign})  # fmt: skip
    assert_envelope(response, 403, "Service ID expired or invalid")
    accounts.set_active(ctx, partners[1].username, active=False)
    assert_envelope(
        client.get("/api/clients/me", headers=bearer(foreign)), 401, "Invalid service ID"
    )
    assert len(accounts.list_clients(ctx)) == 4
