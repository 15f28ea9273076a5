"""What the views need at run time: the stores, the settings and the clock; `runtime()` is
the one accessor request handlers use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import Flask, current_app

from shared.db import Database

from .session_store import SessionStore
from .store import SabongStore
from .user_store import UserStore

EXTENSION = "sabong"

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


def runtime() -> Runtime:
    """The current app's Runtime."""
    value: Runtime = current_app.extensions[EXTENSION]
    return value


def now() -> float:
    """The current Unix time according to the app's clock."""
    return runtime().clock()


def set_clock(app: Flask, clock: Clock) -> None:
    """Make `app` read the time from `clock` from now on (tests pin the time with it)."""
    app.extensions[EXTENSION] = replace(app.extensions[EXTENSION], clock=clock)
