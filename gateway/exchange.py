"""One request on its way to a replica, and the retry rule: the one place a request may
be sent twice.

- a connect that fails or times out never reached the replica: try the next one;
- a pooled connection is checked with poll(2) before reuse, so one the replica closed
  (or died with) is dropped, never written to;
- a *reused* connection that dies before a single response byte arrived is the classic
  "upstream closed an idle keep-alive connection while we wrote" race. It is retried
  once, on a fresh connection, only for idempotent methods (RFC 9110 9.2.2): a POST may
  have been processed, so it gets a 502 instead. Pooled connections are retired after
  `idle` seconds, below gunicorn's keep-alive, to keep that race rare.
- a connection that closed before the request was written to it (a new connection the
  replica accepted and reset at once: its `connection_lost` can run before the connect
  task resumes) never carried the request: it is retried on another replica, or on a
  fresh connection to the same one, at most `UNSENT_RETRIES` times, then 502.
Anything else after the request was written (timeout, reset, garbage) is never retried.
Every path ends the exchange with exactly one call to its sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from shared.observability import UPSTREAM_ERRORS

from .upstream import (
    NeverSent,
    NoReplicaReachable,
    ReplicaUnreachable,
    Sink,
    StaleConnection,
    UpstreamBroken,
    UpstreamError,
    count_failure,
)

if TYPE_CHECKING:
    from .balancing import Service
    from .connection import UpstreamConnection
    from .pool import Replica

log = logging.getLogger("gateway.upstream")

# Extra attempts for a request whose connection closed before it was written (bounded:
# a replica that resets every connection must cost a prompt 502, not a loop).
UNSENT_RETRIES = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CONNECTING: set[asyncio.Future[None]] = set()


class Exchange:
    """One request on its way to a replica of `service`, retried only where safe."""

    __slots__ = (
        "method",
        "payload",
        "replica",
        "retry_stale",
        "retry_unsent",
        "service",
        "sink",
        "tried",
    )

    def __init__(self, service: Service, method: str, payload: bytes, sink: Sink) -> None:
        self.service = service
        self.method = method
        self.payload = payload
        self.sink = sink
        self.retry_stale = method in IDEMPOTENT_METHODS
        self.retry_unsent = UNSENT_RETRIES
        self.replica: Replica | None = None
        self.tried: list[Replica] = []

    def start(self) -> None:
        now = time.monotonic()
        replica = self.service.pick(now, self.tried)
        if replica is None:
            error = NoReplicaReachable(f"no replica of {self.service.name} reachable")
            count_failure(self.service.name, error)
            self.sink.upstream_failed(error)
            return
        conn = replica.pooled(now)
        if conn is not None:
            self._send(replica, conn)
        else:
            self.tried.append(replica)
            task = asyncio.ensure_future(self._connect(replica))
            _CONNECTING.add(task)  # a reference, or the task may vanish mid-connect
            task.add_done_callback(self._connected)

    async def _connect(self, replica: Replica) -> None:
        try:
            conn = await replica.connect()
        except ReplicaUnreachable:
            self.start()  # never sent: the next replica may take it
            return
        self._send(replica, conn)

    def _connected(self, task: asyncio.Future[None]) -> None:
        """Retrieve the connect task's outcome: a bug there still answers the client."""
        _CONNECTING.discard(task)
        if task.cancelled():
            return  # shutdown
        error = task.exception()
        if error is not None:
            log.error("upstream connect task failed", exc_info=error)
            self.upstream_failed(UpstreamBroken("internal error while connecting upstream"))

    def _send(self, replica: Replica, conn: UpstreamConnection) -> None:
        if not conn.writable():
            # Reset between connect and now (its connection_lost already ran): the
            # request never left, so it may go elsewhere.
            conn.close()
            self.replica = replica
            self.upstream_failed(NeverSent("upstream connection closed before sending"))
            return
        self.replica = replica
        replica.in_flight += 1
        conn.send(self.payload, self)

    def upstream_failed(self, error: UpstreamError) -> None:
        """Called by the connection; retries what is safe to retry, else tells the sink."""
        replica = self.replica
        if isinstance(error, NeverSent) and self.retry_unsent and replica is not None:
            UPSTREAM_ERRORS.labels(self.service.name, "closed_before_send_retried").inc()
            self.retry_unsent -= 1
            if replica in self.tried and len(self.tried) >= len(self.service.replicas):
                self.tried.remove(replica)  # no other replica left: a fresh connection
            self.start()
            return
        if isinstance(error, StaleConnection) and self.retry_stale and replica is not None:
            UPSTREAM_ERRORS.labels(self.service.name, "stale_retried").inc()
            self.retry_stale = False
            replica.close_idle()  # its siblings are likely stale too: connect afresh
            if replica in self.tried:
                self.tried.remove(replica)
            self.start()
            return
        count_failure(self.service.name, error)
        self.sink.upstream_failed(error)


class Collector:
    """A sink that gathers a whole (small) answer for the gateway's own checks."""

    def __init__(self) -> None:
        self.future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.body: list[bytes] = []

    def upstream_head(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: UpstreamConnection
    ) -> None:
        self.status = status

    def upstream_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def upstream_end(self) -> None:
        if not self.future.done():
            self.future.set_result((self.status, b"".join(self.body)))

    def upstream_failed(self, error: UpstreamError) -> None:
        if not self.future.done():
            self.future.set_exception(error)
