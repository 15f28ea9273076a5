"""Sabong API v1.0: signed partner calls issue single-use login links for users."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from flask import Flask

from shared import observability
from shared.config import load_settings
from shared.netaccess import metrics_allow
from shared.web import ServiceFlask, without_url_redirects

from . import errors
from .blueprints import health, login, session, tokens, wallet
from .runtime import EXTENSION, build_runtime
from .settings import SabongSettings


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The Sabong Flask app; `config` overrides settings from the environment and `.env`."""
    settings = load_settings(config)
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
    for blueprint in (tokens.bp, wallet.bp, login.bp, session.bp, health.bp):
        app.register_blueprint(blueprint)
    observability.init_flask(app, "sabong", metrics_allow(settings))
    return app
