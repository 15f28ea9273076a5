"""Wallet traffic for the reliability suite: signed credits, debits and balance reads,
with every acknowledged transaction remembered so a test can look for it afterwards."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from tests.live_services import PROJECT_ROOT

from .platform import Platform, dump
from .traffic import GENERATE_AUTH_TOKEN, Operation, Partner, Result, WorkerState
from .wire import Client, signed_headers

CREDIT = "/api/v1/credit-balance"
DEBIT = "/api/v1/debit-balance"
BALANCE = "/api/v1/get-balance"
OPENING_CREDIT = Decimal("1000.00")
# Store-down answers the contract documents, per path: the only errors allowed while a
# store is down.
OUTAGE_MESSAGES = {
    CREDIT: "Failed to credit balance",
    DEBIT: "Failed to debit balance",
    BALANCE: "Failed to get balance",
}
_SEQUENCE = itertools.count()


@dataclass
class Ledger:
    """What the partner was told: every acknowledged transaction, by transactionId."""

    acknowledged: dict[int, tuple[str, str, Decimal]] = field(default_factory=dict)

    def record(self, answer_data: dict[str, object]) -> None:
        transaction_id = int(str(answer_data["transactionId"]))
        self.acknowledged[transaction_id] = (
            str(answer_data["clientId"]),
            str(answer_data["type"]),
            Decimal(str(answer_data["amount"])),
        )


def create_wallets(platform: Platform, client_ids: list[str]) -> None:
    """A user (and so a wallet) per clientId, each with an opening credit."""
    client = Client(platform.port)
    try:
        for client_id in client_ids:
            body = dump(
                {
                    "clientId": client_id,
                    "username": client_id.lower(),
                    "displayName": client_id,
                    "ipAddress": "192.0.2.20",
                }
            )
            answer = client.send(
                "POST",
                GENERATE_AUTH_TOKEN,
                body,
                signed_headers(platform.sabong_secret, "POST", GENERATE_AUTH_TOKEN, body),
            )
            assert answer.status == 200, answer.brief()
            credit = dump({"clientId": client_id, "amount": str(OPENING_CREDIT)})
            answer = client.send(
                "POST",
                CREDIT,
                credit,
                signed_headers(platform.sabong_secret, "POST", CREDIT, credit),
            )
            assert answer.status == 200, answer.brief()
    finally:
        client.close()


def money_move(path: str, client_ids: list[str], ledger: Ledger, amount: float = 1.25) -> Operation:
    """POST credit-balance or debit-balance with a unique reference; 200s go in `ledger`.

    A debit refused for `Insufficient balance` is a correct answer, not an error.
    """

    def operation(client: Client, partner: Partner, state: WorkerState) -> Result:
        n = next(_SEQUENCE)
        client_id = client_ids[n % len(client_ids)]
        body = dump(
            {
                "clientId": client_id,
                "amount": amount,
                "reference": f"rel-{partner.run_id}-{n}",
                "description": "reliability",
            }
        )
        answer = client.send(
            "POST", path, body, signed_headers(partner.sabong_secret, "POST", path, body)
        )
        if answer.status == 200:
            ledger.record(answer.json()["data"])
        refused = answer.status == 400 and answer.json().get("message") == "Insufficient balance"
        return Result(path.rsplit("/", 1)[1], answer, answer.status == 200 or refused)

    return operation


def balance_read(client_ids: list[str]) -> Operation:
    """GET get-balance, signed over the sorted query."""

    def operation(client: Client, partner: Partner, state: WorkerState) -> Result:
        n = next(_SEQUENCE)
        client_id = client_ids[n % len(client_ids)]
        # Two identical reads in one second would sign identically, and the second would
        # be refused as a replay: an extra (signed, ignored) parameter makes each unique,
        # as the SDK does by stamping the later one a second on.
        query = f"clientId={client_id}&n={partner.run_id}{n}"
        headers = signed_headers(partner.sabong_secret, "GET", BALANCE, query.encode())
        answer = client.send("GET", f"{BALANCE}?{query}", None, headers)
        return Result("get-balance", answer, answer.status == 200)

    return operation


def wallet_mix(client_ids: list[str], ledger: Ledger) -> tuple[Operation, ...]:
    """Credits, debits and balance reads in equal shares."""
    return (
        money_move(CREDIT, client_ids, ledger),
        money_move(DEBIT, client_ids, ledger),
        balance_read(client_ids),
    )


def wallet_partner(platform: Platform) -> Partner:
    """A Sabong-only partner: the K2 credentials are not used by wallet traffic."""
    return Partner(platform.port, platform.sabong_secret, login_jwt="", service_id="")


def missing_transactions(database_url: str, ledger: Ledger) -> list[int]:
    """Acknowledged transactionIds that the database does not hold (as acknowledged)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, client_id, type, amount FROM sabong_transactions")
        stored = {int(r[0]): (str(r[1]), str(r[2]), Decimal(r[3])) for r in rows}
    return sorted(tid for tid, seen in ledger.acknowledged.items() if stored.get(tid) != seen)


def reconcile(platform: Platform) -> subprocess.CompletedProcess[str]:
    """The operator's `reconcile` command against the platform's database."""
    return subprocess.run(
        [sys.executable, "-m", "services.sabong", "reconcile"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **platform.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def is_documented_outage(result: Result) -> bool:
    """A 500 in exactly the envelope the contract gives for a store being down."""
    expected = OUTAGE_MESSAGES.get(result.answer.path.split("?", 1)[0])
    if result.answer.status != 500 or expected is None:
        return False
    return result.answer.json() == {"status": "failed", "message": expected, "data": None}
