"""The wallet API when Redis or PostgreSQL is down: the documented 500s, no money moved,
nothing lost, and recovery without restarting the service."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.embedded import EmbeddedRedis
from devtools.postgres import EmbeddedPostgres

from .conftest import MakeApp, Partner, gunicorn_sabong, reconcile_exit

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
    # The 500 applied nothing, so its signature was released: the very same request works
    # once the pool has reconnected (its retry back-off after a long outage is bounded).
    deadline = time.monotonic() + 20
    resent = partner.post(body, path=CREDIT, timestamp=stamp)
    while resent.status_code == 500 and time.monotonic() < deadline:
        resent = partner.post(body, path=CREDIT, timestamp=stamp)
    assert resent.status_code == 200, resent.get_data(as_text=True)
    assert resent.get_json()["data"]["balance"] == 3
    assert reconcile_exit(own_postgres.url) == (0, "")


def test_postgres_down_a_get_balance_may_be_resent_and_a_replay_stays_refused(
    make_app: MakeApp, own_postgres: EmbeddedPostgres
) -> None:
    seed_user(own_postgres.url, "C1")
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    used = partner.get(BALANCE, {"clientId": "C1"})
    assert used.status_code == 200
    replayed = {k: used.request.headers[k] for k in ("x-signature", "x-timestamp")}
    fresh = partner.get(BALANCE, {"clientId": "C1", "n": "1"})
    assert fresh.status_code == 200
    own_postgres.stop(kill=True)
    # A replay is a replay, database or not; and it must not free the original's guard.
    for _ in range(2):
        again = partner.client.get(BALANCE, query_string={"clientId": "C1"}, headers=replayed)
        assert again.status_code == 401
    stamp = partner.now()
    assert partner.get(BALANCE, {"clientId": "C1", "n": "2"}, timestamp=stamp).status_code == 500
    own_postgres.start()
    deadline = time.monotonic() + 20
    resent = partner.get(BALANCE, {"clientId": "C1", "n": "2"}, timestamp=stamp)
    while resent.status_code == 500 and time.monotonic() < deadline:
        resent = partner.get(BALANCE, {"clientId": "C1", "n": "2"}, timestamp=stamp)
    assert resent.status_code == 200, resent.get_data(as_text=True)
    assert resent.get_json()["data"]["clientId"] == "C1"


@pytest.mark.server
def test_kill_9_of_postgres_under_wallet_load_loses_no_acknowledged_transaction(
    own_postgres: EmbeddedPostgres, redis_url: str, tmp_path: Path
) -> None:
    """Credits and debits flow from 8 threads; PostgreSQL is killed (SIGKILL) and restarted
    mid-traffic. While it is down only the documented 500s come back, within a bounded
    time; the service recovers without a restart; every transactionId acknowledged with a
    200 is in the ledger afterwards, and it reconciles."""
    clients = [f"K{n}" for n in range(4)]
    for client_id in clients:
        seed_user(own_postgres.url, client_id)
    acknowledged: list[int] = []
    answers: Counter[tuple[int, str]] = Counter()
    slowest = [0.0]
    stop = threading.Event()
    lock = threading.Lock()

    with gunicorn_sabong(redis_url, tmp_path, DATABASE_URL=own_postgres.url) as live:

        def traffic(worker: int) -> None:
            sent = 0
            while not stop.is_set() and sent < 3000:
                sent += 1
                path = CREDIT if sent % 3 else DEBIT
                body = {"clientId": clients[worker % 4], "amount": "1.00",
                        "reference": f"w{worker}-{sent}"}  # fmt: skip
                started = time.monotonic()
                answer = live.post_signed(body, path=path)
                took = time.monotonic() - started
                payload = answer.json()
                with lock:
                    slowest[0] = max(slowest[0], took)
                    answers[(answer.status, payload["message"])] += 1
                    if answer.status == 200:
                        acknowledged.append(payload["data"]["transactionId"])

        threads = [threading.Thread(target=traffic, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        own_postgres.stop(kill=True)
        time.sleep(2)
        own_postgres.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        after_restart = live.post_signed({"clientId": "K0", "amount": "1.00"}, path=CREDIT)
    assert after_restart.status == 200  # recovered without restarting the service
    allowed = {
        (200, "Balance credited successfully"),
        (200, "Balance debited successfully"),
        (400, "Insufficient balance"),
        (500, "Failed to credit balance"),
        (500, "Failed to debit balance"),
    }
    assert set(answers) <= allowed, answers
    assert any(status == 500 for status, _ in answers), "the kill did not happen under load"
    assert slowest[0] < 10.0  # bounded: connect and statement timeouts, no hung worker
    with psycopg.connect(own_postgres.url) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM sabong_transactions")}
    assert set(acknowledged) <= stored
    assert reconcile_exit(own_postgres.url) == (0, "")


@pytest.mark.usefixtures("reconciled")
def test_a_debit_lost_mid_statement_keeps_its_signature_spent(
    partner: Partner, make_user: Callable[..., int], database_url: str
) -> None:
    """The connection dies while the debit's statement runs: the service cannot know
    whether it committed, so it answers 500 and keeps the signature spent; resending the
    very same bytes is refused as a replay instead of risking a double debit."""
    make_user("LOST", balance="10.00")
    body = b'{"clientId":"LOST","amount":"4.00"}'
    stamp = partner.now()
    with psycopg.connect(database_url) as blocker:
        # Hold the wallet's row lock so the debit's UPDATE waits, then kill its backend.
        blocker.execute("SELECT 1 FROM sabong_wallets WHERE client_id = 'LOST' FOR UPDATE")
        answer: list[Any] = []
        sender = threading.Thread(
            target=lambda: answer.append(partner.post(body, path=DEBIT, timestamp=stamp))
        )
        sender.start()
        with psycopg.connect(database_url, autocommit=True) as admin:
            deadline = time.monotonic() + 10
            killed = False
            while not killed and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%%sabong_transactions%%'"
                ).fetchone()
                killed = bool(row and row[0])
                time.sleep(0.05)
        assert killed
        sender.join(timeout=15)
        blocker.rollback()
    assert answer[0].status_code == 500
    assert answer[0].get_json()["message"] == "Failed to debit balance"
    again = partner.post(body, path=DEBIT, timestamp=stamp)
    assert again.status_code == 401
    assert again.get_json()["message"] == "Duplicate request signature"
    response = partner.get(BALANCE, {"clientId": "LOST"})
    assert response.get_json()["data"]["balance"] == 10  # it had not committed, in fact
