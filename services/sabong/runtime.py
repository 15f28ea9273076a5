"""What the views need at run time: the stores, the settings, and an injectable clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from shared.db import Database

from .sessions import SessionStore
from .store import SabongStore
from .users import SabongUsers

EXTENSION = "sabong"
CLOCK = "SABONG_CLOCK"  # app.config entry: a `() -> float` Unix time; tests pin it


@dataclass(frozen=True)
class Runtime:
    """Per-app state, built once by create_app."""

    store: SabongStore
    database: Database
    users: SabongUsers
    sessions: SessionStore
    client_secrets: tuple[str, ...]
    login_base_url: str
    app_url: str
    own_origin: str  # SABONG_LOGIN_BASE_URL's origin: the one origin allowed to POST


def runtime() -> Runtime:
    """The current app's Runtime."""
    value: Runtime = current_app.extensions[EXTENSION]
    return value


def now() -> float:
    """The current Unix time according to the app's clock."""
    clock: Callable[[], float] = current_app.config[CLOCK]
    return clock()
