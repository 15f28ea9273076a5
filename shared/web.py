"""Flask glue used by both services: strict JSON bodies, JSON responses, health checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, request

from .exceptions import BadRequest
from .responses import to_json

JSON_MIMETYPE = "application/json"


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response with the given status and extra headers."""
    return Response(to_json(body), status=status, mimetype=JSON_MIMETYPE, headers=headers)


def raw_body() -> bytes:
    """The request body exactly as received (cached, so signatures see the same bytes)."""
    return request.get_data(cache=True)


def parse_json_object(data: bytes, exact: bool = False) -> dict[str, Any]:
    """Decode strict UTF-8 JSON that must be an object; anything else is BadRequest.

    With `exact`, numbers with a fraction or exponent become Decimal, never float: money
    is parsed digit for digit (`0.1` stays 0.1; `1e309` is a huge Decimal, not infinity).
    """
    parse_float = Decimal if exact else float
    try:
        value = json.loads(
            data.decode("utf-8"), parse_constant=_reject_constant, parse_float=parse_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest() from None
    if not isinstance(value, dict):
        raise BadRequest()
    return value


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them unless told not to."""
    raise ValueError(f"invalid JSON constant {name}")


def health_blueprint(ready: Callable[[], bool], render: Callable[[bool], Response]) -> Blueprint:
    """`/healthz` (process alive, no I/O) and `/readyz` (`ready()` must be true)."""
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return render(True)

    @bp.get("/readyz")
    def readyz() -> Response:
        return render(ready())

    return bp
