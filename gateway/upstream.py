"""Pooled keep-alive HTTP/1.1 client for the upstream replicas, on asyncio and httptools.

Callback-driven: a pooled connection writes the request and feeds the parsed answer
straight to a sink (the client's relay), with no task or future on the common path.
A `Replica` keeps its idle connections (newest first); a `Service` balances across its
replicas by fewest requests in flight, marks a replica that refuses connections as
down, probes it in the background and re-resolves DNS names (every A/AAAA record is a
replica, so `docker compose --scale sabong=3` needs no configuration).

Retry rule, the one place a request may be sent twice (`Exchange`):
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
import ipaddress
import logging
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httptools

from shared.observability import UPSTREAM_ERRORS

log = logging.getLogger("gateway.upstream")

# Extra attempts for a request whose connection closed before it was written (bounded:
# a replica that resets every connection must cost a prompt 502, not a loop).
UNSENT_RETRIES = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_POLLER = select.poll()
_CONNECTING: set[asyncio.Future[None]] = set()
_HANGUP_EVENTS = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)


class UpstreamError(Exception):
    """The request could not be completed by an upstream replica."""


class NoReplicaReachable(UpstreamError):
    """Every replica refused or timed out the connection: the request was never sent."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the read timeout."""


class UpstreamBroken(UpstreamError):
    """The connection failed or the upstream sent garbage after the request was sent."""


class StaleConnection(UpstreamBroken):
    """A reused connection closed before any response byte: maybe never processed."""


class NeverSent(UpstreamError):
    """The connection closed before the request was written to it: safe to retry."""


class ReplicaUnreachable(UpstreamError):
    """Connecting to one replica failed or timed out (nothing was sent)."""


# `kind` label of gateway_upstream_errors_total for a request that failed with the error
# (most specific class first).
FAILURE_KINDS: tuple[tuple[type[UpstreamError], str], ...] = (
    (NoReplicaReachable, "no_replica"),
    (NeverSent, "closed_before_send"),
    (UpstreamTimeout, "timeout"),
    (StaleConnection, "stale_connection"),
    (UpstreamBroken, "broken"),
)


def count_failure(service: str, error: BaseException) -> None:
    """Count one upstream failure of `service` by kind."""
    if isinstance(error, ConnectionRefusedError):
        kind = "connect_refused"
    elif isinstance(error, TimeoutError):
        kind = "connect_timeout"
    elif isinstance(error, OSError):
        kind = "connect_failed"
    else:
        kind = next((k for cls, k in FAILURE_KINDS if isinstance(error, cls)), "other")
    UPSTREAM_ERRORS.labels(service, kind).inc()


class Sink(Protocol):
    """Receives one upstream answer as it is parsed."""

    def upstream_head(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: UpstreamConnection
    ) -> None: ...

    def upstream_body(self, chunk: bytes) -> None: ...

    def upstream_end(self) -> None: ...

    def upstream_failed(self, error: UpstreamError) -> None: ...


@dataclass(frozen=True)
class Target:
    """One configured upstream: an IP literal (one replica) or a DNS name (all its records)."""

    host: str
    port: int

    @property
    def is_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


@dataclass
class Timeouts:
    """Every time limit of the upstream side, in seconds."""

    connect: float = 1.0
    read: float = 30.0
    idle: float = 1.0
    replica_retry: float = 2.0
    dns_refresh: float = 5.0


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to one replica, carrying one request at a time."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.transport: Any = None
        self.fd = -1
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.sink: Sink | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received = 0
        self.uses = 0
        self.idle_since = 0.0
        self.deadline = 0.0
        self.alive = True
        self.head_request = False
        self.read_timeout = replica.timeouts.read
        self.busy = replica.service.busy

    # asyncio protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self.sink is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self.received += len(data)
        self.deadline = time.monotonic() + self.read_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            log.exception("relaying an upstream answer failed")
            self._fail(UpstreamBroken("internal error while relaying the answer"))
        except httptools.HttpParserError:
            self._fail(UpstreamBroken("malformed response from upstream"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.replica.forget(self)
        if self.sink is not None:
            if self.received == 0 and self.uses > 1:
                self._fail(StaleConnection("reused upstream connection closed"))
            else:
                self._fail(UpstreamBroken("upstream closed the connection"))

    # httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.headers = []  # interim answer (100, 103): the real one follows
            return
        self.status = status
        sink = self.sink
        if sink is None:
            return
        sink.upstream_head(status, self.headers, self)
        if self.head_request:
            # httptools cannot be told a HEAD answer has no body: finish here and
            # retire the connection rather than guess where the next answer starts.
            self._complete(reusable=False)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self.status and self.sink is not None:
            self._complete(self.parser.should_keep_alive())

    # client side ------------------------------------------------------------------
    def usable(self, now: float) -> bool:
        """True when this pooled connection may carry another request."""
        return (
            self.alive
            and not self.transport.is_closing()
            and now - self.idle_since < self.replica.timeouts.idle
            and not self._peer_hung_up()
        )

    def _peer_hung_up(self) -> bool:
        """True when the kernel holds a FIN/RST (or stray bytes) for this idle connection
        that the event loop has not processed yet: a replica that just died or closed
        it. One poll(2) per reuse closes most of the stale-write race for POST."""
        if self.fd < 0:
            return False
        _POLLER.register(self.fd, _HANGUP_EVENTS)
        try:
            return bool(_POLLER.poll(0))
        except OSError:
            return True
        finally:
            _POLLER.unregister(self.fd)

    def writable(self) -> bool:
        """False once the connection closed or is closing: writing would fail."""
        return self.alive and not self.transport.is_closing()

    def send(self, payload: bytes, exchange: Exchange) -> None:
        """Write one complete request; the answer (or failure) goes to `exchange`."""
        self.uses += 1
        self.exchange = exchange
        self.sink = exchange.sink
        self.status = 0
        self.headers = []
        self.received = 0
        self.head_request = exchange.method == "HEAD"
        self.deadline = time.monotonic() + self.read_timeout
        self.busy.add(self)
        try:
            self.transport.write(payload)
        except RuntimeError:  # uvloop: "the handler is closed"; nothing went out
            self._fail(NeverSent("upstream connection closed before the request was sent"))

    def time_out(self) -> None:
        """The read timeout passed without a complete answer."""
        self._fail(UpstreamTimeout("upstream read timeout"))

    def pause(self) -> None:
        if self.alive:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.alive:
            self.transport.resume_reading()

    def _complete(self, reusable: bool) -> None:
        sink = self.sink
        assert sink is not None
        self.sink = self.exchange = None
        self.busy.discard(self)
        self.replica.release(self, reusable)
        sink.upstream_end()

    def _fail(self, error: UpstreamError) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.sink = self.exchange = None
        self.busy.discard(self)
        self.close()
        self.replica.release(self, False)
        exchange.upstream_failed(error)

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        self.alive = False
        if self.transport is not None:
            self.transport.close()


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


class Service:
    """The replicas of one upstream service, balanced by fewest requests in flight."""

    def __init__(
        self, name: str, targets: tuple[Target, ...], timeouts: Timeouts, max_idle: int = 64
    ) -> None:
        self.name = name
        self.targets = targets
        self.timeouts = timeouts
        self.max_idle = max_idle
        self.replicas: list[Replica] = []
        self.busy: set[UpstreamConnection] = set()
        self._by_address: dict[tuple[str, int], Replica] = {}
        self._next = 0
        self._resolved_at = float("-inf")
        self._set_addresses([(t.host, t.port) for t in targets if t.is_literal])

    def send(self, method: str, payload: bytes, sink: Sink) -> None:
        """Send a complete request to one replica; the answer goes to `sink`."""
        Exchange(self, method, payload, sink).start()

    async def fetch(self, method: str, payload: bytes) -> tuple[int, bytes]:
        """Status and body of a small request, for health checks."""
        collector = Collector()
        self.send(method, payload, collector)
        return await collector.future

    def pick(self, now: float, tried: list[Replica]) -> Replica | None:
        """The replica to try next: the healthy one with fewest requests in flight
        (round robin among equals), else a down one that may be back; never one in
        `tried`. None when every replica was tried."""
        replicas = self.replicas
        count = len(replicas)
        if count == 1:
            only = replicas[0]
            return None if tried and only in tried else only
        if not count:
            return None
        self._next = start = (self._next + 1) % count
        best: Replica | None = None
        fallback: Replica | None = None
        for i in range(count):
            replica = replicas[(start + i) % count]
            if tried and replica in tried:
                continue
            if replica.down_until > now:
                fallback = fallback or replica
            elif best is None or replica.in_flight < best.in_flight:
                best = replica
        return best or fallback

    def expire(self, now: float) -> None:
        """Fail requests whose upstream has been silent past the read timeout."""
        for conn in [c for c in self.busy if c.deadline <= now]:
            conn.time_out()

    # maintenance -------------------------------------------------------------------
    async def maintain(self) -> None:
        """Re-resolve names when due, probe down replicas, retire stale idle connections."""
        now = time.monotonic()
        if now - self._resolved_at >= self.timeouts.dns_refresh:
            await self.resolve()
        for replica in list(self.replicas):
            if replica.down_until:
                await self._probe(replica)
            else:
                replica.prune(now)

    async def _probe(self, replica: Replica) -> None:
        """Try a TCP connect to a down replica; success puts it back in rotation."""
        if replica.down_until > time.monotonic():
            return  # not due yet
        try:
            conn = await replica.connect()
        except ReplicaUnreachable:
            return
        replica.in_flight += 1
        replica.release(conn, True)  # a fresh connection ready for the next request

    async def resolve(self) -> None:
        """Turn the configured targets into replica addresses (all DNS records)."""
        loop = asyncio.get_running_loop()
        self._resolved_at = time.monotonic()
        addresses: list[tuple[str, int]] = []
        for target in self.targets:
            if target.is_literal:
                addresses.append((target.host, target.port))
                continue
            try:
                infos = await loop.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            except OSError as exc:
                log.warning(
                    "upstream name did not resolve; keeping the last known replicas",
                    extra={"service": self.name, "host": target.host, "error": str(exc)},
                )
                addresses.extend(a for a in self._by_address if a[1] == target.port)
                continue
            addresses.extend((str(info[4][0]), target.port) for info in infos)
        self._set_addresses(addresses)

    def _set_addresses(self, addresses: list[tuple[str, int]]) -> None:
        """Keep replicas still listed (with their pools), add new ones, retire the rest."""
        wanted = list(dict.fromkeys(addresses))
        current = self._by_address
        for address, replica in list(current.items()):
            if address not in wanted:
                replica.close()
                del current[address]
                log.info("upstream replica removed", extra={"replica": replica.name})
        for address in wanted:
            if address not in current:
                current[address] = Replica(self, address)
                if self._resolved_at > float("-inf"):
                    log.info("upstream replica added", extra={"replica": current[address].name})
        self.replicas = [current[a] for a in wanted]

    def close(self) -> None:
        """Close every pooled connection."""
        for replica in self.replicas:
            replica.close()


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
