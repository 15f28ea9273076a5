"""Laravel-style validation of partner requests: every failing field reported."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.exceptions import ValidationFailed

DEFAULT_EXPIRATION_MINUTES = 2
MIN_EXPIRATION_MINUTES = 1
MAX_EXPIRATION_MINUTES = 1440

# What PHP's trim() strips; Laravel's `required` treats a string of only these as missing.
_PHP_TRIM = " \t\n\r\0\x0b"
# PHP's FILTER_VALIDATE_INT on a string: optional sign, no leading zeros, ASCII digits.
_INTEGER_STRING = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")


@dataclass(frozen=True)
class TokenRequest:
    """A validated generate-auth-token request."""

    client_id: str
    username: str
    display_name: str
    ip_address: str
    expiration_minutes: int


def validate_token_request(body: dict[str, Any]) -> TokenRequest:
    """The validated request, or ValidationFailed listing every failing field in order."""
    errors: dict[str, list[str]] = {}
    strings = {
        "clientId": required_string(body, "clientId", 255),
        "username": required_string(body, "username", 100),
        "displayName": required_string(body, "displayName", 100),
        "ipAddress": required_string(body, "ipAddress", 45, ip=True),
    }
    for field, messages in strings.items():
        if messages:
            errors[field] = messages
    expiration, messages = optional_expiration(body.get("expiration"))
    if messages:
        errors["expiration"] = messages
    if errors:
        raise ValidationFailed(errors)
    return TokenRequest(
        client_id=body["clientId"],
        username=body["username"],
        display_name=body["displayName"],
        ip_address=body["ipAddress"],
        expiration_minutes=expiration,
    )


def is_missing(value: Any) -> bool:
    """Laravel `required`: null, a blank string or an empty array/object is missing."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip(_PHP_TRIM) == ""
    return isinstance(value, list | dict) and not value


def required_string(
    body: dict[str, Any], field: str, max_chars: int, ip: bool = False
) -> list[str]:
    """Messages for a required string of at most `max_chars` characters (not bytes)."""
    value = body.get(field)
    if is_missing(value):
        return [f"The {field} field is required."]
    if not isinstance(value, str):
        # Like Laravel, a non-string is also not an IP address; its length is not judged.
        messages = [f"The {field} must be a string."]
        return [*messages, f"The {field} must be a valid IP address."] if ip else messages
    messages = []
    if "\x00" in value:
        # No real name or id holds a NUL, and PostgreSQL text cannot store one.
        messages.append(f"The {field} format is invalid.")
    if len(value) > max_chars:
        messages.append(f"The {field} must not be greater than {max_chars} characters.")
    if ip and not is_ip_address(value):
        messages.append(f"The {field} must be a valid IP address.")
    return messages


def is_ip_address(value: str) -> bool:
    """A plain IPv4 or IPv6 address (no zone id, no surrounding space, no leading zeros)."""
    if "%" in value:
        return False  # Python accepts IPv6 zone ids ("fe80::1%eth0"); Laravel does not.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def optional_expiration(value: Any) -> tuple[int, list[str]]:
    """(minutes, messages): absent, null or blank means the default of 2 minutes."""
    if is_missing(value) and not isinstance(value, list | dict):
        return DEFAULT_EXPIRATION_MINUTES, []
    minutes = as_integer(value)
    if minutes is None:
        return DEFAULT_EXPIRATION_MINUTES, ["The expiration must be an integer."]
    if minutes < MIN_EXPIRATION_MINUTES:
        return minutes, [f"The expiration must be at least {MIN_EXPIRATION_MINUTES}."]
    if minutes > MAX_EXPIRATION_MINUTES:
        return minutes, [f"The expiration must not be greater than {MAX_EXPIRATION_MINUTES}."]
    return minutes, []


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


# -- the wallet API ----------------------------------------------------------------------

MIN_AMOUNT = Decimal("0.01")
MAX_AMOUNT = Decimal("1000000")
CENT = Decimal("0.01")
MAX_CLIENT_ID_CHARS = 255
MAX_DESCRIPTION_CHARS = 500
MAX_REFERENCE_CHARS = 255
# PHP's is_numeric() on a string (what Laravel's `numeric` rule uses): optional sign,
# digits with an optional fraction, an optional exponent; surrounding whitespace allowed.
_NUMERIC_STRING = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

TRANSACTION_TYPES = ("credit", "debit")
SORT_FIELDS = ("id", "walletId", "amount", "currency", "type", "createdAt")
SORT_ORDERS = ("asc", "desc")
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class MoneyRequest:
    """A validated credit-balance or debit-balance request (amount exact, two places)."""

    client_id: str
    amount: Decimal
    description: str | None
    reference: str | None


@dataclass(frozen=True)
class HistoryQuery:
    """A validated get-transactions query."""

    client_id: str
    limit: int
    page: int
    type: str | None
    sort_by: str
    sort_order: str
    date_from: datetime | None
    date_to: datetime | None  # exclusive when `date_to_whole_day`, else inclusive
    date_to_whole_day: bool
    filters: dict[str, str]


def validate_client_id(value: Any) -> str:
    """The clientId of a get-balance query, or ValidationFailed."""
    messages = required_string({"clientId": value}, "clientId", MAX_CLIENT_ID_CHARS)
    if messages:
        raise ValidationFailed({"clientId": messages})
    return str(value)


def validate_money_request(body: dict[str, Any]) -> MoneyRequest:
    """The validated credit/debit body, or ValidationFailed listing every failing field."""
    checks = {
        "clientId": required_string(body, "clientId", MAX_CLIENT_ID_CHARS),
        "amount": amount_messages(body.get("amount")),
        "description": optional_string(body, "description", MAX_DESCRIPTION_CHARS),
        "reference": optional_string(body, "reference", MAX_REFERENCE_CHARS),
    }
    errors = {field: messages for field, messages in checks.items() if messages}
    if errors:
        raise ValidationFailed(errors)
    amount = as_decimal(body["amount"])
    assert amount is not None  # amount_messages() accepted it
    return MoneyRequest(
        client_id=body["clientId"],
        amount=amount.quantize(CENT),
        description=optional_value(body.get("description")),
        reference=optional_value(body.get("reference")),
    )


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


def amount_messages(value: Any) -> list[str]:
    """Laravel `required|numeric|min:0.01|max:1000000|decimal:0,2` on the amount."""
    if is_missing(value):
        return ["The amount field is required."]
    amount = as_decimal(value)
    if amount is None:
        return ["The amount must be a number."]
    messages = []
    if amount < MIN_AMOUNT:
        messages.append("The amount must be at least 0.01.")
    if amount > MAX_AMOUNT:
        messages.append("The amount must not be greater than 1000000.")
    if decimal_places(amount) > 2:
        messages.append("The amount must have 0-2 decimal places.")
    return messages


def decimal_places(value: Decimal) -> int:
    """Significant digits after the point (10.500 has 1), without any context arithmetic.

    Reading the digit tuple works for any exponent, where quantize() or normalize()
    would raise on values such as 1e999999999.
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: as_decimal() refused NaN and Infinity
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def optional_string(body: dict[str, Any], field: str, max_chars: int) -> list[str]:
    """Messages for an optional string (absent, null or blank is fine) of `max_chars` at most."""
    value = body.get(field)
    if optional_value(value) is None:
        return []
    if not isinstance(value, str):
        return [f"The {field} must be a string."]
    messages = [f"The {field} format is invalid."] if "\x00" in value else []
    if len(value) > max_chars:
        messages.append(f"The {field} must not be greater than {max_chars} characters.")
    return messages


def optional_value(value: Any) -> Any:
    """None for an absent optional field (null or a blank string, as Laravel sees them)."""
    if value is None or (isinstance(value, str) and value.strip(_PHP_TRIM) == ""):
        return None
    return value


def validate_history_query(args: dict[str, str]) -> HistoryQuery:
    """The validated get-transactions query string, or ValidationFailed (every field)."""
    errors: dict[str, list[str]] = {}
    client_id = required_string(args, "clientId", MAX_CLIENT_ID_CHARS)
    if client_id:
        errors["clientId"] = client_id
    limit = integer_param(args, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, errors)
    page = integer_param(args, "page", 1, 1, None, errors)
    kind = choice_param(args, "type", TRANSACTION_TYPES, None, errors)
    sort_by = choice_param(args, "sortBy", SORT_FIELDS, "createdAt", errors)
    sort_order = choice_param(args, "sortOrder", SORT_ORDERS, "desc", errors)
    date_from = date_param(args, "dateFrom", errors)
    date_to = date_param(args, "dateTo", errors)
    if date_from and date_to and date_to[0] < date_from[0]:
        errors.setdefault("dateTo", []).append(
            "The dateTo must be a date after or equal to dateFrom."
        )
    if errors:
        raise ValidationFailed(errors)
    given = {k: args[k] for k in ("type", "dateFrom", "dateTo") if optional_value(args.get(k))}
    whole_day = bool(date_to and date_to[1])
    return HistoryQuery(
        client_id=args["clientId"],
        limit=limit,
        page=page,
        type=kind,
        sort_by=sort_by or "createdAt",
        sort_order=sort_order or "desc",
        date_from=date_from[0] if date_from else None,
        date_to=(date_to[0] + timedelta(days=1) if whole_day else date_to[0]) if date_to else None,
        date_to_whole_day=whole_day,
        filters=given,
    )


def integer_param(
    args: dict[str, str],
    field: str,
    default: int,
    least: int,
    most: int | None,
    errors: dict[str, list[str]],
) -> int:
    """An optional integer query parameter within [least, most]; messages go to `errors`."""
    raw = optional_value(args.get(field))
    if raw is None:
        return default
    value = as_integer(raw)
    if value is None:
        errors[field] = [f"The {field} must be an integer."]
    elif value < least:
        errors[field] = [f"The {field} must be at least {least}."]
    elif most is not None and value > most:
        errors[field] = [f"The {field} must not be greater than {most}."]
    else:
        return value
    return default


def choice_param(
    args: dict[str, str],
    field: str,
    choices: tuple[str, ...],
    default: str | None,
    errors: dict[str, list[str]],
) -> str | None:
    """An optional query parameter that must be one of `choices` (Laravel `in:`)."""
    raw = optional_value(args.get(field))
    if raw is None:
        return default
    if raw not in choices:
        errors[field] = [f"The selected {field} is invalid."]
        return default
    return str(raw)


def date_param(
    args: dict[str, str], field: str, errors: dict[str, list[str]]
) -> tuple[datetime, bool] | None:
    """(instant, is a bare date) of an optional ISO 8601 date or date-time (UTC if naive)."""
    raw = optional_value(args.get(field))
    if raw is None:
        return None
    parsed = parse_iso_date(raw)
    if parsed is None:
        errors[field] = [f"The {field} is not a valid date."]
    return parsed


def parse_iso_date(text: str) -> tuple[datetime, bool] | None:
    """An ISO 8601 date (`2026-12-02`) or date-time (`2026-12-02T10:00:00Z`); None if not."""
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


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date, `T` (or a space), hh:mm[:ss[.fraction]], and an optional `Z` or ±hh:mm offset.
_ISO_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
