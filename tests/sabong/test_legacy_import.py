"""The one-off import of the previous version's Redis records (users, wallets, audit)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis as redis_py
from psycopg import Connection

from services.sabong import legacy_import
from services.sabong.cli import main
from services.sabong.user_store import referral_suffix
from shared.db import Database

from .conftest import Partner

CREATED = "2026-01-02T03:04:05.678Z"


def write_legacy_user(
    client: redis_py.Redis, user_id: int, client_id: str, balance: str, issuances: int
) -> None:
    """A user as the previous version stored it: hashes, an audit stream, the id index."""
    client.hset(
        legacy_import.user_key(client_id),
        mapping={
            "id": user_id,
            "username": f"user{user_id}",
            "name": f"User {user_id}",
            "displayId": client_id,
            "clientId": client_id,
            "referralCode": f"REF-2026-{referral_suffix(user_id)}",
            "password": "!" + "ab" * 32,
            "role": "user",
            "status": "active",
            "createdAt": CREATED,
            "updatedAt": "2026-01-05T00:00:00.000Z",
        },
    )
    wallet = {"currency": "USD", "balance": balance}
    client.hset(legacy_import.wallet_key(client_id), mapping=wallet)
    for n in range(issuances):
        client.xadd(
            legacy_import.audit_key(client_id),
            {
                "clientId": client_id,
                "userId": user_id,
                "ipAddress": f"10.0.0.{n}",
                "expiresIn": 300,
                "at": f"2026-01-0{n + 2}T00:00:00.000Z",
            },
        )
    client.hset("sabong:{g}:ids", str(user_id), client_id)


@pytest.fixture
def database(database_url: str) -> Database:
    return Database(database_url, max_size=2)


def test_import_copies_users_wallets_and_audit_once(
    redis_client: redis_py.Redis, database: Database, db: Connection, partner: Partner
) -> None:
    write_legacy_user(redis_client, 1, "OLD-A", "0.00", issuances=2)
    write_legacy_user(redis_client, 2, "OLD-{B}", "12.50", issuances=1)  # braces in a clientId
    write_legacy_user(redis_client, 4, "OLD-C", "7.05", issuances=0)
    redis_client.set("sabong:{g}:next_id", 5)  # id 3 was wasted by a lost cluster race

    counts = legacy_import.import_from_redis(redis_client, database)
    assert counts == {"users": 3, "wallets": 3, "auditEntries": 3, "usersAlreadyPresent": 0}
    users = db.execute(
        "SELECT id, client_id, username, referral_code, password, created_at FROM sabong_users"
        " ORDER BY id"
    ).fetchall()
    assert [(u[0], u[1], u[2]) for u in users] == [
        (1, "OLD-A", "user1"),
        (2, "OLD-{B}", "user2"),
        (4, "OLD-C", "user4"),
    ]
    assert users[0][3] == f"REF-2026-{referral_suffix(1)}" and users[0][4] == "!" + "ab" * 32
    assert users[0][5] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    wallets = db.execute("SELECT client_id, user_id, balance FROM sabong_wallets ORDER BY user_id")
    assert wallets.fetchall() == [
        ("OLD-A", 1, Decimal("0.00")),
        ("OLD-{B}", 2, Decimal("12.50")),
        ("OLD-C", 4, Decimal("7.05")),
    ]
    audit = db.execute(
        "SELECT client_id, user_id, ip_address, expires_in FROM sabong_issuance_audit"
        " ORDER BY client_id, issued_at"
    ).fetchall()
    assert audit == [("OLD-A", 1, "10.0.0.0", 300), ("OLD-A", 1, "10.0.0.1", 300),
                     ("OLD-{B}", 2, "10.0.0.0", 300)]  # fmt: skip

    # Idempotent: a second run adds nothing and changes nothing.
    again = legacy_import.import_from_redis(redis_client, database)
    assert again == {"users": 0, "wallets": 0, "auditEntries": 0, "usersAlreadyPresent": 3}
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (3,)

    # The service carries on: an imported user is found, a new one gets an id past the
    # old counter, and the imported balance shows.
    assert partner.issue(clientId="OLD-{B}")["user"]["id"] == 2
    assert partner.issue(clientId="OLD-{B}")["isNewUser"] is False
    assert partner.issue(clientId="NEW-1")["user"]["id"] == 6
    database.close()


def test_import_keeps_what_postgresql_already_has(
    redis_client: redis_py.Redis, database: Database, db: Connection, partner: Partner
) -> None:
    assert partner.issue(clientId="BOTH", displayName="Newer")["user"]["id"] == 1
    write_legacy_user(redis_client, 1, "BOTH", "99.00", issuances=1)
    counts = legacy_import.import_from_redis(redis_client, database)
    assert counts["users"] == 0 and counts["usersAlreadyPresent"] == 1
    assert db.execute("SELECT name FROM sabong_users").fetchone() == ("Newer",)
    assert db.execute("SELECT balance::text FROM sabong_wallets").fetchone() == ("0.00",)
    database.close()


def test_import_from_redis_command(
    redis_client: redis_py.Redis,
    redis_url: str,
    database_url: str,
    db: Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_legacy_user(redis_client, 7, "CMD", "1.00", issuances=1)
    environ = {
        "DOTENV_PATH": os.environ["DOTENV_PATH"],
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }
    assert main(["import-from-redis"], environ=environ) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"users": 1, "wallets": 1, "auditEntries": 1, "usersAlreadyPresent": 0}
    assert db.execute("SELECT id, client_id FROM sabong_users").fetchall() == [(7, "CMD")]
