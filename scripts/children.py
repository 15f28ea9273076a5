"""The children of `make run`: the stores and the components, started, probed and stopped
with the one helper in devtools.processes."""

from __future__ import annotations

import signal
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devtools.embedded import EmbeddedRedis
from devtools.postgres import EmbeddedPostgres
from devtools.processes import (
    PROBE_TIMEOUT_SECONDS,
    ServerProcess,
    StartupError,
    group_members,
    http_ok,
)
from shared.redis import connect, ping

__all__ = ["Child", "StartupError", "group_members"]


@dataclass
class Child(ServerProcess):
    """A component `make run` starts (or, for an external store, only probes)."""

    probe_url: str = ""

    @classmethod
    def for_redis(cls, redis: EmbeddedRedis, env: dict[str, str]) -> Child:
        """The bundled redis-server; it writes its own log in its data directory."""
        return cls(
            "redis", redis.command(), env, redis.data_dir / "redis.log", probe_url=redis.local_url
        )

    @classmethod
    def external_redis(cls, url: str) -> Child:
        """A Redis given by REDIS_URL: waited for, never started or stopped."""
        return cls("redis", None, {}, None, probe_url=url)

    @classmethod
    def for_postgres(cls, postgres: EmbeddedPostgres, env: dict[str, str]) -> Child:
        """The bundled PostgreSQL (initialised on first use); SIGINT is its fast shutdown."""
        postgres.initialise()
        return cls(
            "postgres", postgres.command(), env, postgres.log_path, probe_url=postgres.local_url,
            account=postgres.run_as, stop_signal=signal.SIGINT, cwd=postgres.data_dir,
        )  # fmt: skip

    @classmethod
    def external_postgres(cls, url: str) -> Child:
        """A PostgreSQL given by DATABASE_URL: waited for, never started or stopped."""
        return cls("postgres", None, {}, None, probe_url=url)

    def ready(self) -> bool:
        """True when the component answers its readiness probe."""
        if self.probe_url.startswith(("redis", "unix")):
            client = connect(self.probe_url)
            try:
                return ping(client)
            finally:
                client.close()
        if self.probe_url.startswith("postgresql"):
            return postgres_ok(self.probe_url)
        return http_ok(self.probe_url)


def postgres_ok(url: str) -> bool:
    """True when PostgreSQL accepts a connection within the probe timeout."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(PROBE_TIMEOUT_SECONDS))).close()
    except psycopg.Error:
        return False
    return True


def probe_host(host: str) -> str:
    """The address to reach a server bound to `host` (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding to it
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


def port_in_use(host: str, port_number: int) -> bool:
    """True when a server could not bind `host:port_number` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so connections in TIME_WAIT do not count as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port_number))
        except OSError:
            return True
    return False


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, so it can be printed."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
