"""`python -m scripts.migrate`: the one documented command that migrates a database."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from shared.config import PROJECT_ROOT
from tests.conftest import database_of_our_own

TABLES = {
    "k2_clients",
    "k2_api_keys",
    "sabong_users",
    "sabong_wallets",
    "sabong_transactions",
    "sabong_issuance_audit",
}


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DOTENV_PATH": "/nonexistent/.env"}
    return subprocess.run(
        [sys.executable, "-m", "scripts.migrate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_builds_an_empty_database_and_is_idempotent(session_database_url: str) -> None:
    with database_of_our_own(session_database_url) as url:
        first = migrate(url)
        assert first.returncode == 0, first.stderr
        assert migrate(url).returncode == 0  # nothing pending: a no-op
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            assert {row[0] for row in rows} >= TABLES
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)


def test_migrate_needs_no_service_secrets_and_names_a_missing_database_url() -> None:
    result = migrate("")
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stderr


def test_migrate_against_an_unreachable_database_is_a_message_not_a_traceback() -> None:
    result = migrate("postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1
    assert "database migrations failed" in result.stderr
    assert "Traceback" not in result.stderr
