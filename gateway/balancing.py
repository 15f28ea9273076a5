"""The replicas of one upstream service: which one takes the next request, and the
background work that keeps the list right (probing down replicas, re-resolving names).

A replica is chosen by fewest requests in flight, round robin among equals. One that
refused or timed out a connect is down: skipped while a healthy one is left, probed in
the background every `replica_retry` seconds, and back in rotation once a connect works.
"""

from __future__ import annotations

import logging
import time

from . import dns
from .connection import UpstreamConnection
from .exchange import Collector, Exchange
from .pool import Replica
from .upstream import ReplicaUnreachable, Sink, Target, Timeouts

log = logging.getLogger("gateway.upstream")


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
        self._resolved_at = time.monotonic()
        self._set_addresses(await dns.resolve(self.name, self.targets, list(self._by_address)))

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
