"""One upstream replica: its pool of idle keep-alive connections, connects, and health.

Idle connections are reused newest first and retired after `Timeouts.idle` seconds,
below gunicorn's keep-alive, so that the replica rarely closes one as it is reused. A
replica that refuses or times out a connect is marked down for `replica_retry` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .connection import UpstreamConnection
from .upstream import ReplicaUnreachable, count_failure

if TYPE_CHECKING:
    from .balancing import Service

log = logging.getLogger("gateway.upstream")


class Replica:
    """One upstream address: its idle connections, in-flight count and health."""

    def __init__(self, service: Service, address: tuple[str, int]) -> None:
        self.service = service
        self.address = address
        self.name = _format_address(address)
        self.timeouts = service.timeouts
        self.idle: list[UpstreamConnection] = []
        self.in_flight = 0
        self.down_until = 0.0
        self.retired = False

    def is_down(self, now: float) -> bool:
        return self.down_until > now

    def pooled(self, now: float) -> UpstreamConnection | None:
        """The newest idle connection that is still good, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    async def connect(self) -> UpstreamConnection:
        """Open a new connection within the connect timeout; failure marks the replica down."""
        loop = asyncio.get_running_loop()
        host, port = self.address
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), host, port),
                self.timeouts.connect,
            )
        except (OSError, TimeoutError) as exc:
            count_failure(self.service.name, exc)
            self.mark_down(exc)
            raise ReplicaUnreachable(self.name) from exc
        if self.down_until:
            log.info("upstream replica up", extra={"replica": self.name})
            self.down_until = 0.0
        return conn

    def mark_down(self, reason: BaseException | None = None) -> None:
        """Skip this replica until a background probe (or a later retry) reaches it."""
        if not self.down_until:
            log.warning(
                "upstream replica down",
                extra={"replica": self.name, "reason": type(reason).__name__},
            )
        self.down_until = time.monotonic() + self.timeouts.replica_retry

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """A request on `conn` is over: pool the connection or close it."""
        self.in_flight -= 1
        if reusable and conn.alive and not self.retired and len(self.idle) < self.service.max_idle:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        """Called when a connection closes: it must not be handed out again."""
        if conn in self.idle:
            self.idle.remove(conn)

    def prune(self, now: float) -> None:
        """Close pooled connections idle past the limit."""
        limit = self.timeouts.idle
        stale = [c for c in self.idle if now - c.idle_since >= limit]
        for conn in stale:
            conn.close()

    def close_idle(self) -> None:
        """Close every pooled connection (the next request connects afresh)."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Retire the replica: close idle connections, close busy ones on release."""
        self.retired = True
        self.close_idle()


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
