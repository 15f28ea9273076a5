"""Signing, JWT, Redis, configuration and response helpers shared by every service."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings, ensure_dev_secrets, load_settings
    from .exceptions import (
        AccountDisabled,
        AuthError,
        BadRequest,
        ConfigError,
        InvalidCredentials,
        NotFound,
        PlatformError,
        RateLimited,
        SignatureRejected,
        StoreUnavailable,
        TokenExpired,
        TokenInvalid,
        ValidationFailed,
    )
    from .responses import k2_body, sabong_body, to_json
    from .tokens import TokenType

__all__ = [
    "AccountDisabled",
    "AuthError",
    "BadRequest",
    "ConfigError",
    "InvalidCredentials",
    "NotFound",
    "PlatformError",
    "RateLimited",
    "Settings",
    "SignatureRejected",
    "StoreUnavailable",
    "TokenExpired",
    "TokenInvalid",
    "TokenType",
    "ValidationFailed",
    "ensure_dev_secrets",
    "k2_body",
    "load_settings",
    "sabong_body",
    "to_json",
]

# Re-exports are resolved on first use (PEP 562) so that `import shared.sdk`, which partners
# run without the server dependencies, never imports python-dotenv or pyjwt.
_SOURCE_MODULE = {
    "Settings": "config",
    "ensure_dev_secrets": "config",
    "load_settings": "config",
    "k2_body": "responses",
    "sabong_body": "responses",
    "to_json": "responses",
    "TokenType": "tokens",
    **{
        name: "exceptions"
        for name in (
            "AccountDisabled",
            "AuthError",
            "BadRequest",
            "ConfigError",
            "InvalidCredentials",
            "NotFound",
            "PlatformError",
            "RateLimited",
            "SignatureRejected",
            "StoreUnavailable",
            "TokenExpired",
            "TokenInvalid",
            "ValidationFailed",
        )
    },
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name` the first time it is asked for."""
    module_name = _SOURCE_MODULE.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """Module attributes including the not-yet-imported re-exports."""
    return sorted({*globals(), *__all__})
