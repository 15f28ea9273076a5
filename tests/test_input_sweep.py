"""Property-based sweep of every endpoint of both services with hostile input: lone
surrogates, NUL, over-long strings, deep nesting, huge numbers, broken UTF-8. Whatever
arrives, the answer is never a 5xx and always the family's envelope (Flask test clients on
the test Redis: this is about input handling, not about the network)."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from services.sabong import create_app as create_sabong
from services.sabong.signin import SESSION_ID
from services.ussd import accounts as ussd_accounts
from services.ussd import create_app as create_ussd
from services.ussd.runtime import EXTENSION as USSD_EXTENSION
from shared import signing
from tests.sabong.conftest import SECRET, base_settings
from tests.ussd.conftest import ussd_config

SABONG_TOKEN_PATH = "/api/v1/generate-auth-token"
SWEEP = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_TEXT = [
    "\ud800",  # a lone high surrogate (JSON "\ud800")
    "x\udfff",  # a lone low surrogate
    "\udfff\ud800",  # surrogates in the wrong order
    "\x00",
    "a\x00b",
    "\ufeff",
    "\u202e",
    "é" * 101,
    "x" * 256,
    "x" * 5000,
    " ",
    "",
    "1.5",
    "5",
    "::1",
    "192.168.1.100",
]
text = st.one_of(
    st.text(max_size=12), st.sampled_from(NASTY_TEXT), st.text(alphabet="\ud800\x00a", max_size=5)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def document(fields: dict[str, Any], ascii_only: bool) -> bytes:
    """The body as a partner might send it; lone surrogates as `\\ud800` escapes, or (with
    ascii_only False) raw, which makes the bytes invalid UTF-8."""
    return json.dumps(fields, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


VALID = {
    "clientId": "SWEEP-1",
    "username": "sweeper",
    "displayName": "Sweep",
    "ipAddress": "10.0.0.1",
    "expiration": 5,
    "service_id": "x",
    "password": "p",
    "amount": "10.50",
    "description": "sweep",
    "reference": "ref-1",
}
WALLET_POSTS = ("/api/v1/credit-balance", "/api/v1/debit-balance")
WALLET_GETS = ("/api/v1/get-balance", "/api/v1/get-transactions")
QUERY_FIELDS = ("clientId", "limit", "page", "type", "sortBy", "sortOrder", "dateFrom", "dateTo")


def hostile_value(valid: Any) -> st.SearchStrategy[Any]:
    """The valid value with a hostile piece spliced in, or any JSON value at all."""
    spliced = st.builds(
        lambda piece, at: f"{valid!s}"[:at] + piece + f"{valid!s}"[at:],
        st.sampled_from(NASTY_TEXT[:5]) | text,
        st.integers(0, 8),
    )
    return st.one_of(spliced, json_values)


@st.composite
def one_hostile_field(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """A valid body except for one field: that field alone must decide the answer."""
    body: dict[str, Any] = {name: VALID[name] for name in names}
    target = draw(st.sampled_from(names))
    if draw(st.integers(0, 9)) == 0:
        del body[target]
    else:
        body[target] = draw(hostile_value(VALID[target]))
    return body


def sabong_fields(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with one field hostile, or with every field drawn freely."""
    free = st.fixed_dictionaries({}, optional={name: json_values for name in names})
    return st.one_of(one_hostile_field(names), one_hostile_field(names), free)


# Raw documents that json.dumps cannot produce: out-of-range numbers, deep nesting,
# broken UTF-8, NUL bytes outside strings, a byte-order mark.
RAW_DOCUMENTS = [
    # The reported attack: a lone surrogate in an otherwise valid, correctly signed body.
    b'{"clientId":"C1","username":"u","displayName":"x\\ud800","ipAddress":"10.0.0.1"}',
    b'{"clientId":"C\\ud800","username":"u","displayName":"x","ipAddress":"10.0.0.1"}',
    b'{"clientId":"C1","username":"\\udfffu","displayName":"x","ipAddress":"10.0.0.1"}',
    b'{"clientId":"A","username":"u","displayName":"d","ipAddress":"10.0.0.1","expiration":1e999}',
    b'{"clientId":"A","username":"u","displayName":"d","ipAddress":"10.0.0.1","expiration":-1e999}',
    b'{"clientId":"A","username":"u","displayName":"d","ipAddress":"10.0.0.1","expiration":1e-999}',
    b'{"clientId":"A","username":"u","displayName":"d","ipAddress":"10.0.0.1","expiration":'
    + b"9" * 5000
    + b"}",
    b'{"clientId":"A","username":"u","displayName":"d","ipAddress":"10.0.0.1","expiration":'
    + b"9" * 40
    + b"}",
    b'{"username":"u","password":' + b"1" * 4400 + b"}",
    b'{"clientId":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"[" * 30000 + b"]" * 30000,
    b'{"clientId":"\xed\xa0\x80","username":"u"}',  # a surrogate encoded as UTF-8 bytes
    b'{"clientId":"\xff"}',
    b'{"clientId":"a"}\x00',
    b'\xef\xbb\xbf{"clientId":"a"}',
    b'{"clientId":"\\ud800\\udc00","username":"\\udc00\\ud800"}',
    b'{"service_id":"\\ud800","username":"\\u0000","password":"\\ud800"}',
    b'{"a":NaN}',
    b"",
    b"x" * 70000,
]


@pytest.fixture(scope="module")
def isolated_dotenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("sweep") / "test.env"
        patch.setenv("DOTENV_PATH", str(path))
        yield path


@pytest.fixture(scope="module")
def sabong(session_redis_url: str, isolated_dotenv: Path) -> Flask:
    return create_sabong(base_settings(session_redis_url))


@pytest.fixture(scope="module")
def ussd(session_redis_url: str, isolated_dotenv: Path) -> Flask:
    app = create_ussd(ussd_config(session_redis_url))
    app.testing = True
    return app


@pytest.fixture(scope="module")
def ussd_bearer(ussd: Flask) -> dict[str, str]:
    """A genuine login JWT, so the body checks behind the Authorization check are reached."""
    username = "sweep-" + uuid.uuid4().hex[:8]
    ussd_accounts.create_client(ussd.extensions[USSD_EXTENSION], username, "sweep-password")
    response = ussd.test_client().post(
        "/api/auth/login", json={"username": username, "password": "sweep-password"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": "Bearer " + response.get_json()["data"]["token"]}


def assert_sabong_answer(response: TestResponse) -> None:
    """Below 500; JSON envelope on API paths, an HTML page elsewhere."""
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.request.path.startswith("/api/"):
        body = response.get_json()
        assert set(body) == {"status", "message", "data"}
        assert body["status"] in ("success", "failed", "error")
    elif response.status_code >= 400:
        assert response.mimetype == "text/html"


def assert_k2_answer(response: TestResponse) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"status", "message", "data"}
    assert body["status"] == response.status_code


def signed_post(client: FlaskClient, body: bytes, path: str = SABONG_TOKEN_PATH) -> TestResponse:
    """A correctly signed POST: the body reaches validation."""
    stamp = str(int(time.time()))
    signature = signing.sign(SECRET, "POST", path, stamp, body)
    headers = {"x-signature": signature, "x-timestamp": stamp}
    return client.post(path, data=body, headers=headers, content_type="application/json")


def signed_get(client: FlaskClient, path: str, query: dict[str, str]) -> TestResponse:
    """A correctly signed GET over the sorted query (values as a partner would encode)."""
    stamp = str(int(time.time()))
    payload = "&".join(f"{key}={query[key]}" for key in sorted(query))
    encoded = urllib.parse.urlencode(
        {k: v.encode("utf-8", "surrogatepass") for k, v in query.items()}
    )
    signature = signing.sign(SECRET, "GET", path, stamp, payload.encode("utf-8", "surrogatepass"))
    return client.get(f"{path}?{encoded}", headers={"x-signature": signature, "x-timestamp": stamp})


def sabong_paths(client: FlaskClient, piece: str, body: bytes) -> Iterator[TestResponse]:
    """Every Sabong endpoint with `piece` in its URL or cookie and `body` as the body."""
    quoted = urllib.parse.quote(piece.encode("utf-8", "surrogatepass"), safe="")
    yield signed_post(client, body)
    yield client.post(SABONG_TOKEN_PATH, data=body, content_type="application/json")
    for method in ("GET", "POST"):
        yield client.open("/login/" + quoted, method=method, data=body)
    with client.session_transaction() as stored:
        stored[SESSION_ID] = piece  # what a cookie could hold, if it could be forged
    for method, path in (("GET", "/me"), ("GET", "/api/v1/me"), ("POST", "/logout")):
        yield client.open(path, method=method, data=body)
    yield client.post("/logout/all", data=body)
    yield client.get("/login/?signed_out=" + quoted)


def ussd_paths(client: FlaskClient, bearer: dict[str, str], body: bytes) -> Iterator[TestResponse]:
    """Every USSD endpoint with `body` (JSON content type), authorised where that matters."""
    json_type = "application/json"
    yield client.post("/api/auth/login", data=body, content_type=json_type)
    for path in ("/api/clients/generate-service-id", "/api/clients/generate-api-key"):
        yield client.post(path, data=body, content_type=json_type, headers=bearer)
        yield client.post(path, data=body, content_type=json_type)
    yield client.get("/api/clients/me", headers=bearer)
    yield client.post("/api/clients/revoke-service-id", data=body, content_type=json_type)


@SWEEP
@given(
    fields=sabong_fields(["clientId", "username", "displayName", "ipAddress", "expiration"]),
    piece=text,
    ascii_only=st.booleans(),
)
def test_hostile_input_never_breaks_the_sabong_envelope(
    sabong: Flask, fields: dict[str, Any], piece: str, ascii_only: bool
) -> None:
    fields["nonce"] = uuid.uuid4().hex  # distinct signatures: no replay unless intended
    client = sabong.test_client()
    for response in sabong_paths(client, piece, document(fields, ascii_only)):
        assert_sabong_answer(response)


@SWEEP
@given(fields=sabong_fields(["username", "password", "service_id"]), ascii_only=st.booleans())
def test_hostile_input_never_breaks_the_k2_envelope(
    ussd: Flask, ussd_bearer: dict[str, str], fields: dict[str, Any], ascii_only: bool
) -> None:
    client = ussd.test_client()
    for response in ussd_paths(client, ussd_bearer, document(fields, ascii_only)):
        assert_k2_answer(response)


@pytest.mark.parametrize("body", RAW_DOCUMENTS, ids=range(len(RAW_DOCUMENTS)))
def test_raw_hostile_documents_get_the_envelope_of_both_families(
    sabong: Flask, ussd: Flask, ussd_bearer: dict[str, str], body: bytes
) -> None:
    for response in sabong_paths(sabong.test_client(), "x", body):
        assert_sabong_answer(response)
    for response in ussd_paths(ussd.test_client(), ussd_bearer, body):
        assert_k2_answer(response)


@SWEEP
@given(
    fields=sabong_fields(["clientId", "amount", "description", "reference"]),
    query=st.dictionaries(st.sampled_from(QUERY_FIELDS), text, max_size=4),
    ascii_only=st.booleans(),
)
def test_hostile_input_never_breaks_the_wallet_envelope(
    sabong: Flask, fields: dict[str, Any], query: dict[str, str], ascii_only: bool
) -> None:
    # Money endpoints: a hostile body or query is a 4xx envelope and moves no money.
    fields["nonce"] = uuid.uuid4().hex
    client = sabong.test_client()
    body = document(fields, ascii_only)
    for path in WALLET_POSTS:
        assert_sabong_answer(signed_post(client, body, path))
    query = {**query, "nonce": uuid.uuid4().hex}
    for path in WALLET_GETS:
        assert_sabong_answer(signed_get(client, path, query))
