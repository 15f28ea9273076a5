"""Per-client-address rate limits shared by every gateway replica through Redis (GCRA).

One EVALSHA per request: the script reads the bucket's theoretical arrival time (TAT),
decides, and writes it back atomically, with Redis' own clock so gateway replicas with
skewed clocks still agree. A limit of N per minute allows a burst of N, then one request
every 60/N seconds. Keys are `gw:{<client address>}:<route prefix>`: the hash tag keeps
all of one client's buckets in one cluster slot.

When Redis cannot be reached the limiter fails open (requests pass, one warning per
cooldown is logged) and does not ask Redis again until the cooldown is over, so a dead
Redis costs no latency: availability of the APIs matters more than the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from shared.observability import RATE_LIMITED
from shared.redis import connect_async

from .fastredis import FastRedis, RedisUnavailable, ReplyError, encode, supports
from .http import ClientConnection, Request
from .replies import send_error
from .routing import Route

log = logging.getLogger("gateway.ratelimit")

KEY_PREFIX = "gw:"
DEFAULT_BUCKET = "*"
PERIOD_MICROSECONDS = 60_000_000
CONNECT_TIMEOUT_SECONDS = 0.25
COMMAND_TIMEOUT_SECONDS = 0.25
FAILURE_COOLDOWN_SECONDS = 1.0

# KEYS[1] bucket; ARGV[1] emission interval (us); ARGV[2] burst tolerance (us).
# Returns 0 when allowed, else the microseconds until a request would be allowed.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local new_tat = tat + interval
local ttl = math.ceil((new_tat - now) / 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl)
return 0
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False).hexdigest()

Done = Callable[[int], None]
RouteStage = Callable[[Request, ClientConnection, Route], None]
# Resolved once: labels() costs a lock and a dict look-up per call.
GATEWAY_RATE_LIMITED = RATE_LIMITED.labels("gateway")


class RateLimit:
    """Stage 3 of the request path: a client over its limit gets 429 with Retry-After in
    the route's envelope; every other request goes on to `next` (all of them when rate
    limiting is off)."""

    def __init__(self, limiter: RateLimiter | None, next: RouteStage) -> None:
        self.limiter = limiter
        self.next = next

    def __call__(self, request: Request, client: ClientConnection, route: Route) -> None:
        limiter = self.limiter
        if limiter is None or not request.peer:
            self.next(request, client, route)
            return
        limiter.check(
            request.peer, request.path, lambda wait: self._decided(wait, request, client, route)
        )

    def _decided(
        self, retry_after: int, request: Request, client: ClientConnection, route: Route
    ) -> None:
        if retry_after:
            GATEWAY_RATE_LIMITED.inc()
            extra = b"retry-after: %d\r\n" % retry_after
            send_error(request, client, route.family, 429, extra)
        else:
            self.next(request, client, route)


class RateLimiter:
    """Decides per request whether a client address is over its per-minute limit."""

    def __init__(
        self, redis_url: str, default_limit: int, route_limits: tuple[tuple[str, int], ...]
    ) -> None:
        self.redis_url = redis_url
        self.default_limit = default_limit
        self.route_limits = route_limits
        self.fast = (
            FastRedis(redis_url, CONNECT_TIMEOUT_SECONDS, COMMAND_TIMEOUT_SECONDS)
            if supports(redis_url)
            else None
        )
        self._client: Any = None  # redis.asyncio, for URLs FastRedis does not speak
        self._skip_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def bucket_for(self, path: str) -> tuple[str, int]:
        """The bucket name and limit for `path`: longest configured prefix, else default."""
        for prefix, limit in self.route_limits:
            if path.startswith(prefix):
                return prefix, limit
        return DEFAULT_BUCKET, self.default_limit

    def check(self, client_address: str, path: str, done: Done) -> None:
        """Call `done(0)` when the request may pass, else `done(seconds to wait)`."""
        bucket, limit = self.bucket_for(path)
        if limit <= 0 or time.monotonic() < self._skip_until:
            done(0)
            return
        interval = max(1, PERIOD_MICROSECONDS // limit)
        key = f"{KEY_PREFIX}{{{client_address}}}:{bucket}"
        args = (key, interval, PERIOD_MICROSECONDS - interval)
        if self.fast is None:
            task = asyncio.ensure_future(self._check_slow(args, done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        command = encode("EVALSHA", GCRA_SHA, 1, *args)
        self.fast.call(command, lambda reply: self._on_reply(reply, args, done))

    def _on_reply(self, reply: Any, args: tuple[str, int, int], done: Done) -> None:
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            assert self.fast is not None  # first use, or Redis restarted: send the script
            command = encode("EVAL", GCRA_SCRIPT, 1, *args)
            self.fast.call(command, lambda again: self._on_reply(again, args, done))
            return
        if isinstance(reply, Exception):
            self._fail_open(reply)
            done(0)
            return
        done(_seconds(reply))

    async def _check_slow(self, args: tuple[str, int, int], done: Done) -> None:
        try:
            client = self._slow_client()
            try:
                wait = await client.evalsha(GCRA_SHA, 1, *args)
            except NoScriptError:
                wait = await client.eval(GCRA_SCRIPT, 1, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail_open(exc)
            done(0)
            return
        done(_seconds(wait))

    def _fail_open(self, error: BaseException) -> None:
        self._skip_until = time.monotonic() + FAILURE_COOLDOWN_SECONDS
        unreachable = isinstance(error, RedisUnavailable | OSError | TimeoutError) or (
            isinstance(error, RedisError) and not isinstance(error, ResponseError)
        )
        message = (
            "rate limiter cannot reach Redis; letting requests through"
            if unreachable
            else "rate limit script failed; letting requests through"
        )
        log.warning(
            message, extra={"error": str(error)[:200], "cooldown_s": FAILURE_COOLDOWN_SECONDS}
        )

    def expire(self, now: float) -> None:
        """Time out overdue Redis replies (called by the gateway's ticker)."""
        if self.fast is not None:
            self.fast.expire(now)

    async def ping(self) -> bool:
        """True when Redis answers in time; never raises."""
        if self.fast is None:
            try:
                return bool(await self._slow_client().ping())
            except (RedisError, OSError, TimeoutError):
                return False
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(reply: Any) -> None:
            if not answer.done():
                answer.set_result(reply)

        self.fast.call(encode("PING"), settle)
        try:
            reply = await asyncio.wait_for(answer, COMMAND_TIMEOUT_SECONDS * 4)
        except TimeoutError:
            return False
        return not isinstance(reply, Exception | RedisUnavailable)

    def _slow_client(self) -> Any:
        if self._client is None:
            self._client = connect_async(
                self.redis_url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT_SECONDS,
            )
        return self._client

    async def close(self) -> None:
        if self.fast is not None:
            self.fast.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _seconds(wait_microseconds: Any) -> int:
    """Whole seconds to wait (at least 1) from the script's answer; 0 means allowed."""
    wait = int(wait_microseconds)
    return max(1, math.ceil(wait / 1_000_000)) if wait > 0 else 0
