"""The /readyz answer: Redis (when rate limiting uses it) and each service's own /readyz.

One check answers every call for READY_CACHE_SECONDS, and calls that arrive while a check
runs share it: /readyz cannot multiply the pings to Redis and to every service (per
gateway worker: each holds its own answer).
"""

from __future__ import annotations

import asyncio
import time

from shared.responses import k2_body, to_json

from .balancing import Service
from .ratelimit import RateLimiter
from .replies import JSON, Reply
from .tasks import Tasks
from .upstream import UpstreamError

READY_CHECK_TIMEOUT_SECONDS = 2.0
READY_CACHE_SECONDS = 1.0
READY_PAYLOAD = b"GET /readyz HTTP/1.1\r\nhost: gateway\r\nx-request-id: gateway-readyz\r\n\r\n"


class Readiness:
    """Checks what the gateway depends on, at most once per READY_CACHE_SECONDS."""

    def __init__(
        self, services: dict[str, Service], limiter: RateLimiter | None, tasks: Tasks
    ) -> None:
        self.services = services
        self.limiter = limiter
        self.tasks = tasks
        # The last answer and when it expires; the check in progress, if any.
        self._reply: Reply | None = None
        self._until = 0.0
        self._check: asyncio.Future[Reply] | None = None

    async def reply(self) -> Reply:
        """The cached answer while fresh, else one shared new check."""
        if self._reply is not None and time.monotonic() < self._until:
            return self._reply
        if self._check is None:
            check = asyncio.ensure_future(self._check_now())
            self._check = check
            self.tasks.track(check)
            check.add_done_callback(self._check_done)
        # Shielded: a caller that goes away must not cancel the check the others await.
        return await asyncio.shield(self._check)

    async def _check_now(self) -> Reply:
        report = await self.report()
        ready = all(v in ("ok", "not used") for v in report.values())
        status = 200 if ready else 503
        reply = status, JSON, to_json(k2_body(status, "Ready" if ready else "Not ready", report))
        self._reply = reply
        self._until = time.monotonic() + READY_CACHE_SECONDS
        return reply

    def _check_done(self, check: asyncio.Future[Reply]) -> None:
        if self._check is check:
            self._check = None
        if not check.cancelled():
            check.exception()  # retrieved here; each caller's await re-raises it

    async def report(self) -> dict[str, str]:
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
        try:
            status, _ = await asyncio.wait_for(
                service.fetch("GET", READY_PAYLOAD), READY_CHECK_TIMEOUT_SECONDS
            )
        except (UpstreamError, TimeoutError):
            return "unreachable"
        return "ok" if status == 200 else "not ready"
