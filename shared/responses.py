"""The two JSON envelopes of the partner contract, framework-free."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

SabongStatus = Literal["success", "failed", "error"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def k2_body(status: int, message: str, data: Any = None) -> dict[str, Any]:
    """K2 USSD envelope: the HTTP status repeated as an int in the body."""
    return {"status": status, "message": message, "data": data}


def sabong_body(status: SabongStatus, message: str, data: Any = None) -> dict[str, Any]:
    """Sabong envelope: a word for the outcome instead of the HTTP status."""
    return {"status": status, "message": message, "data": data}


def to_json(body: Any) -> bytes:
    """Compact UTF-8 JSON, the wire format of both APIs; a Decimal is written with two
    decimals as a JSON number (`1600.50`), digit for digit (money is never a float)."""
    try:
        return _dumps(body).encode("utf-8")
    except TypeError:
        # The C encoder has no hook that writes a raw number, so bodies holding money
        # take the (small, recursive) exact path below.
        return _encode_exact(body).encode("utf-8")


def _encode_exact(value: Any) -> str:
    """JSON for a body that holds Decimals; everything else as the compact encoder does."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("a non-finite Decimal is not JSON")
        return f"{value:.2f}"
    if isinstance(value, dict):
        items = (f"{_dumps(str(key))}:{_encode_exact(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_exact(item) for item in value) + "]"
    return _dumps(value)
