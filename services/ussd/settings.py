"""The USSD service's settings: one typed schema (see shared.settings)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.exceptions import ConfigError
from shared.netaccess import Network, parse_networks
from shared.settings import Integer, setting, text

from .passwords import DEFAULT_N, MAX_N
from .proxies import DEFAULT_TRUSTED_PROXIES

GENERATED = "generated in development"
POSITIVE = Integer(minimum=1)


def scrypt_cost(name: str, raw: str) -> int:
    """scrypt's N: a power of two from 2 to passwords.MAX_N."""
    value: int = Integer(2, MAX_N)(name, raw)
    if value & (value - 1):
        raise ConfigError(f"{name} must be a power of two, got {value}")
    return value


@dataclass(frozen=True)
class UssdSettings:
    """Everything the USSD app reads, besides shared.settings.CommonSettings."""

    login_jwt_secret: str = setting(
        "USSD_LOGIN_JWT_SECRET",
        text,
        "",
        "HS256 key of K2 login JWTs (at least 32 bytes)",
        shown=GENERATED,
    )
    service_id_secret: str = setting(
        "USSD_SERVICE_ID_SECRET",
        text,
        "",
        "HS256 key of K2 Service IDs (at least 32 bytes, distinct from the above)",
        shown=GENERATED,
    )
    scrypt_n: int = setting(
        "USSD_SCRYPT_N",
        scrypt_cost,
        DEFAULT_N,
        "scrypt cost of password hashes (r=8, p=1); raising it re-hashes on next login",
    )
    login_hash_concurrency: int = setting(
        "USSD_LOGIN_HASH_CONCURRENCY",
        POSITIVE,
        1,
        "Password hashes run at once per worker, so a login flood cannot starve other endpoints",
    )
    login_jwt_ttl: int = setting(
        "USSD_LOGIN_JWT_TTL", POSITIVE, 3600, "Lifetime of a K2 login JWT, seconds"
    )
    # Admin changes rewrite a cached record at once, so this bounds only memory, and how
    # long a change PostgreSQL refused at commit keeps the client locked out (client_cache).
    client_cache_ttl: int = setting(
        "USSD_CLIENT_CACHE_TTL",
        POSITIVE,
        300,
        "Seconds Redis caches a K2 client record read from PostgreSQL (admin changes rewrite "
        "it at once; this bounds memory, and how long a change whose commit failed keeps the "
        "client locked out)",
    )
    login_max_failures_per_username: int = setting(
        "USSD_LOGIN_MAX_FAILURES_PER_USERNAME",
        POSITIVE,
        10,
        "Failed logins for one username from one source address per window before 429",
    )
    login_max_failures_per_address: int = setting(
        "USSD_LOGIN_MAX_FAILURES_PER_ADDRESS",
        POSITIVE,
        50,
        "Failed logins per source address (IPv6: per /64) per window before 429",
    )
    login_failure_window: int = setting(
        "USSD_LOGIN_FAILURE_WINDOW",
        POSITIVE,
        900,
        "Window of the failed-login counters, seconds",
    )
    login_slowdown_after: int = setting(
        "USSD_LOGIN_SLOWDOWN_AFTER",
        POSITIVE,
        10,
        "Failed logins for a username from all addresses before its logins are delayed "
        "(never refused)",
    )
    login_max_delay_ms: int = setting(
        "USSD_LOGIN_MAX_DELAY_MS",
        POSITIVE,
        2000,
        "The slowdown starts at 1/8 of this and doubles every `USSD_LOGIN_SLOWDOWN_AFTER` "
        "failures up to it",
    )
    login_delay_concurrency: int = setting(
        "USSD_LOGIN_DELAY_CONCURRENCY",
        POSITIVE,
        4,
        "Logins sleeping out a slowdown at once per worker; beyond it they are not delayed",
    )
    trusted_proxy_count: int = setting(
        "USSD_TRUSTED_PROXY_COUNT",
        Integer(minimum=0),
        1,
        "Proxies trusted in `X-Forwarded-For` (the gateway); `0` ignores the header altogether",
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "USSD_TRUSTED_PROXIES",
        parse_networks,
        parse_networks("USSD_TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES),
        "CIDRs of the peers whose `X-Forwarded-For` is believed (the gateway); from anyone "
        "else it is dropped",
        shown="loopback and private ranges",
    )
    max_body_bytes: int = setting(
        "USSD_MAX_BODY_BYTES",
        POSITIVE,
        64 * 1024,
        "Larger bodies get 413 from the service itself",
    )
