"""`make run`: Redis, PostgreSQL, both services and the gateway, stopped together.

The stores start first; once they answer, the database migrations are applied; then the
services and the gateway start. Every child runs in its own process group, so stopping
one stops all of its processes (gunicorn workers included) and a Ctrl-C in the terminal
reaches only this supervisor, which then stops the children in order: the gateway, the
services, the stores last.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from devtools.embedded import EmbeddedRedis
from devtools.postgres import EmbeddedPostgres
from devtools.processes import serve_command
from shared.config import PROJECT_ROOT, Settings, load_settings
from shared.exceptions import ConfigError

from . import banner, migrate
from .children import Child, StartupError, port_in_use, probe_host, redact_url
from .serve import COMPONENTS, bind_address, bind_host, port, port_setting
from .settings import RunSettings, ServeSettings, check_all, check_dotenv

STORES = ("redis", "postgres")
POLL_SECONDS = 0.2


class StopFlag:
    """Counts SIGINT/SIGTERM/SIGHUP: one asks for a clean stop, a second for a kill."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0

    def install(self) -> None:
        """Route the stop signals to this flag."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self)


def var_dir(settings: Settings) -> Path:
    """Where run-time data and logs live (`RUN_VAR_DIR`, default `var/` in the project)."""
    raw = settings.of(RunSettings).var_dir
    return Path(raw).resolve() if raw else PROJECT_ROOT / "var"


def child_command(component: str) -> list[str]:
    """What `make run` starts for a component: the same entry point the containers run."""
    return serve_command(component)


def embedded_redis(settings: Settings, data: Path) -> EmbeddedRedis:
    """The bundled Redis (AOF on) on `REDIS_PORT` and a Unix socket, its data under
    `data/redis`."""
    return EmbeddedRedis(
        data / "redis", port=settings.common.redis_port, appendonly=True, unix_socket=True
    )


def embedded_postgres(settings: Settings, data: Path) -> EmbeddedPostgres:
    """The bundled PostgreSQL on `POSTGRES_PORT` and a Unix socket, its data under
    `data/postgres` (or `POSTGRES_DATA_DIR`)."""
    postgres_port = settings.common.postgres_port
    directory = settings.of(RunSettings).postgres_data_dir
    return EmbeddedPostgres(
        Path(directory) if directory else data / "postgres", port=postgres_port, unix_socket=True
    )


@dataclass(frozen=True)
class Stores:
    """Where Redis and PostgreSQL are, and the embedded servers `make run` starts itself."""

    redis_url: str
    database_url: str
    redis: EmbeddedRedis | None
    postgres: EmbeddedPostgres | None


def stores(settings: Settings, data: Path) -> Stores:
    """REDIS_URL / DATABASE_URL when set, else embedded servers under `data`, which the
    components on this machine reach over their Unix sockets (less CPU per round trip
    than loopback TCP; the TCP ports stay open for tools)."""
    redis = None if settings.redis_url else embedded_redis(settings, data)
    postgres = None if settings.database_url else embedded_postgres(settings, data)
    return Stores(
        redis_url=settings.redis_url or (redis.local_url if redis else ""),
        database_url=settings.database_url or (postgres.local_url if postgres else ""),
        redis=redis,
        postgres=postgres,
    )


def children_env(settings: Settings, found: Stores, data: Path) -> dict[str, str]:
    """The environment of every child: ours, plus where the stores and the services are."""
    host = probe_host(bind_host(settings))
    gateway_url = f"http://{bind_address(host, port('gateway', settings))}"
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": found.redis_url,
            "DATABASE_URL": found.database_url,
            "GATEWAY_USSD_UPSTREAMS": settings.get(
                "GATEWAY_USSD_UPSTREAMS", bind_address(host, port("ussd", settings))
            ),
            # The USSD login pool: the gateway sends `POST /api/auth/login` there.
            "GATEWAY_USSD_LOGIN_UPSTREAMS": settings.get(
                "GATEWAY_USSD_LOGIN_UPSTREAMS", bind_address(host, port("ussd-login", settings))
            ),
            "GATEWAY_SABONG_UPSTREAMS": settings.get(
                "GATEWAY_SABONG_UPSTREAMS", bind_address(host, port("sabong", settings))
            ),
            # loginLink must point at this gateway, whichever port it was given.
            "SABONG_LOGIN_BASE_URL": settings.get("SABONG_LOGIN_BASE_URL", gateway_url),
            "METRICS_DIR": settings.of(ServeSettings).metrics_dir or str(data / "metrics"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def build_children(settings: Settings, data: Path, found: Stores) -> list[Child]:
    """The stores (started, or only waited for when external), then the three components."""
    env = children_env(settings, found, data)
    logs = data / "log"
    children: list[Child] = [
        Child.for_redis(found.redis, env)
        if found.redis is not None
        else Child.external_redis(found.redis_url),
        Child.for_postgres(found.postgres, env)
        if found.postgres is not None
        else Child.external_postgres(found.database_url),
    ]
    host = probe_host(bind_host(settings))
    for component in COMPONENTS:
        url = f"http://{bind_address(host, port(component, settings))}/readyz"
        children.append(
            Child(
                component, child_command(component), env, logs / f"{component}.log", probe_url=url
            )
        )
    return children


def check_ports(settings: Settings, found: Stores) -> None:
    """Refuse to start when a port is taken, naming it and the setting that moves it."""
    wanted = {port_setting(c): (bind_host(settings), port(c, settings)) for c in COMPONENTS}
    if found.redis is not None:
        wanted["REDIS_PORT"] = (found.redis.host, found.redis.port)
    if found.postgres is not None:
        wanted["POSTGRES_PORT"] = (found.postgres.host, found.postgres.port)
    for name, (host, number) in wanted.items():
        if port_in_use(host, number):
            raise StartupError(
                f"port {number} on {host} is already in use ({name}); stop whatever holds it "
                f"(an earlier `make run`?) or choose another port with {name}=..."
            )


def start_all(children: list[Child], stop: StopFlag, timeout: float) -> None:
    """Start each child, then wait until every one is ready (bounded by `timeout`)."""
    for child in children:
        child.start()
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        if stop.requested:
            raise StartupError("stopped before start-up finished")
        for child in children:
            child.check_alive(during="start-up")
        pending = [child for child in pending if not child.ready()]
        if pending and time.monotonic() > deadline:
            first = pending[0]
            raise StartupError(
                f"{first.name} is not ready within {timeout:g} s ({redact_url(first.probe_url)})"
                f"{first.tail_message()}"
            )
        if pending:
            time.sleep(POLL_SECONDS)


def supervise(children: list[Child], stop: StopFlag) -> None:
    """Block until a stop is requested; a child that dies meanwhile is a StartupError."""
    while not stop.requested:
        for child in children:
            child.check_alive(during="operation")
        time.sleep(POLL_SECONDS)


def start_platform(children: list[Child], found: Stores, stop: StopFlag, timeout: float) -> None:
    """The stores, then the migrations, then the services and the gateway."""
    stores_first = [child for child in children if child.name in STORES]
    start_all(stores_first, stop, timeout)
    migrate.upgrade(found.database_url)  # a ConfigError stops the start, as main() says
    start_all([child for child in children if child.name not in STORES], stop, timeout)


def stop_all(children: list[Child], stop: StopFlag, grace: float) -> None:
    """Stop in stages: the gateway (no new requests), the services, then the stores."""
    stages = (("gateway",), ("ussd", "ussd-login", "sabong"), STORES)
    for names in stages:
        stop_stage([child for child in children if child.name in names], stop, grace)


def stop_stage(group: list[Child], stop: StopFlag, grace: float) -> None:
    """SIGTERM every child of `group`, wait up to `grace`, then SIGKILL what is left."""
    for child in group:
        child.terminate()
    deadline = time.monotonic() + grace
    while any(not child.gone() for child in group):
        # A second Ctrl-C means "now": skip the rest of the grace period.
        if time.monotonic() > deadline or stop.count > 1:
            break
        time.sleep(0.05)
    for child in group:
        child.kill()


def settings_or_exit() -> tuple[Settings, float, float]:
    """Settings (generating development secrets once), ready timeout and stop grace."""
    try:
        settings = load_settings()
        run = settings.of(RunSettings)
        # Every component's settings, checked before anything starts: a malformed one
        # stops `make run` here, naming it, not a child's start-up later.
        check_all(settings)
        check_dotenv()
    except ConfigError as exc:
        sys.exit(f"run: configuration error: {exc}")
    return settings, run.ready_timeout, run.stop_grace


def main() -> int:
    """Start everything, print how to use it, run until stopped; the exit status."""
    stop = StopFlag()
    stop.install()
    settings, ready_timeout, stop_grace = settings_or_exit()
    data = var_dir(settings)
    children: list[Child] = []
    status = 0
    try:
        found = stores(settings, data)
        check_ports(settings, found)
        children = build_children(settings, data, found)
        started = time.monotonic()
        start_platform(children, found, stop, ready_timeout)
        ready_in = time.monotonic() - started
        banner.show(settings, data, found, ready_in=ready_in)
        supervise(children, stop)
    except (StartupError, ConfigError) as exc:
        print(f"run: {exc}", file=sys.stderr, flush=True)
        status = 0 if stop.requested and not _died(children) else 1
    finally:
        print("run: stopping ...", file=sys.stderr, flush=True)
        stopping = time.monotonic()
        stop_all(children, stop, stop_grace)
        print(f"run: stopped in {time.monotonic() - stopping:.1f} s", file=sys.stderr, flush=True)
    return status


def _died(children: list[Child]) -> bool:
    """True when some child exited without being asked to."""
    return any(child.died_unexpectedly() for child in children)


if __name__ == "__main__":
    sys.exit(main())
