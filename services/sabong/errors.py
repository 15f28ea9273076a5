"""The one place where exceptions become HTTP responses (envelope for APIs, pages else)."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from shared.exceptions import BadRequest, SignatureRejected, StoreUnavailable, ValidationFailed
from shared.observability import SIGNATURE_FAILURES
from shared.responses import sabong_body
from shared.web import json_response

from . import pages

log = logging.getLogger(__name__)

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

# The seed documents this body for a database failure of generate-auth-token.
TOKEN_STORE_FAILURE = sabong_body(
    "failed", "Failed to generate auth token", {"error": "Database connection failed"}
)
GENERATE_ENDPOINT = "tokens.generate_auth_token"


def is_api_request() -> bool:
    """API paths answer in the JSON envelope; every other path is a browser page."""
    return request.path.startswith("/api/")


def signature_rejected(exc: SignatureRejected) -> Response:
    """401 with the contract's message; the precise reason only in X-Auth-Error."""
    SIGNATURE_FAILURES.labels(exc.reason).inc()
    body = sabong_body("error", SIGNATURE_MESSAGES[exc.reason])
    return json_response(body, 401, {"X-Auth-Error": exc.reason})


def validation_failed(exc: ValidationFailed) -> Response:
    return json_response(sabong_body("failed", "Validation failed", {"errors": exc.errors}), 400)


def bad_request(exc: BadRequest) -> Response:
    return json_response(sabong_body("failed", "Invalid JSON body"), 400)


def store_unavailable(exc: StoreUnavailable) -> Response:
    """500 as documented for token issuance; 503 elsewhere (nothing was lost, retry)."""
    log.warning("store unavailable (%s) on %s", exc.message, request.endpoint)
    if request.endpoint == GENERATE_ENDPOINT:
        return json_response(TOKEN_STORE_FAILURE, 500)
    if is_api_request():
        body = sabong_body(
            "failed", "Service temporarily unavailable", {"error": "Database connection failed"}
        )
        return json_response(body, 503, {"Retry-After": "1"})
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


def unexpected(exc: Exception) -> Response:
    """500 without details; logged by route pattern (never the URL: it may hold a token)."""
    if isinstance(exc, HTTPException):
        return http_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.url_rule)
    if is_api_request():
        return json_response(sabong_body("failed", "Internal server error"), 500)
    return pages.error_page(500, "Something went wrong", "Please try again in a moment.")


def register_error_handlers(app: Flask) -> None:
    """Install every mapping above; Flask picks the most specific class."""
    app.register_error_handler(SignatureRejected, signature_rejected)
    app.register_error_handler(ValidationFailed, validation_failed)
    app.register_error_handler(BadRequest, bad_request)
    app.register_error_handler(StoreUnavailable, store_unavailable)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
