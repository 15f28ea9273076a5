"""USSD-specific errors: subclasses of the shared tree carrying the K2 wire messages."""

from __future__ import annotations

from shared.exceptions import (
    AuthError,
    BadRequest,
    NotFound,
    PlatformError,
    RateLimited,
    TokenExpired,
    TokenInvalid,
)


class LoginTokenInvalid(TokenInvalid):
    """The login JWT is missing, malformed, forged, of another type, or its client is off."""

    message = "Invalid JWT token"


class LoginTokenExpired(TokenExpired):
    """A genuine login JWT past its `exp`."""

    message = "JWT token expired"


class ServiceIdInvalid(TokenInvalid):
    """The Service ID presented as Bearer is missing, forged, unknown, revoked, or a login JWT."""

    message = "Invalid service ID"


class ServiceIdExpired(TokenExpired):
    """A genuine Service ID past its `exp`."""

    message = "Service ID expired"


class ServiceIdRejected(AuthError):
    """generate-api-key: the body's Service ID is expired, revoked, unknown or another client's."""

    message = "Service ID expired or invalid"


class ServiceIdRequired(BadRequest):
    """generate-api-key: `service_id` is missing, empty or not a string."""

    message = "Service ID is required"


class LoginThrottled(RateLimited):
    """Too many failed logins for one username or from one source address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after, "Too many login attempts")


class HashingBusy(PlatformError):
    """Logins queued for a password-hash slot longer than the bound: answer 503 quickly
    rather than hold the connection (same envelope as any temporary unavailability)."""


class AccountError(PlatformError):
    """An admin (CLI) operation on client accounts was refused."""


class UsernameTaken(AccountError):
    """create-client: another client already has this username (case-insensitively)."""


class InvalidAccountField(AccountError):
    """create-client / reset-password: a field is malformed (message says which)."""


class ClientNotFound(AccountError, NotFound):
    """No client has this username."""
