"""The Gateway: answer locally, refuse, or relay each request to a replica and back."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from shared.netaccess import peer_allowed
from shared.observability import RATE_LIMITED, RequestTally, render_metrics
from shared.responses import k2_body, to_json

from . import headers as hdr
from .config import GatewayConfig
from .http import ClientConnection, Limits, Request, ServerState
from .location import LocationGuard
from .logs import AccessLog
from .ratelimit import RateLimiter
from .routing import MESSAGES, ROUTES, Family, Route, cached_error_body, error_body, match
from .upstream import (
    NoReplicaReachable,
    Service,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger("gateway")

# (status, content type, body) of a gateway-made answer.
Reply = tuple[int, str, bytes]
LocalHandler = Callable[["Gateway", Request], "Reply | Awaitable[Reply]"]

JSON = "application/json"
TICK_SECONDS = 0.1  # upstream read deadlines are checked this often
MAINTENANCE_SECONDS = 0.5
READY_CHECK_TIMEOUT_SECONDS = 2.0
# /readyz answers from one check for this long: calls cannot multiply the pings to Redis
# and to every service (per gateway worker: each holds its own answer).
READY_CACHE_SECONDS = 1.0
# Local paths under the client rate limit: the ones that cost I/O. /healthz (no I/O, an
# orchestrator's liveness probe) and /metrics (allow-listed scrapers) stay unlimited.
RATE_LIMITED_LOCAL_PATHS = frozenset({"/readyz"})
# An answer bigger than this is streamed to the client instead of sent in one write.
BUFFER_LIMIT = 64 * 1024
# Resolved once: labels() costs a lock and a dict look-up per call.
GATEWAY_RATE_LIMITED = RATE_LIMITED.labels("gateway")


class Gateway:
    """Routes by path prefix to the USSD or Sabong replicas; answers a few paths itself.

    `gateway(request, client)` is called by the HTTP server with each complete request.
    """

    def __init__(self, config: GatewayConfig, routes: tuple[Route, ...] = ROUTES) -> None:
        self.config = config
        self.routes = routes
        self.services = {
            name: Service(name, targets, config.timeouts, config.max_idle_per_replica)
            for name, targets in config.upstreams.items()
        }
        self.limiter = (
            RateLimiter(config.redis_url, config.rate_limit, config.route_limits)
            if config.rate_limiting and config.redis_url
            else None
        )
        self.access_log = AccessLog() if config.access_log else None
        # Counted in plain numbers per request, handed to prometheus_client once a second.
        self.tally = RequestTally("gateway")
        self.limits = Limits(
            max_body=config.max_body_bytes,
            keepalive=config.client_keepalive,
            request_timeout=config.client_timeout,
        )
        self.state = ServerState(self, self.limits, self.finished)
        self.locations = LocationGuard(self._upstream_addresses)
        # Exact paths, then prefixes, answered by the gateway itself.
        self.local_routes: dict[str, LocalHandler] = dict(LOCAL_ROUTES)
        self.local_prefixes: list[tuple[str, LocalHandler]] = list(LOCAL_PREFIXES)
        self._tasks: set[asyncio.Task[Any]] = set()
        # The last /readyz answer and when it expires; the check in progress, if any.
        self._ready_reply: Reply | None = None
        self._ready_until = 0.0
        self._ready_check: asyncio.Future[Reply] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._last_second = 0.0

    # the request path -----------------------------------------------------------------
    def __call__(self, request: Request, client: ClientConnection) -> None:
        """Answer one complete request: locally, with an error, or through a replica."""
        path = request.path
        local = self._local_handler(path)
        if local is not None:
            request.log_path = path
            request.route = path if path in self.local_routes else self._local_prefix(path)
            if path in RATE_LIMITED_LOCAL_PATHS and self.limiter is not None and request.peer:
                self.limiter.check(
                    request.peer,
                    path,
                    lambda wait: self._after_local_limit(wait, local, request, client),
                )
            else:
                self._answer_locally(local, request, client)
            return
        route = None if _has_dot_segment(path) else match(path, self.routes)
        if route is None:
            request.log_path = _redacted(path)
            self.reply_error(request, client, Family.NEUTRAL, 404)
            return
        request.log_path = route.log_path(path)
        request.route = route.prefix
        if self.limiter is not None and request.peer is not None:
            self.limiter.check(
                request.peer,
                path,
                lambda wait: self._after_limit(wait, request, client, route),
            )
        else:
            self.forward(request, client, route)

    def reject(self, request: Request | None, client: ClientConnection, status: int) -> None:
        """An answer to a request the HTTP layer refused (bad syntax, too large)."""
        assert request is not None
        # A request refused mid-parse has no path yet: read it from the raw target.
        path = request.path or _path_of_target(request.url)
        route = None if not path else match(path, self.routes)
        family = route.family if route else Family.NEUTRAL
        request.log_path = route.log_path(path) if route else _redacted(path)
        request.route = route.prefix if route else "unmatched"
        body = cached_error_body(family, status)
        client.respond(request, status, _json_head(self.state), body)

    def _after_limit(
        self, retry_after: int, request: Request, client: ClientConnection, route: Route
    ) -> None:
        if retry_after:
            self._too_many(request, client, route.family, retry_after)
        else:
            self.forward(request, client, route)

    def _after_local_limit(
        self, retry_after: int, local: LocalHandler, request: Request, client: ClientConnection
    ) -> None:
        if retry_after:
            self._too_many(request, client, Family.NEUTRAL, retry_after)
        else:
            self._answer_locally(local, request, client)

    def _too_many(
        self, request: Request, client: ClientConnection, family: Family, retry_after: int
    ) -> None:
        GATEWAY_RATE_LIMITED.inc()
        extra = b"retry-after: %d\r\n" % retry_after
        self.reply_error(request, client, family, 429, extra)

    def forward(self, request: Request, client: ClientConnection, route: Route) -> None:
        """Rewrite the headers and send the request to a replica of the route's service."""
        body = b"".join(request.body) if request.body else b""
        head = hdr.build_request_head(
            request.method,
            request.target,
            request.headers,
            request.peer,
            "http",
            len(body),
            request.request_id,
            request.connection,
        )
        relay = Relay(request, client, route.family, route.json_only, self.locations)
        self.services[route.service].send(request.method, head + body, relay)

    def reply_error(
        self,
        request: Request,
        client: ClientConnection,
        family: Family,
        status: int,
        extra: bytes = b"",
    ) -> None:
        """A gateway-made error in the envelope of the path's API family."""
        body = cached_error_body(family, status)
        client.respond(request, status, _json_head(self.state) + extra, body)

    def _upstream_addresses(self) -> list[tuple[str, int]]:
        """Every upstream host:port: configured names and the replica addresses in use."""
        services = self.services.values()
        addresses = [(target.host, target.port) for s in services for target in s.targets]
        addresses += [replica.address for s in services for replica in s.replicas]
        return addresses

    def _local_handler(self, path: str) -> LocalHandler | None:
        handler = self.local_routes.get(path)
        if handler is None:
            for prefix, prefixed in self.local_prefixes:
                if path.startswith(prefix):
                    return prefixed
        return handler

    def _local_prefix(self, path: str) -> str:
        """The local prefix that `path` falls under (the caller knows one does)."""
        return next(prefix for prefix, _ in self.local_prefixes if path.startswith(prefix))

    def _answer_locally(
        self, handler: LocalHandler, request: Request, client: ClientConnection
    ) -> None:
        if request.method not in ("GET", "HEAD"):
            allow = b"allow: GET, HEAD\r\n"
            self.reply_error(request, client, Family.NEUTRAL, 405, allow)
            return
        result = handler(self, request)
        if inspect.isawaitable(result):
            self._spawn(self._send_local(result, request, client))
        else:
            _send_reply(result, request, client, self.state)

    async def _send_local(
        self, pending: Awaitable[Reply], request: Request, client: ClientConnection
    ) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("local route failed", extra={"path": request.log_path})
            self.reply_error(request, client, Family.NEUTRAL, 500)
            return
        _send_reply(reply, request, client, self.state)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed", exc_info=task.exception())

    def finished(self, request: Request, status: int) -> None:
        """Called once per answered request: its metrics and access log line."""
        seconds = time.perf_counter() - request.started
        self.tally.count(request.route, request.method, status, seconds)
        if self.access_log is not None:
            self.access_log.write(request, status, seconds)

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Resolve upstream names and start the timers (call inside the event loop)."""
        for service in self.services.values():
            await service.resolve()
        self._spawn(self._maintain())
        self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        for service in self.services.values():
            service.expire(now)
        if self.limiter is not None:
            self.limiter.expire(now)
        if now - self._last_second >= 1.0:
            self._last_second = now
            self.state.tick()
            self.tally.flush()
            if self.access_log is not None:
                self.access_log.flush_if_due()
        self._ticker = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            for service in self.services.values():
                try:
                    await service.maintain()
                except Exception:
                    log.exception("upstream maintenance failed", extra={"service": service.name})

    async def stop(self) -> None:
        """Stop timers and tasks, close pooled connections and Redis, flush the log."""
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        for service in self.services.values():
            service.close()
        if self.limiter is not None:
            await self.limiter.close()
        self.tally.flush()
        if self.access_log is not None:
            self.access_log.flush()

    # readiness -------------------------------------------------------------------------
    async def ready_reply(self) -> Reply:
        """The /readyz answer: the cached one while fresh, else one shared new check."""
        if self._ready_reply is not None and time.monotonic() < self._ready_until:
            return self._ready_reply
        if self._ready_check is None:
            check = asyncio.ensure_future(self._check_readiness())
            self._ready_check = check
            self._tasks.add(check)
            check.add_done_callback(self._ready_check_done)
        # Shielded: a caller that goes away must not cancel the check the others await.
        return await asyncio.shield(self._ready_check)

    async def _check_readiness(self) -> Reply:
        report = await self.readiness()
        ready = all(v in ("ok", "not used") for v in report.values())
        status = 200 if ready else 503
        reply = status, JSON, to_json(k2_body(status, "Ready" if ready else "Not ready", report))
        self._ready_reply = reply
        self._ready_until = time.monotonic() + READY_CACHE_SECONDS
        return reply

    def _ready_check_done(self, check: asyncio.Future[Reply]) -> None:
        self._tasks.discard(check)
        if self._ready_check is check:
            self._ready_check = None
        if not check.cancelled():
            check.exception()  # retrieved here; each caller's await re-raises it

    async def readiness(self) -> dict[str, str]:
        """Redis and each service's own /readyz, checked concurrently."""
        names = list(self.services)
        checks = [self._service_ready(self.services[name]) for name in names]
        results = await asyncio.gather(self._redis_ready(), *checks)
        report = {"redis": results[0]}
        report.update(zip(names, results[1:], strict=True))
        return report

    async def _redis_ready(self) -> str:
        if self.limiter is None:
            return "not used"  # rate limiting is off: the gateway needs no Redis
        try:
            ok = await asyncio.wait_for(self.limiter.ping(), READY_CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            ok = False
        return "ok" if ok else "unreachable"

    async def _service_ready(self, service: Service) -> str:
        payload = b"GET /readyz HTTP/1.1\r\nhost: gateway\r\nx-request-id: gateway-readyz\r\n\r\n"
        try:
            status, _ = await asyncio.wait_for(
                service.fetch("GET", payload), READY_CHECK_TIMEOUT_SECONDS
            )
        except (UpstreamError, TimeoutError):
            return "unreachable"
        return "ok" if status == 200 else "not ready"


class Relay:
    """Carries one upstream answer back to the client: in one write when it is small
    and complete, streamed when it is large; errors become the family's envelope."""

    __slots__ = (
        "body",
        "client",
        "family",
        "headers",
        "json_only",
        "locations",
        "request",
        "size",
        "status",
        "streaming",
        "upstream",
    )

    def __init__(
        self,
        request: Request,
        client: ClientConnection,
        family: Family,
        json_only: bool = True,
        locations: LocationGuard | None = None,
    ) -> None:
        self.request = request
        self.client = client
        self.family = family
        self.json_only = json_only
        self.locations = locations
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.streaming = False
        self.upstream: UpstreamConnection | None = None

    def upstream_head(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: UpstreamConnection
    ) -> None:
        self.status = status
        self.headers = headers
        self.upstream = conn

    def upstream_body(self, chunk: bytes) -> None:
        if self.streaming:
            if not self.client.stream(self.request, chunk):
                self._pause_upstream()
            return
        self.body.append(chunk)
        self.size += len(chunk)
        if self.size > BUFFER_LIMIT:
            self._start_streaming()

    def upstream_end(self) -> None:
        if self.streaming:
            self.client.end_stream(self.request, self.status)
            return
        if self.status >= 400 and self.json_only and _is_html(self.headers):
            self._replace_html_error()
            return
        head, upstream_length = hdr.response_head(self.headers, self._safe_location)
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if _bodiless(self.request.method, self.status):
            if upstream_length is not None:
                head += b"content-length: " + upstream_length + b"\r\n"
            self.client.respond(self.request, self.status, head, body, content_length=False)
        else:
            self.client.respond(self.request, self.status, head, body)

    def upstream_failed(self, error: UpstreamError) -> None:
        if self.streaming:
            log.warning(
                "upstream failed mid-response",
                extra={"error": str(error), "request_id": self.request.request_id.decode()},
            )
            self.client.abort(self.request, self.status)
            return
        status = 504 if isinstance(error, UpstreamTimeout) else 502
        if not isinstance(error, UpstreamTimeout):
            log.warning(
                "upstream failed",
                extra={
                    "error": str(error),
                    "unreachable": isinstance(error, NoReplicaReachable),
                    "request_id": self.request.request_id.decode(),
                },
            )
        body = cached_error_body(self.family, status)
        self.client.respond(self.request, status, _json_head(self.client.state), body)

    def _replace_html_error(self) -> None:
        """An HTML error page on a JSON API path (a server or proxy refusing the request
        before the app saw it, e.g. gunicorn's 400/414/431 pages) becomes the family's
        envelope with the same status: a JSON client must never have to parse HTML. Only
        error statuses and whole (buffered) answers are checked, so the hot path pays one
        comparison; a streamed (over 64 KiB) HTML error page is relayed as it is."""
        body = _html_replacement(self.family, self.status)
        self.client.respond(self.request, self.status, _json_head(self.client.state), body)

    def _start_streaming(self) -> None:
        self.streaming = True
        head, upstream_length = hdr.response_head(self.headers, self._safe_location)
        self.client.start_stream(self.request, self.status, head, upstream_length)
        chunks, self.body = self.body, []
        for chunk in chunks:
            self.client.stream(self.request, chunk)

    def _safe_location(self, value: bytes) -> bytes | None:
        """A Location never names an internal address or echoes the request's Host."""
        if self.locations is None:
            return value
        return self.locations.safe(value, self.request.host)

    def _pause_upstream(self) -> None:
        """Backpressure: stop reading the upstream until the client drained its buffer."""
        conn = self.upstream
        if conn is None:
            return
        if self.client.closed:
            conn.close()  # nobody to read it: stop the upstream instead of waiting
            return
        conn.pause()
        self.client.on_drain = conn.resume


# local routes --------------------------------------------------------------------------
def healthz(gateway: Gateway, request: Request) -> Reply:
    """The gateway process is up; no I/O."""
    return 200, JSON, to_json(k2_body(200, "OK"))


async def readyz(gateway: Gateway, request: Request) -> Reply:
    """200 when Redis and every service answer, else 503 naming what is not (checked at
    most once per READY_CACHE_SECONDS)."""
    return await gateway.ready_reply()


def docs(gateway: Gateway, request: Request) -> Reply:
    """OpenAPI document and the docs page, from `gateway.docs` when it is installed."""
    asset = _docs_asset(request.path)
    if asset is None:
        return 404, JSON, cached_error_body(Family.NEUTRAL, 404)
    content_type, body = asset
    return 200, content_type, body


def metrics(gateway: Gateway, request: Request) -> Reply:
    """Prometheus exposition: this worker's latest counts, and every worker's in
    multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by scripts.serve). Only for TCP
    peers in the metrics allow-list (shared.netaccess; never X-Forwarded-For: the client
    writes that); others get the same 404 as any unknown path."""
    if not peer_allowed(request.peer, gateway.config.metrics_allow):
        return 404, JSON, cached_error_body(Family.NEUTRAL, 404)
    gateway.tally.flush()
    body, content_type = render_metrics()
    return 200, content_type, body


LOCAL_ROUTES: dict[str, LocalHandler] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
    "/openapi.json": docs,
    "/docs": docs,
}
LOCAL_PREFIXES: list[tuple[str, LocalHandler]] = [("/docs/", docs)]


def _docs_asset(path: str) -> tuple[str, bytes] | None:
    """`gateway.docs.docs_asset(path)`, imported on first use; None when it is absent."""
    try:
        from .docs import docs_asset
    except ImportError:
        return None
    return docs_asset(path)


# helpers -------------------------------------------------------------------------------
def _send_reply(
    reply: Reply, request: Request, client: ClientConnection, state: ServerState
) -> None:
    status, content_type, body = reply
    head = b"content-type: " + content_type.encode("latin-1") + b"\r\n" + state.date_header
    client.respond(request, status, head, body)


def _json_head(state: ServerState) -> bytes:
    return b"content-type: application/json\r\n" + state.date_header


def _bodiless(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304)


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.lstrip().lower().startswith(b"text/html")
    return False


@functools.cache
def _html_replacement(family: Family, status: int) -> bytes:
    if status in MESSAGES:
        return cached_error_body(family, status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Upstream error"
    return error_body(family, status, phrase)


def _path_of_target(target: bytes) -> str:
    """The path of a raw request target ("" when it is not origin-form)."""
    if not target.startswith(b"/"):
        return ""
    path = target.split(b"?", 1)[0].split(b"#", 1)[0].decode("latin-1")
    return unquote(path, "latin-1") if "%" in path else path


def _has_dot_segment(path: str) -> bool:
    """True for `/./` or `/../` segments: refused rather than passed to a service."""
    if "/." not in path:
        return False
    return any(segment in (".", "..") for segment in path.split("/"))


def _redacted(path: str) -> str:
    """An unrouted path only by its first segment (a mistyped `/login/<token>` must not
    put the token in the log)."""
    first, _, rest = path[1:].partition("/")
    return f"/{first[:64]}/..." if rest else f"/{first[:64]}"
