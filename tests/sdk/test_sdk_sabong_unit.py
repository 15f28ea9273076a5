"""SabongClient against a scripted server that verifies like the contract says."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal

import pytest
from partner_sdk import (
    AuthenticationError,
    ConflictError,
    InsufficientBalanceError,
    Response,
    SabongClient,
    ValidationError,
)

from shared.exceptions import SignatureRejected
from shared.signing import canonical_query, verify
from tests.live_services import Recorded, Reply, ScriptedServer, json_reply, scripted_server

SECRET = "partner-secret"
NOW = 1_800_000_000.0


class VerifyingServer:
    """Checks every request's signature over the raw bytes received, with replay refusal."""

    def __init__(self) -> None:
        self.accepted: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, seen: Recorded) -> Reply:
        path, _, query = seen.path.partition("?")
        payload = seen.body
        if seen.method == "GET":
            payload = canonical_query(urllib.parse.parse_qsl(query)).encode()
        try:
            signature = verify([SECRET], seen.method, path, seen.headers.get("x-timestamp"),
                               seen.headers.get("x-signature"), payload, now=NOW)  # fmt: skip
        except SignatureRejected as exc:
            return self._reject("Invalid signature", exc.reason)
        with self.lock:
            if signature in self.accepted:
                return self._reject("Duplicate request signature", "replayed")
            self.accepted.add(signature)
        token_request = path == "/api/v1/generate-auth-token"
        if token_request and "displayName" not in json.loads(seen.body):
            errors = {"displayName": ["The displayName field is required."]}
            return json_reply(400, {"status": "failed", "message": "Validation failed",
                                    "data": {"errors": errors}})  # fmt: skip
        return json_reply(200, {"status": "success", "message": "OK", "data": {"echo": path}})

    @staticmethod
    def _reject(message: str, reason: str) -> Reply:
        body = {"status": "error", "message": message, "data": None}
        return json_reply(401, body, {"X-Auth-Error": reason})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server(VerifyingServer()) as running:
        yield running


def _client(server: ScriptedServer, secret: str = SECRET) -> SabongClient:
    return SabongClient(server.url, secret, timeout=5, clock=lambda: NOW)


def test_the_exact_bytes_sent_are_signed(server: ScriptedServer) -> None:
    data = _client(server).generate_auth_token("C1", "user", "José Ñ", "10.0.0.1", expiration=5)
    assert data == {"echo": "/api/v1/generate-auth-token"}
    sent = server.requests[0]
    assert (
        sent.body
        == (
            '{"clientId":"C1","username":"user","displayName":"José Ñ",'
            '"ipAddress":"10.0.0.1","expiration":5}'
        ).encode()
    )
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-timestamp"] == str(int(NOW))


def test_expiration_is_left_out_unless_given(server: ScriptedServer) -> None:
    _client(server).generate_auth_token("C1", "user", "Name", "10.0.0.1")
    assert "expiration" not in json.loads(server.requests[0].body)


def test_identical_requests_never_reuse_a_signature(server: ScriptedServer) -> None:
    client = _client(server)
    for _ in range(3):
        client.generate_auth_token("C1", "user", "Name", "10.0.0.1")
    stamps = [int(r.headers["x-timestamp"]) for r in server.requests]
    assert stamps == [int(NOW), int(NOW) + 1, int(NOW) + 2]
    assert len({r.headers["x-signature"] for r in server.requests}) == 3


def test_get_signs_the_sorted_query(server: ScriptedServer) -> None:
    response = _client(server).request(
        "GET", "/api/v1/get-balance", params={"z": "last", "clientId": "C 1"}
    )
    assert response.status == 200
    assert server.requests[0].path == "/api/v1/get-balance?clientId=C+1&z=last"
    assert server.requests[0].body == b""


def test_wrong_secret_raises_with_the_server_message(server: ScriptedServer) -> None:
    with pytest.raises(AuthenticationError) as caught:
        _client(server, "not-the-secret").generate_auth_token("C1", "u", "n", "10.0.0.1")
    error = caught.value
    assert (error.status, error.message, error.reason) == (401, "Invalid signature",
                                                           "signature_mismatch")  # fmt: skip
    assert "not-the-secret" not in str(error)


def test_validation_errors_carry_the_fields(server: ScriptedServer) -> None:
    with pytest.raises(ValidationError) as caught:
        _client(server).request("POST", "/api/v1/generate-auth-token", json={"clientId": "C1"})
    assert caught.value.errors == {"displayName": ["The displayName field is required."]}


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        SabongClient("http://127.0.0.1:1", "")


def test_repr_never_shows_the_secret() -> None:
    assert SECRET not in repr(SabongClient("http://127.0.0.1:1", SECRET))


def test_amounts_are_sent_as_exact_decimal_strings(server: ScriptedServer) -> None:
    client = _client(server)
    client.credit("C1", Decimal("10.50"), reference="r-1", description="top up")
    client.debit("C1", 3)
    client.debit("C1", "0.07")
    bodies = [json.loads(r.body) for r in server.requests]
    assert bodies == [
        {"clientId": "C1", "amount": "10.50", "reference": "r-1", "description": "top up"},
        {"clientId": "C1", "amount": "3"},
        {"clientId": "C1", "amount": "0.07"},
    ]


@pytest.mark.parametrize("amount", [0.1, True])
def test_a_float_amount_is_refused_before_anything_is_sent(
    server: ScriptedServer, amount: object
) -> None:
    with pytest.raises(TypeError, match="float"):
        _client(server).credit("C1", amount)  # type: ignore[arg-type]
    assert server.requests == []


def test_wallet_errors_are_typed_and_money_in_them_is_decimal() -> None:
    insufficient = Response(
        400, {}, b'{"status":"failed","message":"Insufficient balance",'
        b'"data":{"balance":0.10,"amount":0.30}}',
    ).error()  # fmt: skip
    assert isinstance(insufficient, InsufficientBalanceError)
    assert insufficient.data == {"balance": Decimal("0.10"), "amount": Decimal("0.30")}
    duplicate = Response(
        409, {}, b'{"status":"failed","message":"Duplicate reference","data":{"transactionId":7}}'
    ).error()
    assert isinstance(duplicate, ConflictError) and duplicate.data == {"transactionId": 7}
