"""Real processes for the gateway tests: echo upstreams, gateways, and an HTTP helper."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.embedded import EmbeddedRedis, free_port
from devtools.processes import ServerProcess, StartupError, serve_command
from shared.config import SECRET_NAMES

from .inprocess import Wire

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_SCRIPT = Path(__file__).with_name("upstream_server.py")
START_TIMEOUT_SECONDS = 15.0


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until something accepts on 127.0.0.1:port, or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.03)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def _accepts(port: int) -> bool:
    """True when something accepts a TCP connection on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """SIGTERM (or SIGKILL) the process and reap it, escalating after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class Upstream:
    """One echo upstream process (see upstream_server.py)."""

    name: str
    port: int
    log_path: Path
    idle: float = 30.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        cmd = [sys.executable, str(UPSTREAM_SCRIPT), "--port", str(self.port)]
        cmd += ["--name", self.name, "--log", str(self.log_path), "--idle", str(self.idle)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, START_TIMEOUT_SECONDS)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, every open connection reset by the kernel."""
        if self.process is not None:
            stop_process(self.process, kill=True)

    def received_ids(self) -> list[str]:
        """Request ids this upstream read, in order (written as each request arrived)."""
        if not self.log_path.exists():
            return []
        return [line for line in self.log_path.read_text().splitlines() if line]


@dataclass
class GatewayProcess:
    """One gateway served exactly as production serves it: `python -m scripts.serve gateway`."""

    port: int
    env: dict[str, str]
    log_path: Path
    workers: int = 1
    server: ServerProcess | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.server.process if self.server is not None else None

    def start(self) -> GatewayProcess:
        env = {
            "METRICS_DIR": str(self.log_path.parent / "metrics"),
            **self.env,
            "BIND_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_WORKERS": str(self.workers),
        }
        self.server = ServerProcess("gateway", serve_command("gateway"), env, self.log_path)
        self.server.start()
        try:
            self.server.wait_ready(lambda: _accepts(self.port), START_TIMEOUT_SECONDS)
        except StartupError as exc:
            raise RuntimeError(f"{exc}\n--- gateway log ---\n{self.log()}") from None
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (the access log is flushed within 0.25 s)."""
        entries = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return request(self.port, method, path, **kwargs)


@dataclass
class Response:
    """Status, headers (lower-case names, all values kept) and body of one answer."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] | None = None,
    chunked: bool = False,
    timeout: float = 10.0,
    conn: http.client.HTTPConnection | None = None,
) -> Response:
    """One request with exact control of headers; a chunked body when asked."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in body or ():
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        else:
            data = body if isinstance(body, bytes) else b""
            if body is not None or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data or None)
        answer = conn.getresponse()
        payload = answer.read()
        pairs = [(k.lower(), v) for k, v in answer.getheaders()]
        return Response(answer.status, pairs, payload, time.monotonic() - started)
    finally:
        if own:
            conn.close()


def secrets_env() -> dict[str, str]:
    """Explicit secrets so no test ever reads or writes the project's real `.env`."""
    return {name: f"test-{name.lower()}-" + "x" * 40 for name in SECRET_NAMES}


@pytest.fixture
def start_upstream(tmp_path: Path) -> Iterator[Callable[..., Upstream]]:
    """Start echo upstreams: `start_upstream("sabong")`, optionally on a given port."""
    started: list[Upstream] = []

    def start(name: str, port: int | None = None, idle: float = 30.0) -> Upstream:
        port = port or free_port()
        upstream = Upstream(name, port, tmp_path / f"{name}-{port}.log", idle).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.kill()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start a gateway process: `start_gateway(GATEWAY_SABONG_UPSTREAMS=..., ...)`."""
    started: list[GatewayProcess] = []

    def start(workers: int = 1, **settings: str) -> GatewayProcess:
        dotenv = tmp_path / "gateway.env"
        dotenv.touch()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "DOTENV_PATH": str(dotenv),
            "GATEWAY_USSD_UPSTREAMS": f"127.0.0.1:{free_port()}",
            "GATEWAY_SABONG_UPSTREAMS": f"127.0.0.1:{free_port()}",
            **secrets_env(),
            **settings,
        }
        port = free_port()
        gateway = GatewayProcess(port, env, tmp_path / f"gateway-{port}.log", workers).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="module")
def shared_platform(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[tuple[GatewayProcess, Upstream, Upstream]]:
    """One gateway in front of a "ussd" and a "sabong" echo upstream, for read-only tests.

    Its rate limit is high enough that no test of the module reaches it.
    """
    tmp = tmp_path_factory.mktemp("platform")
    ussd = Upstream("ussd", free_port(), tmp / "ussd.log").start()
    sabong = Upstream("sabong", free_port(), tmp / "sabong.log").start()
    dotenv = tmp / "gateway.env"
    dotenv.touch()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "DOTENV_PATH": str(dotenv),
        "REDIS_URL": redis_server.url,
        "GATEWAY_RATE_LIMIT": "1000000",
        "GATEWAY_USSD_UPSTREAMS": ussd.address,
        "GATEWAY_SABONG_UPSTREAMS": sabong.address,
        **secrets_env(),
    }
    gateway = GatewayProcess(free_port(), env, tmp / "gateway.log").start()
    yield gateway, ussd, sabong
    gateway.stop()
    ussd.kill()
    sabong.kill()


@pytest.fixture
def platform_gateway(shared_platform: tuple[GatewayProcess, Upstream, Upstream]) -> GatewayProcess:
    return shared_platform[0]


def upstream_headers(response: Response) -> dict[str, list[str]]:
    """The headers the echo upstream received, by lower-case name."""
    received: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        received.setdefault(name.lower(), []).append(value)
    return received


@pytest.fixture
def wire() -> Iterator[Wire]:
    """One client connection fed raw bytes in process; forwarded requests answered at once."""
    connection = Wire()
    yield connection
    connection.close()


@pytest.fixture
def held_wire() -> Iterator[Wire]:
    """A connection whose forwarded requests wait until the test answers them."""
    connection = Wire(answer_at_once=False)
    yield connection
    connection.close()
