"""How the components are served (`scripts.serve`) and run (`make run`): one typed schema each.

The gateway's own port and workers are in gateway.settings; BIND_HOST, the store URLs and
ports in shared.settings.CommonSettings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.config import Settings, dotenv_file, dotenv_names
from shared.exceptions import ConfigError
from shared.settings import (
    Choice,
    CommonSettings,
    Integer,
    seconds,
    setting,
    settings_of,
    text,
)

# A name in `.env` with one of these prefixes that no schema declares is a typo (say
# GATEWAY_RATE_LIMTI): refused, rather than silently leaving the default in force.
PREFIXES = ("USSD_", "SABONG_", "GATEWAY_", "GUNICORN_", "RUN_")
# Prefixed names that other programs read: docker-compose (the published port), gunicorn
# itself, and the niceness scripts.serve hands to its workers (scripts.gunicorn_hooks).
READ_ELSEWHERE = ("GATEWAY_PUBLISH_PORT", "GUNICORN_CMD_ARGS", "GUNICORN_WORKER_NICE")
PORT = Integer(1, 65535)
POSITIVE = Integer(minimum=1)
NICE = Integer(0, 19)
WORKERS = "gunicorn worker processes per service (one per core on a 2-core machine)"
# Threads cover the wait on each Redis round trip and are the bulkhead for slow logins: a
# login waiting for the password hash holds its thread, so with 4 threads 16 concurrent
# logins starved every other request (p99 x30 in `make bench`); with 16 the others' p99
# stays within 3x. Idle threads cost little.
THREADS = (
    "Threads per worker when its class is `gthread` (they cover the wait on Redis round "
    "trips, and logins waiting for the password hash must not take them all)"
)
# gevent serves each request on a greenlet: one event loop per worker instead of a thread
# pool handing sockets between threads, about 80 us less CPU per request on this work
# (`make bench`), and gevent's own WSGI server under gunicorn (scripts/gunicorn_worker.py)
# costs 12-27 % less again than gunicorn's gevent worker. Password hashing runs in native
# threads (shared.offload). gthread stays available, and serves the login pool, whose
# requests are the hash.
WORKER_CLASSES = Choice(("gevent", "gthread"))
WORKER_CLASS = (
    "gunicorn worker class of the service: `gevent` (gevent's WSGI server, one event loop "
    "per worker, the cheapest per request) or `gthread` (`*_THREADS` threads per worker)"
)
LOGIN_POOL = (
    "gunicorn workers and threads of the login pool (one worker hashes on at most "
    "`USSD_LOGIN_HASH_CONCURRENCY` cores)"
)
NICENESS = "Niceness added to the workers of the service (0-19)"


@dataclass(frozen=True)
class ServeSettings:
    """The gunicorn command line of each Flask service (scripts.serve)."""

    ussd_port: int = setting("USSD_PORT", PORT, 8081, "USSD service port")
    # Two cores: one worker process per core (`python -m bench --tune`: 4 workers, or sync
    # workers, were no faster).
    ussd_workers: int = setting("USSD_WORKERS", POSITIVE, 2, WORKERS)
    ussd_worker_class: str = setting("USSD_WORKER_CLASS", WORKER_CLASSES, "gevent", WORKER_CLASS)
    ussd_threads: int = setting("USSD_THREADS", POSITIVE, 16, THREADS)
    ussd_nice: int = setting("USSD_NICE", NICE, 0, NICENESS)
    ussd_login_port: int = setting(
        "USSD_LOGIN_PORT",
        PORT,
        8083,
        "USSD login pool port (the gateway sends `POST /api/auth/login` there)",
    )
    # One worker hashes at most USSD_LOGIN_HASH_CONCURRENCY passwords at once (one core at
    # most with the default 1), at nice 10: the kernel then gives the other endpoints'
    # workers about nine tenths of a contended CPU. Its 8 threads hold queued logins and
    # those sleeping out a slowdown (at most USSD_LOGIN_DELAY_CONCURRENCY, 4).
    ussd_login_workers: int = setting("USSD_LOGIN_WORKERS", POSITIVE, 1, LOGIN_POOL)
    ussd_login_threads: int = setting("USSD_LOGIN_THREADS", POSITIVE, 8, LOGIN_POOL)
    ussd_login_nice: int = setting(
        "USSD_LOGIN_NICE",
        NICE,
        10,
        "Niceness added to the login pool's workers (0-19): under contention the other "
        "endpoints' workers get about nine tenths of the CPU",
    )
    sabong_port: int = setting("SABONG_PORT", PORT, 8082, "Sabong service port")
    sabong_workers: int = setting("SABONG_WORKERS", POSITIVE, 2, WORKERS)
    sabong_worker_class: str = setting(
        "SABONG_WORKER_CLASS", WORKER_CLASSES, "gevent", WORKER_CLASS
    )
    sabong_threads: int = setting("SABONG_THREADS", POSITIVE, 16, THREADS)
    sabong_nice: int = setting("SABONG_NICE", NICE, 0, NICENESS)
    # Longer than any proxy's idle pool timeout, so the gateway never reuses a connection
    # that gunicorn is closing at that very moment.
    keep_alive: int = setting(
        "GUNICORN_KEEP_ALIVE",
        POSITIVE,
        75,
        "Seconds a service keeps an idle connection open, and waits for the next byte of a "
        "request head (longer than the gateway's idle pool time)",
    )
    timeout: int = setting(
        "GUNICORN_TIMEOUT", POSITIVE, 30, "Seconds before gunicorn restarts a stuck worker"
    )
    graceful_timeout: int = setting(
        "GUNICORN_GRACEFUL_TIMEOUT",
        POSITIVE,
        10,
        "Seconds a stopping worker may finish in-flight requests",
    )
    metrics_dir: str | None = setting(
        "METRICS_DIR",
        text,
        None,
        "Where gunicorn workers share Prometheus metrics (one sub-directory per service and port)",
        shown="system temp dir (`var/metrics` under `make run`)",
    )


@dataclass(frozen=True)
class RunSettings:
    """`make run` (scripts.run): where its data lives and how long it waits."""

    var_dir: str | None = setting(
        "RUN_VAR_DIR",
        text,
        None,
        "Where `make run` keeps Redis and PostgreSQL data (`redis/`, `postgres/`), logs "
        "(`log/`) and metrics files",
        shown="`var/` in the project",
    )
    postgres_data_dir: str | None = setting(
        "POSTGRES_DATA_DIR",
        text,
        None,
        "Where the embedded PostgreSQL keeps its data",
        shown="`var/postgres`",
    )
    ready_timeout: float = setting(
        "RUN_READY_TIMEOUT",
        seconds,
        60.0,
        "Seconds `make run` waits for every component to be ready",
    )
    stop_grace: float = setting(
        "RUN_STOP_GRACE",
        seconds,
        15.0,
        "Seconds `make run` gives each stage to stop cleanly before SIGKILL",
    )


def schemas() -> tuple[type[Any], ...]:
    """Every component's settings schema (the README's table documents them all)."""
    from gateway.settings import GatewaySettings
    from services.sabong.settings import SabongSettings
    from services.ussd.settings import UssdSettings

    return (
        CommonSettings,
        RunSettings,
        ServeSettings,
        GatewaySettings,
        UssdSettings,
        SabongSettings,
    )


def component_schema(component: str) -> type[Any]:
    """The settings schema of a component `scripts.serve` starts."""
    from gateway.settings import GatewaySettings
    from services.sabong.settings import SabongSettings
    from services.ussd.settings import UssdSettings

    if component == "gateway":
        return GatewaySettings
    return SabongSettings if component == "sabong" else UssdSettings


def check_all(settings: Settings) -> None:
    """Parse every schema, so a malformed value of any component is a ConfigError now."""
    for schema in schemas():
        settings.of(schema)


def check_dotenv_names(names: Iterable[str], file: str = ".env") -> None:
    """A ConfigError for the first project-prefixed name in `names` no schema declares."""
    known = {spec.env for schema in schemas() for spec in settings_of(schema)}
    known.update(READ_ELSEWHERE)
    for name in names:
        if name.startswith(PREFIXES) and name not in known:
            raise ConfigError(f"{name} (in {file}) is not a setting; see the README's table")


def check_dotenv(environ: Mapping[str, str] | None = None) -> None:
    """check_dotenv_names for the settings file (`DOTENV_PATH`, else `.env`)."""
    path = dotenv_file(environ)
    check_dotenv_names(dotenv_names(environ), str(path))
