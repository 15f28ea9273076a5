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

from shared.config import Settings, load_settings
from shared.exceptions import ConfigError

# `ussd-login` is the USSD app again, on its own port with its own few workers at a lower
# CPU priority: the gateway sends `POST /api/auth/login` there, so a login flood's password
# hashing competes with the other endpoints only for what they leave unused.
COMPONENTS = ("ussd", "ussd-login", "sabong", "gateway")
DEFAULT_BIND_HOST = "127.0.0.1"
# Two cores: one worker process per core (`python -m bench --tune`: 4 workers, or sync
# workers, were no faster). Threads cover the wait on each Redis round trip and are the
# bulkhead for slow logins: a login waiting for the password hash holds its thread, so
# with 4 threads 16 concurrent logins starved every other request (p99 x30 in
# `make bench`); with 16 the others' p99 stays within 3x. Idle threads cost little.
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 16
# Longer than any proxy's idle pool timeout, so the gateway never reuses a connection
# that gunicorn is closing at that very moment.
DEFAULT_KEEP_ALIVE = 75
DEFAULT_TIMEOUT = 30
DEFAULT_GRACEFUL_TIMEOUT = 10
# How much a gunicorn worker lowers its CPU priority after the fork (see gunicorn_hooks).
WORKER_NICE_ENV = "GUNICORN_WORKER_NICE"
# gunicorn creates its heartbeat files there with mkstemp, so a shared directory is safe.
WORKER_TMP_DIR = "/dev/shm"  # noqa: S108


@dataclass(frozen=True)
class ServiceSpec:
    """How one Flask service is found and which settings size it."""

    app: str
    prefix: str
    default_port: int
    default_workers: int = DEFAULT_WORKERS
    default_threads: int = DEFAULT_THREADS
    default_nice: int = 0  # added to each worker's niceness (`<PREFIX>_NICE`)


SERVICES = {
    "ussd": ServiceSpec(app="services.ussd.wsgi:app", prefix="USSD", default_port=8081),
    # One worker hashes at most USSD_LOGIN_HASH_CONCURRENCY passwords at once (one core at
    # most with the default 1), at nice 10: the kernel then gives the other endpoints'
    # workers about nine tenths of a contended CPU. Its 8 threads hold queued logins and
    # those sleeping out a slowdown (at most USSD_LOGIN_DELAY_CONCURRENCY, 4).
    "ussd-login": ServiceSpec(
        app="services.ussd.wsgi:app",
        prefix="USSD_LOGIN",
        default_port=8083,
        default_workers=1,
        default_threads=8,
        default_nice=10,
    ),
    "sabong": ServiceSpec(app="services.sabong.wsgi:app", prefix="SABONG", default_port=8082),
}
GATEWAY_DEFAULT_PORT = 8080
# One event loop already uses about a core; the other core is for the services behind it.
GATEWAY_DEFAULT_WORKERS = 1


def bind_host(settings: Settings) -> str:
    """The address every component listens on (`BIND_HOST`)."""
    return settings.get("BIND_HOST", DEFAULT_BIND_HOST)


def port(component: str, settings: Settings) -> int:
    """The TCP port of `component` (`USSD_PORT`, `USSD_LOGIN_PORT`, `SABONG_PORT`, ...)."""
    if component == "gateway":
        return settings.get_int("GATEWAY_PORT", GATEWAY_DEFAULT_PORT)
    spec = _spec(component)
    return settings.get_int(port_setting(component), spec.default_port)


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
    """gunicorn with gthread workers for one Flask service."""
    spec = _spec(component)
    args = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gthread",
        "--workers", str(_positive(settings, f"{spec.prefix}_WORKERS", spec.default_workers)),
        "--threads", str(_positive(settings, f"{spec.prefix}_THREADS", spec.default_threads)),
        "--bind", bind_address(bind_host(settings), port(component, settings)),
        "--keep-alive", str(_positive(settings, "GUNICORN_KEEP_ALIVE", DEFAULT_KEEP_ALIVE)),
        "--timeout", str(_positive(settings, "GUNICORN_TIMEOUT", DEFAULT_TIMEOUT)),
        "--graceful-timeout",
        str(_positive(settings, "GUNICORN_GRACEFUL_TIMEOUT", DEFAULT_GRACEFUL_TIMEOUT)),
        # The default control socket is one path per user: two services would fight over it.
        "--no-control-socket",
        # Worker lifecycle hooks (a dead worker's metrics are dropped).
        "--config", "python:scripts.gunicorn_hooks",
    ]  # fmt: skip
    if os.path.isdir(WORKER_TMP_DIR):
        # Worker heartbeats on a disk-backed (or overlay) filesystem can stall workers.
        args += ["--worker-tmp-dir", WORKER_TMP_DIR]
    return [*args, spec.app]


def gateway_command(settings: Settings) -> list[str]:
    """The gateway's own server command (the gateway package decides how it is served)."""
    from gateway.server import command as gateway_server_command

    workers = _positive(settings, "GATEWAY_WORKERS", GATEWAY_DEFAULT_WORKERS)
    argv = gateway_server_command(bind_host(settings), port("gateway", settings), workers)
    return [str(part) for part in argv]


def environment(component: str, settings: Settings) -> dict[str, str]:
    """Variables the server needs on top of ours: its own Prometheus multiprocess directory
    (gunicorn workers, and the gateway's forked workers, each write their own files)."""
    base = Path(settings.get("METRICS_DIR") or Path(tempfile.gettempdir()) / "partner-auth-metrics")
    # One directory per component and port: workers of one server share it, nobody else.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(base / f"{component}-{port(component, settings)}")}
    spec = SERVICES.get(component)
    if spec is not None:
        nice = settings.get_int(f"{spec.prefix}_NICE", spec.default_nice)
        if not 0 <= nice <= 19:
            raise ConfigError(f"{spec.prefix}_NICE must be between 0 and 19, got {nice}")
        if nice:
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


def _positive(settings: Settings, name: str, default: int) -> int:
    """An integer setting that must be at least 1."""
    value = settings.get_int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m scripts.serve <component>`: load settings, then exec the server."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in COMPONENTS:
        sys.exit(f"usage: python -m scripts.serve {{{'|'.join(COMPONENTS)}}}")
    try:
        settings = load_settings()
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
