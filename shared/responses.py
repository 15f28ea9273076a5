"""The two JSON envelopes of the partner contract, framework-free."""

from __future__ import annotations

import json
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
    """Compact UTF-8 JSON, the wire format of both APIs."""
    return _dumps(body).encode("utf-8")
