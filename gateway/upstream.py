"""The upstream side's vocabulary: its errors, what receives an answer, and its settings.

The gateway's client for the upstream replicas is in five small pieces, callback-driven
(a pooled connection writes the request and feeds the parsed answer straight to a sink,
the client's relay, with no task or future on the common path):
- `connection.UpstreamConnection`: one keep-alive HTTP/1.1 connection, parsed by httptools;
- `pool.Replica`: one replica's idle connections (newest first), connects and health;
- `exchange.Exchange`: one request on its way, and the retry rule (the one place a
  request may be sent twice: only when it never left);
- `balancing.Service`: replica choice by fewest requests in flight, refused replicas
  skipped and probed until they answer again;
- `dns`: re-resolving upstream names (every A/AAAA record is a replica, so
  `docker compose --scale sabong=3` needs no configuration).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.observability import UPSTREAM_ERRORS

if TYPE_CHECKING:
    from .connection import UpstreamConnection


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
