"""The admin CLI: `python -m services.ussd create-client|disable-client|...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from services.ussd import cli
from shared.config import load_settings

from .conftest import PROJECT_ROOT, ussd_config
from .helpers import assert_envelope, bearer, login, login_token, new_service_id


def run_cli(redis_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    settings = load_settings(ussd_config(redis_url))
    code = cli.main(list(argv), settings=settings)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_create_client_prints_the_client_without_hash(
    redis_url: str, capsys, client: FlaskClient
) -> None:
    code, out, _ = run_cli(
        redis_url, capsys, "create-client", "--username", "cli-user", "--password", "s3cret-pass",
        "--email", "a@b.example", "--msisdn", "639171234567", "--role", "partner",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert created["username"] == "cli-user" and created["role"] == "partner"
    assert created["email"] == "a@b.example" and created["msisdn"] == "639171234567"
    assert created["is_active"] == 1 and created["id"] and created["client_id"]
    assert "s3cret-pass" not in out and "scrypt" not in out and "password" not in out
    assert login(client, "cli-user", "s3cret-pass").status_code == 200


def test_duplicate_username_is_a_clear_error(redis_url: str, capsys) -> None:
    args = ("create-client", "--username", "dup", "--password", "password-1")
    assert run_cli(redis_url, capsys, *args)[0] == 0
    code, out, err = run_cli(redis_url, capsys, "create-client", "--username", "DUP",
                             "--password", "password-2")  # fmt: skip
    assert code == 1 and out == ""
    assert "already taken" in err


@pytest.mark.parametrize(
    "args",
    [
        ("--username", "has space", "--password", "password-1"),
        ("--username", "ok", "--password", "short"),
        ("--username", "ok", "--password", "password-1", "--email", "not-an-email"),
        ("--username", "ok", "--password", "password-1", "--msisdn", "12ab"),
        ("--username", "ok", "--password", "password-1", "--role", "Admin!"),
    ],
)
def test_malformed_fields_are_refused(redis_url: str, capsys, args: tuple[str, ...]) -> None:
    code, _, err = run_cli(redis_url, capsys, "create-client", *args)
    assert code == 1 and err.startswith("error: ")


def test_disable_and_enable_through_the_cli(
    redis_url: str, capsys, client: FlaskClient, partner
) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    code, out, _ = run_cli(redis_url, capsys, "disable-client", "--username", partner.username)
    assert code == 0 and json.loads(out)["is_active"] == 0
    assert_envelope(login(client, partner.username, partner.password), 403, "Account is disabled")
    assert_envelope(client.get("/api/clients/me", headers=bearer(service_id)), 401,
                    "Invalid service ID")  # fmt: skip
    code, out, _ = run_cli(redis_url, capsys, "enable-client", "--username", partner.username)
    assert code == 0 and json.loads(out)["is_active"] == 1
    assert login(client, partner.username, partner.password).status_code == 200


def test_reset_password_and_list_clients(
    redis_url: str, capsys, client: FlaskClient, make_partner
) -> None:
    make_partner("first")
    make_partner("second")
    code, _, _ = run_cli(redis_url, capsys, "reset-password", "--username", "first",
                         "--password", "new-password-1")  # fmt: skip
    assert code == 0
    assert login(client, "first", "new-password-1").status_code == 200
    code, out, _ = run_cli(redis_url, capsys, "list-clients")
    listed = json.loads(out)
    assert code == 0 and [c["username"] for c in listed] == ["first", "second"]
    assert "scrypt" not in out


def test_unknown_username_is_an_error(redis_url: str, capsys) -> None:
    code, _, err = run_cli(redis_url, capsys, "disable-client", "--username", "ghost")
    assert code == 1 and "no client" in err


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_without_urls_the_cli_looks_for_make_runs_stores_and_says_so(capsys) -> None:
    # No REDIS_URL / DATABASE_URL: the embedded servers `make run` starts, on their ports
    # (here ports nothing listens on, so the answer says what to do).
    settings = load_settings(ussd_config("", DATABASE_URL="", REDIS_PORT="1", POSTGRES_PORT="1"))
    code = cli.main(["list-clients"], settings=settings)
    err = capsys.readouterr().err
    assert code == 1 and "DATABASE_URL" in err and "make run" in err


def test_unreachable_redis_changes_nothing(redis_url: str, capsys, partner, db) -> None:
    # The change must reach the Redis cache before it commits, or a cache that comes back
    # would keep serving the old account: without Redis it is refused, not half-applied.
    settings = load_settings(ussd_config("redis://127.0.0.1:1/0"))
    code = cli.main(["disable-client", "--username", partner.username], settings=settings)
    err = capsys.readouterr().err
    assert code == 1 and "Redis" in err and "unreachable" in err and "Nothing was changed" in err
    (active, gen) = db.execute("SELECT is_active, gen FROM k2_clients").fetchone()
    assert (active, gen) == (True, 1)


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_unreachable_postgres_is_a_clear_error(redis_url: str, capsys) -> None:
    settings = load_settings(
        ussd_config(redis_url, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    )
    code = cli.main(["list-clients"], settings=settings)
    err = capsys.readouterr().err
    assert code == 1 and "PostgreSQL" in err and "unreachable" in err
    assert "nobody" not in err  # the URL (it may carry a password) is not printed


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_missing_database_url_says_what_to_do(redis_url: str, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL")
    code = cli.main(["list-clients"], settings=load_settings(ussd_config(redis_url)))
    err = capsys.readouterr().err
    assert code == 1 and "DATABASE_URL" in err


def test_python_dash_m_create_client(redis_url: str, tmp_path: Path, client: FlaskClient) -> None:
    env = {**os.environ, **ussd_config(redis_url), "DOTENV_PATH": str(tmp_path / ".env")}
    result = subprocess.run(
        [sys.executable, "-m", "services.ussd", "create-client",
         "--username", "from-shell", "--password", "shell-password"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["username"] == "from-shell"
    assert {"id", "client_id", "username"} <= set(created)
    assert login(client, "from-shell", "shell-password").status_code == 200
