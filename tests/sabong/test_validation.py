"""Every validation rule of every field, Laravel messages to the letter."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from services.sabong.rules import is_ip_address
from services.sabong.validation import TokenRequest, validate_token_request
from shared.exceptions import ValidationFailed

from .conftest import DROP, Partner, valid_fields


def errors_for(**fields: Any) -> dict[str, list[str]]:
    """The errors validation reports for a valid body changed by `fields` ({} if valid)."""
    try:
        validate_token_request(valid_fields(**fields))
    except ValidationFailed as failed:
        return failed.errors
    return {}


REQUIRED = "The {f} field is required."
STRING = "The {f} must be a string."


@pytest.mark.parametrize("field", ["clientId", "username", "displayName", "ipAddress"])
@pytest.mark.parametrize("value", [DROP, None, "", "   ", "\t\n", [], {}])
def test_required_string_fields_missing_or_blank(field: str, value: Any) -> None:
    assert errors_for(**{field: value}) == {field: [REQUIRED.format(f=field)]}


@pytest.mark.parametrize("field", ["clientId", "username", "displayName"])
@pytest.mark.parametrize("value", [123, 1.5, True, ["a"], {"a": 1}])
def test_string_fields_reject_non_strings(field: str, value: Any) -> None:
    assert errors_for(**{field: value}) == {field: [STRING.format(f=field)]}


def test_ip_address_non_string_is_neither_string_nor_ip() -> None:
    assert errors_for(ipAddress=19216811) == {
        "ipAddress": [
            "The ipAddress must be a string.",
            "The ipAddress must be a valid IP address.",
        ]
    }


@pytest.mark.parametrize(
    ("field", "limit"), [("clientId", 255), ("username", 100), ("displayName", 100)]
)
def test_max_length_counts_characters_not_bytes(field: str, limit: int) -> None:
    assert errors_for(**{field: "é" * limit}) == {}  # 2 bytes each in UTF-8: still fine
    assert errors_for(**{field: "x" * (limit + 1)}) == {
        field: [f"The {field} must not be greater than {limit} characters."]
    }


@pytest.mark.parametrize(
    "address",
    [
        "192.168.1.100",
        "127.0.0.1",
        "255.255.255.255",
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:10.0.0.1",
    ],
)
def test_valid_ip_addresses_pass(address: str) -> None:
    assert errors_for(ipAddress=address) == {}


@pytest.mark.parametrize(
    "address",
    [
        "999.1.1.1",
        "1.2.3",
        "192.168.001.1",
        " 1.2.3.4",
        "1.2.3.4 ",
        "fe80::1%eth0",
        "::g",
        "localhost",
    ],
)
def test_invalid_ip_addresses_fail(address: str) -> None:
    assert errors_for(ipAddress=address) == {
        "ipAddress": ["The ipAddress must be a valid IP address."]
    }


def ipaddress_takes(value: str) -> bool:
    """The reference: Python's own parser, zone ids refused."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value


def test_the_c_fast_path_takes_exactly_the_addresses_ipaddress_takes() -> None:
    octets = ["0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255"]
    oddities = ["00", "01", "007", "256", "999", "1000", "", " 1", "1 ", "+1", "-1", "0x1",
                "\u0661", "1\x00", "a", "::", "::1", "%1"]  # fmt: skip
    rng = random.Random(2026)

    def piece() -> str:
        return rng.choice(octets if rng.random() < 0.85 else oddities)

    candidates = {".".join(piece() for _ in range(rng.choice((3, 4, 4, 5)))) for _ in range(20_000)}
    candidates |= {"1.2.3.4", "0.0.0.1", "::ffff:1.2.3.4", "::ffff:01.2.3.4", "1.2.3.4\n"}
    taken = {value for value in candidates if ipaddress_takes(value)}
    assert len(taken) > 1000 and len(candidates - taken) > 1000  # both kinds, many of each
    assert {value for value in candidates if is_ip_address(value)} == taken


def test_ip_address_too_long_and_invalid_reports_both() -> None:
    assert errors_for(ipAddress="1" * 46) == {
        "ipAddress": [
            "The ipAddress must not be greater than 45 characters.",
            "The ipAddress must be a valid IP address.",
        ]
    }


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (DROP, 2),
        (None, 2),
        ("", 2),
        (1, 1),
        (1440, 1440),
        ("5", 5),
        (" 7 ", 7),
        ("+9", 9),
        (5.0, 5),
    ],
)
def test_expiration_accepted_forms(value: Any, minutes: int) -> None:
    request = validate_token_request(valid_fields(expiration=value))
    assert request.expiration_minutes == minutes


@pytest.mark.parametrize(
    "value", [True, False, 1.5, "1.5", "5.0", "abc", "05", "1e3", [], [5], {"m": 5}]
)
def test_expiration_must_be_an_integer(value: Any) -> None:
    assert errors_for(expiration=value) == {"expiration": ["The expiration must be an integer."]}


@pytest.mark.parametrize("value", [0, -1, "-3", "0"])
def test_expiration_at_least_one(value: Any) -> None:
    assert errors_for(expiration=value) == {"expiration": ["The expiration must be at least 1."]}


@pytest.mark.parametrize("value", [1441, "1441", 10**30, "9" * 40])
def test_expiration_not_greater_than_1440(value: Any) -> None:
    assert errors_for(expiration=value) == {
        "expiration": ["The expiration must not be greater than 1440."]
    }


def test_every_failing_field_is_reported_in_field_order() -> None:
    errors = errors_for(
        clientId=DROP, username=7, displayName="d" * 101, ipAddress="nope", expiration=0
    )
    assert errors == {
        "clientId": ["The clientId field is required."],
        "username": ["The username must be a string."],
        "displayName": ["The displayName must not be greater than 100 characters."],
        "ipAddress": ["The ipAddress must be a valid IP address."],
        "expiration": ["The expiration must be at least 1."],
    }
    assert list(errors) == ["clientId", "username", "displayName", "ipAddress", "expiration"]


def test_valid_body_gives_typed_request_and_ignores_unknown_fields() -> None:
    body = valid_fields(role="admin", balance="1000000.00")
    assert validate_token_request(body) == TokenRequest(
        client_id="CLIENT_001",
        username="testuser001",
        display_name="Client One",
        ip_address="192.168.1.100",
        expiration_minutes=5,
    )


def test_seed_validation_example_over_http(partner: Partner) -> None:
    response = partner.post(
        {"displayName": "Client One", "ipAddress": "192.168.1.100", "expiration": 0}
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "status": "failed",
        "message": "Validation failed",
        "data": {
            "errors": {
                "clientId": ["The clientId field is required."],
                "username": ["The username field is required."],
                "expiration": ["The expiration must be at least 1."],
            }
        },
    }


def test_empty_object_reports_all_required_fields_over_http(partner: Partner) -> None:
    response = partner.post(b"{}")
    assert response.status_code == 400
    assert response.get_json()["data"]["errors"] == {
        "clientId": ["The clientId field is required."],
        "username": ["The username field is required."],
        "displayName": ["The displayName field is required."],
        "ipAddress": ["The ipAddress field is required."],
    }


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}", b'{"a": NaN}', b"{"]
)
def test_body_not_a_json_object_is_invalid_json_body(partner: Partner, body: bytes) -> None:
    response = partner.post(body)
    assert response.status_code == 400
    assert response.get_json() == {"status": "failed", "message": "Invalid JSON body", "data": None}


@pytest.mark.parametrize("field", ["clientId", "username", "displayName"])
def test_a_nul_character_is_a_format_error_not_a_database_crash(field: str) -> None:
    # PostgreSQL text cannot hold NUL: refused up front, in the envelope, like any bad field.
    assert errors_for(**{field: "a\x00b"}) == {field: [f"The {field} format is invalid."]}


@pytest.mark.parametrize("field", ["description", "reference"])
def test_a_nul_in_a_money_field_is_a_format_error_and_moves_nothing(field: str) -> None:
    from services.sabong.validation import validate_money_request

    with pytest.raises(ValidationFailed) as refused:
        validate_money_request({"clientId": "C", "amount": 1, field: "x\x00"})
    assert refused.value.errors == {field: [f"The {field} format is invalid."]}
