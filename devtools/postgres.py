"""A real PostgreSQL server as a child process: `make run` without DATABASE_URL, and the tests.

The binaries are the ones the `pgserver` package bundles (PostgreSQL 16), else a
PostgreSQL on PATH, so a machine with only Python needs nothing installed by hand.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg

from devtools.embedded import fits_socket_path, free_port
from shared.exceptions import ConfigError

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; when we are root it runs as this existing account.
UNPRIVILEGED_USER = "nobody"


def postgres_bin_dir() -> Path:
    """The directory of the bundled PostgreSQL binaries, else of the ones on PATH."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "postgres").is_file():
            return bundled
    found = shutil.which("postgres") or shutil.which("pg_ctl")
    if not found:
        raise ConfigError("no PostgreSQL: install the project with its dev extra (pgserver)")
    return Path(found).parent


@dataclass(frozen=True)
class Account:
    """A user and group to run the server as."""

    uid: int
    gid: int

    @classmethod
    def unprivileged(cls) -> Account:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return cls(entry.pw_uid, entry.pw_gid)

    @staticmethod
    def popen_arguments(account: Account | None) -> dict[str, Any]:
        """Popen's user/group/extra_groups for `account` (nothing for ourselves).

        The group matters as much as the user: a process that kept root's group would be
        judged by a directory's group bits (often ---) instead of its "other" bits.
        """
        if account is None:
            return {}
        return {"user": account.uid, "group": account.gid, "extra_groups": []}


class EmbeddedPostgres:
    """Initialise, start, stop and kill one PostgreSQL server; data in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        durable: bool = True,
        unix_socket: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        # `unix_socket`: it also listens in `data_dir` (when the socket's path fits), which
        # `local_url` names: cheaper round trips for clients on the same machine.
        self.socket_dir = self.data_dir if unix_socket and fits_socket_path(socket_path) else None
        # Tests may trade fsync for speed: a killed server process still loses nothing
        # (the OS keeps its page cache); only a machine crash would.
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its TCP address (what other machines and tools use)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    @property
    def local_url(self) -> str:
        """The address for clients on this machine: the Unix socket when it has one."""
        if self.socket_dir is None:
            return self.url
        directory = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/postgres?host={directory}&port={self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def command(self) -> list[str]:
        """The postgres command line this instance runs (TCP, and the Unix socket if any)."""
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir or ""),
            # Owner only (the server's account, or root): trust auth lets anyone in who
            # reaches the socket.
            "unix_socket_permissions": "0700",
            "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on",
            "full_page_writes": "on" if self.durable else "off",
        }
        args = [str(postgres_bin_dir() / "postgres"), "-D", str(self.pgdata)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def initialise(self) -> None:
        """Create the cluster once (trust auth on loopback only, UTF-8)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _hand_over(self.data_dir)
        if (self.pgdata / "PG_VERSION").is_file():
            return
        initdb = [str(postgres_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER]
        done = subprocess.run(
            [*initdb, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            check=False,
            capture_output=True,
            cwd=self.data_dir,  # the caller's directory may be closed to the server's account
            **Account.popen_arguments(self.run_as),
        )
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            raise ConfigError(f"initdb failed in {self.pgdata}: {output[-500:]}")

    @property
    def run_as(self) -> Account | None:
        """The account the server runs as: ourselves, or an unprivileged one when we are root."""
        return Account.unprivileged() if os.geteuid() == 0 else None

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        """Launch the server (initialising it first if needed) and wait until it answers."""
        self.initialise()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                **Account.popen_arguments(self.run_as),
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until a connection succeeds, the process dies, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(f"postgres exited; see {self.log_path}")
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise ConfigError(f"postgres on port {self.port} not ready in {timeout}s")

    def stop(self, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop: SIGINT (fast shutdown, clean) or SIGKILL of the postmaster (a crash)."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        backends = child_pids(self.process.pid) if kill else []
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _wait_until_gone(backends)
        self.process = None

    def restart(self, kill: bool = False) -> None:
        """Stop then start again on the same port and data directory."""
        self.stop(kill=kill)
        self.start()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _hand_over(data_dir: Path) -> None:
    """As root: give the data directory to the server's account and let it reach it."""
    if os.geteuid() != 0:
        return
    account = Account.unprivileged()
    for path in [data_dir, *data_dir.rglob("*")]:
        os.lchown(path, account.uid, account.gid)
    _traversable(data_dir)
    # The binaries too: a checkout (and its .venv) may sit in a directory only root enters.
    _traversable(postgres_bin_dir().parent)


def _traversable(path: Path) -> None:
    """Let the server's account pass through every parent of `path` (o+x only: nothing
    becomes listable or readable that was not)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def child_pids(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _wait_until_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until the backends of a SIGKILLed postmaster have exited (bounded).

    They notice the dead postmaster within moments and quit; a restart before that fails
    because they still hold its shared memory.
    """
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.02)
