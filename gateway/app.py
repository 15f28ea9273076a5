"""The Gateway: each request through four stages, each answering it or passing it on.

    LocalRoutes  /healthz, /readyz, /metrics, the docs          (gateway/local.py)
    Router       path -> upstream service and API family, 404   (gateway/router.py)
    RateLimit    429 for a client over its per-minute limit     (gateway/ratelimit.py)
    Forwarder    to a replica of the service and back           (gateway/forward.py)

The HTTP layer (gateway/http.py) calls `gateway(request, client)` with each complete
request, and `gateway.reject(...)` for one it refused; `finished` counts each answer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from shared.observability import RequestTally

from .balancing import Service
from .config import GatewayConfig
from .forward import Forwarder
from .http import ClientConnection, Limits, Request, ServerState
from .local import LocalRoutes
from .location import LocationGuard
from .logs import AccessLog
from .ratelimit import RateLimit, RateLimiter, RouteStage
from .readiness import Readiness
from .router import Router
from .routing import ROUTES, Route
from .tasks import Tasks

log = logging.getLogger("gateway")

TICK_SECONDS = 0.1  # upstream read deadlines are checked this often
MAINTENANCE_SECONDS = 0.5


class Gateway:
    """Routes by path prefix to the USSD or Sabong replicas; answers a few paths itself.

    `forwarder` replaces the last stage (the in-process tests record requests there).
    """

    def __init__(
        self,
        config: GatewayConfig,
        routes: tuple[Route, ...] = ROUTES,
        forwarder: RouteStage | None = None,
    ) -> None:
        self.config = config
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
        self.tasks = Tasks()
        self.readiness = Readiness(self.services, self.limiter, self.tasks)
        # The stages, last first: each is handed the one it passes requests on to.
        forward = forwarder or Forwarder(self.services, LocationGuard(self._upstream_addresses))
        self.router = Router(routes, RateLimit(self.limiter, forward))
        self.local = LocalRoutes(
            self.readiness, self.tally, config.metrics_allow, self.limiter, self.tasks, self.router
        )
        self._ticker: asyncio.TimerHandle | None = None
        self._last_second = 0.0

    def __call__(self, request: Request, client: ClientConnection) -> None:
        """Answer one complete request: locally, with an error, or through a replica."""
        self.local(request, client)

    def reject(self, request: Request | None, client: ClientConnection, status: int) -> None:
        """An answer to a request the HTTP layer refused (bad syntax, too large)."""
        assert request is not None
        self.router.refuse(request, client, status)

    def finished(self, request: Request, status: int) -> None:
        """Called once per answered request: its metrics and access log line."""
        seconds = time.perf_counter() - request.started
        self.tally.count(request.route, request.method, status, seconds)
        if self.access_log is not None:
            self.access_log.write(request, status, seconds)

    def _upstream_addresses(self) -> list[tuple[str, int]]:
        """Every upstream host:port: configured names and the replica addresses in use."""
        services = self.services.values()
        addresses = [(target.host, target.port) for s in services for target in s.targets]
        addresses += [replica.address for s in services for replica in s.replicas]
        return addresses

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Resolve upstream names and start the timers (call inside the event loop)."""
        for service in self.services.values():
            await service.resolve()
        self.tasks.spawn(self._maintain())
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
        self.tasks.cancel_all()
        for service in self.services.values():
            service.close()
        if self.limiter is not None:
            await self.limiter.close()
        self.tally.flush()
        if self.access_log is not None:
            self.access_log.flush()
