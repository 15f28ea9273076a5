"""Signature authentication of partner calls: vectors, every rejection, rotation, replay."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient
from psycopg import Connection
from werkzeug.test import TestResponse

from services.sabong.runtime import set_clock
from shared import signing

from .conftest import PATH, SECRET, VECTOR_TIME, MakeApp, Partner, valid_fields

# The contract's vectors: exact bytes sent, and their signature at x-timestamp 1706802000.
COMPACT = (
    b'{"clientId":"CLIENT_001","username":"testuser001","displayName":"Client One",'
    b'"ipAddress":"192.168.1.100","expiration":5}'
)
SPACED = (
    b'{"clientId": "CLIENT_001", "username": "testuser001", "displayName": "Client One", '
    b'"ipAddress": "192.168.1.100", "expiration": 5}'
)
UTF8 = (
    '{"clientId":"CLIENT_001","username":"testuser001","displayName":"José Ñ",'
    '"ipAddress":"192.168.1.100","expiration":5}'
).encode()
VECTORS = [
    (COMPACT, "335cf4f5ab98ca80b2615ee2e659312acfb45f9b322288d2b197d71b9edfa2c8"),
    (SPACED, "98baa77255a6f68e222577035d1385a353890c29197b59665296a83cd638649e"),
    (UTF8, "2aa7665ead3c76afbe8da0d7b64f1eb578ab10df8ec821efb62a0337efb68531"),
]
GET_VECTOR = "f2026e7edf9d2b011e91764814d0db900898ad92614981a26f2f80def1a055bf"
MISSING = "Missing required signature headers or secret"


def send(
    client: FlaskClient, body: bytes, headers: dict[str, str], path: str = PATH
) -> TestResponse:
    return client.post(path, data=body, headers={"Content-Type": "application/json", **headers})


def assert_rejected(response: TestResponse, message: str, reason: str) -> None:
    assert response.status_code == 401
    assert response.get_json() == {"status": "error", "message": message, "data": None}
    assert response.headers["X-Auth-Error"] == reason


@pytest.mark.parametrize(("body", "signature"), VECTORS, ids=["compact", "spaced", "utf8"])
def test_contract_vectors_are_accepted_over_the_raw_body(
    vector_partner: Partner, body: bytes, signature: str
) -> None:
    headers = {"x-signature": signature, "x-timestamp": str(VECTOR_TIME)}
    response = send(vector_partner.client, body, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()["data"]
    assert data["user"]["displayName"] == json.loads(body)["displayName"]
    assert data["expiration"] == "2024-02-01T15:45:00.000Z"  # the pinned clock + 5 minutes


def test_uppercase_hex_signature_is_accepted(vector_partner: Partner) -> None:
    body, signature = VECTORS[0]
    headers = {"x-signature": signature.upper(), "x-timestamp": str(VECTOR_TIME)}
    assert send(vector_partner.client, body, headers).status_code == 200


def test_reserialised_body_does_not_match_the_signature_of_the_sent_bytes(
    vector_partner: Partner,
) -> None:
    # Signed compact, sent spaced: a server that re-serialised JSON would accept this.
    headers = {"x-signature": VECTORS[0][1], "x-timestamp": str(VECTOR_TIME)}
    assert_rejected(
        send(vector_partner.client, SPACED, headers), "Invalid signature", "signature_mismatch"
    )


@pytest.mark.parametrize("index", range(len(VECTORS)))
def test_tampered_body_is_rejected(vector_partner: Partner, index: int) -> None:
    body, signature = VECTORS[index]
    tampered = body.replace(b'"expiration":5', b'"expiration":1440').replace(
        b'"expiration": 5', b'"expiration": 1440'
    )
    assert tampered != body
    headers = {"x-signature": signature, "x-timestamp": str(VECTOR_TIME)}
    assert_rejected(
        send(vector_partner.client, tampered, headers), "Invalid signature", "signature_mismatch"
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_headers"),
        ({"x-timestamp": str(VECTOR_TIME)}, "missing_headers"),
        ({"x-signature": VECTORS[0][1]}, "missing_headers"),
        ({"x-signature": "", "x-timestamp": str(VECTOR_TIME)}, "missing_headers"),
        ({"x-signature": VECTORS[0][1], "x-timestamp": ""}, "missing_headers"),
        ({"x-signature": VECTORS[0][1], "x-timestamp": "yesterday"}, "timestamp_invalid"),
        ({"x-signature": VECTORS[0][1], "x-timestamp": "1706802000.0"}, "timestamp_invalid"),
    ],
)
def test_missing_or_malformed_headers_are_rejected(
    vector_partner: Partner, headers: dict[str, str], reason: str
) -> None:
    assert_rejected(send(vector_partner.client, COMPACT, headers), MISSING, reason)


@pytest.mark.parametrize("offset", [-301, 301, -86400, 10**6])
def test_stale_and_future_timestamps_are_rejected(vector_partner: Partner, offset: int) -> None:
    response = vector_partner.post(valid_fields(), timestamp=VECTOR_TIME + offset)
    assert_rejected(response, MISSING, "timestamp_expired")


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamps_at_the_edge_of_the_window_are_accepted(
    vector_partner: Partner, offset: int
) -> None:
    assert vector_partner.post(valid_fields(), timestamp=VECTOR_TIME + offset).status_code == 200


@pytest.mark.parametrize(("age", "status"), [(300, 200), (301, 401)])
def test_window_compares_whole_seconds_of_a_fractional_clock(
    app: Flask, partner: Partner, age: int, status: int
) -> None:
    set_clock(app, lambda: VECTOR_TIME + 0.999)  # late in the server's current second
    response = partner.post(valid_fields(), timestamp=VECTOR_TIME - age)
    assert response.status_code == status


def test_wrong_secret_is_rejected(partner: Partner) -> None:
    response = partner.post(valid_fields(), secret="not-the-partner-secret")
    assert_rejected(response, "Invalid signature", "signature_mismatch")


def test_signature_for_another_path_is_rejected(partner: Partner) -> None:
    response = partner.post(valid_fields(), signed_path="/api/v1/other-endpoint")
    assert_rejected(response, "Invalid signature", "signature_mismatch")


def test_query_string_is_not_part_of_the_signed_path(partner: Partner) -> None:
    assert partner.post(valid_fields(), path=PATH + "?source=test").status_code == 200


def test_signature_is_checked_before_validation(partner: Partner) -> None:
    # An unsigned invalid body must not learn anything about validation rules.
    response = partner.client.post(
        PATH, data=b"{}", headers={"x-signature": "0" * 64, "x-timestamp": "1"}
    )
    assert_rejected(response, MISSING, "timestamp_expired")
    response = partner.post(b"not json", secret="wrong-secret")
    assert_rejected(response, "Invalid signature", "signature_mismatch")


def test_rotation_accepts_old_and_new_secrets(make_app: MakeApp) -> None:
    app = make_app(SABONG_CLIENT_SECRETS="brand-new-secret-2026, your-secret-key")
    partner = Partner(app.test_client())
    assert partner.post(valid_fields(), secret=SECRET).status_code == 200
    assert partner.post(valid_fields(), secret="brand-new-secret-2026").status_code == 200
    response = partner.post(valid_fields(), secret="retired-secret-2020")
    assert_rejected(response, "Invalid signature", "signature_mismatch")


def test_replay_of_accepted_signature_is_rejected(vector_partner: Partner, db: Connection) -> None:
    body, signature = VECTORS[0]
    headers = {"x-signature": signature, "x-timestamp": str(VECTOR_TIME)}
    assert send(vector_partner.client, body, headers).status_code == 200
    assert_rejected(
        send(vector_partner.client, body, headers), "Duplicate request signature", "replayed"
    )
    # The replay's own upsert and audit row were rolled back: it issued nothing.
    assert db.execute("SELECT count(*) FROM sabong_issuance_audit").fetchone() == (1,)


def test_replay_with_uppercased_signature_is_rejected(vector_partner: Partner) -> None:
    body, signature = VECTORS[0]
    first = {"x-signature": signature, "x-timestamp": str(VECTOR_TIME)}
    assert send(vector_partner.client, body, first).status_code == 200
    again = {"x-signature": signature.upper(), "x-timestamp": str(VECTOR_TIME)}
    assert_rejected(
        send(vector_partner.client, body, again), "Duplicate request signature", "replayed"
    )


@pytest.mark.parametrize("body", [b'{"clientId":"C9","expiration":0}', b"not json", b"{}"])
def test_replay_of_invalid_request_is_reported_as_replay(partner: Partner, body: bytes) -> None:
    stamp = partner.now()
    assert partner.post(body, timestamp=stamp).status_code == 400
    assert_rejected(partner.post(body, timestamp=stamp), "Duplicate request signature", "replayed")


def test_replay_guard_ttl_covers_the_whole_window(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    partner.issue(clientId="TTL_CLIENT")
    (key,) = redis_client.scan_iter("sabong:{c:TTL_CLIENT}:r:*")
    assert 2 * signing.SIGNATURE_WINDOW_SECONDS <= redis_client.ttl(key) <= 2 * 300 + 60


def test_get_requests_sign_the_canonical_query(
    app: Flask, client: FlaskClient, make_user: Callable[..., int]
) -> None:
    make_user("CLIENT_001")
    set_clock(app, lambda: float(VECTOR_TIME))
    headers = {"x-signature": GET_VECTOR, "x-timestamp": str(VECTOR_TIME)}
    assert client.get("/api/v1/get-balance?clientId=CLIENT_001", headers=headers).status_code == 200
    response = client.get("/api/v1/get-balance?clientId=CLIENT_002", headers=headers)
    assert_rejected(response, "Invalid signature", "signature_mismatch")


@pytest.mark.parametrize("field", ["clientId", "username", "displayName", "ipAddress"])
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\ud83d", "\\udc00\\ud800"])
def test_lone_surrogate_in_a_signed_body_is_400_and_spends_the_signature(
    partner: Partner, field: str, escape: str
) -> None:
    good = valid_fields(clientId="SURROGATE-1")
    # JSON text with the escape as sent: json.dumps would refuse to produce it raw.
    body = json.dumps(good).replace(json.dumps(good[field]), f'"{escape}"', 1).encode()
    stamp = partner.now()
    first = partner.post(body, timestamp=stamp)
    assert first.status_code == 400
    assert first.get_json() == {"status": "failed", "message": "Invalid JSON body", "data": None}
    assert_rejected(partner.post(body, timestamp=stamp), "Duplicate request signature", "replayed")
