"""Fixtures every test package uses: real Redis and PostgreSQL servers.

The tests start their own servers on free ports (the bundled redis-server and PostgreSQL
binaries), or use the ones that `TEST_REDIS_URL` / `TEST_DATABASE_URL` name. On a server
named by `TEST_DATABASE_URL` the run creates a database of its own and drops it at the end;
a Redis named by `TEST_REDIS_URL` is flushed before each test that uses it.

The run's database URL is exported as `DATABASE_URL` for the whole session, so every app
and service subprocess a test builds finds it the way production does; a test that reads
or writes the database asks for `database_url` (or `db`), which empties it first.

`TEST_REDIS=cluster` in the environment runs the suites that use `redis_url` /
`redis_client` against a real 3-master Redis Cluster (`redis+cluster://` URL, cluster
client) instead of one server. Tests that only make sense on one server carry
`@pytest.mark.single_redis("why")` and are skipped, with that reason, in cluster mode.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis as redis_py
from redis.cluster import RedisCluster

from devtools.cluster import LocalRedisCluster, redis_cli_binary
from devtools.embedded import EmbeddedRedis, redis_server_binary
from devtools.postgres import EmbeddedPostgres
from scripts.migrate import upgrade
from shared import redis as shared_redis
from shared.exceptions import ConfigError

REDIS_MODES = ("single", "cluster")
REDIS_MODE = os.environ.get("TEST_REDIS", "single").strip().lower() or "single"
CLUSTER_MODE = REDIS_MODE == "cluster"


def pytest_configure(config: pytest.Config) -> None:
    if REDIS_MODE not in REDIS_MODES:
        raise pytest.UsageError(f"TEST_REDIS must be one of {REDIS_MODES}, not {REDIS_MODE!r}")
    config.addinivalue_line(
        "markers", "single_redis(reason): only meaningful on one Redis server (TEST_REDIS=single)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start a server subprocess; in cluster mode, skip the tests marked
    single_redis, saying why."""
    for item in items:
        if needs_server(item):
            item.add_marker(pytest.mark.server)
    if not CLUSTER_MODE:
        return
    for item in items:
        marker = item.get_closest_marker("single_redis")
        if marker is not None:
            reason = marker.args[0] if marker.args else "single-server test"
            item.add_marker(pytest.mark.skip(reason=f"TEST_REDIS=cluster: {reason}"))


# `make test-fast` runs what needs no server subprocess of its own: unit tests and
# in-process Flask test clients on the run's shared embedded Redis and PostgreSQL (started
# once). These suites and fixtures start services, gateways, echo upstreams, `make run`,
# a Redis Cluster, the bench's platform, or a Redis/PostgreSQL of the test's own to stop
# or kill (outage tests: they wait out timeouts, and each own PostgreSQL runs initdb).
SERVER_SUITES = ("e2e", "reliability", "cluster", "bench")
SERVER_FIXTURES = {
    "start_gateway", "shared_platform", "start_upstream", "resetting_upstream",
    "ussd_server", "live_sabong", "sabong_two_workers", "platform", "start_platform",
    "redis_cluster", "own_redis_cluster", "suite_redis_cluster", "cluster_url",
    "own_redis", "own_postgres",
}  # fmt: skip
TESTS_ROOT = Path(__file__).resolve().parent


def needs_server(item: pytest.Item) -> bool:
    """True for a test that starts a server subprocess (marked `server`, explicitly or by
    its suite or fixtures)."""
    if item.get_closest_marker("server") is not None:
        return True
    parts = item.path.resolve().relative_to(TESTS_ROOT).parts
    if len(parts) > 1 and parts[0] in SERVER_SUITES:
        return True
    return bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the whole run, on a free port, without persistence."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def suite_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A real 3-master Redis Cluster for the whole run (no replicas: no test here kills one)."""
    try:
        redis_server_binary()
        redis_cli_binary()
    except ConfigError as exc:
        pytest.fail(f"TEST_REDIS=cluster needs redis-server and redis-cli: {exc}")
    with LocalRedisCluster(
        tmp_path_factory.mktemp("suite-cluster"), masters=3, replicas_per_master=0
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def session_redis_url(request: pytest.FixtureRequest) -> str:
    """URL of the Redis the whole run shares: one server, or the cluster (TEST_REDIS)."""
    if CLUSTER_MODE:
        cluster = cast(LocalRedisCluster, request.getfixturevalue("suite_redis_cluster"))
        return cluster.url
    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"]
    return cast(EmbeddedRedis, request.getfixturevalue("redis_server")).url


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, session_redis_url: str) -> str:
    """URL of the session Redis (or cluster), emptied before each test."""
    if CLUSTER_MODE:
        cast(LocalRedisCluster, request.getfixturevalue("suite_redis_cluster")).flushall()
    else:
        client = redis_py.Redis.from_url(session_redis_url)
        client.flushall()
        client.close()
    return session_redis_url


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, redis_url: str) -> Iterator[redis_py.Redis]:
    """A plain client on the emptied session Redis, for asserting what was stored.

    In cluster mode a `RedisCluster` (typed as `Redis`): commands follow the keys' slots,
    SCAN visits every master.
    """
    if CLUSTER_MODE:
        node = cast(LocalRedisCluster, request.getfixturevalue("suite_redis_cluster")).nodes[0]
        cluster_client = RedisCluster(host=node.host, port=node.port, decode_responses=True)
        yield cast(redis_py.Redis, cluster_client)
        cluster_client.close()
        return
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own (AOF on) that the test may stop, kill and restart."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


def postgres_data_dir() -> Path:
    """A fresh directory PostgreSQL may use even when it runs as an unprivileged account."""
    directory = Path(tempfile.mkdtemp(prefix="pat-postgres-"))
    directory.chmod(0o711)  # traversable by the server's account, listable by nobody else
    return directory


@pytest.fixture(scope="session")
def session_database_url() -> Iterator[str]:
    """A migrated database for the whole run: on TEST_DATABASE_URL's server, or embedded."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        with database_of_our_own(given) as url:
            upgrade(url)
            yield url
        return
    directory = postgres_data_dir()
    with EmbeddedPostgres(directory / "pg", durable=False) as server:
        upgrade(server.url)
        yield server.url
    shutil.rmtree(directory, ignore_errors=True)


class database_of_our_own:
    """CREATE a uniquely named database on a given server, DROP it on exit."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"pat_test_{os.getpid()}_{secrets.token_hex(4)}"

    def __enter__(self) -> str:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path=f"/{self.name}"))

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


EMPTY_ALL_TABLES = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT tablename FROM pg_tables
                WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE format('TRUNCATE %I RESTART IDENTITY CASCADE', item.tablename);
    END LOOP;
    FOR item IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP
        EXECUTE format('ALTER SEQUENCE %I RESTART', item.sequencename);
    END LOOP;
END $$;
"""


@pytest.fixture(scope="session", autouse=True)
def exported_database_url(session_database_url: str) -> Iterator[str]:
    """DATABASE_URL in this process's environment (and so every child's) for the run."""
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = session_database_url
    yield session_database_url
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous


@pytest.fixture
def database_url(session_database_url: str) -> str:
    """URL of the run's database, every table emptied and every sequence reset first."""
    with psycopg.connect(session_database_url, autocommit=True) as conn:
        conn.execute(EMPTY_ALL_TABLES)
    return session_database_url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the emptied test database, for asserting what was stored."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A migrated, durable PostgreSQL of this test's own that it may stop, kill and restart."""
    directory = postgres_data_dir()
    server = EmbeddedPostgres(directory / "pg", durable=True)
    server.start()
    upgrade(server.url)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


SentCommands = Callable[[redis_py.Redis], list[str]]


@pytest.fixture
def redis_commands_sent(monkeypatch: pytest.MonkeyPatch) -> SentCommands:
    """Start recording the name of each command sent to Redis, by either way there: the
    client's `execute_command`, or the hot paths' lean `shared.redis.command`."""

    def start(client: redis_py.Redis) -> list[str]:
        sent: list[str] = []
        original, direct = client.execute_command, shared_redis._send

        def counting(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return original(*args, **options)

        def counting_direct(connection: Any, args: Sequence[Any]) -> None:
            sent.append(str(args[0]))
            direct(connection, args)

        monkeypatch.setattr(client, "execute_command", counting)
        monkeypatch.setattr(shared_redis, "_send", counting_direct)
        return sent

    return start
