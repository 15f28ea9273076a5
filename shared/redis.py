"""Redis connections with bounded timeouts, and the translation of their failures.

`REDIS_URL` forms understood by `connect()`:

- `redis://[user:password@]host[:port][/db][?option=value...]`, `rediss://...` (TLS) and
  `unix:///path/to/socket[?db=N]`: one Redis server (redis-py's own URL syntax).
- `redis+cluster://[user:password@]host:port[,host:port...][/0][?option=value...]` and
  `rediss+cluster://...` (TLS): a Redis Cluster. The listed nodes are only where discovery
  starts; the client learns every node and the slot map from them, and follows MOVED/ASK
  and failovers by itself. List a few nodes so that one being down does not matter. The
  database can only be 0.
- `redis+sentinel://[user:password@]host:port[,host:port...]/<master_name>[/db][?...]` and
  `rediss+sentinel://...`: the master Sentinel names `master_name`, found again after a
  failover. The hosts are the Sentinels (default port 26379); user and password (or
  `?password=`) are for the Redis servers, `?sentinel_password=` / `?sentinel_username=`
  for the Sentinels themselves.

Query options are redis-py's URL options (`socket_timeout`, `socket_connect_timeout`,
`max_connections`, ...) and override this module's defaults, exactly as for `redis://`.

`StoreScript` runs a store's Lua script (EVALSHA, EVAL when the server lacks it).

`connect_async()` is the same for asyncio clients (the gateway). `translate_errors` and
`is_temporary()` tell outages (unreachable, failover in progress) from programming errors.

In cluster mode every command and Lua script must keep all of its keys in one hash slot:
name keys with a hash tag (`{client:42}:profile`, `{client:42}:services`) and check with
`same_slot()` / `hash_slot()`. `is_cluster()` lets a store branch where it must.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis as redis_py
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import HiredisRespSerializer, parse_url
from redis.crc import key_slot
from redis.exceptions import (
    ClusterError,
    DataError,
    NoScriptError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from .exceptions import ConfigError, StoreUnavailable
from .greenlets import sent_at_once
from .process import current_pid

P = ParamSpec("P")
R = TypeVar("R")

# A request must never hang on Redis: connect and command timeouts are short, and a
# failed command is retried once at most (a fresh connection after a Redis restart).
CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 1.0
HEALTH_CHECK_INTERVAL_SECONDS = 15
# A cluster command that meets a dead node, CLUSTERDOWN or an unknown slot refreshes the
# slot map and tries again, at most this many times. Against a dead node each attempt fails
# at once, so the retries only bridge the moment a replica takes over. Against a node that
# hangs (stopped, or a network black hole: the kernel still accepts connections) each
# attempt waits COMMAND_TIMEOUT, so a call is bounded by
# (1 + CLUSTER_RETRIES) * COMMAND_TIMEOUT = 3 s, then StoreUnavailable.
CLUSTER_RETRIES = 2
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_CLUSTER_PORT = 6379

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")

TRANSIENT_ERRORS = (redis_py.ConnectionError, redis_py.TimeoutError)
TEMPORARY_RESPONSE_ERRORS = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
# Cluster and Sentinel conditions that pass once a failover or resharding is over.
# (MasterNotFoundError is a ConnectionError already; it is listed to say so.)
CLUSTER_TRANSIENT_ERRORS = (
    ClusterError,  # includes ClusterDownError, MasterDownError and "TTL exhausted"
    TryAgainError,
    SlotNotCoveredError,
    MasterNotFoundError,
    redis_py.ReadOnlyError,  # a demoted master still answering writes
)
# RedisClusterException is also raised for programming errors (keys in different slots);
# only these messages mean "the cluster cannot be reached or is being reconfigured".
CLUSTER_UNREACHABLE_MESSAGES = (
    "Redis Cluster cannot be connected",
    "All slots are not covered",
    "startup_nodes could not agree",
)


def _base_settings() -> dict[str, Any]:
    """Timeouts and decoding common to every form of connection."""
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "socket_keepalive": True,
        "decode_responses": True,
    }


def _single_server_settings() -> dict[str, Any]:
    return {
        **_base_settings(),
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [redis_py.ConnectionError],
    }


def _without_tcp_options(scheme: str, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` for a server at a URL of `scheme`: a `unix://` socket has no TCP keepalive,
    and redis-py's Unix connections refuse the option on every command (a TypeError)."""
    if scheme == "unix":
        return {name: value for name, value in settings.items() if name != "socket_keepalive"}
    return settings


def connect(url: str, **options: Any) -> redis_py.Redis:
    """A pooled client for `url` that fails fast and reconnects by itself.

    For `redis+cluster://` URLs the object is a `redis.cluster.RedisCluster` (typed here as
    `Redis` so existing call sites keep type-checking: it offers the same command methods,
    `register_script` and `pipeline`, for single-slot use). Unlike a single-server client it
    contacts the cluster at once to learn the slot map: `StoreUnavailable` if no listed node
    answers. `ConfigError` for a malformed URL.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in CLUSTER_SCHEMES:
        return cast(redis_py.Redis, connect_cluster(url, **options))
    if scheme in SENTINEL_SCHEMES:
        return connect_sentinel(url, **options)
    settings = _without_tcp_options(scheme, _single_server_settings())
    settings.update(options)
    return redis_py.Redis.from_url(url, **settings)


def _parse_multi_host_url(
    url: str, default_port: int
) -> tuple[list[tuple[str, int]], list[str], dict[str, Any]]:
    """(hosts, path segments, redis-py options) of `scheme://[auth@]h:p,h:p[/path][?query]`."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ConfigError("REDIS_URL must look like scheme://host:port")
    netloc_end = len(rest)
    for mark in ("/", "?"):
        index = rest.find(mark)
        if index >= 0:
            netloc_end = min(netloc_end, index)
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    userinfo, at, host_list = netloc.rpartition("@")
    hosts = []
    for item in host_list.split(","):
        if not item.strip():
            continue
        try:
            parsed = urlsplit(f"//{item.strip()}")
            port = parsed.port or default_port
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL: bad host:port {item!r}") from exc
        if not parsed.hostname:
            raise ConfigError(f"REDIS_URL: bad host:port {item!r}")
        hosts.append((parsed.hostname, port))
    if not hosts:
        raise ConfigError("REDIS_URL names no host")
    path, _, query = tail.partition("?")
    segments = [unquote(part) for part in path.split("/") if part]
    # Let redis-py read the credentials and query options, so they mean exactly what they
    # mean in a redis:// URL; the host part is ours.
    base = "rediss" if scheme.lower().startswith("rediss") else "redis"
    credentials = f"{userinfo}@" if at else ""
    try:
        options: dict[str, Any] = parse_url(  # type: ignore[no-untyped-call]
            f"{base}://{credentials}localhost?{query}"
        )
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL: {exc}") from exc
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    if base == "rediss":
        options["ssl"] = True
    return hosts, segments, options


def connect_cluster(url: str, **options: Any) -> RedisCluster:
    """A Redis Cluster client for a `redis+cluster://` URL (see the module docstring)."""
    hosts, segments, url_options = _parse_multi_host_url(url, DEFAULT_CLUSTER_PORT)
    if segments not in ([], ["0"]) or url_options.pop("db", 0) != 0:
        raise ConfigError("REDIS_URL: a Redis Cluster has only database 0")
    settings: dict[str, Any] = {
        **_base_settings(),
        # The cluster client owns retries: on a dead node, CLUSTERDOWN or an uncovered
        # slot it refreshes the slot map, then tries again (connections never retry).
        "retry": Retry(NoBackoff(), CLUSTER_RETRIES),
        # Start, and keep serving the slots that are covered, while part of the cluster
        # is down; commands for an uncovered slot fail alone (StoreUnavailable).
        "require_full_coverage": False,
    }
    settings.update(url_options)
    settings.update(options)
    startup_nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in hosts
    ]
    try:
        return RedisCluster(startup_nodes=startup_nodes, **settings)
    except RedisClusterException as exc:
        if str(exc).startswith(CLUSTER_UNREACHABLE_MESSAGES):
            raise StoreUnavailable(f"Redis Cluster unreachable at {hosts}") from exc
        raise ConfigError(f"REDIS_URL: {exc}") from exc
    except (redis_py.ConnectionError, redis_py.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis Cluster unreachable at {hosts}") from exc


def _sentinel_target(
    segments: list[str], url_options: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """(master name, Sentinel connection settings); moves `/db` into `url_options`."""
    if not 1 <= len(segments) <= 2:
        raise ConfigError("REDIS_URL: redis+sentinel://host:port,.../<master_name>[/db]")
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ConfigError(f"REDIS_URL: database must be a number, got {segments[1]!r}")
        url_options.setdefault("db", int(segments[1]))
    sentinel_settings: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "decode_responses": True,
    }
    for name in ("password", "username"):
        value = url_options.pop(f"sentinel_{name}", None)
        if value is not None:
            sentinel_settings[name] = value
    return segments[0], sentinel_settings


def connect_sentinel(url: str, **options: Any) -> redis_py.Redis:
    """A client on the master Sentinel names, for a `redis+sentinel://` URL."""
    hosts, segments, url_options = _parse_multi_host_url(url, DEFAULT_SENTINEL_PORT)
    master_name, sentinel_settings = _sentinel_target(segments, url_options)
    settings = _single_server_settings()
    settings.update(url_options)
    settings.update(options)
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_settings)  # type: ignore[no-untyped-call]
    master = sentinel.master_for(master_name, **settings)  # type: ignore[no-untyped-call]
    return cast(redis_py.Redis, master)


def connect_async(url: str, **options: Any) -> aioredis.Redis:
    """The asyncio twin of `connect()` (the gateway), for the same URL forms and timeouts.

    For `redis+cluster://` the object is a `redis.asyncio.cluster.RedisCluster`, which
    learns the slot map on its first command (so this never contacts Redis itself).
    """
    scheme = url.partition("://")[0].lower()
    if scheme in CLUSTER_SCHEMES:
        hosts, segments, url_options = _parse_multi_host_url(url, DEFAULT_CLUSTER_PORT)
        if segments not in ([], ["0"]) or url_options.pop("db", 0) != 0:
            raise ConfigError("REDIS_URL: a Redis Cluster has only database 0")
        cluster_settings: dict[str, Any] = {
            **_base_settings(),
            "retry": AsyncRetry(NoBackoff(), CLUSTER_RETRIES),
            "require_full_coverage": False,
            **url_options,
            **options,
        }
        nodes = [AsyncClusterNode(host, port) for host, port in hosts]
        try:
            cluster = AsyncRedisCluster(startup_nodes=nodes, **cluster_settings)
        except (RedisClusterException, TypeError) as exc:
            raise ConfigError(f"REDIS_URL: {exc}") from exc
        return cast(aioredis.Redis, cluster)
    settings: dict[str, Any] = {
        **_single_server_settings(),
        "retry": AsyncRetry(NoBackoff(), 1),
    }
    if scheme in SENTINEL_SCHEMES:
        hosts, segments, url_options = _parse_multi_host_url(url, DEFAULT_SENTINEL_PORT)
        master_name, sentinel_settings = _sentinel_target(segments, url_options)
        settings.update(url_options)
        settings.update(options)
        sentinel = AsyncSentinel(hosts, sentinel_kwargs=sentinel_settings)  # type: ignore[no-untyped-call]
        master = sentinel.master_for(master_name, **settings)
        return cast(aioredis.Redis, master)
    settings = _without_tcp_options(scheme, settings)
    settings.update(options)
    return aioredis.Redis.from_url(url, **settings)


def is_cluster(client: object) -> bool:
    """True when `client` talks to a Redis Cluster (and so needs one slot per command)."""
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def hash_slot(key: str | bytes) -> int:
    """The cluster hash slot (0..16383) of `key`, honouring `{hash tags}`."""
    return key_slot(key.encode("utf-8") if isinstance(key, str) else key)


def same_slot(*keys: str | bytes) -> bool:
    """True when every key hashes to one slot (vacuously for zero or one key)."""
    return len({hash_slot(key) for key in keys}) <= 1


def is_temporary(exc: BaseException) -> bool:
    """True for errors that mean "Redis is unreachable or reconfiguring, try later"."""
    if isinstance(exc, TRANSIENT_ERRORS + CLUSTER_TRANSIENT_ERRORS):
        return True
    if isinstance(exc, redis_py.ResponseError):
        # Loading, read-only replica, cluster reconfiguration: temporary conditions.
        # redis-py strips the error code from the message and keeps it in status_code.
        code = getattr(exc, "status_code", None)
        return str(exc).startswith(TEMPORARY_RESPONSE_ERRORS) or (code in TEMPORARY_RESPONSE_ERRORS)
    if isinstance(exc, RedisClusterException):
        return str(exc).startswith(CLUSTER_UNREACHABLE_MESSAGES)
    return False


def translate_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: Redis connection failures and timeouts become StoreUnavailable."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (redis_py.RedisError, RedisClusterException) as exc:
            if is_temporary(exc):
                raise StoreUnavailable() from exc
            raise

    return wrapper


def ping(client: redis_py.Redis) -> bool:
    """True when Redis answers PING in time; never raises.

    On a cluster every master must answer (replicas are not asked: a lost replica does
    not stop the platform).
    """
    try:
        if isinstance(client, RedisCluster):
            return bool(client.ping(target_nodes=RedisCluster.PRIMARIES))
        return bool(client.ping())
    except (redis_py.RedisError, RedisClusterException, OSError):
        return False


def command(client: redis_py.Redis, *args: str | int) -> Any:
    """Send one command and return Redis's raw reply (no response callback applied).

    The hot paths' way to Redis (a few per request), with the client's timeouts and
    health checks, on connections made from the client's pool settings but kept on a
    free list of their own: redis-py's pool check-out and release (a lock, metrics
    recorders and event dispatch per call) cost about as much CPU as the round trip
    itself. One retry after a ConnectionError (a connection Redis closed); unlike the
    client's own retry, none after a timeout, when the command may have run. A cluster
    or Sentinel client goes the usual way. Replies are raw on a single server (`SET ...
    NX` is "OK" or None); a cluster client applies redis-py's reply callbacks (True or
    None).
    """
    return send(client, *args).reply()


def send(client: redis_py.Redis, *args: str | int) -> PendingReply:
    """Send one command as `command` does, and read its reply later (`reply()`).

    Between the two the request can wait on something else, a PostgreSQL query, and
    find the reply already arrived: one wait instead of two. A cluster or Sentinel
    client runs the command at once.
    """
    pool = client.connection_pool if type(client) is redis_py.Redis else None
    if pool is None or type(pool) is not redis_py.ConnectionPool:
        return PendingReply.settled(client, args)
    idle = _idle_connections(pool)
    # list.pop and list.append are atomic: no lock, whether requests run on threads or
    # on gevent greenlets, and a connection is only ever used by one request at a time.
    # The list grows to the most commands ever in flight at once, as redis-py's pool does.
    connection = idle.pop() if idle else pool.connection_class(**pool.connection_kwargs)
    pending = PendingReply(args, idle, connection)
    try:
        _send(connection, args)
    except redis_py.ConnectionError:
        pending.sent = False  # reply() makes the one retry
    except BaseException:
        idle.append(connection)
        raise
    return pending


class PendingReply:
    """A command sent on `command`'s connections whose reply is read once, by `reply()`.

    The connection stays out of the free list until then, so that no other request can
    read this reply. A command that could not be sent is sent again by `reply()` (the
    one retry after a ConnectionError).
    """

    __slots__ = ("args", "connection", "idle", "outcome", "sent")

    def __init__(self, args: Sequence[Any], idle: list[Any] | None, connection: Any) -> None:
        self.args = args
        self.idle = idle
        self.connection = connection
        self.sent = True  # False: the send failed, and reply() makes the retry
        self.outcome: tuple[Any, BaseException | None] = (None, None)

    @classmethod
    def settled(cls, client: redis_py.Redis, args: Sequence[Any]) -> PendingReply:
        """A command run at once by the client itself (cluster, Sentinel)."""
        pending = cls(args, None, None)
        try:
            pending.outcome = (client.execute_command(*args), None)  # type: ignore[no-untyped-call]
        except Exception as exc:  # raised again by reply(), where the caller expects it
            pending.outcome = (None, exc)
        return pending

    def reply(self) -> Any:
        """The reply (or its error); call exactly once."""
        if self.idle is None:
            value, error = self.outcome
            if error is not None:
                raise error
            return value
        try:
            if self.sent:
                try:
                    return self.connection.read_response()
                except redis_py.ConnectionError:
                    pass
            # Redis closed this connection (a restart, an idle timeout): redis-py has
            # disconnected it, so this one retry reconnects, like `Retry(NoBackoff(), 1)`.
            return _round_trip(self.connection, self.args)
        finally:
            # Also after a failure: a disconnected connection reconnects on its next use.
            self.idle.append(self.connection)


def _idle_connections(pool: redis_py.ConnectionPool) -> list[Any]:
    """The free list of `command`'s connections to `pool`'s server (a new one after a fork:
    a child must never share a parent's socket)."""
    # Kept on the pool object itself, so the connections go when the client does. (A
    # WeakKeyDictionary measured 2 us more per command: it makes a weakref per look-up.)
    found: tuple[int, list[Any]] | None = pool.__dict__.get("_partner_auth_idle")
    if found is None or found[0] != current_pid():
        found = pool.__dict__["_partner_auth_idle"] = (current_pid(), [])
    return found[1]


def _round_trip(connection: redis_py.connection.AbstractConnection, args: Sequence[Any]) -> Any:
    # send_command and read_response disconnect the connection on any failure, so a
    # reply that arrives late can never be read by a later command.
    _send(connection, args)
    return connection.read_response()


def _send(connection: redis_py.connection.AbstractConnection, args: Sequence[Any]) -> None:
    """`connection.send_command(*args)`, packed by hiredis itself when the connection packs
    with hiredis: redis-py's packer first copies the arguments in a Python generator (an
    8-argument EVALSHA: 3.4 us, against 1.1 us this way). The commands sent here are one
    word (redis-py would split "CONFIG GET") with str and int arguments. On gevent the
    packed command goes out in one send (see `sent_at_once`)."""
    if type(getattr(connection, "_command_packer", None)) is not HiredisRespSerializer:
        connection.send_command(*args)  # type: ignore[no-untyped-call]
        return
    try:
        packed = hiredis.pack_command(tuple(args))
    except TypeError as exc:  # as redis-py's packer reports an argument it cannot send
        raise DataError(str(exc)) from exc
    sent = 0
    if connection._sock is not None:  # else redis-py's send connects first
        connection.check_health()  # as send_packed_command does: a PING after idling
        sent = sent_at_once(connection._sock, packed)
    if sent < len(packed):
        # The rest (usually all of it) with redis-py's own handling of a failed write.
        connection.send_packed_command([packed[sent:]], check_health=False)  # type: ignore[no-untyped-call]


class StoreScript:
    """A Lua script run with EVALSHA; on NOSCRIPT, EVAL (which caches it on that server).

    redis-py's own `register_script` answers NOSCRIPT with SCRIPT LOAD on every master of
    a cluster, which fails while any master is down, even one this script never touches;
    EVAL goes only to the master owning the keys (a promoted replica, a restarted node).
    A store calls it inside `translate_errors`, like any other command.
    """

    def __init__(self, client: redis_py.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[str], args: Sequence[str | int] = ()) -> Any:
        try:
            return command(self.client, "EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return command(self.client, "EVAL", self.source, len(keys), *keys, *args)
