"""The one place that says how each component is served; `make run` and Docker both use it.

`python -m scripts.serve ussd|sabong|gateway` replaces itself (exec) with the server, so
the process a supervisor starts is the server itself and receives its signals directly.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.settings import GatewaySettings
from shared.config import Settings, load_settings
from shared.exceptions import ConfigError

from .settings import ServeSettings, check_dotenv, component_schema

# `ussd-login` is the USSD app again, on its own port with its own few workers at a lower
# CPU priority: the gateway sends `POST /api/auth/login` there, so a login flood's password
# hashing competes with the other endpoints only for what they leave unused.
COMPONENTS = ("ussd", "ussd-login", "sabong", "gateway")
# How much a gunicorn worker lowers its CPU priority after the fork (see gunicorn_hooks).
WORKER_NICE_ENV = "GUNICORN_WORKER_NICE"
# gunicorn creates its heartbeat files there with mkstemp, so a shared directory is safe.
WORKER_TMP_DIR = "/dev/shm"  # noqa: S108
# What each `*_WORKER_CLASS` value means to gunicorn: `gevent` is gevent's own WSGI server
# under gunicorn (scripts/gunicorn_worker.py), cheaper per request than gunicorn's gevent
# worker.
GUNICORN_WORKER_CLASSES = {
    "gevent": "scripts.gunicorn_worker.ServiceWorker",
    "gthread": "gthread",
}


@dataclass(frozen=True)
class ServiceSpec:
    """How one Flask service is found, and the prefix of the settings that size it."""

    app: str
    prefix: str  # `<PREFIX>_PORT`, `_WORKERS`, `_THREADS`, `_NICE` (scripts.settings)


SERVICES = {
    "ussd": ServiceSpec(app="services.ussd.wsgi:app", prefix="USSD"),
    "ussd-login": ServiceSpec(app="services.ussd.wsgi:app", prefix="USSD_LOGIN"),
    "sabong": ServiceSpec(app="services.sabong.wsgi:app", prefix="SABONG"),
}


@dataclass(frozen=True)
class Sizing:
    """One Flask service's port, gunicorn worker class, workers and threads (gthread), and
    workers' niceness."""

    port: int
    workers: int
    threads: int
    nice: int
    worker_class: str = "gthread"


def sizing(component: str, settings: Settings) -> Sizing:
    """The Sizing of a gunicorn-served component, from scripts.settings.ServeSettings."""
    _spec(component)  # an unknown component is a ConfigError naming the choices
    serve = settings.of(ServeSettings)
    if component == "ussd":
        return Sizing(
            serve.ussd_port,
            serve.ussd_workers,
            serve.ussd_threads,
            serve.ussd_nice,
            serve.ussd_worker_class,
        )
    if component == "ussd-login":
        # gthread: each login is a password hash, CPU work that an event loop gains nothing on.
        return Sizing(
            serve.ussd_login_port,
            serve.ussd_login_workers,
            serve.ussd_login_threads,
            serve.ussd_login_nice,
        )
    return Sizing(
        serve.sabong_port,
        serve.sabong_workers,
        serve.sabong_threads,
        serve.sabong_nice,
        serve.sabong_worker_class,
    )


def bind_host(settings: Settings) -> str:
    """The address every component listens on (`BIND_HOST`)."""
    return settings.common.bind_host


def port(component: str, settings: Settings) -> int:
    """The TCP port of `component` (`USSD_PORT`, `USSD_LOGIN_PORT`, `SABONG_PORT`, ...)."""
    if component == "gateway":
        return settings.of(GatewaySettings).port
    return sizing(component, settings).port


def port_setting(component: str) -> str:
    """The name of the setting that moves `component`'s port (`USSD_LOGIN_PORT`, ...)."""
    if component == "gateway":
        return "GATEWAY_PORT"
    return f"{_spec(component).prefix}_PORT"


def command(component: str, settings: Settings) -> list[str]:
    """The argv that serves `component` with `settings` applied."""
    if component == "gateway":
        return gateway_command(settings)
    return gunicorn_command(component, settings)


def gunicorn_command(component: str, settings: Settings) -> list[str]:
    """gunicorn with gevent or gthread workers for one Flask service."""
    size = sizing(component, settings)
    serve = settings.of(ServeSettings)
    args = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", GUNICORN_WORKER_CLASSES[size.worker_class],
        "--workers", str(size.workers),
        "--threads", str(size.threads),
        "--bind", bind_address(bind_host(settings), size.port),
        "--keep-alive", str(serve.keep_alive),
        "--timeout", str(serve.timeout),
        "--graceful-timeout", str(serve.graceful_timeout),
        # The default control socket is one path per user: two services would fight over it.
        "--no-control-socket",
        # Worker lifecycle hooks (a dead worker's metrics are dropped).
        "--config", "python:scripts.gunicorn_hooks",
    ]  # fmt: skip
    if os.path.isdir(WORKER_TMP_DIR):
        # Worker heartbeats on a disk-backed (or overlay) filesystem can stall workers.
        args += ["--worker-tmp-dir", WORKER_TMP_DIR]
    return [*args, _spec(component).app]


def gateway_command(settings: Settings) -> list[str]:
    """The gateway's own server command (the gateway package decides how it is served)."""
    from gateway.server import command as gateway_server_command

    gateway = settings.of(GatewaySettings)
    argv = gateway_server_command(bind_host(settings), gateway.port, gateway.workers)
    return [str(part) for part in argv]


def environment(component: str, settings: Settings) -> dict[str, str]:
    """Variables the server needs on top of ours: its own Prometheus multiprocess directory
    (gunicorn workers, and the gateway's forked workers, each write their own files)."""
    metrics_dir = settings.of(ServeSettings).metrics_dir
    base = Path(metrics_dir or Path(tempfile.gettempdir()) / "partner-auth-metrics")
    # One directory per component and port: workers of one server share it, nobody else.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(base / f"{component}-{port(component, settings)}")}
    if component in SERVICES and (nice := sizing(component, settings).nice):
        # Read by scripts.gunicorn_hooks.post_fork in each worker.
        env[WORKER_NICE_ENV] = str(nice)
    return env


def prepare(env: dict[str, str]) -> None:
    """Start with an empty metrics directory: files of an earlier run would count twice."""
    directory = env.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True)


def bind_address(host: str, port_number: int) -> str:
    """`host:port`, with brackets around an IPv6 address."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port_number}"
    return f"{host}:{port_number}"


def _spec(component: str) -> ServiceSpec:
    """The ServiceSpec of a gunicorn-served component, or a ConfigError naming the choices."""
    try:
        return SERVICES[component]
    except KeyError:
        raise ConfigError(f"unknown component {component!r}; one of {COMPONENTS}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m scripts.serve <component>`: load settings, then exec the server."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in COMPONENTS:
        sys.exit(f"usage: python -m scripts.serve {{{'|'.join(COMPONENTS)}}}")
    try:
        settings = load_settings()
        check_dotenv()
        # The server's own settings, checked here: a malformed one is this one line, not
        # a gunicorn worker that fails to boot.
        settings.of(component_schema(args[0]))
        argv_to_run = command(args[0], settings)
        extra_env = environment(args[0], settings)
        prepare(extra_env)
    except (ConfigError, OSError) as exc:
        sys.exit(f"{args[0]}: configuration error: {exc}")
    sys.stdout.flush()
    sys.stderr.flush()
    # No shell involved: the argv list is executed as it is.
    os.execvpe(argv_to_run[0], argv_to_run, {**os.environ, **extra_env})  # noqa: S606


if __name__ == "__main__":
    main()
