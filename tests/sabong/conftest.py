"""Sabong fixtures: the app on a real Redis, a partner that signs exactly what it sends,
and the real server (`python -m scripts.serve sabong`) for tests that cross a process."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from devtools.embedded import free_port
from devtools.processes import served
from services.sabong import create_app
from services.sabong.cli import main as cli_main
from services.sabong.runtime import EXTENSION, set_clock
from shared import signing

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET = "your-secret-key"  # the contract's test-vector secret
PATH = "/api/v1/generate-auth-token"
VECTOR_TIME = 1706802000  # x-timestamp of the contract's vectors (2024-02-01T15:40:00Z)


def base_settings(redis_url: str, **extra: str) -> dict[str, str]:
    """Explicit settings for a test app: never the developer's `.env` secrets."""
    return {
        "APP_ENV": "development",
        "REDIS_URL": redis_url,
        "SABONG_CLIENT_SECRETS": SECRET,
        "SABONG_SESSION_SECRET": "test-session-secret-" + "s" * 24,
        "USSD_LOGIN_JWT_SECRET": "test-login-jwt-secret-" + "l" * 24,
        "USSD_SERVICE_ID_SECRET": "test-service-id-secret-" + "i" * 24,
        **extra,
    }


@pytest.fixture(autouse=True)
def isolated_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app in these tests reads (and could write) a throwaway `.env`."""
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "test.env"))
    for name in list(os.environ):
        if name.startswith("SABONG_") or name == "REDIS_URL":
            monkeypatch.delenv(name)


MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(redis_url: str, database_url: str) -> Iterator[MakeApp]:
    """Build an app on the per-test Redis and the emptied test database, with extra settings."""
    built: list[Flask] = []

    def build(redis: str | None = None, **extra: str) -> Flask:
        app = create_app(base_settings(redis or redis_url, **extra))
        built.append(app)
        return app

    yield build
    for app in built:  # each app has a database pool: close it rather than leak connections
        app.extensions[EXTENSION].database.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def compact(body: Mapping[str, Any]) -> bytes:
    """JSON as most partners send it: compact, UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def valid_fields(**overrides: Any) -> dict[str, Any]:
    """A valid generate-auth-token body with a unique (ignored) field, so no replays."""
    body: dict[str, Any] = {
        "clientId": "CLIENT_001",
        "username": "testuser001",
        "displayName": "Client One",
        "ipAddress": "192.168.1.100",
        "expiration": 5,
        "requestId": uuid.uuid4().hex,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()
DROP: Any = _DROP  # pass as a field value to leave the field out


@dataclass
class Partner:
    """A Sabong partner using the Flask test client: signs exactly the bytes it sends."""

    client: FlaskClient
    secret: str = SECRET

    def now(self) -> int:
        app = self.client.application
        return int(app.extensions[EXTENSION].clock())

    def post(
        self,
        body: bytes | Mapping[str, Any],
        *,
        path: str = PATH,
        timestamp: int | str | None = None,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        signed_path: str | None = None,
    ) -> TestResponse:
        """POST `body` (bytes as-is, a mapping as compact JSON) with a valid signature."""
        data = body if isinstance(body, bytes) else compact(body)
        stamp = str(self.now() if timestamp is None else timestamp)
        sig = signing.sign(
            secret or self.secret, "POST", signed_path or path.split("?")[0], stamp, data
        )
        sent = {"x-signature": sig, "x-timestamp": stamp, "Content-Type": "application/json"}
        sent.update(headers or {})
        return self.client.post(path, data=data, headers=sent)

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        timestamp: int | str | None = None,
        secret: str | None = None,
    ) -> TestResponse:
        """GET `path?params` signed over the sorted query, as the contract says."""
        query = dict(params or {})
        stamp = str(self.now() if timestamp is None else timestamp)
        payload = signing.canonical_query(query)
        sig = signing.sign(secret or self.secret, "GET", path, stamp, payload)
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        return self.client.get(target, headers={"x-signature": sig, "x-timestamp": stamp})

    def issue(self, **fields: Any) -> dict[str, Any]:
        """Issue a token for a valid body; the response data (asserts success)."""
        response = self.post(valid_fields(**fields))
        assert response.status_code == 200, response.get_data(as_text=True)
        data: dict[str, Any] = response.get_json()["data"]
        return data


@pytest.fixture
def partner(client: FlaskClient) -> Partner:
    return Partner(client)


@pytest.fixture
def vector_partner(app: Flask, client: FlaskClient) -> Partner:
    """A partner whose server clock reads the contract vectors' timestamp."""
    set_clock(app, lambda: float(VECTOR_TIME))
    return Partner(client)


# -- a real server --------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveSabong:
    """A gunicorn Sabong server on a free port, signing like a partner."""

    url: str
    secret: str
    env: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> HttpAnswer:
        """One request on a fresh connection (safe from many threads); no redirects."""
        parts = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=dict(headers or {}))
            answer = conn.getresponse()
            return HttpAnswer(answer.status, dict(answer.getheaders()), answer.read())
        finally:
            conn.close()

    def post_signed(self, body: Mapping[str, Any], path: str = PATH) -> HttpAnswer:
        data = compact(body)
        stamp = str(int(time.time()))
        sig = signing.sign(self.secret, "POST", path, stamp, data)
        headers = {"x-signature": sig, "x-timestamp": stamp, "Content-Type": "application/json"}
        return self.request("POST", path, data, headers)

    def get_signed(self, path: str, params: Mapping[str, str]) -> HttpAnswer:
        stamp = str(int(time.time()))
        sig = signing.sign(self.secret, "GET", path, stamp, signing.canonical_query(params))
        target = f"{path}?{urllib.parse.urlencode(dict(params))}"
        return self.request("GET", target, headers={"x-signature": sig, "x-timestamp": stamp})


@contextlib.contextmanager
def gunicorn_sabong(
    redis_url: str, log_dir: Path, threads: int = 16, **extra: str
) -> Iterator[LiveSabong]:
    """`python -m scripts.serve sabong` (gunicorn, 2 workers of the default class) on a free port
    (`extra` settings, e.g. a DATABASE_URL of the test's own, over the run's)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SABONG_", "USSD_"))}
    env.update(base_settings(redis_url, SABONG_CLIENT_SECRETS=secret, SABONG_LOGIN_BASE_URL=url))
    env.update(extra)
    env.update(
        DOTENV_PATH=str(log_dir / "live.env"),
        PYTHONPATH=str(PROJECT_ROOT),
        METRICS_DIR=str(log_dir / "metrics"),
        BIND_HOST="127.0.0.1",
        SABONG_PORT=str(port),
        SABONG_WORKERS="2",
        SABONG_THREADS=str(threads),
        GUNICORN_GRACEFUL_TIMEOUT="3",
    )
    with served("sabong", env, log_dir / "gunicorn-sabong.log", url):
        yield LiveSabong(url, secret, env)


@pytest.fixture(scope="session")
def live_sabong(
    session_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSabong]:
    """One real server for the session, on the session Redis or cluster (tests flush via
    redis_url)."""
    with gunicorn_sabong(session_redis_url, tmp_path_factory.mktemp("sabong-live")) as live:
        yield live


# -- wallets ----------------------------------------------------------------------------

SEED_USER_SQL = """
INSERT INTO sabong_users (client_id, username, name, display_id, referral_code, password,
                          created_at, updated_at)
VALUES (%(client_id)s, %(client_id)s, %(client_id)s, %(client_id)s,
        'REF-2026-' || upper(substr(md5(%(client_id)s), 1, 6)), '!seeded', now(), now())
RETURNING id
"""
SEED_WALLET_SQL = """
INSERT INTO sabong_wallets (client_id, user_id, balance, created_at, updated_at)
VALUES (%(client_id)s, %(user_id)s, %(balance)s, now(), %(updated_at)s)
RETURNING id
"""
SEED_CREDIT_SQL = """
INSERT INTO sabong_transactions (client_id, wallet_id, type, amount, currency,
                                 balance_after, description, created_at)
VALUES (%(client_id)s, %(wallet_id)s, 'credit', %(balance)s, 'USD', %(balance)s,
        'opening balance', now())
"""


def seed_user(db: Any, client_id: str, balance: str = "0.00") -> int:
    """Create a user with a wallet straight in PostgreSQL; returns the user id.

    An opening balance is recorded as a credit, so the ledger reconciles. (Until users are
    created in PostgreSQL by generate-auth-token, this is how wallet tests get a user.)
    """
    amount = Decimal(balance)
    params: dict[str, Any] = {"client_id": client_id, "balance": amount}
    (user_id,) = db.execute(SEED_USER_SQL, params).fetchone()
    params.update(user_id=user_id, updated_at=datetime.now(UTC) if amount else None)
    (wallet_id,) = db.execute(SEED_WALLET_SQL, params).fetchone()
    if amount:
        db.execute(SEED_CREDIT_SQL, {**params, "wallet_id": wallet_id})
    return int(user_id)


@pytest.fixture
def make_user(db: Any) -> Callable[..., int]:
    """`make_user(client_id, balance="0.00")`: a user and wallet in the test database."""
    return lambda client_id, balance="0.00": seed_user(db, client_id, balance)


def reconcile_exit(database_url: str) -> tuple[int, str]:
    """Run the operator's `reconcile` against the test database: (exit code, stderr)."""
    errors, output = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(output):
        code = cli_main(["reconcile"], environ={"DATABASE_URL": database_url})
    return code, errors.getvalue()


@pytest.fixture
def reconciled(database_url: str) -> Iterator[None]:
    """After the test: the operator's `reconcile` finds every wallet consistent."""
    yield
    code, problems = reconcile_exit(database_url)
    assert code == 0, problems
