"""Wallet races against a real gunicorn (gthread, 2 workers x 16 threads) server and
PostgreSQL: no overdraw, one application per reference, chained balanceAfter."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from .conftest import HttpAnswer, LiveSabong
from .test_concurrency import all_at_once

pytestmark = pytest.mark.usefixtures("reconciled")

CREDIT = "/api/v1/credit-balance"
DEBIT = "/api/v1/debit-balance"


def post(live: LiveSabong, path: str, **fields: Any) -> HttpAnswer:
    # An ignored unique field: equal bodies sent in one second must not look like replays.
    return live.post_signed({**fields, "requestId": uuid.uuid4().hex}, path=path)


def wallet_balance(db: Any, client_id: str) -> Decimal:
    (balance,) = db.execute(
        "SELECT balance FROM sabong_wallets WHERE client_id = %s", (client_id,)
    ).fetchone()
    assert isinstance(balance, Decimal)
    return balance


def test_150_concurrent_debits_of_1_against_100_never_overdraw(
    live_sabong: LiveSabong, make_user: Callable[..., int], db: Any
) -> None:
    make_user("RICH", balance="100.00")
    answers = all_at_once(150, lambda _: post(live_sabong, DEBIT, clientId="RICH", amount="1.00"))
    statuses = Counter(a.status for a in answers)
    assert statuses == {200: 100, 400: 50}, [a.body[:120] for a in answers if a.status >= 500]
    refused = [a.json() for a in answers if a.status == 400]
    assert {r["message"] for r in refused} == {"Insufficient balance"}
    assert wallet_balance(db, "RICH") == Decimal("0.00")
    # Every acknowledged debit is there, each with its own balance right after it.
    acknowledged = sorted(a.json()["data"]["balance"] for a in answers if a.status == 200)
    assert acknowledged == list(range(100))
    ids = {a.json()["data"]["transactionId"] for a in answers if a.status == 200}
    stored = db.execute("SELECT id FROM sabong_transactions WHERE type = 'debit'").fetchall()
    assert {row[0] for row in stored} == ids


def test_concurrent_identical_requests_with_one_reference_apply_once(
    live_sabong: LiveSabong, make_user: Callable[..., int], db: Any
) -> None:
    make_user("ONCE", balance="50.00")
    answers = all_at_once(
        40, lambda _: post(live_sabong, DEBIT, clientId="ONCE", amount="7.50", reference="bet-77")
    )
    assert [a.status for a in answers] == [200] * 40, [a.body[:120] for a in answers]
    assert len({a.body for a in answers}) == 1  # the same data for every one of them
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert replayed.count(None) == 1 and replayed.count("true") == 39
    assert wallet_balance(db, "ONCE") == Decimal("42.50")
    count = db.execute("SELECT count(*) FROM sabong_transactions WHERE reference = 'bet-77'")
    assert count.fetchone() == (1,)


def test_concurrent_same_reference_with_different_amounts_applies_one(
    live_sabong: LiveSabong, make_user: Callable[..., int], db: Any
) -> None:
    make_user("SPLIT")
    answers = all_at_once(
        20,
        lambda i: post(
            live_sabong, CREDIT, clientId="SPLIT", amount=f"{i + 1}.00", reference="dep-1"
        ),
    )
    winners = [a for a in answers if a.status == 200]
    assert len(winners) == 1 and Counter(a.status for a in answers)[409] == 19
    won = winners[0].json()["data"]
    assert {a.json()["data"]["transactionId"] for a in answers if a.status == 409} == {
        won["transactionId"]
    }
    assert wallet_balance(db, "SPLIT") == Decimal(str(won["amount"])).quantize(Decimal("0.01"))


def test_mixed_concurrent_traffic_chains_balance_after(
    live_sabong: LiveSabong, make_user: Callable[..., int], db: Any
) -> None:
    for client_id in ("M1", "M2", "M3"):
        make_user(client_id, balance="10.00")

    def one(index: int) -> HttpAnswer:
        client_id = f"M{index % 3 + 1}"
        path = CREDIT if index % 2 else DEBIT
        return post(live_sabong, path, clientId=client_id, amount=f"{index % 7 + 1}.25")

    answers = all_at_once(90, one)
    assert {a.status for a in answers} <= {200, 400}
    for client_id in ("M1", "M2", "M3"):
        rows = db.execute(
            "SELECT type, amount, balance_after FROM sabong_transactions"
            " WHERE client_id = %s ORDER BY id",
            (client_id,),
        ).fetchall()
        running = Decimal("0")
        for kind, amount, after in rows:
            running += amount if kind == "credit" else -amount
            assert after == running >= 0
        assert wallet_balance(db, client_id) == running
