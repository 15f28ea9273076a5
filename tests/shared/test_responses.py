"""shared.responses.to_json: json.dumps's compact output, with money as exact numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from shared.responses import sabong_body, to_json


class Kind(StrEnum):
    CREDIT = "credit"


WITHOUT_MONEY: list[Any] = [
    {},
    [],
    None,
    True,
    0,
    -17,
    10**30,
    1.5,
    "",
    "plain",
    'quote " backslash \\ slash /',
    "control \x00 \x1f \n \t \r \x7f",
    "unicode é ü 中文 😀 \u2028 \u2029",
    {"nested": {"list": [1, "two", None, [False, {}]], "empty": []}},
    {1: "int key", "k": (1, 2)},
    {"kind": Kind.CREDIT},
    sabong_body("success", "Login token generated", {"token": "A" * 64, "expiresIn": 300}),
]


@pytest.mark.parametrize("body", WITHOUT_MONEY, ids=range(len(WITHOUT_MONEY)))
def test_a_body_without_money_is_what_json_dumps_writes(body: Any) -> None:
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert to_json(body) == expected.encode("utf-8")


def test_money_is_written_with_two_decimals_digit_for_digit() -> None:
    data = {
        "amount": Decimal("10"),
        "balance": Decimal("99999999999999999.99"),  # beyond a float's 15-17 digits
        "rows": [{"amount": Decimal("0.1")}, Decimal("-3.50")],
    }
    body = sabong_body("success", "Balance credited successfully", data)
    assert to_json(body) == (
        b'{"status":"success","message":"Balance credited successfully","data":'
        b'{"amount":10.00,"balance":99999999999999999.99,"rows":[{"amount":0.10},-3.50]}}'
    )


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_a_non_finite_decimal_is_refused(value: Decimal) -> None:
    with pytest.raises(TypeError, match="non-finite"):
        to_json({"balance": value})


def test_a_type_json_has_no_place_for_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        to_json({"x": object()})


@pytest.mark.parametrize(
    "text",
    ["1.00", '1,"admin":true', '"', "10.00}", "12.50"],
    ids=["number", "object", "quote", "brace", "money"],
)
def test_json_injection_through_a_string_that_looks_like_a_number_is_quoted(text: str) -> None:
    # Only a Decimal becomes raw JSON text; a string from a request, whatever it holds,
    # stays a quoted JSON string beside real money.
    written = to_json({"description": text, "amount": Decimal("12.50")})
    assert json.loads(written, parse_float=Decimal) == {
        "description": text,
        "amount": Decimal("12.50"),
    }


def test_a_lone_surrogate_fails_to_encode_as_before() -> None:
    # Strings reach here validated as Unicode scalar values; should one slip through, it
    # fails loudly (an error response) rather than writing invalid UTF-8.
    with pytest.raises(UnicodeEncodeError):
        to_json({"name": "\ud800"})
