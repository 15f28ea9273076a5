"""The service's wiring: settings turned into token types, limits, hashing, stores and the
clock; `runtime()` is the one accessor request handlers use."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

from flask import Flask

from shared import redis as shared_redis
from shared.config import Settings
from shared.db import Database, database_from_settings
from shared.exceptions import ConfigError
from shared.request_cycle import current_flask_app
from shared.tokens import TokenType

from .account_store import AccountStore
from .passwords import ScryptParams, hash_password
from .settings import UssdSettings
from .store import UssdStore
from .token_cache import VerifiedTokens

LOGIN_TOKEN_TYP = "k2-login+jwt"  # noqa: S105 (a JWT type name, not a secret)
# The seed's SERVICE_ID header is {"alg":"HS256","typ":"JWT"}; partners may inspect it.
SERVICE_ID_TYP = "JWT"
SERVICE_ID_LIFETIME = 3600
EXTENSION = "ussd"
MISSING_REDIS_URL = (
    "REDIS_URL is not set. Start the platform with `make run` and set REDIS_URL to the "
    "URL it prints (in the environment or in .env), e.g. REDIS_URL=redis://127.0.0.1:PORT/0"
)


Clock = Callable[[], float]  # Unix time in seconds


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins allowed per (username, source address) and per source address in one
    window, and when a username's failures from every address start to slow it down."""

    per_username: int  # from one source address
    per_address: int
    window: int
    slowdown_after: int  # failures of a username, from any address, before the delay
    max_delay_ms: int  # the delay doubles up to this


@dataclass(frozen=True)
class Runtime:
    """Everything a request handler or the admin CLI needs, built once per process."""

    settings: Settings
    store: UssdStore
    database: Database
    accounts: AccountStore
    login_token: TokenType
    service_id_token: TokenType
    scrypt: ScryptParams
    dummy_hash: str
    limits: LoginLimits
    verified_login_tokens: VerifiedTokens
    verified_service_ids: VerifiedTokens
    # Password hashes running at once in this process. scrypt releases the GIL, so without
    # a bound a burst of logins would occupy every thread and core; with it, logins queue
    # and the other endpoints keep their share of the CPU.
    hash_slots: threading.BoundedSemaphore
    # Logins sleeping out a username's slowdown at once in this process. A sleeping login
    # holds a server thread; without a bound an attacker could park every thread on it.
    delay_slots: threading.BoundedSemaphore
    # Unix time (seconds) of every business decision: token iat/exp, record timestamps.
    # Redis TTLs run on Redis's own clock. Tests pin it with set_clock().
    clock: Clock


def build_runtime(settings: Settings) -> Runtime:
    """Validate the USSD settings and create the Redis and PostgreSQL clients (lazily)."""
    url = settings.redis_url
    if not url:
        raise ConfigError(MISSING_REDIS_URL)
    login_key = settings.secret("USSD_LOGIN_JWT_SECRET").encode("utf-8")
    service_key = settings.secret("USSD_SERVICE_ID_SECRET").encode("utf-8")
    if login_key == service_key:
        # One key for both types would let a signature of one type verify as the other.
        raise ConfigError("USSD_LOGIN_JWT_SECRET and USSD_SERVICE_ID_SECRET must differ")
    ussd = settings.of(UssdSettings)
    scrypt = scrypt_params(settings)
    login_token = TokenType(LOGIN_TOKEN_TYP, login_key, ussd.login_jwt_ttl)
    service_id_token = TokenType(SERVICE_ID_TYP, service_key, SERVICE_ID_LIFETIME)
    cache_ttl = ussd.client_cache_ttl
    database = database_from_settings(settings)
    return Runtime(
        settings=settings,
        store=UssdStore(shared_redis.connect(url), client_cache_ttl=cache_ttl),
        database=database,
        accounts=AccountStore(database),
        login_token=login_token,
        service_id_token=service_id_token,
        verified_login_tokens=VerifiedTokens(login_token),
        verified_service_ids=VerifiedTokens(service_id_token),
        hash_slots=threading.BoundedSemaphore(ussd.login_hash_concurrency),
        delay_slots=threading.BoundedSemaphore(ussd.login_delay_concurrency),
        scrypt=scrypt,
        # Unknown usernames are checked against this, so they cost as much as real ones.
        dummy_hash=hash_password(secrets.token_urlsafe(24), scrypt),
        limits=LoginLimits(
            per_username=ussd.login_max_failures_per_username,
            per_address=ussd.login_max_failures_per_address,
            window=ussd.login_failure_window,
            slowdown_after=ussd.login_slowdown_after,
            max_delay_ms=ussd.login_max_delay_ms,
        ),
        clock=time.time,
    )


def scrypt_params(settings: Settings) -> ScryptParams:
    """The scrypt cost from `USSD_SCRYPT_N` (default 2**14); tests use a cheap one."""
    return ScryptParams(n=settings.of(UssdSettings).scrypt_n)


def runtime() -> Runtime:
    """The Runtime of the app serving this request."""
    return cast(Runtime, current_flask_app().extensions[EXTENSION])


def set_clock(app: Flask, clock: Clock) -> None:
    """Make `app` read the time from `clock` from now on (tests pin the time with it)."""
    app.extensions[EXTENSION] = replace(app.extensions[EXTENSION], clock=clock)
