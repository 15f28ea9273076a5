"""The contract's signature test vectors and every verification failure."""

from __future__ import annotations

import pytest

from shared import signing
from shared.exceptions import SignatureRejected

SECRET = "your-secret-key"
STAMP = "1706802000"
PATH = "/api/v1/generate-auth-token"

VECTORS = [
    (
        b'{"clientId":"CLIENT_001","username":"testuser001","displayName":"Client One",'
        b'"ipAddress":"192.168.1.100","expiration":5}',
        "335cf4f5ab98ca80b2615ee2e659312acfb45f9b322288d2b197d71b9edfa2c8",
    ),
    (
        b'{"clientId": "CLIENT_001", "username": "testuser001", "displayName": "Client One", '
        b'"ipAddress": "192.168.1.100", "expiration": 5}',
        "98baa77255a6f68e222577035d1385a353890c29197b59665296a83cd638649e",
    ),
    (
        '{"clientId":"CLIENT_001","username":"testuser001","displayName":"José Ñ",'
        '"ipAddress":"192.168.1.100","expiration":5}'.encode(),
        "2aa7665ead3c76afbe8da0d7b64f1eb578ab10df8ec821efb62a0337efb68531",
    ),
]


@pytest.mark.parametrize(("body", "expected"), VECTORS)
def test_spec_vectors_for_post_bodies(body: bytes, expected: str) -> None:
    assert signing.sign(SECRET, "POST", PATH, STAMP, body) == expected


def test_spec_vector_for_get_query() -> None:
    payload = signing.canonical_query({"clientId": "CLIENT_001"})
    assert payload == "clientId=CLIENT_001"
    expected = "f2026e7edf9d2b011e91764814d0db900898ad92614981a26f2f80def1a055bf"
    assert signing.sign(SECRET, "GET", "/api/v1/get-balance", STAMP, payload) == expected


def test_canonical_query_sorts_by_key_and_keeps_repeats_in_order() -> None:
    pairs = [("b", "2"), ("a", "9"), ("b", "1")]
    assert signing.canonical_query(pairs) == "a=9&b=2&b=1"


@pytest.mark.parametrize(("body", "expected"), VECTORS)
def test_verify_accepts_vectors_lower_and_upper_case(body: bytes, expected: str) -> None:
    now = int(STAMP)
    for presented in (expected, expected.upper()):
        got = signing.verify([SECRET], "POST", PATH, STAMP, presented, body, now=now)
        assert got == expected


def test_rotation_accepts_any_configured_secret() -> None:
    body, expected = VECTORS[0]
    got = signing.verify(
        ["new-secret", SECRET], "POST", PATH, STAMP, expected, body, now=1706802000
    )
    assert got == expected


@pytest.mark.parametrize(
    ("timestamp", "signature", "secrets", "reason"),
    [
        (None, VECTORS[0][1], [SECRET], "missing_headers"),
        ("", VECTORS[0][1], [SECRET], "missing_headers"),
        (STAMP, "", [SECRET], "missing_headers"),
        (STAMP, VECTORS[0][1], [], "missing_headers"),
        ("17068O2000", VECTORS[0][1], [SECRET], "timestamp_invalid"),
        ("1706802000.5", VECTORS[0][1], [SECRET], "timestamp_invalid"),
        ("1706801699", VECTORS[0][1], [SECRET], "timestamp_expired"),
        ("1706802301", VECTORS[0][1], [SECRET], "timestamp_expired"),
        (STAMP, "zz" * 32, [SECRET], "signature_mismatch"),
        (STAMP, "0" * 64, [SECRET], "signature_mismatch"),
        (STAMP, VECTORS[0][1], ["other-secret"], "signature_mismatch"),
    ],
)
def test_verify_rejections_carry_their_reason(
    timestamp: str | None, signature: str, secrets: list[str], reason: str
) -> None:
    with pytest.raises(SignatureRejected) as caught:
        signing.verify(secrets, "POST", PATH, timestamp, signature, VECTORS[0][0], now=1706802000)
    assert caught.value.reason == reason


def test_body_tampering_is_a_mismatch() -> None:
    body, expected = VECTORS[0]
    with pytest.raises(SignatureRejected) as caught:
        signing.verify([SECRET], "POST", PATH, STAMP, expected, body + b" ", now=1706802000)
    assert caught.value.reason == "signature_mismatch"


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_a_timestamp_exactly_300_seconds_away_is_accepted_whatever_the_fraction(
    fraction: float,
) -> None:
    body, expected = VECTORS[0]
    stamp = int(STAMP)
    for now in (stamp + 300 + fraction, stamp - 300 + fraction):  # 300 s old / 300 s ahead
        got = signing.verify([SECRET], "POST", PATH, STAMP, expected, body, now=now)
        assert got == expected


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.999])
def test_a_timestamp_301_seconds_away_is_expired(fraction: float) -> None:
    body, expected = VECTORS[0]
    stamp = int(STAMP)
    for now in (stamp + 301 + fraction, stamp - 301 + fraction):
        with pytest.raises(SignatureRejected) as caught:
            signing.verify([SECRET], "POST", PATH, STAMP, expected, body, now=now)
        assert caught.value.reason == "timestamp_expired"
