"""What `make run` prints once everything is ready: where things are and how to try them."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shared.config import DEFAULT_DOTENV, PROJECT_ROOT, SECRET_NAMES, Settings

from .children import probe_host, redact_url

if TYPE_CHECKING:
    from .run import Stores
from .serve import bind_address, bind_host, port

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - a documented example, not a real secret
DEMO_CLIENT_ID = "CLIENT_001"


def show(settings: Settings, data: Path, found: Stores, ready_in: float) -> None:
    """Print the whole start-up banner to stdout."""
    sections = [
        f"Partner auth platform is ready in {ready_in:.1f} s ({settings.app_env}). "
        "Ctrl-C stops everything.",
        locations(settings, data, found),
        secrets_section(settings),
        k2_example(settings, found),
        sabong_example(settings),
    ]
    print("\n\n".join(sections) + "\n", flush=True)


def url_of(component: str, settings: Settings) -> str:
    """The base URL at which `component` answers on this machine."""
    return f"http://{bind_address(probe_host(bind_host(settings)), port(component, settings))}"


def locations(settings: Settings, data: Path, found: Stores) -> str:
    """URLs of the components, where the data and logs are, which settings file is read."""
    redis_note = (
        f"embedded, AOF on, data in {data / 'redis'}{also_on(found.redis_url, found.redis.url)}"
        if found.redis is not None
        else "external (REDIS_URL)"
    )
    postgres_note = (
        f"embedded, migrated, data in {data / 'postgres'}"
        f"{also_on(found.database_url, found.postgres.url)}"
        if found.postgres is not None
        else "external (DATABASE_URL), migrated"
    )
    logs = ", ".join(
        str(data / "log" / f"{c}.log") for c in ("ussd", "ussd-login", "sabong", "gateway")
    )
    rows = [
        ("Gateway (public entry)", f"{url_of('gateway', settings)}   (/healthz, /readyz)"),
        ("K2 USSD service", f"{url_of('ussd', settings)}   (direct, bypasses the gateway)"),
        ("K2 USSD login pool", f"{url_of('ussd-login', settings)}   (serves POST /api/auth/login)"),
        ("Sabong service", f"{url_of('sabong', settings)}   (direct, bypasses the gateway)"),
        ("REDIS_URL", f"{redact_url(found.redis_url)}   ({redis_note})"),
        ("DATABASE_URL", f"{redact_url(found.database_url)}   ({postgres_note})"),
        ("Logs", logs),
        ("Settings file", str(dotenv_path())),
    ]
    return "\n".join(f"  {label:<24}{value}" for label, value in rows)


def also_on(used: str, tcp: str) -> str:
    """Where tools reach an embedded store the components reach over its Unix socket."""
    return f"; tools: {tcp}" if used != tcp else ""


def secrets_section(settings: Settings) -> str:
    """The development secrets (development only; production never prints them)."""
    if settings.production:
        return "Secrets: read from the environment (not shown in production)."
    lines = [f"Development secrets (in {dotenv_path()}; never use them in production):"]
    lines += [f"  {name}={settings.get(name)}" for name in SECRET_NAMES]
    return "\n".join(lines)


def k2_example(settings: Settings, found: Stores) -> str:
    """Copy-paste commands: create a K2 partner account, log in, get a Service ID."""
    gateway = url_of("gateway", settings)
    python = python_path()
    login_body = f'{{"username":"{DEMO_USERNAME}","password":"{DEMO_PASSWORD}"}}'
    extract = 'import json,sys; print(json.load(sys.stdin)["data"]["token"])'
    urls = env_prefix(
        REDIS_URL=redact_url(found.redis_url), DATABASE_URL=redact_url(found.database_url)
    )
    create = (
        f"{urls}{python} -m services.ussd create-client "
        f"--username {DEMO_USERNAME} --password {DEMO_PASSWORD}"
    )
    return "\n".join(
        [
            "K2 USSD API: create a partner account (once; it is kept in PostgreSQL), log in, "
            "get a Service ID:",
            f"  {create}",
            f"  TOKEN=$(curl -s -X POST {gateway}/api/auth/login "
            f"-H 'Content-Type: application/json' -d {shlex.quote(login_body)} "
            f"| {python} -c {shlex.quote(extract)})",
            f"  curl -s -X POST {gateway}/api/clients/generate-service-id "
            f'-H "Authorization: Bearer $TOKEN"',
        ]
    )


def sabong_example(settings: Settings) -> str:
    """Copy-paste command: sign and send a generate-auth-token request."""
    command = (
        f"{env_prefix()}{python_path()} -m scripts.sabong_example "
        f"--base-url {url_of('gateway', settings)} --client-id {DEMO_CLIENT_ID}"
    )
    return "\n".join(
        [
            "Sabong API: sign (HMAC-SHA256) and send a generate-auth-token request; "
            "open the loginLink it prints:",
            f"  {command}",
        ]
    )


def env_prefix(**extra: str) -> str:
    """`NAME=value ` assignments a pasted command needs (DOTENV_PATH when it was set)."""
    values = dict(extra)
    if os.environ.get("DOTENV_PATH"):
        values["DOTENV_PATH"] = os.environ["DOTENV_PATH"]
    return "".join(f"{name}={shlex.quote(value)} " for name, value in values.items())


def python_path() -> str:
    """This interpreter, relative to the project when it is the project's `.venv`."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(executable)


def dotenv_path() -> Path:
    """The settings file in use (`DOTENV_PATH`, default `.env` in the project)."""
    return Path(os.environ.get("DOTENV_PATH") or DEFAULT_DOTENV)
