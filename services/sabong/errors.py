"""The one place where exceptions become HTTP responses: the Sabong envelope on API paths,
an HTML page on the browser paths."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from shared.exceptions import (
    BadRequest,
    PlatformError,
    SignatureRejected,
    StoreUnavailable,
    ValidationFailed,
)
from shared.observability import SIGNATURE_FAILURES, WALLET_REFUSALS
from shared.responses import sabong_body
from shared.web import json_response

from . import pages
from .exceptions import DuplicateReference, InsufficientBalance, UserNotFound, WalletRefusal
from .wallet import insufficient_data

log = logging.getLogger(__name__)

# A body and the extra headers of one error answer.
Envelope = tuple[dict[str, Any], dict[str, str] | None]

SIGNATURE_MESSAGES = {
    "missing_headers": "Missing required signature headers or secret",
    "timestamp_invalid": "Missing required signature headers or secret",
    "timestamp_expired": "Missing required signature headers or secret",
    "signature_mismatch": "Invalid signature",
    "replayed": "Duplicate request signature",
}

HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}

# The contract's 500 answer of each endpoint when a store (Redis or PostgreSQL) is down;
# the seed documents generate-auth-token's body. Other API paths answer 503 (retry).
STORE_FAILURE_BODIES = {
    "tokens.generate_auth_token": sabong_body(
        "failed", "Failed to generate auth token", {"error": "Database connection failed"}
    ),
    "wallet.get_balance": sabong_body("failed", "Failed to get balance"),
    "wallet.credit_balance": sabong_body("failed", "Failed to credit balance"),
    "wallet.debit_balance": sabong_body("failed", "Failed to debit balance"),
    "wallet.get_transactions": sabong_body("failed", "Failed to get transactions"),
}
STORE_UNAVAILABLE_BODY = sabong_body(
    "failed", "Service temporarily unavailable", {"error": "Database connection failed"}
)
# Refusals are counted per money movement (the metric's `type` label).
MONEY_ENDPOINTS = {"wallet.credit_balance": "credit", "wallet.debit_balance": "debit"}


def signature_rejected(exc: SignatureRejected) -> Envelope:
    """The contract's message; the precise reason only in X-Auth-Error."""
    SIGNATURE_FAILURES.labels(exc.reason).inc()
    return sabong_body("error", SIGNATURE_MESSAGES[exc.reason]), {"X-Auth-Error": exc.reason}


def validation_failed(exc: ValidationFailed) -> Envelope:
    return sabong_body("failed", "Validation failed", {"errors": exc.errors}), None


def bad_request(exc: BadRequest) -> Envelope:
    return sabong_body("failed", "Invalid JSON body"), None


def user_not_found(exc: UserNotFound) -> Envelope:
    return sabong_body("failed", "User not found"), None


def insufficient_balance(exc: InsufficientBalance) -> Envelope:
    data = insufficient_data(exc.balance, exc.amount)
    return sabong_body("failed", "Insufficient balance", data), None


def duplicate_reference(exc: DuplicateReference) -> Envelope:
    data = {"transactionId": exc.transaction_id}
    return sabong_body("failed", "Duplicate reference", data), None


def store_unavailable(exc: StoreUnavailable) -> Envelope:
    """API paths without a documented 500 of their own: nothing was lost, retry."""
    return STORE_UNAVAILABLE_BODY, {"Retry-After": "1"}


# First match wins, so subclasses come before their bases (ValidationFailed is a
# BadRequest; OutcomeUnknown, a StoreUnavailable, answers like it).
ENVELOPE_BY_ERROR: tuple[tuple[type[PlatformError], int, Callable[[Any], Envelope]], ...] = (
    (StoreUnavailable, 503, store_unavailable),
    (SignatureRejected, 401, signature_rejected),
    (ValidationFailed, 400, validation_failed),
    (BadRequest, 400, bad_request),
    (UserNotFound, 404, user_not_found),
    (InsufficientBalance, 400, insufficient_balance),
    (DuplicateReference, 409, duplicate_reference),
)


def register(app: Flask) -> None:
    """Install the handlers: platform errors, werkzeug HTTP errors, anything else."""
    app.register_error_handler(PlatformError, platform_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def is_api_request() -> bool:
    """API paths answer in the JSON envelope; every other path is a browser page."""
    return request.path.startswith("/api/")


def platform_error(exc: PlatformError) -> Response:
    """Map the shared exception tree (and Sabong subclasses) to status and envelope."""
    row = next((row for row in ENVELOPE_BY_ERROR if isinstance(exc, row[0])), None)
    if row is None:
        return unexpected_error(exc)
    if isinstance(exc, StoreUnavailable):
        return store_failure(exc)
    if isinstance(exc, WalletRefusal) and request.endpoint in MONEY_ENDPOINTS:
        WALLET_REFUSALS.labels(MONEY_ENDPOINTS[request.endpoint], exc.reason).inc()
    _, status, envelope = row
    body, headers = envelope(exc)
    return json_response(body, status, headers)


def store_failure(exc: StoreUnavailable) -> Response:
    """The endpoint's documented 500, else 503 in the envelope, or a page for browsers."""
    # The type only: a driver's message could carry a URL.
    log.warning("store unavailable (%s) on %s", type(exc).__name__, request.endpoint)
    documented = STORE_FAILURE_BODIES.get(request.endpoint or "")
    if documented is not None:
        return json_response(documented, 500)
    if is_api_request():
        body, headers = store_unavailable(exc)
        return json_response(body, 503, headers)
    detail = "Please try again in a moment."
    if request.path.startswith("/login/"):
        detail = "Please try again in a moment; your link still works."
    response = pages.error_page(503, "Temporarily unavailable", detail)
    response.headers["Retry-After"] = "1"
    return response


def http_error(exc: HTTPException) -> Response:
    """404, 405, 413 and friends: the envelope on API paths, a page elsewhere."""
    status = exc.code or 500
    message = HTTP_MESSAGES.get(status, exc.name)
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if is_api_request():
        return json_response(sabong_body("error", message), status, headers)
    response = pages.error_page(status, message, exc.description or message)
    response.headers.update(headers)
    return response


def unexpected_error(exc: Exception) -> Response:
    """A bug: 500 without details; logged by route pattern (never the URL: it may hold a
    token)."""
    if isinstance(exc, HTTPException):
        return http_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.url_rule)
    if is_api_request():
        return json_response(sabong_body("failed", "Internal server error"), 500)
    return pages.error_page(500, "Something went wrong", "Please try again in a moment.")
