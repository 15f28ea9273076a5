"""Small helpers for the USSD tests: accounts, logins, envelopes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Partner:
    """A K2 client account created for a test, with its clear-text password."""

    username: str
    password: str
    record: dict[str, Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(
    client: FlaskClient, username: str, password: str, address: str | None = None
) -> TestResponse:
    headers = {"X-Forwarded-For": address} if address else {}
    return client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


def login_token(client: FlaskClient, partner: Partner) -> str:
    response = login(client, partner.username, partner.password)
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["data"]["token"]
    return token


def new_service_id(client: FlaskClient, token: str) -> str:
    response = client.post("/api/clients/generate-service-id", headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    service_id: str = response.get_json()["data"]["SERVICE_ID"]
    return service_id


def assert_envelope(response: TestResponse, status: int, message: str) -> dict[str, Any]:
    """The K2 error envelope exactly: JSON, status repeated, message, data null."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body == {"status": status, "message": message, "data": None}
    return body


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a JWT, decoded without any verification."""
    head, payload, _ = token.split(".")
    return _b64json(head), _b64json(payload)


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded
