"""K2 USSD API: username/password login -> login JWT -> 1-hour Service ID."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from shared import observability
from shared.config import load_settings
from shared.exceptions import ConfigError
from shared.netaccess import Network, metrics_allow, parse_networks
from shared.web import ServiceFlask, without_url_redirects

from . import errors
from .blueprints import auth, clients, health
from .proxies import DEFAULT_TRUSTED_PROXIES, TrustedProxyFix
from .runtime import EXTENSION, build_runtime, positive_setting

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The USSD Flask app; `config` overrides settings from the environment and `.env`."""
    settings = load_settings(config)
    app = ServiceFlask(__name__)
    without_url_redirects(app)
    # Bodies over the limit are refused (413) before they are read into memory.
    app.config["MAX_CONTENT_LENGTH"] = positive_setting(
        settings, "USSD_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES
    )
    app.extensions[EXTENSION] = build_runtime(settings)
    _trust_proxies(
        app,
        settings.get_int("USSD_TRUSTED_PROXY_COUNT", 1),
        parse_networks(
            "USSD_TRUSTED_PROXIES", settings.get("USSD_TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES)
        ),
    )
    for blueprint in (auth.bp, clients.bp, health.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    observability.init_flask(app, "ussd", metrics_allow(settings))
    return app


def _trust_proxies(app: Flask, hops: int, trusted: tuple[Network, ...]) -> None:
    """Take the client address from X-Forwarded-For, trusting exactly `hops` proxies.

    The service runs behind the gateway (one hop), which appends the address it saw. Only
    the last `hops` entries are believed, and only from a peer in `trusted`; anything a
    client put before them is ignored, so the per-address login limits cannot be dodged
    by forging the header. With 0 hops X-Forwarded-For is ignored altogether.
    """
    if hops < 0:
        raise ConfigError("USSD_TRUSTED_PROXY_COUNT must not be negative")
    if hops:
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, hops, trusted)  # type: ignore[method-assign]
