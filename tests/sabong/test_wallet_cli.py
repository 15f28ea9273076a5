"""Operator commands on the ledger: wallet show, wallet transactions, reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from services.sabong.cli import main

from .conftest import PROJECT_ROOT, Partner

CREDIT = "/api/v1/credit-balance"
DEBIT = "/api/v1/debit-balance"


def run(capsys: pytest.CaptureFixture[str], database_url: str, *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv), environ={"DATABASE_URL": database_url})
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


@pytest.mark.usefixtures("reconciled")
def test_wallet_show_and_transactions(
    partner: Partner,
    make_user: Callable[..., int],
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user_id = make_user("OPS-1", balance="20.00")
    partner.post({"clientId": "OPS-1", "amount": "2.50", "reference": "r-9"}, path=DEBIT)
    code, wallet, _ = run(capsys, database_url, "wallet", "show", "OPS-1")
    assert code == 0
    assert (wallet["user_id"], wallet["balance"], wallet["currency"]) == (user_id, "17.50", "USD")
    code, rows, _ = run(capsys, database_url, "wallet", "transactions", "OPS-1", "--limit", "1")
    assert code == 0
    assert [(r["type"], r["amount"], r["balance_after"], r["reference"]) for r in rows] == [
        ("debit", "2.50", "17.50", "r-9")
    ]


def test_wallet_show_of_an_unknown_client_is_exit_1(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, database_url, "wallet", "show", "NOBODY")
    assert code == 1 and "NOBODY" in err


def test_reconcile_names_every_wallet_that_does_not_add_up(
    partner: Partner,
    make_user: Callable[..., int],
    database_url: str,
    db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for client_id in ("GOOD", "DRIFT", "GAP"):
        make_user(client_id, balance="10.00")
        partner.post({"clientId": client_id, "amount": "1.00"}, path=DEBIT)
    code, report, _ = run(capsys, database_url, "reconcile")
    assert (code, report) == (0, {"wallets": 3, "problems": {}})
    # Tampering an operator must see: a balance changed behind the ledger's back, and a
    # transaction whose balance_after does not follow from the one before.
    db.execute("UPDATE sabong_wallets SET balance = balance + 5 WHERE client_id = 'DRIFT'")
    db.execute(
        "UPDATE sabong_transactions SET balance_after = 8.00"
        " WHERE client_id = 'GAP' AND type = 'debit'"
    )
    code, _, err = run(capsys, database_url, "reconcile")
    assert code == 1
    assert "'DRIFT': balance 14.00 but credits - debits = 9.00" in err
    assert "'GAP': transaction" in err and "balanceAfter 8.00" in err
    assert "GOOD" not in err
    assert "2 wallet(s) do not add up" in err


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_reconcile_runs_as_a_command_and_says_when_it_finds_no_database(
    database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # No DATABASE_URL: make run's PostgreSQL is tried, and (on a port nothing uses) missed.
    env.update(PYTHONPATH=str(PROJECT_ROOT), DOTENV_PATH=os.devnull, POSTGRES_PORT="1")
    command = [sys.executable, "-m", "services.sabong", "reconcile"]
    missing = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=60)
    assert missing.returncode == 1 and b"is `make run` up?" in missing.stderr
    assert missing.stdout == b"" and b"Traceback" not in missing.stderr
    env["DATABASE_URL"] = database_url
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"wallets": 0, "problems": {}}


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_reconcile_with_the_database_down_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "postgresql://127.0.0.1:1/nothing", "reconcile")
    assert code == 1 and "cannot be reached" in err
