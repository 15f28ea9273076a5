"""Validating K2 request bodies through the models in models.py, with the K2 400s."""

from __future__ import annotations

from typing import Any, TypeGuard

from pydantic import ValidationError

from shared.exceptions import BadRequest
from shared.web import is_unicode_text

from .exceptions import ServiceIdRequired
from .models import K2ApiKeyRequest, K2LoginRequest

# A service_id that is absent, not a string or empty is "required"; any other failure
# (too long, not Unicode) is a plain bad request.
SERVICE_ID_REQUIRED = {"missing", "string_type", "string_too_short"}


def login_fields(body: dict[str, Any]) -> tuple[str, str]:
    """`username` and `password`: present, non-empty, bounded strings, else BadRequest."""
    try:
        fields = K2LoginRequest.model_validate(body)
    except ValidationError:
        raise BadRequest() from None
    return fields.username, fields.password


def service_id_field(body: dict[str, Any]) -> str:
    """`service_id`: a non-empty string (else ServiceIdRequired) of sane length."""
    try:
        return K2ApiKeyRequest.model_validate(body).service_id
    except ValidationError as failed:
        if failed.errors()[0]["type"] in SERVICE_ID_REQUIRED:
            raise ServiceIdRequired() from None
        raise BadRequest() from None


def bounded_text(value: object, max_chars: int) -> TypeGuard[str]:
    """A non-empty string of at most `max_chars` that is valid Unicode (no lone surrogates)."""
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        return False
    return is_unicode_text(value)
