"""`python -m scripts.import_redis`: the one-off operator command that moves the previous
version's durable records (K2 clients, Sabong users, wallets, audit) from Redis into
PostgreSQL, run as an operator would, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import redis as redis_py

from services.ussd.passwords import ScryptParams, hash_password
from shared.config import PROJECT_ROOT
from tests.conftest import database_of_our_own
from tests.sabong.test_legacy_import import write_legacy_user


def write_legacy_k2_client(client: redis_py.Redis, username: str) -> str:
    """A K2 client as the previous version stored it: its record hash and the index."""
    client_uuid = str(uuid.uuid4())
    client.hset(
        f"ussd:{{{client_uuid[:8]}}}:c",
        mapping={
            "id": client_uuid, "client_id": "K2-LEGACY", "username": username, "email": "",
            "role": "client", "is_active": "0", "msisdn": "", "gen": "2",
            "created_at": "2025-01-01T00:00:00.000Z", "updated_at": "2025-01-01T00:00:00.000Z",
            "password_hash": hash_password("legacy-password-1", ScryptParams(n=1024)),
        },
    )  # fmt: skip
    client.hset("ussd:users", username.casefold(), client_uuid)
    return client_uuid


def run_import(redis_url: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "scripts.import_redis"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_moves_both_services_records_once(
    redis_client: redis_py.Redis, redis_url: str, session_database_url: str
) -> None:
    disabled = write_legacy_k2_client(redis_client, "legacy_partner")
    write_legacy_user(redis_client, 41, "LEGACY-1", "12.50", issuances=2)
    # A fresh, empty database: the command migrates it itself.
    with database_of_our_own(session_database_url) as url:
        first = run_import(redis_url, url)
        assert first.returncode == 0, first.stderr
        summary = json.loads(first.stdout)
        assert summary["ussd"]["clients_imported"] == 1 and summary["sabong"]["users"] == 1
        again = run_import(redis_url, url)
        assert again.returncode == 0, again.stderr
        repeated = json.loads(again.stdout)  # nothing is imported twice
        assert repeated["sabong"]["users"] == 0 and repeated["ussd"]["clients_imported"] == 0
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT is_active, gen FROM k2_clients WHERE id = %s", (disabled,))
            assert row.fetchone() == (False, 2)  # still disabled, same credential generation
            balance = conn.execute(
                "SELECT balance FROM sabong_wallets WHERE client_id = 'LEGACY-1'"
            ).fetchone()
            assert str(balance[0]) == "12.50"
            audit = conn.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone()
            assert audit == (2,)
