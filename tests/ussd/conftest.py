"""USSD fixtures: an app on the test Redis, a test client, cheap partner accounts, and a
real server (`python -m scripts.serve ussd`) for what crosses a process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from devtools.embedded import free_port
from devtools.processes import served
from services.ussd import accounts, create_app
from services.ussd.runtime import EXTENSION, Runtime

from .helpers import PASSWORD, Partner

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "USSD_LOGIN_JWT_SECRET": "test-login-jwt-secret-0123456789abcdef",
    "USSD_SERVICE_ID_SECRET": "test-service-id-secret-0123456789abcdef",
    "SABONG_CLIENT_SECRETS": "test-sabong-client-secret-0123456789",
    "SABONG_SESSION_SECRET": "test-sabong-session-secret-0123456789",
}
# scrypt at N=16 costs microseconds: tests exercise the logic, not the slowness.
CHEAP_SCRYPT_N = "16"


def ussd_config(redis_url: str, **overrides: str) -> dict[str, str]:
    """Settings for a test app: explicit secrets, cheap hashing, the given Redis."""
    return {**SECRETS, "REDIS_URL": redis_url, "USSD_SCRYPT_N": CHEAP_SCRYPT_N, **overrides}


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read or write the project's `.env`, nor inherit the caller's settings."""
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / ".env"))
    for name in list(os.environ):
        if name.startswith("USSD_") or name in ("REDIS_URL", "APP_ENV"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_app(redis_url: str, database_url: str) -> Callable[..., Flask]:
    """Build a USSD app on the test Redis and the emptied test database, with overrides."""

    def build(redis: str = redis_url, **overrides: str) -> Flask:
        app = create_app(ussd_config(redis, **overrides))
        app.testing = True
        return app

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ctx(app: Flask) -> Runtime:
    context: Runtime = app.extensions[EXTENSION]
    return context


@pytest.fixture
def make_partner(ctx: Runtime) -> Callable[..., Partner]:
    """Create client accounts straight through the accounts module (no HTTP, cheap hash)."""

    def create(username: str = "partner", password: str = PASSWORD, **fields: Any) -> Partner:
        record = accounts.create_client(ctx, username, password, **fields)
        return Partner(username=username, password=password, record=record)

    return create


@pytest.fixture
def partner(make_partner: Callable[..., Partner]) -> Partner:
    return make_partner()


@pytest.fixture
def ussd_server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """`python -m scripts.serve ussd` (gunicorn, 2 gthread workers x 16 threads); yields
    its base URL."""
    port = free_port()
    env = {**os.environ, **ussd_config(redis_url, USSD_SCRYPT_N="1024")}
    env.update(
        DOTENV_PATH=str(tmp_path / ".env"),
        METRICS_DIR=str(tmp_path / "metrics"),
        BIND_HOST="127.0.0.1",
        USSD_PORT=str(port),
        USSD_WORKERS="2",
        USSD_THREADS="16",
    )
    base_url = f"http://127.0.0.1:{port}"
    with served("ussd", env, tmp_path / "gunicorn.log", base_url):
        yield base_url
