"""A whole platform as real processes: own AOF Redis, USSD and Sabong replicas, the gateway.

Every server is started with the command line production uses (`python -m scripts.serve`),
on free ports, with explicit secrets and a throwaway `.env` (`DOTENV_PATH`). Each server
runs in a process group of its own, so a test can SIGKILL or SIGSTOP a replica with all
its workers, and teardown can prove that nothing it started is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.embedded import EmbeddedRedis, free_port
from devtools.processes import ServerProcess, StartupError, group_members, http_ok, serve_command
from tests.live_services import SABONG_TEST_SECRET, create_k2_client, service_env

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# A proxy that ignores the environment: an http_proxy variable must not intercept 127.0.0.1.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PlatformError(RuntimeError):
    """A server did not start, or did not stop cleanly."""


@dataclass
class Server:
    """One component (a gunicorn service replica or the gateway) in its own process group."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    server: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> Server:
        """Launch the component with the one command line, `python -m scripts.serve <it>`."""
        component = "gateway" if self.name.startswith("gateway") else self.name.split("-")[0]
        self.argv = serve_command(component)
        # Its own group: SIGKILL/SIGSTOP reach the master and every worker at once.
        self.server = ServerProcess(self.name, self.argv, self.env, self.log_path)
        self.server.start()
        self.process = self.server.process
        return self

    def wait_until(self, path: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Poll `path` until it answers 200; fail with the log tail if the process dies."""
        assert self.server is not None
        try:
            self.server.wait_ready(lambda: http_ok(self.url + path, 2), timeout, f" ({path})")
        except StartupError as exc:
            raise PlatformError(str(exc)) from None

    def signal_group(self, signum: signal.Signals) -> None:
        """Send `signum` to the component's whole process group (master and workers)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """A crash: SIGKILL to every process of the component; return once its port refuses.

        The kernel tears the listening socket down a little after the last process is
        gone (about 20 ms measured here) and accepts connections until then; only
        "connection refused" means the replica is really gone from the network.
        """
        if self.process is None:
            return
        self.signal_group(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_SECONDS)
        if not self._wait_group_empty(STOP_TIMEOUT_SECONDS):
            raise PlatformError(f"{self.name}: processes survived SIGKILL")
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _accepts(self.port):
            if time.monotonic() > deadline:
                raise PlatformError(f"{self.name}: port {self.port} still accepts after SIGKILL")
            time.sleep(0.002)

    def stop(self) -> list[str]:
        """SIGTERM, escalate to SIGKILL; return what had to be killed or was left over."""
        if self.process is None:
            return []
        problems = []
        self.signal_group(signal.SIGCONT)  # a paused (SIGSTOPped) server cannot terminate
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: did not stop on SIGTERM; killed")
        if not self._wait_group_empty(STOP_TIMEOUT_SECONDS):
            problems.append(f"{self.name}: processes left in its group after stop; killed")
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        return problems

    def _wait_group_empty(self, timeout: float) -> bool:
        """True once no process of the group is left (gunicorn workers exit after the master)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader, or it stays a zombie member of the group
            if not group_members(self.process.pid):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def metric(self, name: str) -> float:
        """Sum of every sample of Prometheus metric `name` on this replica's `/metrics`."""
        with _LOCAL.open(self.url + "/metrics", timeout=5) as answer:
            text = answer.read().decode("utf-8")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total


def _accepts(port: int) -> bool:
    """True when something still completes a TCP handshake on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Platform:
    """Everything one test runs against, reached through `url` (the gateway)."""

    redis: EmbeddedRedis
    env: dict[str, str]
    ussd: list[Server]
    sabong: list[Server]
    gateway: Server
    workdir: Path
    sabong_secret: str = SABONG_TEST_SECRET

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def port(self) -> int:
        return self.gateway.port

    def create_k2_account(self, username: str, password: str) -> dict[str, Any]:
        """A K2 partner account made with the admin CLI, as an operator would."""
        return create_k2_client(self.env, username, password)


@contextlib.contextmanager
def running_platform(
    workdir: Path,
    *,
    ussd_replicas: int = 1,
    sabong_replicas: int = 1,
    workers: int = 2,
    extra_sabong_upstreams: Sequence[str] = (),
    wait_ready: bool = True,
    redis_args: tuple[str, ...] = (),
    database_url: str | None = None,
    **gateway_settings: str,
) -> Iterator[Platform]:
    """Start Redis (AOF), the replicas and the gateway; stop all of it, leaving nothing.

    `extra_sabong_upstreams` are addresses added to the gateway's Sabong replica list
    (a hanging socket server, say); `database_url` a PostgreSQL of the test's own (one it
    may kill) instead of the run's; `gateway_settings` are more GATEWAY_* variables.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis(workdir / "redis", appendonly=True, extra_args=redis_args)
    gateway_port = free_port()
    env = service_env(
        redis.url,
        workdir / "platform.env",
        SABONG_LOGIN_BASE_URL=f"http://{HOST}:{gateway_port}",
        METRICS_DIR=str(workdir / "metrics"),
        BIND_HOST=HOST,
        USSD_WORKERS=str(workers),
        SABONG_WORKERS=str(workers),
        GATEWAY_RATE_LIMIT="0",
        **({"DATABASE_URL": database_url} if database_url else {}),
    )
    servers: list[Server] = []
    problems: list[str] = []
    try:
        redis.start()
        ussd = [_replica("ussd", index, env, workdir, servers) for index in range(ussd_replicas)]
        sabong = [
            _replica("sabong", index, env, workdir, servers) for index in range(sabong_replicas)
        ]
        gateway_env = {
            **env,
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_USSD_UPSTREAMS": ",".join(s.address for s in ussd),
            "GATEWAY_SABONG_UPSTREAMS": ",".join(
                [*(s.address for s in sabong), *extra_sabong_upstreams]
            ),
            **gateway_settings,
        }
        gateway = Server("gateway", gateway_port, gateway_env, workdir / "gateway.log")
        servers.append(gateway.start())
        for server in servers:
            server.wait_until("/readyz" if wait_ready else "/healthz")
        yield Platform(redis, env, ussd, sabong, gateway, workdir)
    finally:
        for server in reversed(servers):
            problems += server.stop()
        redis.stop()
    if problems:
        raise PlatformError("teardown: " + "; ".join(problems))


def _replica(
    component: str, index: int, env: dict[str, str], workdir: Path, started: list[Server]
) -> Server:
    """Start replica `index` of `component` on a port of its own."""
    port = free_port()
    name = f"{component}-{index}"
    replica_env = {**env, f"{component.upper()}_PORT": str(port)}
    server = Server(name, port, replica_env, workdir / f"{name}.log").start()
    started.append(server)
    return server


def dump(value: Any) -> bytes:
    """Compact JSON bytes: what is sent is exactly what is signed."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
