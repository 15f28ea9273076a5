"""Signing, JWT, Redis, configuration and response helpers shared by every service."""

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
