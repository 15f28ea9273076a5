"""Stage 1 of the request path: the paths the gateway answers itself.

/healthz (the process is up; no I/O), /readyz (Readiness; under the client rate limit,
as it costs I/O), /metrics (allow-listed peers only) and the API docs. Only GET and HEAD;
every other path goes on to the next stage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from shared.netaccess import Network, peer_allowed
from shared.observability import RequestTally, render_metrics
from shared.responses import k2_body, to_json

from .http import ClientConnection, Request
from .ratelimit import RateLimit, RateLimiter
from .readiness import Readiness
from .replies import JSON, Reply, send_error, send_reply
from .routing import Family, Route, cached_error_body
from .tasks import Tasks

log = logging.getLogger("gateway")

LocalHandler = Callable[[Request], "Reply | Awaitable[Reply]"]
Stage = Callable[[Request, ClientConnection], None]
# Local paths under the client rate limit: the ones that cost I/O. /healthz (no I/O, an
# orchestrator's liveness probe) and /metrics (allow-listed scrapers) stay unlimited.
RATE_LIMITED_LOCAL_PATHS = frozenset({"/readyz"})
# What a refusal of a local path is sent as (its 429 uses the neutral envelope).
LOCAL = Route("", "", Family.NEUTRAL)


class LocalRoutes:
    """Answers /healthz, /readyz, /metrics and the docs; passes every other path to `next`."""

    def __init__(
        self,
        readiness: Readiness,
        tally: RequestTally,
        metrics_allow: tuple[Network, ...],
        limiter: RateLimiter | None,
        tasks: Tasks,
        next: Stage,
    ) -> None:
        self.readiness = readiness
        self.tally = tally
        self.metrics_allow = metrics_allow
        self.tasks = tasks
        self.next = next
        self.limited = RateLimit(limiter, self._answer)
        # Exact paths, then prefixes.
        self.exact: dict[str, LocalHandler] = {
            "/healthz": healthz,
            "/readyz": self.readyz,
            "/metrics": self.metrics,
            "/openapi.json": docs,
            "/docs": docs,
        }
        self.prefixes: list[tuple[str, LocalHandler]] = [("/docs/", docs)]

    def __call__(self, request: Request, client: ClientConnection) -> None:
        path = request.path
        if path in self.exact:
            request.route = path
        else:
            prefix = next((p for p, _ in self.prefixes if path.startswith(p)), None)
            if prefix is None:
                self.next(request, client)
                return
            request.route = prefix
        request.log_path = path
        if path in RATE_LIMITED_LOCAL_PATHS:
            self.limited(request, client, LOCAL)
        else:
            self._answer(request, client, LOCAL)

    def _handler(self, path: str) -> LocalHandler:
        """The handler of a local path (the caller knows it is one)."""
        handler = self.exact.get(path)
        if handler is None:
            handler = next(h for prefix, h in self.prefixes if path.startswith(prefix))
        return handler

    def _answer(self, request: Request, client: ClientConnection, route: Route) -> None:
        if request.method not in ("GET", "HEAD"):
            send_error(request, client, Family.NEUTRAL, 405, b"allow: GET, HEAD\r\n")
            return
        result = self._handler(request.path)(request)
        if isinstance(result, tuple):
            send_reply(result, request, client)
        else:
            self.tasks.spawn(self._send_later(result, request, client))

    async def _send_later(
        self, pending: Awaitable[Reply], request: Request, client: ClientConnection
    ) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("local route failed", extra={"path": request.log_path})
            send_error(request, client, Family.NEUTRAL, 500)
            return
        send_reply(reply, request, client)

    async def readyz(self, request: Request) -> Reply:
        """200 when Redis and every service answer, else 503 naming what is not (checked at
        most once per READY_CACHE_SECONDS)."""
        return await self.readiness.reply()

    def metrics(self, request: Request) -> Reply:
        """Prometheus exposition: this worker's latest counts, and every worker's in
        multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by scripts.serve). Only for TCP
        peers in the metrics allow-list (shared.netaccess; never X-Forwarded-For: the
        client writes that); others get the same 404 as any unknown path."""
        if not peer_allowed(request.peer, self.metrics_allow):
            return 404, JSON, cached_error_body(Family.NEUTRAL, 404)
        self.tally.flush()
        body, content_type = render_metrics()
        return 200, content_type, body


def healthz(request: Request) -> Reply:
    """The gateway process is up; no I/O."""
    return 200, JSON, to_json(k2_body(200, "OK"))


def docs(request: Request) -> Reply:
    """OpenAPI document and the docs page, from `gateway.docs` when it is installed."""
    asset = _docs_asset(request.path)
    if asset is None:
        return 404, JSON, cached_error_body(Family.NEUTRAL, 404)
    content_type, body = asset
    return 200, content_type, body


def _docs_asset(path: str) -> tuple[str, bytes] | None:
    """`gateway.docs.docs_asset(path)`, imported on first use; None when it is absent."""
    try:
        from .docs import docs_asset
    except ImportError:
        return None
    return docs_asset(path)
