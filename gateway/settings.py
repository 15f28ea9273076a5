"""The gateway's settings: one typed schema (see shared.settings); GatewayConfig uses it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.exceptions import ConfigError
from shared.netaccess import Network, parse_networks
from shared.settings import Integer, flag, seconds, setting, text

from .upstream import Target

NON_NEGATIVE = Integer(minimum=0)
RouteLimits = tuple[tuple[str, int], ...]  # (path prefix, requests per minute)
# The login pool when neither GATEWAY_USSD_LOGIN_UPSTREAMS nor GATEWAY_USSD_UPSTREAMS is set.
DEFAULT_LOGIN_UPSTREAMS = (Target("127.0.0.1", 8083),)


def parse_targets(name: str, raw: str) -> tuple[Target, ...]:
    """`host:port,host:port` (IPv6 as `[::1]:8081`) into targets; at least one."""
    targets = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: {item!r} is not host:port")
        targets.append(Target(host, int(port)))
    if not targets:
        raise ConfigError(f"{name} lists no upstream (expected host:port[,host:port...])")
    return tuple(targets)


def parse_route_limits(raw: str, name: str = "GATEWAY_RATE_LIMIT_ROUTES") -> RouteLimits:
    """`/api/auth/=600,/login/=120` into (prefix, per-minute limit), longest prefix first."""
    limits: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        prefix, sep, value = item.rpartition("=")
        prefix = prefix.strip()
        value = value.strip()
        if not sep or not prefix.startswith("/") or not value.isdigit():
            raise ConfigError(f"{name}: {item!r} is not /path/prefix=requests-per-minute")
        limits[prefix] = int(value)
    return tuple(sorted(limits.items(), key=lambda kv: len(kv[0]), reverse=True))


def route_limits(name: str, raw: str) -> RouteLimits:
    """The schema's parser for GATEWAY_RATE_LIMIT_ROUTES."""
    return parse_route_limits(raw, name)


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway reads, besides shared.settings.CommonSettings."""

    port: int = setting(
        "GATEWAY_PORT", Integer(1, 65535), 8080, "Gateway port (the public entry point)"
    )
    # One event loop uses about one core at full load. On the 2-core reference machine the
    # other core belongs to the services behind the gateway, and a second gateway worker
    # measured slower, not faster.
    workers: int = setting(
        "GATEWAY_WORKERS",
        Integer(minimum=1),
        1,
        "Gateway processes (one event loop uses about a core; the services need the other)",
    )
    host: str | None = setting(
        "GATEWAY_HOST",
        text,
        None,
        "Address `python -m gateway.server` listens on when started without `--host`",
        shown="`BIND_HOST`",
    )
    ussd_upstreams: tuple[Target, ...] = setting(
        "GATEWAY_USSD_UPSTREAMS",
        parse_targets,
        (Target("127.0.0.1", 8081),),
        "USSD replicas: `host:port` list, comma-separated; DNS names are re-resolved",
    )
    # None: see GatewayConfig (the USSD replicas when only those were named).
    ussd_login_upstreams: tuple[Target, ...] | None = setting(
        "GATEWAY_USSD_LOGIN_UPSTREAMS",
        parse_targets,
        None,
        "USSD login pool replicas, for `POST /api/auth/login`",
        shown=f"`{DEFAULT_LOGIN_UPSTREAMS[0].host}:{DEFAULT_LOGIN_UPSTREAMS[0].port}` (the USSD "
        "replicas when only "
        "`GATEWAY_USSD_UPSTREAMS` is set)",
    )
    sabong_upstreams: tuple[Target, ...] = setting(
        "GATEWAY_SABONG_UPSTREAMS",
        parse_targets,
        (Target("127.0.0.1", 8082),),
        "Sabong replicas, as above",
    )
    rate_limit: int = setting(
        "GATEWAY_RATE_LIMIT",
        NON_NEGATIVE,
        6000,
        "Requests per minute per client address (API paths and `/readyz`), counted in Redis; "
        "`0` turns limiting off",
    )
    max_body_bytes: int = setting(
        "GATEWAY_MAX_BODY_BYTES",
        NON_NEGATIVE,
        65536,
        "Larger request bodies are refused with 413",
    )
    connect_timeout: float = setting(
        "GATEWAY_CONNECT_TIMEOUT",
        seconds,
        1.0,
        "Seconds to connect to a replica before trying another (502 when none answers)",
    )
    read_timeout: float = setting(
        "GATEWAY_READ_TIMEOUT",
        seconds,
        30.0,
        "Seconds to wait for a replica's answer (then 504)",
    )
    dns_refresh_seconds: float = setting(
        "GATEWAY_DNS_REFRESH_SECONDS",
        seconds,
        5.0,
        "How often upstream DNS names are resolved again (picks up `--scale` changes)",
    )
    rate_limit_routes: RouteLimits = setting(
        "GATEWAY_RATE_LIMIT_ROUTES",
        route_limits,
        (),
        "Per-prefix limits, e.g. `/api/auth/=600,/login/=120`; longest prefix wins; `=0` "
        "turns one route off",
        shown="empty",
    )
    replica_retry_seconds: float = setting(
        "GATEWAY_REPLICA_RETRY_SECONDS",
        seconds,
        2.0,
        "A replica that refused a connection is skipped this long, then probed again",
    )
    upstream_idle_seconds: float = setting(
        "GATEWAY_UPSTREAM_IDLE_SECONDS",
        seconds,
        1.0,
        "Idle pooled upstream connections are retired after this long",
    )
    max_idle_per_replica: int = setting(
        "GATEWAY_MAX_IDLE_PER_REPLICA",
        NON_NEGATIVE,
        64,
        "Idle upstream connections kept per replica",
    )
    client_keepalive_seconds: float = setting(
        "GATEWAY_CLIENT_KEEPALIVE_SECONDS",
        seconds,
        5.0,
        "Idle client connections are closed after this long",
    )
    client_timeout: float = setting(
        "GATEWAY_CLIENT_TIMEOUT",
        seconds,
        10.0,
        "A request's headers and body must arrive within this (stops slow-trickle clients)",
    )
    access_log: bool = setting(
        "GATEWAY_ACCESS_LOG",
        flag,
        True,
        "JSON access log of the gateway on (`1`) or off (`0`)",
    )
    metrics_allow: tuple[Network, ...] | None = setting(
        "GATEWAY_METRICS_ALLOW",
        parse_networks,
        None,
        "The same list for the gateway alone (older name, still honoured when set)",
        shown="`METRICS_ALLOW`",
    )
