"""Laravel-style validation of the generate-auth-token body: every failing field reported."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
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
