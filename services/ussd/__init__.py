"""K2 USSD API: username/password login -> login JWT -> 1-hour Service ID."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from shared import observability
from shared.config import load_settings
from shared.netaccess import Network, metrics_allow
from shared.web import ServiceFlask, without_url_redirects

from . import errors
from .blueprints import auth, clients, health
from .proxies import TrustedProxyFix
from .runtime import EXTENSION, build_runtime
from .settings import UssdSettings


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The USSD Flask app; `config` overrides settings from the environment and `.env`."""
    settings = load_settings(config)
    ussd = settings.of(UssdSettings)
    app = ServiceFlask(__name__)
    without_url_redirects(app)
    # Bodies over the limit are refused (413) before they are read into memory.
    app.config["MAX_CONTENT_LENGTH"] = ussd.max_body_bytes
    app.extensions[EXTENSION] = build_runtime(settings)
    _trust_proxies(app, ussd.trusted_proxy_count, ussd.trusted_proxies)
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
    if hops:
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, hops, trusted)  # type: ignore[method-assign]
