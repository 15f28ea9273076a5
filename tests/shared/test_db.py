"""shared.db against a real PostgreSQL: transactions, error translation, restarts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devtools.postgres import EmbeddedPostgres
from shared import db as db_module
from shared.db import Database, check_url, sqlalchemy_url
from shared.exceptions import ConfigError, StoreUnavailable
from tests.gevent_worker import run_patched

AUDIT_ROW = (
    "INSERT INTO sabong_issuance_audit (client_id, user_id, ip_address,"
    " expires_in, issued_at) VALUES ('c', 1, '::1', 60, now())"
)


def test_a_transaction_commits_when_the_block_ends(
    database_url: str, db: psycopg.Connection
) -> None:
    database = Database(database_url)
    with database.transaction() as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")  # session-local: proves the same conn
        conn.execute(AUDIT_ROW)
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (1,)
    database.close()


def test_a_transaction_rolls_back_on_an_exception(
    database_url: str, db: psycopg.Connection
) -> None:
    database = Database(database_url)
    with pytest.raises(RuntimeError), database.transaction() as conn:
        conn.execute(AUDIT_ROW)
        raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (0,)
    database.close()


def test_a_statement_block_commits_each_statement_on_its_own(
    database_url: str, db: psycopg.Connection
) -> None:
    database = Database(database_url)
    with pytest.raises(RuntimeError), database.statement() as conn:
        conn.execute(AUDIT_ROW)
        raise RuntimeError("boom")  # no transaction to roll back: the row is committed
    with pytest.raises(StoreUnavailable), database.statement() as conn:
        conn.execute(AUDIT_ROW)
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (2,)
    with database.statement() as conn:  # the killed connection was replaced
        assert conn.execute("SELECT 1").fetchone() == (1,)
    database.close()


def prepared_here(conn: psycopg.Connection) -> list[str]:
    """The statements this session holds prepared under fetch_one's names."""
    rows = conn.execute(
        "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'partner_auth_%%'"
        " ORDER BY prepare_time"
    ).fetchall()
    return [statement for (statement,) in rows]


def test_fetch_one_prepares_a_statement_once_per_connection(database_url: str) -> None:
    database = Database(database_url, max_size=1)
    with database.statement() as conn:
        for number in (1, 2, 3):
            assert conn.fetch_one("SELECT %(n)s::int + %(n)s::int", {"n": number}) == (2 * number,)
        assert conn.fetch_one("SELECT 'x' WHERE %s", (False,)) is None
        assert prepared_here(conn) == ["SELECT $1::int + $1::int", "SELECT 'x' WHERE $1"]
    database.close()


# Parameters of every type the services send, each compared with psycopg's own cursor.
SAME_AS_PSYCOPG = [
    ("SELECT %(a)s::text, %(b)s::int, %(a)s::text", {"a": "ünï ✓", "b": 7}),
    ("SELECT %s::numeric(20,2) + %s", (Decimal("10.10"), Decimal("-0.01"))),
    ("SELECT %s::timestamptz, %s::bigint", (datetime(2026, 12, 5, 1, 2, 3, 4567, UTC), 2**40)),
    ("SELECT %s::text IS NULL, %s::int", (None, 2**15)),
    ("SELECT %s, %s::bytea", (True, b"\x00\xff")),
    ("SELECT %(id)s::bigint, %(n)s::smallint", {"id": 1, "n": 3}),
]


@pytest.mark.parametrize(("query", "params"), SAME_AS_PSYCOPG)
def test_fetch_one_gives_what_psycopgs_cursor_gives(
    database_url: str, query: str, params: Any
) -> None:
    database = Database(database_url, max_size=1)
    with database.statement() as conn:
        expected = conn.cursor().execute(query, params).fetchone()
        assert conn.fetch_one(query, params) == expected
        assert conn.fetch_one(query, params) == expected  # prepared by now
        assert len(prepared_here(conn)) == 1
    database.close()


def test_fetch_one_raises_psycopgs_errors_and_the_connection_goes_on(
    database_url: str,
) -> None:
    database = Database(database_url, max_size=1)
    with database.statement() as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.fetch_one("SELECT 1 / %s::int", (0,))
        with pytest.raises(psycopg.errors.UndefinedTable):  # refused by PREPARE itself
            conn.fetch_one("SELECT x FROM later WHERE x = %s", (1,))
        conn.execute("CREATE TEMP TABLE later (x int PRIMARY KEY)")
        insert = "INSERT INTO later VALUES (%s) RETURNING x"
        assert conn.fetch_one(insert, (1,)) == (1,)
        with pytest.raises(psycopg.errors.UniqueViolation) as refused:
            conn.fetch_one(insert, (1,))
        assert refused.value.diag.constraint_name == "later_pkey"
        assert conn.fetch_one("SELECT x FROM later WHERE x = %s", (1,)) == (1,)
        with pytest.raises(psycopg.ProgrammingError):
            conn.fetch_one("CREATE TEMP TABLE norows (x int)", ())
        assert conn.fetch_one("SELECT %s::text", ("after the errors",)) == ("after the errors",)
    database.close()


def test_what_fetch_one_cannot_prepare_goes_through_psycopgs_cursor(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(database_url, max_size=1)
    with database.statement() as conn:
        assert conn.fetch_one("SELECT 'a%%b', %s::int", (1,)) == ("a%b", 1)  # a literal %
        with pytest.raises(psycopg.ProgrammingError):  # psycopg's own word on it
            conn.fetch_one("SELECT %(missing)s", {})
        kept = conn._kept_cursor
        assert kept is not None
        monkeypatch.setattr(db_module, "MAX_PREPARED_PER_CONNECTION", 2)
        for number in range(4):
            assert conn.fetch_one(f"SELECT {number} + %s::int", (1,)) == (number + 1,)
        assert len(prepared_here(conn)) == 2  # the rest went through the kept cursor
        assert conn._kept_cursor is kept
    database.close()


# In a gevent-patched process of its own: two greenlets each run a 0.3 s query at once
# while a third ticks every 10 ms. Prints the elapsed time and the ticks seen; queries
# blocking the loop would take 0.6 s, with no ticks.
GEVENT_WORKER = """
import os, time, gevent
from shared import db
from shared.db import Database

assert db._GEVENT_WAITS is not None  # the waits below are gevent's own

database = Database(os.environ["DATABASE_URL"], max_size=2)
with database.statement() as conn:
    conn.fetch_one("SELECT 1", ())
ticks = []

def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

def query():
    with database.statement() as conn:
        return conn.fetch_one("SELECT pg_sleep(0.3), %s::int", (7,))

ticker = gevent.spawn(tick)
started = time.monotonic()
rows = [g.get() for g in [gevent.spawn(query), gevent.spawn(query)]]
ended = time.monotonic()
ticker.kill()
assert rows == [("", 7), ("", 7)], rows
print(round(ended - started, 3), sum(started < t < ended for t in ticks))
database.close()
"""


def test_queries_wait_on_the_gevent_loop_in_a_gevent_worker(database_url: str) -> None:
    printed = run_patched(GEVENT_WORKER, DATABASE_URL=database_url)
    seconds, ticks = printed.split()
    # Both queries waited at once (each 0.3 s, passing psycopg's 0.1 s wait interval
    # twice), and the loop kept ticking throughout.
    assert float(seconds) < 0.55, printed
    assert int(ticks) >= 10, printed


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
