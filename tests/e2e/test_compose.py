"""docker-compose.yml and Dockerfile: checked as data (no Docker engine here), and with
`docker compose config` when a compose CLI is installed."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.run import child_command
from scripts.serve import port_setting
from shared.config import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
APP_PORTS = {"ussd": 8081, "ussd-login": 8083, "sabong": 8082, "gateway": 8080}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_services_and_volume(compose: dict[str, Any]) -> None:
    """Redis, PostgreSQL, the migration job and the four components; Redis keeps its AOF
    on a named volume."""
    services = compose["services"]
    assert set(services) == {
        "redis",
        "postgres",
        "migrate",
        "ussd",
        "ussd-login",
        "sabong",
        "gateway",
    }
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert " ".join(redis["command"]).count("--appendonly yes") == 1
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_keeps_its_data_on_a_volume_and_reports_health(compose: dict[str, Any]) -> None:
    """PostgreSQL 16 with a named volume and a pg_isready health check."""
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    volume = postgres["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in compose["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_migrate_is_a_one_shot_job_after_a_healthy_database(compose: dict[str, Any]) -> None:
    """`python -m scripts.migrate` once, never restarted, after PostgreSQL is healthy."""
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["python", "-m", "scripts.migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["environment"]["DATABASE_URL"].startswith("postgresql://")


@pytest.mark.parametrize("component", sorted(APP_PORTS))
def test_component_runs_the_same_command_as_make_run(
    compose: dict[str, Any], component: str
) -> None:
    """Each container runs `python -m scripts.serve <component>`, as `make run` does."""
    command = compose["services"][component]["command"]
    assert command == ["python", "-m", "scripts.serve", component]
    assert command[1:] == child_command(component)[1:]


@pytest.mark.parametrize("component", sorted(APP_PORTS))
def test_component_environment(compose: dict[str, Any], component: str) -> None:
    """Production mode (secrets from .env or fail), container-wide bind, Redis by DNS name."""
    service = compose["services"][component]
    env = service["environment"]
    assert service["env_file"] == ".env"
    assert env["APP_ENV"] == "production"
    assert env["BIND_HOST"] == "0.0.0.0"  # noqa: S104 - inside a container, by design
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["DATABASE_URL"].startswith("postgresql://platform:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/platform")
    assert env[port_setting(component)] == str(APP_PORTS[component])
    assert "container_name" not in service  # a fixed name would forbid --scale


@pytest.mark.parametrize("component", sorted(APP_PORTS))
def test_component_healthcheck_hits_its_own_healthz(
    compose: dict[str, Any], component: str
) -> None:
    """The health check is a python one-liner on the component's own /healthz."""
    test = compose["services"][component]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{APP_PORTS[component]}/healthz" in test[3]
    compile(test[3], "healthcheck", "exec")  # a valid Python one-liner


def test_only_the_gateway_is_published(compose: dict[str, Any]) -> None:
    """Services are reachable only through the gateway, which finds replicas by DNS name."""
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"][0].endswith(":8080")
    env = services["gateway"]["environment"]
    assert env["GATEWAY_USSD_UPSTREAMS"] == "ussd:8081"
    assert env["GATEWAY_USSD_LOGIN_UPSTREAMS"] == "ussd-login:8083"
    assert env["GATEWAY_SABONG_UPSTREAMS"] == "sabong:8082"


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    """Services wait for healthy stores and a finished migration; the gateway for Redis
    and every service."""
    services = compose["services"]
    stores_ready = {
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    for name, needs in (
        ("ussd", stores_ready),
        ("ussd-login", stores_ready),
        ("sabong", stores_ready),
        (
            "gateway",
            {
                "redis": "service_healthy",
                "ussd": "service_healthy",
                "ussd-login": "service_healthy",
                "sabong": "service_healthy",
            },
        ),
    ):
        depends = services[name]["depends_on"]
        assert {dep: d["condition"] for dep, d in depends.items()} == needs


def test_dockerfile_serves_as_non_root() -> None:
    """python:3.11-slim, installed with pip from the lock, a non-root user, scripts.serve."""
    lines = [
        line.strip()
        for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert "RUN pip install -c constraints.txt ." in lines  # the lock's exact versions
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines[-1] == 'CMD ["python", "-m", "scripts.serve", "gateway"]'
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git"} <= set(ignored)  # no secrets or local state


def compose_cli() -> list[str] | None:
    """A working compose CLI: $COMPOSE_BIN, `docker compose` or `docker-compose`; else None."""
    candidates = [shlex.split(os.environ.get("COMPOSE_BIN", ""))]
    candidates += [["docker", "compose"], ["docker-compose"]]
    for candidate in candidates:
        if not candidate or not shutil.which(candidate[0]):
            continue
        probe = subprocess.run(
            [*candidate, "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config -q` (needs only the CLI, no engine) accepts the file."""
    cli = compose_cli()
    if cli is None:
        pytest.skip("no compose CLI installed (docker compose / docker-compose / $COMPOSE_BIN)")
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("")  # env_file must exist; its content is not validated
    result = subprocess.run(
        [*cli, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
