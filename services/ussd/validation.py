"""Reading request bodies: strict JSON, bounded string fields, the K2 400 messages."""

from __future__ import annotations

from typing import Any, TypeGuard

from flask import request

from shared.exceptions import BadRequest
from shared.web import is_unicode_text, parse_json, parse_json_object, raw_body

from .credentials import MAX_TOKEN_CHARS
from .exceptions import ServiceIdRequired

MAX_USERNAME_CHARS = 100
MAX_PASSWORD_CHARS = 1024


def json_object_body() -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}`. Wrong type or syntax: BadRequest."""
    data = raw_body()
    if not data:
        return {}
    if request.mimetype != "application/json":
        raise BadRequest()
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise BadRequest()
    return parse_json_object(data)


def ensure_empty_or_json() -> None:
    """generate-service-id needs no body, but one that is sent must be valid JSON."""
    data = raw_body()
    if not data:
        return
    parse_json(data)


def login_fields(body: dict[str, Any]) -> tuple[str, str]:
    """`username` and `password`: present, non-empty, bounded strings, else BadRequest."""
    username, password = body.get("username"), body.get("password")
    if not bounded_text(username, MAX_USERNAME_CHARS):
        raise BadRequest()
    if not bounded_text(password, MAX_PASSWORD_CHARS):
        raise BadRequest()
    return username, password


def service_id_field(body: dict[str, Any]) -> str:
    """`service_id`: a non-empty string (else ServiceIdRequired) of sane length."""
    value = body.get("service_id")
    if not isinstance(value, str) or not value:
        raise ServiceIdRequired()
    if not bounded_text(value, MAX_TOKEN_CHARS):
        raise BadRequest()
    return value


def bounded_text(value: object, max_chars: int) -> TypeGuard[str]:
    """A non-empty string of at most `max_chars` that is valid Unicode (no lone surrogates)."""
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        return False
    return is_unicode_text(value)  # parse_json refuses lone surrogates too; belt and braces
