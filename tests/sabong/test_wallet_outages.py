"""The wallet API when Redis or PostgreSQL is down: the documented 500s, no money moved,
nothing lost, and recovery without restarting the service."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from devtools.postgres import EmbeddedPostgres
from shared.embedded import EmbeddedRedis

from .conftest import MakeApp, Partner, reconcile_exit

BALANCE = "/api/v1/get-balance"
CREDIT = "/api/v1/credit-balance"
DEBIT = "/api/v1/debit-balance"
HISTORY = "/api/v1/get-transactions"

FAILURES = {
    BALANCE: "Failed to get balance",
    CREDIT: "Failed to credit balance",
    DEBIT: "Failed to debit balance",
    HISTORY: "Failed to get transactions",
}


def call(partner: Partner, path: str, client_id: str) -> Any:
    if path in (BALANCE, HISTORY):
        return partner.get(path, {"clientId": client_id, "n": uuid.uuid4().hex})
    return partner.post({"clientId": client_id, "amount": "1.00", "n": uuid.uuid4().hex}, path=path)


def seed_user(url: str, client_id: str) -> None:
    """A user with an empty wallet on a database of the test's own."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sabong_users (client_id, username, name, display_id, referral_code,"
            " password, created_at, updated_at)"
            " VALUES (%s, 'u', 'n', %s, 'REF-2026-AAAAAA', '!', now(), now())",
            (client_id, client_id),
        )
        conn.execute(
            "INSERT INTO sabong_wallets (client_id, user_id, created_at) VALUES (%s, 1, now())",
            (client_id,),
        )


@pytest.mark.usefixtures("reconciled")
def test_redis_down_gives_each_endpoint_its_500_and_moves_nothing(
    make_app: MakeApp, own_redis: EmbeddedRedis, make_user: Callable[..., int], db: Any
) -> None:
    make_user("C1", balance="5.00")
    partner = Partner(make_app(redis=own_redis.url).test_client())
    own_redis.stop()
    for path, message in FAILURES.items():
        started = time.monotonic()
        response = call(partner, path, "C1")
        assert time.monotonic() - started < 3.0
        assert response.status_code == 500
        assert response.get_json() == {"status": "failed", "message": message, "data": None}
    assert db.execute("SELECT count(*) FROM sabong_transactions").fetchone() == (1,)
    own_redis.start()
    assert call(partner, CREDIT, "C1").status_code == 200


def test_postgres_down_gives_500s_then_the_same_signed_request_may_be_resent(
    make_app: MakeApp, own_postgres: EmbeddedPostgres
) -> None:
    seed_user(own_postgres.url, "C1")
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    assert call(partner, CREDIT, "C1").status_code == 200
    own_postgres.stop(kill=True)
    for path, message in FAILURES.items():
        started = time.monotonic()
        response = call(partner, path, "C1")
        assert time.monotonic() - started < 8.0
        assert response.status_code == 500, response.get_data(as_text=True)
        assert response.get_json() == {"status": "failed", "message": message, "data": None}
    body = b'{"clientId":"C1","amount":2}'
    stamp = partner.now()
    refused = partner.post(body, path=CREDIT, timestamp=stamp)
    assert refused.status_code == 500
    own_postgres.start()
    # The 500 applied nothing, so its signature was released: the very same request works.
    resent = partner.post(body, path=CREDIT, timestamp=stamp)
    assert resent.status_code == 200, resent.get_data(as_text=True)
    assert resent.get_json()["data"]["balance"] == 3
    assert reconcile_exit(own_postgres.url) == (0, "")
