"""The two JSON envelopes of the partner contract, framework-free."""

from __future__ import annotations

from _json import encode_basestring, make_encoder
from decimal import Decimal
from typing import Any, Literal

SabongStatus = Literal["success", "failed", "error"]


class _RawNumber(str):
    """JSON text written as it is, unquoted: an exact decimal made by `_exact_decimal`."""

    __slots__ = ()


def _exact_decimal(value: Any) -> _RawNumber:
    """The encoder's hook for what JSON has no type for: a Decimal, two decimals, digit
    for digit (`1600.50`); anything else is a TypeError, as in `json.dumps`."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("a non-finite Decimal is not JSON")
        return _RawNumber(f"{value:.2f}")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _quoted_unless_raw(text: str) -> str:
    """The encoder's string writer: every key and string value quoted and escaped as
    `json.dumps(ensure_ascii=False)` does, except a `_RawNumber`.

    Security: the check is on the type, which only `_exact_decimal` makes, never on the
    content, so no string from a request can reach the output unquoted.
    """
    return text if type(text) is _RawNumber else encode_basestring(text)


# CPython's C encoder (the one `json.dumps` builds on every call), built once with the two
# hooks above: the C encoder has no other way to write a raw number. Compact separators;
# no circular-reference check (a response body is a tree), NaN allowed as json.dumps does.
_encode = make_encoder(None, _exact_decimal, _quoted_unless_raw, None, ":", ",", False, False, True)


def k2_body(status: int, message: str, data: Any = None) -> dict[str, Any]:
    """K2 USSD envelope: the HTTP status repeated as an int in the body."""
    return {"status": status, "message": message, "data": data}


def sabong_body(status: SabongStatus, message: str, data: Any = None) -> dict[str, Any]:
    """Sabong envelope: a word for the outcome instead of the HTTP status."""
    return {"status": status, "message": message, "data": data}


def to_json(body: Any) -> bytes:
    """Compact UTF-8 JSON, the wire format of both APIs; a Decimal is written with two
    decimals as a JSON number (`1600.50`), digit for digit (money is never a float)."""
    return "".join(_encode(body, 0)).encode("utf-8")
