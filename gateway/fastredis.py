"""A minimal pipelined Redis client for the gateway's one hot command (EVALSHA).

Why: with redis.asyncio the rate-limit check costs about as much gateway CPU as the
whole proxy hop (a task, a pooled connection checkout and the command machinery per
request). This client keeps one connection, writes each command at once and hands each
reply to a callback in order (RESP answers in order); hiredis parses the replies.
Measured by `make bench` (rows `clients/me rl fast` and `clients/me rl aio`, 2-core box,
4 runs): 180-257 us of gateway CPU per rate-limited request with this client, 371-431 us
with redis.asyncio, 170-213 us with rate limiting off.

Only plain `redis://[user:password@]host[:port][/db]` and `unix:///path[?db=N]` URLs
(`make run` gives the services and the gateway its bundled Redis's Unix socket); the
gateway uses `shared.redis.connect_async` for TLS, Cluster and Sentinel.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

Callback = Callable[[Any], None]


class RedisUnavailable(Exception):
    """The connection failed, closed or timed out before the reply came."""


def supports(url: str) -> bool:
    """True for the plain single-server URLs this client speaks."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return bool(parts.path) and _unix_db(parts.query) is not None
    return parts.scheme == "redis" and not parts.query and bool(parts.hostname)


def _unix_db(query: str) -> int | None:
    """The database a unix:// URL's query names (0 when it names none); None when it has
    any other parameter, or a `db` that is not one database number."""
    fields = parse_qs(query, keep_blank_values=True)
    values = fields.pop("db", ["0"])
    if fields or len(values) != 1 or not values[0].isdigit():
        return None
    return int(values[0])


def encode(*args: bytes | str | int) -> bytes:
    """One command in RESP (array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


class FastRedis:
    """One pipelined connection; `call` never blocks, replies arrive via callbacks.

    A reply that does not come within `timeout` fails every pending command and drops
    the connection (replies are ordered: nothing after a lost one can be trusted).
    """

    def __init__(self, url: str, connect_timeout: float, timeout: float) -> None:
        parts = urlsplit(url)
        self.socket_path = unquote(parts.path) if parts.scheme == "unix" else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if self.socket_path is None:
            self.db = int(parts.path.strip("/") or 0)
        else:
            self.db = _unix_db(parts.query) or 0  # only URLs `supports` takes come here
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.link: _Link | None = None
        self.queued: list[tuple[bytes, Callback]] = []
        self.connecting: asyncio.Future[None] | None = None

    def call(self, command: bytes, callback: Callback) -> None:
        """Send an encoded command; `callback(reply)` gets the reply, a ReplyError, or a
        RedisUnavailable."""
        link = self.link
        if link is not None and link.transport is not None:
            link.send(command, callback, time.monotonic() + self.timeout)
            return
        self.queued.append((command, callback))
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self._connect())

    def expire(self, now: float) -> None:
        """Fail everything when the oldest reply is overdue (call this periodically)."""
        link = self.link
        if link is not None and link.pending and link.pending[0][0] <= now:
            link.drop(RedisUnavailable("Redis reply timed out"))

    def close(self) -> None:
        if self.link is not None:
            self.link.drop(RedisUnavailable("closed"))
        _fail(self.queued, RedisUnavailable("closed"))

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opening = (
            loop.create_unix_connection(_Link, self.socket_path)
            if self.socket_path is not None
            else loop.create_connection(_Link, self.host, self.port)
        )
        try:
            _, link = await asyncio.wait_for(opening, self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self.connecting = None
            _fail(self.queued, RedisUnavailable(f"cannot connect to Redis: {exc}"))
            return
        self.connecting = None
        self.link = link
        deadline = time.monotonic() + self.timeout
        if self.password is not None:
            auth = ["AUTH", self.password]
            if self.username:
                auth.insert(1, self.username)
            link.send(encode(*auth), link.check_setup, deadline)
        if self.db:
            link.send(encode("SELECT", self.db), link.check_setup, deadline)
        queued, self.queued = self.queued, []
        for command, callback in queued:
            link.send(command, callback, deadline)


class _Link(asyncio.Protocol):
    """One connection to Redis and the callbacks waiting for its replies, in order."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.pending: deque[tuple[float, Callback]] = deque()

    def send(self, command: bytes, callback: Callback, deadline: float) -> None:
        self.pending.append((deadline, callback))
        self.transport.write(command)

    def check_setup(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            self.drop(RedisUnavailable(f"Redis refused the connection setup: {reply}"))

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        pending = self.pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError:
                self.drop(RedisUnavailable("Redis protocol error"))
                return
            if reply is False:
                return
            if not pending:
                self.drop(RedisUnavailable("unexpected reply from Redis"))
                return
            pending.popleft()[1](reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop(RedisUnavailable("Redis connection lost"))

    def drop(self, error: RedisUnavailable) -> None:
        """Close the connection and fail every command still waiting."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        pending, self.pending = self.pending, deque()
        for _, callback in pending:
            callback(error)


def _fail(queued: list[tuple[bytes, Callback]], error: RedisUnavailable) -> None:
    items = list(queued)
    queued.clear()
    for _, callback in items:
        callback(error)


class ReplyError(Exception):
    """An error reply from Redis (`-NOSCRIPT ...`, `-ERR ...`)."""
