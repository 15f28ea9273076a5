"""Laravel's validation rules as pydantic metadata: each reads the limits a model declares
(max_length, ge, le, decimal_places, Literal choices) and refuses with Laravel's messages.

A refusal is a PydanticCustomError of type `laravel` whose context holds every message
of the field, with `{field}` where the field's wire name goes (validation.py fills it in).
Blank optional values raise PydanticUseDefault: Laravel treats them as absent.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NoReturn

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, PydanticUseDefault, core_schema

# What PHP's trim() strips; Laravel's `required` treats a string of only these as missing.
_PHP_TRIM = " \t\n\r\0\x0b"
# PHP's FILTER_VALIDATE_INT on a string: optional sign, no leading zeros, ASCII digits.
_INTEGER_STRING = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
# PHP's is_numeric() on a string (what Laravel's `numeric` rule uses): optional sign,
# digits with an optional fraction, an optional exponent; surrounding whitespace allowed.
_NUMERIC_STRING = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date, `T` (or a space), hh:mm[:ss[.fraction]], and an optional `Z` or ±hh:mm offset.
_ISO_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
REQUIRED = "The {field} field is required."


def refuse(*messages: str) -> NoReturn:
    """Fail the field with these Laravel messages (`{field}` is its wire name)."""
    raise PydanticCustomError("laravel", "{messages}", {"messages": list(messages)})


def limit(schema: core_schema.CoreSchema, key: str) -> Any:
    """A constraint (`max_length`, `ge`, ...) of a core schema, looking inside `nullable`."""
    found: Any = schema
    while found.get("type") == "nullable":
        found = found["schema"]
    return found.get(key)


class Rule:
    """Base of the rules: a before-validator built from the declared type's core schema."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner = handler(source)
        return core_schema.no_info_before_validator_function(self.check(source, inner), inner)

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        raise NotImplementedError


class RequiredString(Rule):
    """Laravel `required|string|max:N` (characters, not bytes), optionally `|ip`."""

    def __init__(self, ip: bool = False) -> None:
        self.ip = ip

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        max_chars = limit(inner, "max_length")

        def run(value: Any) -> Any:
            if is_missing(value):
                refuse(REQUIRED)
            if not isinstance(value, str):
                # Like Laravel, a non-string is also not an IP address; its length is not judged.
                if self.ip:
                    refuse(
                        "The {field} must be a string.", "The {field} must be a valid IP address."
                    )
                refuse("The {field} must be a string.")
            messages = string_messages(value, max_chars)
            if self.ip and not is_ip_address(value):
                messages.append("The {field} must be a valid IP address.")
            if messages:
                refuse(*messages)
            return value

        return run


class OptionalString(Rule):
    """Laravel `nullable|string|max:N`: absent, null or blank is None."""

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        max_chars = limit(inner, "max_length")

        def run(value: Any) -> Any:
            if optional_value(value) is None:
                return None
            if not isinstance(value, str):
                refuse("The {field} must be a string.")
            messages = string_messages(value, max_chars)
            if messages:
                refuse(*messages)
            return value

        return run


def string_messages(value: str, max_chars: int | None) -> list[str]:
    """The format and length messages of a string value."""
    messages = []
    if "\x00" in value:
        # No real name or id holds a NUL, and PostgreSQL text cannot store one.
        messages.append("The {field} format is invalid.")
    if max_chars is not None and len(value) > max_chars:
        messages.append(f"The {{field}} must not be greater than {max_chars} characters.")
    return messages


class Integer(Rule):
    """Laravel `nullable|integer|min:A|max:B`: null or blank takes the field's default (an
    empty array or object is not blank here: Laravel calls it "not an integer")."""

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        least, most = limit(inner, "ge"), limit(inner, "le")

        def run(value: Any) -> Any:
            if optional_value(value) is None:
                raise PydanticUseDefault()
            number = as_integer(value)
            if number is None:
                refuse("The {field} must be an integer.")
            if least is not None and number < least:
                refuse(f"The {{field}} must be at least {least}.")
            if most is not None and number > most:
                refuse(f"The {{field}} must not be greater than {most}.")
            return number

        return run


class Amount(Rule):
    """Laravel `required|numeric|min:A|max:B|decimal:0,N`, exact (Decimal, never float)."""

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        least, most = limit(inner, "ge"), limit(inner, "le")
        places = limit(inner, "decimal_places")

        def run(value: Any) -> Any:
            if is_missing(value):
                refuse(REQUIRED)
            amount = as_decimal(value)
            if amount is None:
                refuse("The {field} must be a number.")
            messages = []
            if amount < least:
                messages.append(f"The {{field}} must be at least {least}.")
            if amount > most:
                messages.append(f"The {{field}} must not be greater than {most}.")
            if decimal_places(amount) > places:
                messages.append(f"The {{field}} must have 0-{places} decimal places.")
            if messages:
                refuse(*messages)
            return amount.quantize(Decimal(1).scaleb(-places))

        return run


class Choice(Rule):
    """Laravel `nullable|in:...` with the choices of the field's Literal type."""

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        choices = literal_values(source)

        def run(value: Any) -> Any:
            if optional_value(value) is None:
                raise PydanticUseDefault()
            if value not in choices:
                refuse("The selected {field} is invalid.")
            return value

        return run


class IsoDate(Rule):
    """Laravel `nullable|date` for ISO 8601 dates and date-times."""

    def check(self, source: Any, inner: core_schema.CoreSchema) -> Callable[[Any], Any]:
        def run(value: Any) -> Any:
            if optional_value(value) is None:
                raise PydanticUseDefault()
            if not isinstance(value, str) or parse_iso_date(value) is None:
                refuse("The {field} is not a valid date.")
            return value

        return run


def literal_values(source: Any) -> tuple[Any, ...]:
    """The values of a Literal type, also inside `Literal[...] | None`."""
    if typing.get_origin(source) is typing.Literal:
        return typing.get_args(source)
    return tuple(v for arg in typing.get_args(source) for v in literal_values(arg))


def is_missing(value: Any) -> bool:
    """Laravel `required`: null, a blank string or an empty array/object is missing."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip(_PHP_TRIM) == ""
    return isinstance(value, list | dict) and not value


def optional_value(value: Any) -> Any:
    """None for an absent optional field (null or a blank string, as Laravel sees them)."""
    if value is None or (isinstance(value, str) and value.strip(_PHP_TRIM) == ""):
        return None
    return value


def is_ip_address(value: str) -> bool:
    """A plain IPv4 or IPv6 address (no zone id, no surrounding space, no leading zeros)."""
    try:
        # The usual case in C (0.1 us against ipaddress's 2): glibc's inet_pton takes
        # exactly the dotted quads ipaddress takes (four decimal octets up to 255, no
        # leading zeros, nothing around them); tests/sabong/test_validation.py compares.
        socket.inet_pton(socket.AF_INET, value)
        return True
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    if "%" in value:
        return False  # Python accepts IPv6 zone ids ("fe80::1%eth0"); Laravel does not.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def as_integer(value: Any) -> int | None:
    """An int from an integer, an integral float (5.0) or an integer string ("5"); else None."""
    if isinstance(value, bool):
        return None  # JSON true/false are not numbers, even though Python says bool is int.
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip(_PHP_TRIM)
        if not _INTEGER_STRING.fullmatch(text):
            return None
        # Python refuses to parse huge digit strings; all that matters is "out of range".
        if len(text) > 18:
            return -(10**18) if text.startswith("-") else 10**18
        return int(text)
    return None


def as_decimal(value: Any) -> Decimal | None:
    """An exact Decimal from a JSON number (parsed as Decimal) or a numeric string; else None.

    Never a float: the wallet endpoints parse JSON fractions straight to Decimal, and a
    float that slips in anyway is refused rather than rounded.
    """
    if isinstance(value, bool):
        return None  # true/false are not amounts, although Python's bool is an int
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        text = value.strip(_PHP_TRIM)
        return Decimal(text) if _NUMERIC_STRING.fullmatch(text) else None
    return None


def decimal_places(value: Decimal) -> int:
    """Significant digits after the point (10.500 has 1), without any context arithmetic.

    Reading the digit tuple works for any exponent, where quantize() or normalize()
    would raise on values such as 1e999999999.
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: as_decimal() refused NaN and Infinity
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def parse_iso_date(text: str) -> tuple[datetime, bool] | None:
    """An ISO 8601 date (`2026-12-02`) or date-time (`2026-12-02T10:00:00Z`) and whether it
    is a bare date; None if not."""
    text = text.strip()
    if _ISO_DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        return datetime(day.year, day.month, day.day, tzinfo=UTC), True
    if not _ISO_DATE_TIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, False
