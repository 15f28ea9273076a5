"""shared.db against a real PostgreSQL: transactions, error translation, restarts."""

from __future__ import annotations

import time

import psycopg
import pytest

from devtools.postgres import EmbeddedPostgres
from shared.db import Database, check_url, sqlalchemy_url
from shared.exceptions import ConfigError, StoreUnavailable


def test_a_transaction_commits_when_the_block_ends(
    database_url: str, db: psycopg.Connection
) -> None:
    database = Database(database_url)
    with database.transaction() as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")  # session-local: proves the same conn
        conn.execute(
            "INSERT INTO sabong_issuance_audit (client_id, user_id, ip_address,"
            " expires_in, issued_at) VALUES ('c', 1, '::1', 60, now())"
        )
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (1,)
    database.close()


def test_a_transaction_rolls_back_on_an_exception(
    database_url: str, db: psycopg.Connection
) -> None:
    database = Database(database_url)
    with pytest.raises(RuntimeError), database.transaction() as conn:
        conn.execute(
            "INSERT INTO sabong_issuance_audit (client_id, user_id, ip_address,"
            " expires_in, issued_at) VALUES ('c', 1, '::1', 60, now())"
        )
        raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (0,)
    database.close()


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_an_unreachable_database_is_store_unavailable_within_bounded_time() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/postgres")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable), database.transaction() as conn:
        conn.execute("SELECT 1")
    assert time.monotonic() - started < 10
    assert database.ping() is False
    database.close()


def test_pooled_connections_survive_a_database_restart(own_postgres: EmbeddedPostgres) -> None:
    database = Database(own_postgres.url)
    with database.transaction() as conn:
        conn.execute("SELECT 1")
    own_postgres.restart(kill=True)
    # The idle pooled connection died with the server; the checkout check replaces it,
    # so the first request after the restart already succeeds.
    with database.transaction() as conn:
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    database.close()


def test_only_postgresql_urls_are_accepted() -> None:
    assert check_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert sqlalchemy_url("postgres://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        check_url("mysql://u@h/db")
