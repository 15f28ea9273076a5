"""scripts.serve: the one definition of each component's server command line."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from scripts import serve
from shared.config import PROJECT_ROOT, SECRET_NAMES, Settings
from shared.exceptions import ConfigError

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what containers bind to


def option(argv: list[str], name: str) -> str:
    """The value following `name` in `argv`."""
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize(
    ("component", "bind", "app"),
    [
        ("ussd", "127.0.0.1:8081", "services.ussd.wsgi:app"),
        ("sabong", "127.0.0.1:8082", "services.sabong.wsgi:app"),
    ],
)
def test_service_defaults(component: str, bind: str, app: str) -> None:
    """Without settings: gevent workers on loopback, sized for a 2-core machine."""
    argv = serve.command(component, Settings({}))
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[-1] == app
    assert option(argv, "--worker-class") == "scripts.gunicorn_worker.ServiceWorker"
    assert option(argv, "--bind") == bind
    assert option(argv, "--workers") == "2"
    assert option(argv, "--threads") == "16"
    assert option(argv, "--keep-alive") == "75"
    assert option(argv, "--timeout") == "30"
    assert option(argv, "--graceful-timeout") == "10"
    assert "--no-control-socket" in argv


def test_login_pool_defaults() -> None:
    """The USSD app again on 8083: one worker, 8 threads, workers at nice 10."""
    settings = Settings({})
    argv = serve.command("ussd-login", settings)
    assert argv[-1] == "services.ussd.wsgi:app"
    assert option(argv, "--bind") == "127.0.0.1:8083"
    assert option(argv, "--worker-class") == "gthread"  # each login is a hash: CPU work
    assert (option(argv, "--workers"), option(argv, "--threads")) == ("1", "8")
    assert serve.environment("ussd-login", settings)[serve.WORKER_NICE_ENV] == "10"
    assert serve.WORKER_NICE_ENV not in serve.environment("ussd", settings)


@pytest.mark.parametrize("component", ["ussd", "sabong"])
def test_a_service_can_go_back_to_gthread(component: str) -> None:
    prefix = component.upper()
    settings = Settings({f"{prefix}_WORKER_CLASS": "gthread", f"{prefix}_THREADS": "12"})
    argv = serve.command(component, settings)
    assert (option(argv, "--worker-class"), option(argv, "--threads")) == ("gthread", "12")
    with pytest.raises(ConfigError, match=f"{prefix}_WORKER_CLASS must be one of"):
        serve.command(component, Settings({f"{prefix}_WORKER_CLASS": "eventlet"}))


def test_login_pool_settings_are_applied() -> None:
    settings = Settings(
        {
            "USSD_LOGIN_PORT": "9003",
            "USSD_LOGIN_WORKERS": "2",
            "USSD_LOGIN_THREADS": "6",
            "USSD_LOGIN_NICE": "0",
        }
    )
    argv = serve.command("ussd-login", settings)
    assert (option(argv, "--bind"), option(argv, "--workers"), option(argv, "--threads")) == (
        "127.0.0.1:9003",
        "2",
        "6",
    )
    assert serve.WORKER_NICE_ENV not in serve.environment("ussd-login", settings)
    with pytest.raises(ConfigError, match="USSD_LOGIN_NICE must be between 0 and 19"):
        serve.environment("ussd-login", Settings({"USSD_LOGIN_NICE": "-5"}))


def test_service_settings_are_applied() -> None:
    """Each service reads its own worker, thread and port settings; shared ones apply to both."""
    settings = Settings(
        {
            "BIND_HOST": ALL_INTERFACES,
            "USSD_PORT": "9001",
            "USSD_WORKERS": "3",
            "USSD_THREADS": "8",
            "SABONG_PORT": "9002",
            "SABONG_WORKERS": "5",
            "SABONG_THREADS": "6",
            "GUNICORN_KEEP_ALIVE": "20",
            "GUNICORN_TIMEOUT": "40",
            "GUNICORN_GRACEFUL_TIMEOUT": "7",
        }
    )
    ussd = serve.command("ussd", settings)
    sabong = serve.command("sabong", settings)
    assert (option(ussd, "--bind"), option(ussd, "--workers"), option(ussd, "--threads")) == (
        f"{ALL_INTERFACES}:9001",
        "3",
        "8",
    )
    assert (option(sabong, "--bind"), option(sabong, "--workers"), option(sabong, "--threads")) == (
        f"{ALL_INTERFACES}:9002",
        "5",
        "6",
    )
    for argv in (ussd, sabong):
        assert option(argv, "--keep-alive") == "20"
        assert option(argv, "--timeout") == "40"
        assert option(argv, "--graceful-timeout") == "7"


def test_ipv6_bind_address_is_bracketed() -> None:
    """An IPv6 BIND_HOST becomes `[addr]:port`, as gunicorn expects."""
    argv = serve.command("ussd", Settings({"BIND_HOST": "::1"}))
    assert option(argv, "--bind") == "[::1]:8081"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("USSD_WORKERS", "0", "USSD_WORKERS must be at least 1"),
        ("USSD_THREADS", "lots", "USSD_THREADS must be an integer"),
        ("USSD_PORT", "http", "USSD_PORT must be an integer"),
    ],
)
def test_bad_settings_are_config_errors(name: str, value: str, message: str) -> None:
    """A malformed setting is a startup error naming it, never a silent default."""
    with pytest.raises(ConfigError, match=message):
        serve.command("ussd", Settings({name: value}))


def test_unknown_component_is_refused() -> None:
    """Only ussd, sabong and gateway can be served."""
    with pytest.raises(ConfigError, match="unknown component"):
        serve.command("redis", Settings({}))


def test_gateway_is_delegated_with_host_port_and_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway package owns its command line; serve only passes the settings through."""
    calls: list[tuple[str, int, int]] = []

    def command(host: str, port: int, workers: int) -> list[str]:
        calls.append((host, port, workers))
        return ["gateway-server", f"{host}:{port}", str(workers)]

    fake = types.ModuleType("gateway.server")
    fake.command = command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.server", fake)
    assert serve.command("gateway", Settings({})) == ["gateway-server", "127.0.0.1:8080", "1"]
    settings = Settings(
        {"BIND_HOST": ALL_INTERFACES, "GATEWAY_PORT": "9000", "GATEWAY_WORKERS": "3"}
    )
    serve.command("gateway", settings)
    assert calls == [("127.0.0.1", 8080, 1), (ALL_INTERFACES, 9000, 3)]


def test_real_gateway_command_serves_on_the_given_port() -> None:
    """The real gateway.server.command gives a non-empty argv naming the requested port."""
    argv = serve.command("gateway", Settings({"GATEWAY_PORT": "18123"}))
    assert argv and all(isinstance(part, str) for part in argv)
    assert any("18123" in part for part in argv)


def serve_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m scripts.serve ARGS` from the project directory."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.serve", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_usage() -> None:
    """An unknown component is a usage error, not a traceback."""
    result = serve_process(["redis"], dict(os.environ))
    assert result.returncode != 0
    assert "usage: python -m scripts.serve {ussd|ussd-login|sabong|gateway}" in result.stderr


@pytest.mark.parametrize("component", ["ussd", "ussd-login", "sabong", "gateway"])
def test_serve_fails_fast_without_secrets_in_production(component: str, tmp_path: Path) -> None:
    """The container entry point refuses to start a server when production secrets are missing."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}
    env.update({"APP_ENV": "production", "DOTENV_PATH": str(tmp_path / "absent.env")})
    result = serve_process([component], env)
    assert result.returncode == 1
    assert f"{component}: configuration error: " in result.stderr
    assert "is not set" in result.stderr
    assert not (tmp_path / "absent.env").exists()  # production never writes secrets


def test_each_component_gets_its_own_metrics_directory(tmp_path: Path) -> None:
    """Workers of one component share a Prometheus directory; components never do."""
    settings = Settings({"METRICS_DIR": str(tmp_path), "SABONG_PORT": "9002"})
    assert serve.environment("ussd", settings) == {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "ussd-8081")
    }
    assert serve.environment("sabong", settings) == {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "sabong-9002")
    }
    assert serve.environment("gateway", settings) == {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "gateway-8080")
    }


def test_metrics_directory_starts_empty(tmp_path: Path) -> None:
    """Files left by an earlier run would be counted again: prepare() empties the directory."""
    directory = tmp_path / "ussd-8081"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    serve.prepare({"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert directory.is_dir() and not any(directory.iterdir())


def test_gunicorn_hook_drops_a_dead_workers_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """child_exit removes the exited worker's live-gauge files (and only that worker's)."""
    from scripts import gunicorn_hooks

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "gauge_livesum_4343.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")
    gunicorn_hooks.child_exit(None, types.SimpleNamespace(pid=4242))
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == ["counter_4242.db", "gauge_livesum_4343.db"]


def test_gunicorn_accepts_the_hooks_module() -> None:
    """gunicorn parses the argv, and takes child_exit from scripts.gunicorn_hooks as a hook."""
    from gunicorn.app.base import Application
    from gunicorn.config import Config

    config = Config()
    parsed = config.parser().parse_args(serve.command("ussd", Settings({}))[3:])
    assert parsed.config == "python:scripts.gunicorn_hooks"
    hooks = Application.get_config_from_module_name(None, "scripts.gunicorn_hooks")
    config.set("child_exit", hooks["child_exit"])  # gunicorn validates the hook's arity
    assert config.child_exit is hooks["child_exit"]


@pytest.mark.parametrize(
    ("component", "name", "value", "message"),
    [
        ("ussd", "USSD_LOGIN_JWT_TTL", "abc", "USSD_LOGIN_JWT_TTL must be an integer, got 'abc'"),
        ("sabong", "SABONG_MAX_BODY_BYTES", "0", "SABONG_MAX_BODY_BYTES must be at least 1"),
        ("gateway", "LOG_LEVEL", "verbose", "LOG_LEVEL must be one of"),
        ("ussd-login", "APP_ENV", "prod", "APP_ENV must be one of development, production"),
    ],
)
def test_serve_refuses_a_malformed_setting_naming_it(
    component: str, name: str, value: str, message: str, tmp_path: Path
) -> None:
    """The server is never started with a value it would misread or ignore."""
    env = {**os.environ, "DOTENV_PATH": str(tmp_path / "test.env"), name: value}
    result = serve_process([component], env)
    assert result.returncode == 1
    assert f"{component}: configuration error: {message}" in result.stderr


def test_serve_refuses_a_misspelt_setting_in_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / "typo.env"
    dotenv.write_text("GATEWAY_RATE_LIMTI=5\n")
    result = serve_process(["gateway"], {**os.environ, "DOTENV_PATH": str(dotenv)})
    assert result.returncode == 1
    assert "gateway: configuration error: GATEWAY_RATE_LIMTI (in " in result.stderr


def test_the_gunicorn_master_imports_no_store_driver() -> None:
    """psycopg picks its wait function when first imported: imported in the master, a
    gevent worker would inherit the blocking one and stall every request on each query."""
    code = (
        "import sys, scripts.gunicorn_hooks; "
        "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'gevent') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert found.stdout.strip() == "[]"
