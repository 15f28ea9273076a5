"""The debit path on psycopg 3 (its pool) and on SQLAlchemy 2 Core: CPU and time per debit.

    .venv/bin/python -m bench.db_layer [--debits 3000]

Starts a durable embedded PostgreSQL of its own (fsync on, synchronous commit), creates
one funded wallet, and runs the same debit statement (services.sabong.wallet_store.POST_SQL),
one autocommit statement per debit as the service does, sequentially, through each layer
in turn (alternating rounds, since this machine's speed drifts). CPU is this
process's (user + system): what the access layer costs the service per debit; the
database server's own work is the same for both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from devtools.postgres import EmbeddedPostgres
from scripts.migrate import upgrade
from services.sabong.wallet_store import POST_SQL, Posting, WalletStore
from shared.db import Database, sqlalchemy_url

CLIENT = "BENCH-WALLET"
SEED = Decimal("100000000.00")


def seed(url: str) -> None:
    """One user and a wallet holding enough for every debit."""
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sabong_users (client_id, username, name, display_id, referral_code,"
            " password, created_at, updated_at) VALUES (%(c)s, 'b', 'b', %(c)s,"
            " 'REF-2026-BENCH0', '!', now(), now())",
            {"c": CLIENT},
        )
        conn.exec_driver_sql(
            "INSERT INTO sabong_wallets (client_id, user_id, balance, created_at)"
            " VALUES (%(c)s, 1, %(b)s, now())",
            {"c": CLIENT, "b": SEED},
        )
    engine.dispose()


def params(index: int) -> dict[str, Any]:
    return {
        "client_id": CLIENT,
        "type": "debit",
        "amount": Decimal("0.01"),
        "delta": Decimal("-0.01"),
        "reference": f"layer-{index}",
        "description": None,
        "now": datetime.now(UTC),
    }


def psycopg_debits(url: str, count: int, offset: int) -> None:
    """The service's own path: shared.db.Database (psycopg pool) and WalletStore.post."""
    ledger = WalletStore(Database(url, max_size=4))
    for index in range(offset, offset + count):
        p = params(index)
        ledger.post(Posting(CLIENT, "debit", p["amount"], None, p["reference"], p["now"]))
    ledger.database.close()


def sqlalchemy_debits(url: str, count: int, offset: int) -> None:
    """The same statement through SQLAlchemy 2 Core (QueuePool, text()), in autocommit
    like the service's path: one round trip per debit in both."""
    engine = sa.create_engine(
        sqlalchemy_url(url), pool_size=4, pool_pre_ping=False, isolation_level="AUTOCOMMIT"
    )
    statement = sa.text(POST_SQL.replace("%(", ":").replace(")s", ""))
    for index in range(offset, offset + count):
        with engine.connect() as conn:
            row = conn.execute(statement, params(index)).one()
            assert row[1] is not None  # the debit was applied
    engine.dispose()


def measure(
    run: Callable[[str, int, int], None], url: str, count: int, offset: int
) -> dict[str, float]:
    """Warm up, then time `count` debits: CPU and wall microseconds per debit."""
    run(url, 200, offset)  # warm-up: connections, prepared statements, imports
    cpu, wall = time.process_time(), time.perf_counter()
    run(url, count, offset + 200)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_debit": round(cpu / count * 1e6, 1),
            "wall_us_per_debit": round(wall / count * 1e6, 1),
            "debits_per_s": round(count / wall, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debits", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per layer")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-db-layer-"))
    directory.chmod(0o711)
    try:
        with EmbeddedPostgres(directory / "pg", durable=True) as server:
            upgrade(server.url)
            seed(server.url)
            results: dict[str, list[dict[str, float]]] = {"psycopg3": [], "sqlalchemy2_core": []}
            offset = 0
            for _ in range(args.rounds):
                for name, run in (
                    ("psycopg3", psycopg_debits),
                    ("sqlalchemy2_core", sqlalchemy_debits),
                ):
                    results[name].append(measure(run, server.url, args.debits, offset))
                    offset += args.debits + 200
            print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
