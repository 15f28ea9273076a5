"""What the views need at run time: the stores, the settings and the clock; `runtime()` is
the one accessor request handlers use."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import Flask

from shared.config import Settings
from shared.db import Database, database_from_settings
from shared.exceptions import ConfigError
from shared.redis import connect
from shared.request_cycle import current_flask_app
from shared.signing import SIGNATURE_WINDOW_SECONDS
from shared.web import origin_of

from .session_store import SessionStore
from .settings import SabongSettings
from .store import SabongStore
from .user_store import UserStore

EXTENSION = "sabong"
# A signature stays acceptable while |now - timestamp| <= 300 s, i.e. for up to 600 s
# after it is first seen (a timestamp may be 300 s ahead); 60 s more absorbs clock skew
# between replicas.
REPLAY_TTL_SECONDS = 2 * SIGNATURE_WINDOW_SECONDS + 60

Clock = Callable[[], float]  # Unix time in seconds


@dataclass(frozen=True)
class Runtime:
    """Per-app state, built once by create_app."""

    store: SabongStore
    database: Database
    users: UserStore
    sessions: SessionStore
    client_secrets: tuple[str, ...]
    login_base_url: str
    app_url: str
    own_origin: str  # SABONG_LOGIN_BASE_URL's origin: the one origin allowed to POST
    # Unix time (seconds) of every business decision: the signature window, token expiry,
    # session and ledger timestamps. Redis TTLs run on Redis's own clock. Tests pin it
    # with set_clock().
    clock: Clock


def build_runtime(settings: Settings) -> Runtime:
    """Validate the Sabong settings and create the Redis and PostgreSQL clients (lazily)."""
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (make run starts a Redis and sets it)")
    sabong = settings.of(SabongSettings)
    client = connect(settings.redis_url)
    database = database_from_settings(settings)
    login_base_url = sabong.login_base_url.rstrip("/")
    return Runtime(
        store=SabongStore(client, replay_ttl=REPLAY_TTL_SECONDS),
        database=database,
        users=UserStore(database),
        sessions=SessionStore(client, sabong.session_seconds),
        client_secrets=sabong.client_secrets,
        login_base_url=login_base_url,
        app_url=sabong.app_url,
        own_origin=origin_of(login_base_url),
        clock=time.time,
    )


def runtime() -> Runtime:
    """The current app's Runtime."""
    value: Runtime = current_flask_app().extensions[EXTENSION]
    return value


def now() -> float:
    """The current Unix time according to the app's clock."""
    return runtime().clock()


def set_clock(app: Flask, clock: Clock) -> None:
    """Make `app` read the time from `clock` from now on (tests pin the time with it)."""
    app.extensions[EXTENSION] = replace(app.extensions[EXTENSION], clock=clock)
