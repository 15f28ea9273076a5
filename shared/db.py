"""PostgreSQL: one bounded connection pool per process, and one error translation.

Durable records live here (see SPEC: accounts, users, wallets, transactions, audit).
Every unit of work is one transaction: `with db.transaction() as conn: ...` commits when
the block ends normally (synchronous commit: a 200 means committed) and rolls back on
any exception.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import psycopg_pool

from .config import Settings
from .exceptions import ConfigError, StoreUnavailable
from .settings import DEFAULT_POOL_SIZE

URL_SCHEMES = ("postgresql", "postgres")
# The pool logs every failed connection attempt as a warning: one line per request while
# the database is down. Those requests are logged (with their request ids) as the 500/503
# they become; the pool's own errors still show.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
# Bounded waits everywhere: an unreachable or hung database is a clean 500/503 in
# seconds, never a worker stuck for minutes.
CONNECT_TIMEOUT_SECONDS = 3
POOL_WAIT_SECONDS = 2.0
STATEMENT_TIMEOUT_MS = 10_000
TCP_USER_TIMEOUT_MS = 10_000


MISSING_DATABASE_URL = (
    "DATABASE_URL is not set. `make run` starts a PostgreSQL and sets it; otherwise point it "
    "at a PostgreSQL server (postgresql://user:pass@host:5432/db), migrated with "
    "`python -m scripts.migrate`"
)


def database_from_settings(settings: Settings) -> Database:
    """The Database at DATABASE_URL (pool opened lazily), or a ConfigError saying how."""
    url = settings.database_url
    if not url:
        raise ConfigError(MISSING_DATABASE_URL)
    return Database(url, max_size=settings.common.database_pool_size)


def check_url(url: str) -> str:
    """`url` when it is a postgresql:// URL; a ConfigError naming DATABASE_URL otherwise."""
    if urlsplit(url).scheme not in URL_SCHEMES:
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return url


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL with the psycopg 3 driver (for Alembic)."""
    rest = check_url(url).split("://", 1)[1]
    return f"postgresql+psycopg://{rest}"


def _connection_is_alive(conn: psycopg.Connection[object]) -> None:
    """Pool check on checkout: raise when the server has closed this idle connection.

    An idle connection has nothing to read, so a readable socket means the server sent
    its goodbye (a restart, an admin kill) or the peer is gone. One non-blocking select,
    no round trip: a restarted database costs no failed request.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.close()  # else the pool would take it back as healthy and offer it again
        raise psycopg.OperationalError("server closed the connection")


class Database:
    """A lazily opened psycopg connection pool (opened after a fork, in the worker)."""

    def __init__(self, url: str, max_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = check_url(url)
        self.max_size = max_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        """The pool of this process, opened on first use (never inherited across fork)."""
        if self._pool is not None and self._pid == os.getpid():
            return self._pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_size,
                    open=False,
                    timeout=POOL_WAIT_SECONDS,
                    # A failed connection attempt is dropped at once and the next request
                    # starts a fresh one: recovery follows the database's return within
                    # milliseconds (the pool's own exponential backoff would wait up to
                    # minutes after a long outage). Requests meanwhile fail in
                    # POOL_WAIT_SECONDS.
                    reconnect_timeout=0.0,
                    check=_connection_is_alive,
                    kwargs={
                        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                        "application_name": "partner-auth-platform",
                    },
                    name="db",
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
                _opened.add(self)
        return self._pool

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A pooled connection inside one transaction: commit on success, else roll back."""
        try:
            with self._get_pool().connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable("Database unavailable") from exc

    def ping(self) -> bool:
        """True when the database answers a trivial query in time; never raises."""
        try:
            with self.transaction() as conn:
                conn.execute("SELECT 1")
            return True
        except StoreUnavailable:
            return False

    def close(self) -> None:
        """Close the pool of this process (connections of a forked parent are left alone)."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


# Every Database whose pool this process opened, for close_all().
_opened: weakref.WeakSet[Database] = weakref.WeakSet()


def close_all() -> None:
    """Close every pool this process opened (gunicorn's worker_exit): left to the garbage
    collector at interpreter exit, a pool's threads are gone (gevent: finalized greenlets)
    and closing it fails."""
    for database in list(_opened):
        database.close()
