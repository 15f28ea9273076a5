"""Sabong API v1.0: signed partner calls issue single-use login links for users."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta

from flask import Flask

from shared import observability
from shared.config import Settings, load_settings
from shared.db import database_from_settings
from shared.exceptions import ConfigError
from shared.netaccess import metrics_allow
from shared.redis import connect
from shared.signing import SIGNATURE_WINDOW_SECONDS
from shared.web import ServiceFlask, origin_of, without_url_redirects

from . import errors
from .blueprints import health, login, session, tokens, wallet
from .runtime import EXTENSION, Runtime
from .session_store import SessionStore
from .settings import SabongSettings
from .store import SabongStore
from .user_store import UserStore

# A signature stays acceptable while |now - timestamp| <= 300 s, i.e. for up to 600 s
# after it is first seen (a timestamp may be 300 s ahead); 60 s more absorbs clock skew
# between replicas.
REPLAY_TTL_SECONDS = 2 * SIGNATURE_WINDOW_SECONDS + 60


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The Sabong Flask app; `config` overrides settings from the environment and `.env`."""
    settings = load_settings(config)
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (make run starts a Redis and sets it)")
    sabong = settings.of(SabongSettings)
    app = ServiceFlask(__name__)
    without_url_redirects(app)
    app.config.update(
        SECRET_KEY=settings.secret("SABONG_SESSION_SECRET"),
        # Bodies over the limit are refused (413) before they are read into memory.
        MAX_CONTENT_LENGTH=sabong.max_body_bytes,
        SESSION_COOKIE_NAME="sabong_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        # The lifetime counts from sign-in (not from the last request): a stolen cookie
        # dies on schedule, and ordinary responses do not re-send Set-Cookie.
        SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=sabong.session_seconds),
    )
    app.extensions[EXTENSION] = build_runtime(settings)
    errors.register(app)
    register_blueprints(app)
    observability.init_flask(app, "sabong", metrics_allow(settings))
    return app


def build_runtime(settings: Settings) -> Runtime:
    """The stores and settings the views use."""
    client = connect(settings.redis_url or "")
    store = SabongStore(client, replay_ttl=REPLAY_TTL_SECONDS)
    database = database_from_settings(settings)
    sabong = settings.of(SabongSettings)
    login_base_url = sabong.login_base_url.rstrip("/")
    return Runtime(
        store=store,
        database=database,
        users=UserStore(database),
        sessions=SessionStore(client, sabong.session_seconds),
        client_secrets=sabong.client_secrets,
        login_base_url=login_base_url,
        app_url=sabong.app_url,
        own_origin=origin_of(login_base_url),
        clock=time.time,
    )


def register_blueprints(app: Flask) -> None:
    for module in (tokens, wallet, login, session, health):
        app.register_blueprint(module.bp)
