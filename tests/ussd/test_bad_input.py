"""Every kind of bad input gets the K2 envelope: never HTML, never a stack trace."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .helpers import assert_envelope, bearer, login_token

LOGIN = "/api/auth/login"
JSON = "application/json"

BAD_LOGIN_BODIES = [
    pytest.param(b'{"username":"a","password":"b"}', "text/plain", id="wrong-content-type"),
    pytest.param(b"username=a&password=b", "application/x-www-form-urlencoded", id="form"),
    pytest.param(b'{"username":"a","password":"b"}', None, id="no-content-type"),
    pytest.param(b'{"username":"a","password":"b"}', "application/json; charset=latin-1", id="cs"),
    pytest.param(b"", JSON, id="empty-body"),
    pytest.param(b"{", JSON, id="invalid-json"),
    pytest.param(b'{"username":"a","password":"b"', JSON, id="truncated-json"),
    pytest.param(b'[{"username":"a","password":"b"}]', JSON, id="array"),
    pytest.param(b'"username"', JSON, id="string"),
    pytest.param(b"null", JSON, id="null"),
    pytest.param(b'{"username":NaN,"password":"b"}', JSON, id="nan"),
    pytest.param(b"{}", JSON, id="empty-object"),
    pytest.param(b'{"username":"a"}', JSON, id="missing-password"),
    pytest.param(b'{"password":"b"}', JSON, id="missing-username"),
    pytest.param(b'{"username":1,"password":"b"}', JSON, id="int-username"),
    pytest.param(b'{"username":"a","password":null}', JSON, id="null-password"),
    pytest.param(b'{"username":["a"],"password":"b"}', JSON, id="list-username"),
    pytest.param(b'{"username":{"$ne":1},"password":"b"}', JSON, id="object-username"),
    pytest.param(b'{"username":"","password":"b"}', JSON, id="empty-username"),
    pytest.param(b'{"username":"a","password":""}', JSON, id="empty-password"),
    pytest.param(b'{"username":"' + b"u" * 101 + b'","password":"b"}', JSON, id="huge-username"),
    pytest.param(b'{"username":"a","password":"' + b"p" * 1025 + b'"}', JSON, id="huge-password"),
    pytest.param(b'{"username":"\xff\xfe","password":"b"}', JSON, id="invalid-utf8"),
    pytest.param(b'{"username":"a","password":"\\ud800"}', JSON, id="lone-surrogate"),
    pytest.param(b"[" * 5000 + b"]" * 5000, JSON, id="deep-nesting"),
]


@pytest.mark.parametrize(("body", "content_type"), BAD_LOGIN_BODIES)
def test_bad_login_bodies_are_400_envelopes(
    client: FlaskClient, body: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(LOGIN, data=body, headers=headers)
    assert_envelope(response, 400, "Invalid request format")


def test_longest_allowed_fields_are_not_a_format_error(client: FlaskClient) -> None:
    body = {"username": "u" * 100, "password": "p" * 1024}
    assert_envelope(client.post(LOGIN, json=body), 401, "Invalid username or password")


def test_body_over_the_limit_is_413_envelope(client: FlaskClient) -> None:
    response = client.post(LOGIN, data=b"{" + b" " * (64 * 1024) + b"}", content_type=JSON)
    assert_envelope(response, 413, "Request body too large")


def test_huge_generate_service_id_body_is_413(client: FlaskClient, partner) -> None:
    token = login_token(client, partner)
    response = client.post(
        "/api/clients/generate-service-id",
        headers=bearer(token),
        data=b"0" * (65 * 1024),
        content_type=JSON,
    )
    assert_envelope(response, 413, "Request body too large")


@pytest.mark.parametrize(
    "path", ["/", "/api", "/api/auth", "/api/auth/logout", "/api/clients/nope", "/x/../etc"]
)
def test_unknown_routes_are_404_envelopes(client: FlaskClient, path: str) -> None:
    assert_envelope(client.get(path), 404, "Not found")
    assert_envelope(client.post(path), 404, "Not found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", LOGIN),
        ("PUT", LOGIN),
        ("DELETE", "/api/clients/generate-service-id"),
        ("GET", "/api/clients/generate-api-key"),
        ("POST", "/api/clients/me"),
        ("GET", "/api/clients/revoke-service-id"),
        ("POST", "/healthz"),
    ],
)
def test_wrong_methods_are_405_envelopes(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert_envelope(response, 405, "Method not allowed")
    assert response.headers["Allow"]


def test_unexpected_exception_is_500_envelope_without_secrets_in_logs(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> None:
        raise RuntimeError("password=hunter2-in-an-error-message")

    app.add_url_rule("/explode", "explode", explode)
    with caplog.at_level(logging.ERROR, logger="services.ussd"):
        response = app.test_client().get("/explode")
    body = assert_envelope(response, 500, "Internal server error")
    assert "Traceback" not in str(body)
    assert "RuntimeError" in caplog.text
    assert "hunter2" not in caplog.text


def test_health_endpoints(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": 200, "message": "OK", "data": None}
    assert client.get("/readyz").get_json() == {"status": 200, "message": "OK", "data": None}


def test_a_nul_in_the_username_is_the_ordinary_401_not_a_database_crash(
    client: FlaskClient,
) -> None:
    answer = client.post(LOGIN, json={"username": "demo\x00x", "password": "whatever-123"})
    assert answer.status_code == 401
    assert answer.get_json() == {
        "status": 401,
        "message": "Invalid username or password",
        "data": None,
    }
