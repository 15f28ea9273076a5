"""The public entry point: routes `/api/auth/`, `/api/clients/` to USSD and `/api/v1/`,
`/login/`, `/me`, `/logout` to Sabong, with rate limits shared through Redis.

Served by `python -m gateway.server` (see `gateway.server.command`).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.config import load_settings

from .app import Gateway
from .config import GatewayConfig, configure_logging_from

__all__ = ["Gateway", "GatewayConfig", "create_app"]


def create_app(config: Mapping[str, str] | None = None) -> Gateway:
    """The gateway; `config` overrides settings from the environment and `.env`.

    Build it inside the process that serves it, then `await gateway.start()` in its
    event loop (the server does both).
    """
    settings = load_settings(config)
    configure_logging_from(settings)
    return Gateway(GatewayConfig.from_settings(settings))
