"""One exception tree for the whole platform; each service maps it to HTTP in one place."""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""

    message = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class ConfigError(PlatformError):
    """Configuration is missing or unsafe; raised at startup, never per request."""


class StoreUnavailable(PlatformError):
    """Redis could not be reached or did not answer in time."""

    message = "Store unavailable"


class BadRequest(PlatformError):
    """The request could not be read: not JSON, not an object, wrong types."""

    message = "Invalid request format"


class ValidationFailed(BadRequest):
    """Fields failed validation; `errors` maps each field to its messages."""

    message = "Validation failed"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__()
        self.errors = errors


class AuthError(PlatformError):
    """The caller is not authenticated."""

    message = "Unauthorized"


class TokenInvalid(AuthError):
    """A token is malformed, tampered with, of the wrong type, unknown or revoked."""

    message = "Invalid token"


class TokenExpired(AuthError):
    """A token was genuine but its lifetime is over."""

    message = "Token expired"


class InvalidCredentials(AuthError):
    """Username or password is wrong (deliberately not saying which)."""

    message = "Invalid username or password"


class AccountDisabled(AuthError):
    """The account exists and the credentials are right, but it is disabled."""

    message = "Account is disabled"


class SignatureRejected(AuthError):
    """An HMAC-signed request failed verification; `reason` is a machine-readable code."""

    REASONS = (
        "missing_headers",
        "timestamp_invalid",
        "timestamp_expired",
        "signature_mismatch",
        "replayed",
    )

    def __init__(self, reason: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown signature failure reason: {reason}")
        super().__init__(reason)
        self.reason = reason


class RateLimited(PlatformError):
    """Too many requests; `retry_after` is whole seconds until a retry may succeed."""

    message = "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class NotFound(PlatformError):
    """The thing asked for does not exist (or is no longer available)."""

    message = "Not found"
