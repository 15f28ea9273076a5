"""K2 USSD API: username/password login -> login JWT -> 1-hour Service ID."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from shared import observability
from shared.config import load_settings
from shared.exceptions import ConfigError
from shared.web import ServiceFlask

from . import errors
from .context import EXTENSION, build_context, positive_setting
from .routes import auth, clients, health

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The USSD Flask app; `config` overrides settings from the environment and `.env`."""
    settings = load_settings(config)
    app = ServiceFlask(__name__)
    # Bodies over the limit are refused (413) before they are read into memory.
    app.config["MAX_CONTENT_LENGTH"] = positive_setting(
        settings, "USSD_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES
    )
    app.extensions[EXTENSION] = build_context(settings)
    _trust_proxies(app, settings.get_int("USSD_TRUSTED_PROXY_COUNT", 1))
    for blueprint in (auth.bp, clients.bp, health.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    observability.init_flask(app, "ussd")
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """Take the client address from X-Forwarded-For, trusting exactly `hops` proxies.

    The service runs behind the gateway (one hop), which appends the address it saw. Only
    the last `hops` entries are believed; anything a client put before them is ignored, so
    the per-address login limit cannot be dodged by forging the header. Set 0 when the
    service is reachable directly: X-Forwarded-For is then ignored altogether.
    """
    if hops < 0:
        raise ConfigError("USSD_TRUSTED_PROXY_COUNT must not be negative")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]
