"""PostgreSQL: one bounded connection pool per process, and one error translation.

Durable records live here (see SPEC: accounts, users, wallets, transactions, audit).
Every unit of work is one transaction: `with db.transaction() as conn: ...` commits when
the block ends normally (synchronous commit: a 200 means committed) and rolls back on
any exception. A unit of work that is a single statement uses `with db.statement() as
conn: ...` instead: the statement is its own transaction (atomic, committed when it
returns), which saves the BEGIN and COMMIT round trips on the hot paths.
"""

from __future__ import annotations

import functools
import logging
import re
import select
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import psycopg_pool
from psycopg import generators, pq, waiting
from psycopg.abc import PQGen
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result
from psycopg.rows import TupleRow

from .config import Settings
from .exceptions import ConfigError, StoreUnavailable
from .greenlets import patched_by_gevent
from .process import current_pid
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
# How long psycopg's wait loop sleeps before it looks again (its own default, 0.1 s).
WAIT_INTERVAL_SECONDS = 0.1
# `fetch_one`'s placeholders: named (%(name)s) or positional (%s). A query with any other
# % (a literal %%) goes through psycopg's cursor instead.
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?s")
# Statements one connection keeps prepared at most: ours are a handful of constants, and
# the bound only guards against a caller that builds SQL strings.
MAX_PREPARED_PER_CONNECTION = 64

RV = TypeVar("RV")


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


# Decided once per process, like psycopg's own choice of wait function: gunicorn's gevent
# workers import this module after patching (the master imports no store driver).
_GEVENT = patched_by_gevent("select")


def _gevent_waits() -> dict[waiting.Wait, Callable[..., Any]] | None:
    """gevent's own waits on a file descriptor, when gevent has patched `select`."""
    if _GEVENT is None:
        return None
    from gevent import socket as gevent_socket

    return {
        waiting.WAIT_R: gevent_socket.wait_read,
        waiting.WAIT_W: gevent_socket.wait_write,
        waiting.WAIT_RW: gevent_socket.wait_readwrite,
    }


_GEVENT_WAITS = _gevent_waits()
_READY = {
    waiting.WAIT_R: waiting.READY_R,
    waiting.WAIT_W: waiting.READY_W,
    waiting.WAIT_RW: waiting.READY_RW,
}


@dataclass(frozen=True)
class ServerStatement:
    """A query as the server prepares it: $n placeholders, where each parameter goes
    (`names` for a mapping of parameters, None for a sequence), and how psycopg picks
    each one's format (`%s`: automatic)."""

    sql: bytes
    names: tuple[str, ...] | None
    formats: tuple[PyFormat, ...]

    def values(self, params: Any) -> list[Any] | None:
        """The parameters in $n order; None when they do not match the placeholders."""
        if self.names is not None:
            if not isinstance(params, Mapping) or not all(n in params for n in self.names):
                return None
            return [params[name] for name in self.names]
        if isinstance(params, Sequence) and not isinstance(params, str | bytes):
            return list(params) if len(params) == len(self.formats) else None
        return None


@functools.lru_cache(maxsize=256)
def server_statement(query: str) -> ServerStatement | None:
    """`query` with $n placeholders; None when it holds a % that is no placeholder, or
    mixes named and positional ones (psycopg's cursor then takes it)."""
    names: list[str] = []
    positional = 0

    def number(match: re.Match[str]) -> str:
        nonlocal positional
        name = match.group(1)
        if name is None:
            positional += 1
            return f"${positional}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    sql = _PLACEHOLDER.sub(number, query)
    if "%" in _PLACEHOLDER.sub("", query) or (names and positional):
        return None
    formats = (PyFormat.AUTO,) * (len(names) or positional)
    return ServerStatement(sql.encode("utf-8"), tuple(names) if names else None, formats)


# The checkout check below never waits (timeout 0), so the original select is safe under
# gevent, and it skips the watchers gevent's select sets up (callgrind: the check costs
# 13k instructions instead of 37k).
_select_now = select.select if _GEVENT is None else _GEVENT.get_original("select", "select")


def _connection_is_alive(conn: psycopg.Connection[object]) -> None:
    """Pool check on checkout: raise when the server has closed this idle connection.

    An idle connection has nothing to read, so a readable socket means the server sent
    its goodbye (a restart, an admin kill) or the peer is gone. One non-blocking select,
    no round trip: a restarted database costs no failed request.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = _select_now([conn.fileno()], [], [], 0)
    if readable:
        conn.close()  # else the pool would take it back as healthy and offer it again
        raise psycopg.OperationalError("server closed the connection")


class PooledConnection(psycopg.Connection[TupleRow]):
    """The pool's connections: autocommit, a kept cursor, and gevent's own waits.

    Measured with callgrind (client-side instructions per one-row query in a gevent
    process, pool checkout included): 334k with a fresh cursor per statement, psycopg's
    wait on gevent's patched `select.poll` and the autocommit toggles; about 185k with
    the kept cursor and gevent's io watchers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept_cursor: psycopg.Cursor[TupleRow] | None = None
        self._transformer = Transformer(self)
        # (statement, parameter types) -> the name it is prepared under on this connection
        self._statement_names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}

    def fetch_one(self, query: str, params: Any) -> TupleRow | None:
        """The first row of one statement (None if it has none), prepared on this
        connection the first time and then sent with libpq's own calls.

        psycopg's cursor does the same work (the same dumpers and loaders, prepared
        statements keyed by query and parameter types) with more bookkeeping around it:
        a one-row query cost 48 us of CPU through the kept cursor and 35 us this way
        (gevent, Unix socket, tight loop).
        """
        statement = server_statement(query)
        values = statement.values(params) if statement is not None else None
        if statement is None or values is None:
            return self._cursor_fetch_one(query, params)
        transformer = self._transformer
        dumped = transformer.dump_sequence(values, statement.formats)
        name = self._prepared_name(statement.sql, tuple(transformer.types or ()))
        if name is None:
            return self._cursor_fetch_one(query, params)
        self.pgconn.send_query_prepared(name, dumped, transformer.formats)
        result = self._result(self.wait(generators.execute(self.pgconn)))
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise psycopg.ProgrammingError("fetch_one: the statement returned no rows")
        if result.ntuples == 0:
            return None
        transformer.set_pgresult(result)
        row: TupleRow = transformer.load_row(0, tuple)
        return row

    def _prepared_name(self, sql: bytes, types: tuple[int, ...]) -> bytes | None:
        """The name `sql` is prepared under for these parameter types (PREPAREd now, one
        round trip, the first time); None once the connection holds too many."""
        name = self._statement_names.get((sql, types))
        if name is not None:
            return name
        if len(self._statement_names) >= MAX_PREPARED_PER_CONNECTION:
            return None
        # psycopg names its own prepared statements _pg3_<n>: no clash.
        name = b"partner_auth_%d" % len(self._statement_names)
        self.pgconn.send_prepare(name, sql, types)
        self._result(self.wait(generators.execute(self.pgconn)))
        self._statement_names[(sql, types)] = name
        return name

    def _result(self, results: list[pq.abc.PGresult]) -> pq.abc.PGresult:
        """The one result of a statement; its error raised as psycopg raises it."""
        result = results[-1]
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise error_from_result(result, encoding=self.info.encoding)
        return result

    def _cursor_fetch_one(self, query: str, params: Any) -> TupleRow | None:
        """`fetch_one` through psycopg's cursor, kept for this connection (a new cursor per
        statement costs about 40k instructions of a query's 190k)."""
        cursor = self._kept_cursor
        if cursor is None:  # only an open connection is ever handed out, so is its cursor
            cursor = self._kept_cursor = self.cursor()
        return cursor.execute(query, params).fetchone()

    def wait(
        self, gen: PQGen[RV], interval: float = WAIT_INTERVAL_SECONDS, timeout: float | None = None
    ) -> RV:
        """psycopg's wait loop; on gevent, on the hub's io watchers directly.

        psycopg's own choice under gevent is the patched `select.poll`, which builds a
        poll object, its watchers and a result queue on every wait. Waits with a deadline
        (query cancellation only) keep psycopg's code. Under gevent a wait has no
        `interval`: psycopg wakes up every interval only to look again (and to notice a
        Ctrl-C in a blocking wait); a gevent timer per wait cost 7 us of CPU.
        """
        if _GEVENT_WAITS is None or timeout is not None:
            return super().wait(gen, interval, timeout)
        fileno = self.pgconn.socket
        try:
            state = next(gen)
            while True:
                _GEVENT_WAITS[state](fileno)
                state = gen.send(_READY[state])
        except StopIteration as done:
            result: RV = done.value
            return result


class Database:
    """A lazily opened psycopg connection pool (opened after a fork, in the worker)."""

    def __init__(self, url: str, max_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = check_url(url)
        self.max_size = max_size
        self._pool: psycopg_pool.ConnectionPool[PooledConnection] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg_pool.ConnectionPool[PooledConnection]:
        """The pool of this process, opened on first use (never inherited across fork)."""
        if self._pool is not None and self._pid == current_pid():
            return self._pool
        with self._lock:
            if self._pool is None or self._pid != current_pid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    connection_class=PooledConnection,
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
                        # Transactions are explicit (`transaction()`): a single statement
                        # needs no BEGIN/COMMIT round trips and no mode switch around it.
                        "autocommit": True,
                        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                        "application_name": "partner-auth-platform",
                    },
                    name="db",
                )
                self._pool.open(wait=False)
                self._pid = current_pid()
                _opened.add(self)
        return self._pool

    @contextmanager
    def transaction(self) -> Iterator[PooledConnection]:
        """A pooled connection inside one transaction: commit on success, else roll back."""
        with self.statement() as conn, conn.transaction():
            yield conn

    @contextmanager
    def statement(self) -> Iterator[PooledConnection]:
        """A pooled connection in autocommit: each statement is its own transaction."""
        try:
            pool = self._get_pool()
            # getconn/putconn rather than pool.connection(): that one also enters the
            # connection's own context, whose commit-or-rollback has nothing to do here.
            conn = pool.getconn()
            try:
                yield conn
            finally:
                pool.putconn(conn)  # a broken or mid-transaction connection is discarded
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
        if self._pool is not None and self._pid == current_pid():
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
