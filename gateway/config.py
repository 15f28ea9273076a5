"""The gateway's configuration, built once from its settings schema and checked at startup."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.config import Settings
from shared.exceptions import ConfigError

# DEFAULT_METRICS_ALLOW and parse_networks are re-exported: they used to live here.
from shared.netaccess import DEFAULT_METRICS_ALLOW as DEFAULT_METRICS_ALLOW
from shared.netaccess import Network
from shared.netaccess import parse_networks as parse_networks

from .logs import configure_logging

# parse_targets and parse_route_limits are re-exported: they used to live here.
from .settings import DEFAULT_LOGIN_UPSTREAMS, GatewaySettings
from .settings import parse_route_limits as parse_route_limits
from .settings import parse_targets as parse_targets
from .upstream import Target, Timeouts


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
        gateway = settings.of(GatewaySettings)
        config = cls(
            upstreams=upstreams(settings, gateway),
            timeouts=Timeouts(
                connect=gateway.connect_timeout,
                read=gateway.read_timeout,
                idle=gateway.upstream_idle_seconds,
                replica_retry=gateway.replica_retry_seconds,
                dns_refresh=gateway.dns_refresh_seconds,
            ),
            max_body_bytes=gateway.max_body_bytes,
            rate_limit=gateway.rate_limit,
            route_limits=gateway.rate_limit_routes,
            max_idle_per_replica=gateway.max_idle_per_replica,
            # As at the services, whose access lines are INFO records: a LOG_LEVEL above
            # INFO silences them.
            access_log=gateway.access_log and settings.common.log_level_number <= logging.INFO,
            redis_url=settings.redis_url,
            client_keepalive=gateway.client_keepalive_seconds,
            client_timeout=gateway.client_timeout,
            metrics_allow=gateway.metrics_allow or settings.common.metrics_allow,
        )
        if config.rate_limiting and not config.redis_url:
            raise ConfigError(
                "REDIS_URL is not set: the gateway keeps its rate limits in Redis so every "
                "gateway replica shares them. Set REDIS_URL, or GATEWAY_RATE_LIMIT=0 to "
                "turn rate limiting off."
            )
        return config


def upstreams(settings: Settings, gateway: GatewaySettings) -> dict[str, tuple[Target, ...]]:
    """The replicas of each upstream service, by service name (see routing.ROUTES).

    The login pool's default is the USSD replicas when those were set and it was not: a
    deployment that names its USSD replicas but runs no separate login pool keeps
    working, logins and all, as before the pool existed.
    """
    login = gateway.ussd_login_upstreams
    if login is None:
        ussd_named = bool(settings.get("GATEWAY_USSD_UPSTREAMS"))
        login = gateway.ussd_upstreams if ussd_named else DEFAULT_LOGIN_UPSTREAMS
    return {"ussd": gateway.ussd_upstreams, "ussd-login": login, "sabong": gateway.sabong_upstreams}


def configure_logging_from(settings: Settings) -> None:
    """The gateway's JSON log at LOG_LEVEL (from the environment or `.env`, as every setting)."""
    level = settings.common.log_level_number
    configure_logging(level)
    # configure_logging keeps the level of an earlier call; this one is the configured one.
    logging.getLogger("gateway").setLevel(level)
