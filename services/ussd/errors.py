"""The one place where exceptions become HTTP responses, all in the K2 envelope."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from shared.exceptions import (
    AccountDisabled,
    AuthError,
    BadRequest,
    NotFound,
    PlatformError,
    RateLimited,
    StoreUnavailable,
    TokenExpired,
)
from shared.responses import k2_body
from shared.web import json_response

from .exceptions import HashingBusy, ServiceIdRejected

log = logging.getLogger("services.ussd")

UNAVAILABLE = "Service temporarily unavailable"
INTERNAL = "Internal server error"

# Temporary conditions: Redis unreachable, or every password-hash slot busy too long.
UNAVAILABLE_ERRORS = (StoreUnavailable, HashingBusy)

# First match wins, so subclasses come before their bases (403s before AuthError's 401).
STATUS_BY_ERROR: tuple[tuple[type[PlatformError], int], ...] = (
    (StoreUnavailable, 503),
    (HashingBusy, 503),
    (RateLimited, 429),
    (TokenExpired, 403),
    (AccountDisabled, 403),
    (ServiceIdRejected, 403),
    (AuthError, 401),
    (BadRequest, 400),
    (NotFound, 404),
)

HTTP_MESSAGES = {
    400: "Invalid request format",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def register(app: Flask) -> None:
    """Install the handlers: platform errors, werkzeug HTTP errors, anything else."""
    app.register_error_handler(PlatformError, platform_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(k2_body(status, message, None), status, headers)


def platform_error(exc: PlatformError) -> Response:
    """Map the shared exception tree (and USSD subclasses) to status and message."""
    status = next((code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind)), None)
    if status is None:
        return unexpected_error(exc)
    if isinstance(exc, UNAVAILABLE_ERRORS):
        # Logged without the cause's text: redis-py messages can carry the URL.
        log.warning("%s on %s %s", type(exc).__name__, request.method, request.path)
        return error_response(503, UNAVAILABLE)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return error_response(status, exc.message, headers)


def http_error(exc: HTTPException) -> Response:
    """Unknown route, wrong method, body too large...: envelope instead of HTML."""
    status = exc.code or 500
    message = HTTP_MESSAGES.get(status, exc.name)
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return error_response(status, message, headers)


def unexpected_error(exc: Exception) -> Response:
    """A bug: 500 envelope. Logged by type and code location only; the exception's text
    may quote request data (a password, a token), so it is left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(frames[-5:]))
    log.error(
        "unhandled %s on %s %s at %s", type(exc).__name__, request.method, request.path, where
    )
    return error_response(500, INTERNAL)
