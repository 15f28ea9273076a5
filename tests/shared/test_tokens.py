"""Typed JWTs: type confusion, alg none, tampering, expiry."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from shared import tokens
from shared.exceptions import ConfigError, TokenExpired, TokenInvalid

LOGIN = tokens.TokenType("k2-login+jwt", b"l" * 32, 3600)
SERVICE = tokens.TokenType("JWT", b"s" * 32, 3600)


def test_round_trip_has_exact_lifetime() -> None:
    token = tokens.issue(SERVICE, {"serviceId": "x"}, now=1000)
    claims = tokens.verify(SERVICE, token, now=1001)
    assert claims == {"serviceId": "x", "iat": 1000, "exp": 4600}


def test_token_type_confusion_is_refused_both_ways() -> None:
    login = tokens.issue(LOGIN, {"sub": "c"})
    service = tokens.issue(SERVICE, {"serviceId": "x"})
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, login)
    with pytest.raises(TokenInvalid):
        tokens.verify(LOGIN, service)


def test_same_typ_with_other_key_is_refused() -> None:
    forged = tokens.TokenType("JWT", b"x" * 32, 3600)
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, tokens.issue(forged, {"serviceId": "x"}))


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps({"serviceId": "x", "iat": 1, "exp": 2**40}).encode())
    token = header.rstrip(b"=").decode() + "." + body.rstrip(b"=").decode() + "."
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, token)


def test_tampered_payload_is_refused() -> None:
    token = tokens.issue(SERVICE, {"serviceId": "a"})
    head, _, sig = token.split(".")
    body = base64.urlsafe_b64encode(
        json.dumps({"serviceId": "b", "iat": 1, "exp": 2**40}).encode()
    ).rstrip(b"=")
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, f"{head}.{body.decode()}.{sig}")


def test_missing_exp_is_refused() -> None:
    token = jwt.encode({"iat": 1}, SERVICE.key, algorithm="HS256", headers={"typ": "JWT"})
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, token)


def test_expired_token_is_expired_not_invalid() -> None:
    token = tokens.issue(SERVICE, {"serviceId": "x"}, now=1000)
    with pytest.raises(TokenExpired):
        tokens.verify(SERVICE, token, now=4600)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "ey.ey.ey", "\u00e9.\u00e9.\u00e9"])
def test_garbage_is_invalid(garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        tokens.verify(SERVICE, garbage)


def test_short_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        tokens.TokenType("JWT", b"short", 3600)


def test_issue_matches_pyjwt_byte_for_byte() -> None:
    claims = {"serviceId": "7864e886-72f2-4e06-bfae-2ebdf7daa00a"}
    expected = jwt.encode(
        {**claims, "iat": 1749697271, "exp": 1749700871},
        SERVICE.key,
        algorithm="HS256",
        headers={"typ": "JWT"},
    )
    assert tokens.issue(SERVICE, claims, now=1749697271) == expected
