"""The gateway's settings, read once from `shared.config.Settings` and checked at startup."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings
from shared.exceptions import ConfigError

# DEFAULT_METRICS_ALLOW and parse_networks are re-exported: they used to live here.
from shared.netaccess import DEFAULT_METRICS_ALLOW as DEFAULT_METRICS_ALLOW
from shared.netaccess import Network, metrics_allow
from shared.netaccess import parse_networks as parse_networks

from .upstream import Target, Timeouts

DEFAULT_UPSTREAMS = {
    "ussd": "127.0.0.1:8081",
    # The USSD login pool (`python -m scripts.serve ussd-login`): see routing.ROUTES.
    "ussd-login": "127.0.0.1:8083",
    "sabong": "127.0.0.1:8082",
}
DEFAULT_RATE_LIMIT = 6000  # requests per minute per client address


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs to know, validated."""

    upstreams: dict[str, tuple[Target, ...]]
    timeouts: Timeouts
    max_body_bytes: int
    rate_limit: int
    route_limits: tuple[tuple[str, int], ...]
    max_idle_per_replica: int
    access_log: bool
    redis_url: str | None
    client_keepalive: float = 5.0
    client_timeout: float = 10.0
    # Who may read /metrics (shared.netaccess; loopback and private ranges by default). The
    # gateway is the public entry point; everyone else gets a 404.
    metrics_allow: tuple[Network, ...] = ()

    @property
    def rate_limiting(self) -> bool:
        """`GATEWAY_RATE_LIMIT=0` is the master switch: off means no limit anywhere."""
        return self.rate_limit > 0

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        """Parse and check every `GATEWAY_*` setting; a bad one is a ConfigError."""
        upstreams = {
            service: parse_targets(upstreams_setting(service), default_upstreams(settings, service))
            for service in DEFAULT_UPSTREAMS
        }
        timeouts = Timeouts(
            connect=_positive_float(settings, "GATEWAY_CONNECT_TIMEOUT", 1.0),
            read=_positive_float(settings, "GATEWAY_READ_TIMEOUT", 30.0),
            idle=_positive_float(settings, "GATEWAY_UPSTREAM_IDLE_SECONDS", 1.0),
            replica_retry=_positive_float(settings, "GATEWAY_REPLICA_RETRY_SECONDS", 2.0),
            dns_refresh=_positive_float(settings, "GATEWAY_DNS_REFRESH_SECONDS", 5.0),
        )
        config = cls(
            upstreams=upstreams,
            timeouts=timeouts,
            max_body_bytes=_non_negative_int(settings, "GATEWAY_MAX_BODY_BYTES", 65536),
            rate_limit=_non_negative_int(settings, "GATEWAY_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            route_limits=parse_route_limits(settings.get("GATEWAY_RATE_LIMIT_ROUTES")),
            max_idle_per_replica=_non_negative_int(settings, "GATEWAY_MAX_IDLE_PER_REPLICA", 64),
            access_log=_flag(settings, "GATEWAY_ACCESS_LOG", True),
            redis_url=settings.redis_url,
            client_keepalive=_positive_float(settings, "GATEWAY_CLIENT_KEEPALIVE_SECONDS", 5.0),
            client_timeout=_positive_float(settings, "GATEWAY_CLIENT_TIMEOUT", 10.0),
            metrics_allow=metrics_allow(settings, override="GATEWAY_METRICS_ALLOW"),
        )
        if config.rate_limiting and not config.redis_url:
            raise ConfigError(
                "REDIS_URL is not set: the gateway keeps its rate limits in Redis so every "
                "gateway replica shares them. Set REDIS_URL, or GATEWAY_RATE_LIMIT=0 to "
                "turn rate limiting off."
            )
        return config


def upstreams_setting(service: str) -> str:
    """`GATEWAY_USSD_LOGIN_UPSTREAMS` for `ussd-login`, and so on."""
    return f"GATEWAY_{service.upper().replace('-', '_')}_UPSTREAMS"


def default_upstreams(settings: Settings, service: str) -> str:
    """The configured upstream list of `service`, or its default.

    The login pool's default is the USSD replicas when those were set and it was not: a
    deployment that names its USSD replicas but runs no separate login pool keeps
    working, logins and all, as before the pool existed.
    """
    configured = settings.get(upstreams_setting(service))
    if configured:
        return configured
    if service == "ussd-login" and settings.get(upstreams_setting("ussd")):
        return settings.get(upstreams_setting("ussd"))
    return DEFAULT_UPSTREAMS[service]


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


def parse_route_limits(raw: str) -> tuple[tuple[str, int], ...]:
    """`/api/auth/=600,/login/=120` into (prefix, per-minute limit), longest prefix first."""
    limits: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        prefix, sep, value = item.rpartition("=")
        prefix = prefix.strip()
        value = value.strip()
        if not sep or not prefix.startswith("/") or not value.isdigit():
            raise ConfigError(
                f"GATEWAY_RATE_LIMIT_ROUTES: {item!r} is not /path/prefix=requests-per-minute"
            )
        limits[prefix] = int(value)
    return tuple(sorted(limits.items(), key=lambda kv: len(kv[0]), reverse=True))


def _positive_float(settings: Settings, name: str, default: float) -> float:
    raw = settings.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def _non_negative_int(settings: Settings, name: str, default: int) -> int:
    value = settings.get_int(name, default)
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _flag(settings: Settings, name: str, default: bool) -> bool:
    raw = settings.get(name).strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0 (or true/false), got {raw!r}")
