"""What the SDK raises: the server's answer as a typed error, or a transport failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SdkError(Exception):
    """Base of every error the partner SDK raises; `message` is the human-readable text."""

    message = "SDK error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class TransportError(SdkError):
    """The request got no HTTP answer: refused, reset, timed out, TLS or protocol failure."""

    message = "Transport error"


class RequestTimeout(TransportError):
    """Connecting, or waiting for the answer, took longer than the configured timeout."""

    message = "Request timed out"


class ApiError(SdkError):
    """The server answered with an error status; `message` and `data` come from its body."""

    message = "API error"

    def __init__(
        self,
        status: int,
        message: str,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.data = data
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


class ValidationError(ApiError):
    """400: the request was malformed or failed validation; `errors` maps field -> messages."""

    @property
    def errors(self) -> dict[str, list[str]]:
        """Per-field messages (Sabong's `data.errors`); empty when the server sent none."""
        found = self.data.get("errors") if isinstance(self.data, dict) else None
        return found if isinstance(found, dict) else {}


class AuthenticationError(ApiError):
    """401/403: credentials, token, Service ID or signature rejected."""

    @property
    def reason(self) -> str | None:
        """Sabong's `X-Auth-Error` code (e.g. `signature_mismatch`), when the server sent one."""
        return self.headers.get("x-auth-error")


class InsufficientBalanceError(ValidationError):
    """400 `Insufficient balance`: a debit larger than the balance (`data`: balance, amount)."""


class ConflictError(ApiError):
    """409: e.g. `Duplicate reference`, a reference already used for another amount
    (`data.transactionId` is the original transaction)."""


class NotFoundError(ApiError):
    """404 or 410: no such endpoint, or the thing is gone (a used or expired login link)."""


class RateLimitError(ApiError):
    """429: too many requests; `retry_after` is the server's `Retry-After` in seconds."""

    @property
    def retry_after(self) -> int | None:
        """Whole seconds to wait before retrying, or None when the header was absent."""
        raw = self.headers.get("retry-after", "").strip()
        return int(raw) if raw.isdigit() else None


class ServerError(ApiError):
    """5xx: the server (or the gateway in front of it) failed; usually worth a later retry."""


def error_for(status: int, body: Any, headers: Mapping[str, str]) -> ApiError:
    """The typed error for an error response, carrying the envelope's message and data."""
    envelope = body if isinstance(body, dict) else {}
    message = envelope.get("message")
    if not isinstance(message, str) or not message:
        message = f"HTTP {status}"
    data = envelope.get("data")
    kind: type[ApiError]
    if status in (401, 403):
        kind = AuthenticationError
    elif status == 400 and message == "Insufficient balance":
        kind = InsufficientBalanceError
    elif status in (400, 422):
        kind = ValidationError
    elif status == 409:
        kind = ConflictError
    elif status in (404, 410):
        kind = NotFoundError
    elif status == 429:
        kind = RateLimitError
    elif status >= 500:
        kind = ServerError
    else:
        kind = ApiError
    return kind(status, message, data, headers)
