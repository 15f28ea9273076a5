"""The platform under test: a private Redis and PostgreSQL, both services, the gateway and
the reference Flask app, on free ports.

Every component is started with the command line `scripts.serve.command` gives it, the
one `make run` and docker-compose use, so the bench measures the real servers. Each child
runs in its own process group (scripts.children.Child) and dies with the bench.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode, urlsplit

from devtools.embedded import EmbeddedRedis, free_port
from devtools.postgres import EmbeddedPostgres, child_pids
from devtools.processes import group_members, serve_command
from scripts import migrate, serve
from scripts.children import Child
from scripts.run import StopFlag, start_all, stop_all, stop_stage
from shared.config import SECRET_NAMES, Settings

HOST = "127.0.0.1"
# The yardstick of SPEC section 6's CPU targets (bench/reference_app.py), served like a
# service but always on gthread, 2 workers x 16 threads.
REFERENCE = "reference"
REFERENCE_APP = "bench.reference_app:app"
REFERENCE_WORKERS = {"USSD_WORKERS": "2", "USSD_THREADS": "16"}
# The floor under the services (bench/floor_app.py): their store calls alone, served by
# the services' own command line (their worker class included).
FLOOR = "floor"
FLOOR_APP = "bench.floor_app:app"
READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
# Gateways with rate limiting on, one per Redis client of gateway/ratelimit.py: the main
# gateway runs with it off (it would refuse most of the load), so these rows price the
# check itself. Their limit is never reached: every request pays one Redis round trip and
# none is refused. A REDIS_URL with a `protocol` parameter is one gateway.fastredis does
# not speak, so that gateway takes the redis.asyncio path.
RATE_LIMITED_GATEWAYS = {
    "gateway-limited-fastredis": {},
    "gateway-limited-asyncio": {"protocol": "2"},
}
UNREACHED_RATE_LIMIT = "1000000000"  # requests per minute per client address


def bench_secrets() -> dict[str, str]:
    """Fresh secrets for this run only (production lengths)."""
    return {name: secrets.token_urlsafe(48) for name in SECRET_NAMES}


# The services `--ab` serves twice, and the name of the second server of each.
OTHER_SERVICES = ("ussd", "sabong")


def with_query(url: str, extra: Mapping[str, str]) -> str:
    """`url` with `extra` query parameters added to its own."""
    if not extra:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(extra)


def other(service: str) -> str:
    """The component name of `service` served by the other checkout (`--ab`)."""
    return f"{service}-other"


class Platform:
    """Redis, PostgreSQL, ussd, its login pool, sabong, the gateway and the reference app
    as real processes; a context manager."""

    def __init__(
        self,
        workdir: Path,
        overrides: Mapping[str, str] | None = None,
        appendonly: bool = True,
        command_patch: Callable[[str, list[str]], list[str]] | None = None,
        other_tree: Path | None = None,
    ) -> None:
        self.workdir = workdir
        # `--ab`: each service served a second time, by another checkout (OTHER_SERVICES).
        self.other_tree = other_tree
        # Tuning only: try an argv serve.py cannot express (another gunicorn worker class).
        self.command_patch = command_patch
        # The services reach both stores over Unix sockets, as `make run` starts them.
        self.redis = EmbeddedRedis(
            workdir / "redis", host=HOST, appendonly=appendonly, unix_socket=True
        )
        # Its own directory under /tmp: PostgreSQL's unprivileged account must reach it.
        self.postgres_dir = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
        self.postgres_dir.chmod(0o711)
        self.postgres = EmbeddedPostgres(self.postgres_dir / "pg", host=HOST, unix_socket=True)
        components = (*serve.COMPONENTS, REFERENCE, FLOOR, *RATE_LIMITED_GATEWAYS)
        if other_tree is not None:
            components += tuple(other(service) for service in OTHER_SERVICES)
        self.ports = {component: free_port(HOST) for component in components}
        self.secrets = bench_secrets()
        dotenv = workdir / "bench.env"
        dotenv.parent.mkdir(parents=True, exist_ok=True)
        dotenv.touch()
        self.values: dict[str, str] = {
            # Production mode: secrets come from here only, nothing is generated into .env.
            "APP_ENV": "production",
            "DOTENV_PATH": str(dotenv),
            "BIND_HOST": HOST,
            "REDIS_URL": self.redis.local_url,
            "DATABASE_URL": self.postgres.local_url,
            "USSD_PORT": str(self.ports["ussd"]),
            "USSD_LOGIN_PORT": str(self.ports["ussd-login"]),
            "SABONG_PORT": str(self.ports["sabong"]),
            "GATEWAY_PORT": str(self.ports["gateway"]),
            "GATEWAY_USSD_UPSTREAMS": f"{HOST}:{self.ports['ussd']}",
            "GATEWAY_USSD_LOGIN_UPSTREAMS": f"{HOST}:{self.ports['ussd-login']}",
            "GATEWAY_SABONG_UPSTREAMS": f"{HOST}:{self.ports['sabong']}",
            # Measured, not limited: the gateway's rate limit would refuse most of the load.
            "GATEWAY_RATE_LIMIT": "0",
            "SABONG_LOGIN_BASE_URL": f"http://{HOST}:{self.ports['gateway']}",
            "METRICS_DIR": str(workdir / "metrics"),
            "PYTHONUNBUFFERED": "1",
            **self.secrets,
            **(overrides or {}),
        }
        self.children: list[Child] = []
        self._stop_flag = StopFlag()

    @property
    def settings(self) -> Settings:
        """What a component started by this platform reads: our values over the environment."""
        return Settings({**os.environ, **self.values})

    def url(self, component: str) -> str:
        """Base URL of `component` (ussd, sabong, gateway, reference or floor)."""
        return f"http://{HOST}:{self.ports[component]}"

    def host_header(self, component: str) -> str:
        return f"{HOST}:{self.ports[component]}"

    def command(self, component: str) -> list[str]:
        """The server command line of `component`: serve.py's, unless a patch changes it."""
        argv = serve.command(component, self.settings)
        return self.command_patch(component, argv) if self.command_patch else argv

    def commands(self) -> dict[str, list[str]]:
        """The server command line of every component, as started."""
        found = {component: self.command(component) for component in serve.COMPONENTS}
        limited = {name: serve.command("gateway", self.limited_settings(name))
                   for name in RATE_LIMITED_GATEWAYS}  # fmt: skip
        extra = {REFERENCE: self.reference_command(), FLOOR: self.floor_command()}
        return {**found, **extra, **limited}

    def limited_values(self, name: str) -> dict[str, str]:
        """What a rate-limited gateway (RATE_LIMITED_GATEWAYS) reads over our values."""
        return {
            "GATEWAY_PORT": str(self.ports[name]),
            "GATEWAY_RATE_LIMIT": UNREACHED_RATE_LIMIT,
            "REDIS_URL": with_query(self.redis.local_url, RATE_LIMITED_GATEWAYS[name]),
        }

    def limited_settings(self, name: str) -> Settings:
        return Settings({**os.environ, **self.values, **self.limited_values(name)})

    def reference_command(self) -> list[str]:
        """The services' gunicorn command line serving the reference app (gthread 2x16)."""
        argv = self._serving(REFERENCE, REFERENCE_APP, REFERENCE_WORKERS)
        if "--worker-class" in argv:
            argv[argv.index("--worker-class") + 1] = "gthread"
        return argv

    def floor_command(self) -> list[str]:
        """The services' gunicorn command line (their worker class too) serving the floor app."""
        return self._serving(FLOOR, FLOOR_APP, {})

    def _serving(self, component: str, app: str, extra: Mapping[str, str]) -> list[str]:
        """USSD's command line on `component`'s port, serving `app` instead."""
        port = {"USSD_PORT": str(self.ports[component])}
        settings = Settings({**os.environ, **self.values, **port, **extra})
        argv = serve.command("ussd", settings)
        argv[argv.index(serve.SERVICES["ussd"].app)] = app
        return argv

    def start(self) -> Platform:
        """Start the stores, migrate, then every component; return once all are ready."""
        settings = self.settings
        env = {**os.environ, **self.values}
        self.redis.data_dir.mkdir(parents=True, exist_ok=True)
        stores = [Child.for_redis(self.redis, env), Child.for_postgres(self.postgres, env)]
        self.children = list(stores)
        try:
            start_all(stores, self._stop_flag, READY_TIMEOUT_SECONDS)
            migrate.upgrade(self.postgres.url)
        except BaseException:
            self.stop()
            raise
        for component in serve.COMPONENTS:
            extra = serve.environment(component, settings)
            serve.prepare(extra)
            self.children.append(
                Child(
                    component,
                    # The one server command line, unless a tuning patch replaces it.
                    self.command(component) if self.command_patch else serve_command(component),
                    {**env, **extra},
                    self.workdir / "log" / f"{component}.log",
                    probe_url=f"{self.url(component)}/readyz",
                )
            )
        for name in RATE_LIMITED_GATEWAYS:
            limited = self.limited_settings(name)
            extra = serve.environment("gateway", limited)
            serve.prepare(extra)
            self.children.append(
                Child(
                    name,
                    serve.command("gateway", limited),
                    {**env, **self.limited_values(name), **extra},
                    self.workdir / "log" / f"{name}.log",
                    probe_url=f"{self.url(name)}/readyz",
                )
            )
        for name, argv in ((REFERENCE, self.reference_command()), (FLOOR, self.floor_command())):
            log = self.workdir / "log" / f"{name}.log"
            self.children.append(Child(name, argv, env, log, probe_url=f"{self.url(name)}/"))
        if self.other_tree is not None:
            self.children += [self._other_child(service, env) for service in OTHER_SERVICES]
        try:
            start_all(self.children[len(stores) :], self._stop_flag, READY_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def _other_child(self, service: str, env: Mapping[str, str]) -> Child:
        """`service` served by the other checkout's own serve.py, on a port of its own, with
        this platform's stores and secrets (`--ab`)."""
        name, tree = other(service), self.other_tree
        assert tree is not None
        port = {f"{serve.SERVICES[service].prefix}_PORT": str(self.ports[name])}
        extra = serve.environment(service, Settings({**os.environ, **self.values, **port}))
        serve.prepare(extra)
        return Child(
            name,
            serve_command(service),
            {**env, **port, **extra, "PYTHONPATH": str(tree)},
            self.workdir / "log" / f"{name}.log",
            probe_url=f"{self.url(name)}/readyz",
            cwd=tree,
        )

    def stop(self) -> None:
        """Stop the reference and floor apps and the rate-limited gateways, the gateway,
        then the services, then the stores; nothing is left behind."""
        # scripts.run.stop_all knows only serve.py's components: the others stop first.
        extra = (REFERENCE, FLOOR, *RATE_LIMITED_GATEWAYS, *map(other, OTHER_SERVICES))
        first = [child for child in self.children if child.name in extra]
        stop_stage(first, self._stop_flag, STOP_GRACE_SECONDS)
        stop_all(self.children, self._stop_flag, STOP_GRACE_SECONDS)
        shutil.rmtree(self.postgres_dir, ignore_errors=True)

    def worker_pids(self, component: str) -> list[int]:
        """Pids of a component's processes (the leader and its workers)."""
        for child in self.children:
            if child.name == component and child.process is not None:
                return group_members(child.process.pid)
        return []

    def pids_by_component(self) -> dict[str, list[int]]:
        """Every live process the platform started, by component (redis, ussd, ...)."""
        return {
            child.name: processes_of(child.name, child.process.pid)
            if child.process is not None
            else []
            for child in self.children
        }

    def log_tail(self, component: str) -> str:
        for child in self.children:
            if child.name == component:
                return child.tail_message()
        return ""

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def processes_of(component: str, leader: int) -> list[int]:
    """The processes of a component: its process group, or for PostgreSQL the postmaster
    and its children (each backend calls setsid, so it leaves the postmaster's group)."""
    if component != "postgres":
        return group_members(leader)
    return [leader, *child_pids(leader)]


def wait_quiet(max_load: float, max_wait_s: float, poll_s: float = 15.0) -> float:
    """Wait (up to `max_wait_s`) until the 1-minute load average is below `max_load`."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        time.sleep(poll_s)
        load = os.getloadavg()[0]
    return load
