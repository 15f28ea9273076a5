"""The operator CLI: show-user, list-users, audit (from PostgreSQL), import-from-redis; and
clear messages without DATABASE_URL / REDIS_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.embedded import free_port
from services.sabong.cli import main

from .conftest import PROJECT_ROOT, Partner


def run(
    capsys: pytest.CaptureFixture[str], database_url: str, *argv: str, **env: str
) -> tuple[int, Any, str]:
    # DOTENV_PATH: the test's own empty `.env` (conftest), never the developer's.
    environ = {"DOTENV_PATH": os.environ["DOTENV_PATH"], "DATABASE_URL": database_url, **env}
    code = main(list(argv), environ=environ)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def test_show_user_prints_user_and_wallet_without_password(
    partner: Partner, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    partner.issue(clientId="CLI-1", username="cli", displayName="Cli User")
    code, shown, _ = run(capsys, database_url, "show-user", "CLI-1")
    assert code == 0
    assert isinstance(shown, dict)
    assert shown["user"]["id"] == 1 and shown["user"]["name"] == "Cli User"
    assert shown["user"]["referralCode"].startswith("REF-")
    assert shown["user"]["createdAt"].endswith("Z")
    assert "password" not in shown["user"]
    assert shown["wallet"] == {"currency": "USD", "balance": "0.00"}


def test_show_user_unknown_client_is_exit_1(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, shown, err = run(capsys, database_url, "show-user", "NOBODY")
    assert (code, shown) == (1, None)
    assert "NOBODY" in err


def test_list_users_in_id_order(
    partner: Partner, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("B", "A", "C"):
        partner.issue(clientId=f"LIST-{name}")
    code, listed, _ = run(capsys, database_url, "list-users")
    assert code == 0
    assert [(u["id"], u["clientId"]) for u in listed] == [
        (1, "LIST-B"),
        (2, "LIST-A"),
        (3, "LIST-C"),
    ]
    assert all("password" not in u for u in listed)


def test_audit_lists_recent_issuances_newest_first(
    partner: Partner, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for last in range(1, 4):
        partner.issue(clientId="AUDIT-1", ipAddress=f"10.0.0.{last}")
    code, entries, _ = run(capsys, database_url, "audit", "AUDIT-1", "--limit", "2")
    assert code == 0
    assert [e["ipAddress"] for e in entries] == ["10.0.0.3", "10.0.0.2"]
    assert all(e["userId"] == 1 and e["clientId"] == "AUDIT-1" for e in entries)
    assert all(e["expiresIn"] == 300 and e["at"].endswith("Z") for e in entries)


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_database_down_is_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, shown, err = run(capsys, f"postgresql://nobody@127.0.0.1:{free_port()}/x", "list-users")
    assert (code, shown) == (1, None)
    assert "PostgreSQL (DATABASE_URL) cannot be reached" in err


@pytest.mark.waits  # waits out a production timeout: full tier only
def test_without_database_url_the_cli_looks_for_make_runs_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DOTENV_PATH"] = str(tmp_path / "empty.env")
    env["POSTGRES_PORT"] = str(free_port())  # where `make run` would be: nothing is there
    result = subprocess.run(
        [sys.executable, "-m", "services.sabong", "list-users"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "PostgreSQL (DATABASE_URL) cannot be reached; is `make run` up?" in result.stderr
    assert result.stdout == ""


def test_import_without_redis_says_so(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No REDIS_URL, and no `make run` Redis on the port it would use either.
    code, shown, err = run(capsys, database_url, "import-from-redis", REDIS_PORT=str(free_port()))
    assert (code, shown) == (1, None)
    assert "Redis (REDIS_URL) cannot be reached" in err


def test_database_url_is_read_from_dotenv(
    partner: Partner, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partner.issue(clientId="DOT")
    dotenv = tmp_path / "ops.env"
    dotenv.write_text(f"DATABASE_URL={database_url}\n")
    assert main(["show-user", "DOT"], environ={"DOTENV_PATH": str(dotenv)}) == 0
    assert json.loads(capsys.readouterr().out)["user"]["clientId"] == "DOT"


def test_end_sessions_signs_a_stolen_session_out_everywhere(
    partner: Partner, redis_url: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    thief = partner.client.application.test_client()
    for browser in (partner.client, thief):
        assert browser.post("/login/" + partner.issue(clientId="CLI-S")["token"]).status_code == 303
    bystander = partner.client.application.test_client()
    bystander.post("/login/" + partner.issue(clientId="CLI-OTHER")["token"])

    code, shown, _ = run(capsys, database_url, "end-sessions", "CLI-S", REDIS_URL=redis_url)

    assert code == 0 and shown == {"clientId": "CLI-S", "sessionsEnded": 2}
    assert partner.client.get("/api/v1/me").status_code == 401
    assert thief.get("/api/v1/me").status_code == 401
    assert bystander.get("/api/v1/me").status_code == 200  # another user's session lives on
    again = run(capsys, database_url, "end-sessions", "CLI-S", REDIS_URL=redis_url)
    assert again[1]["sessionsEnded"] == 0
