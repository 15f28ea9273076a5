"""One supervised child process of `make run`: start, probe, stop its whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devtools.embedded import EmbeddedRedis
from devtools.postgres import Account, EmbeddedPostgres
from shared.config import PROJECT_ROOT
from shared.redis import connect, ping

PROBE_TIMEOUT_SECONDS = 1.0
TAIL_LINES = 25
_PR_SET_PDEATHSIG = 1
# Probes talk to this machine only: an http_proxy in the environment must not intercept them.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartupError(Exception):
    """A component could not start, did not become ready, or stopped on its own."""


@dataclass
class Child:
    """A component `make run` starts (or, for an external Redis, only probes)."""

    name: str
    argv: list[str] | None
    env: dict[str, str]
    log_path: Path | None
    probe_url: str
    process: subprocess.Popen[bytes] | None = None
    stopping: bool = False
    # The account to run as (PostgreSQL refuses root), and the signal for a clean stop.
    account: Account | None = None
    stop_signal: int = signal.SIGTERM
    cwd: Path | None = None
    _log_offset: int = field(default=0, repr=False)

    @classmethod
    def for_redis(cls, redis: EmbeddedRedis, env: dict[str, str]) -> Child:
        """The bundled redis-server; it writes its own log in its data directory."""
        return cls("redis", redis.command(), env, redis.data_dir / "redis.log", redis.url)

    @classmethod
    def external_redis(cls, url: str) -> Child:
        """A Redis given by REDIS_URL: waited for, never started or stopped."""
        return cls("redis", None, {}, None, url)

    @classmethod
    def for_postgres(cls, postgres: EmbeddedPostgres, env: dict[str, str]) -> Child:
        """The bundled PostgreSQL (initialised on first use); SIGINT is its fast shutdown."""
        postgres.initialise()
        return cls(
            "postgres", postgres.command(), env, postgres.log_path, postgres.url,
            account=postgres.run_as, stop_signal=signal.SIGINT, cwd=postgres.data_dir,
        )  # fmt: skip

    @classmethod
    def external_postgres(cls, url: str) -> Child:
        """A PostgreSQL given by DATABASE_URL: waited for, never started or stopped."""
        return cls("postgres", None, {}, None, url)

    def start(self) -> None:
        """Launch in a new session (own process group), output appended to the log file."""
        if self.argv is None or self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self.argv,
                # A store runs in its data directory (PostgreSQL's account may not reach ours).
                cwd=self.cwd or PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_exit_with_parent(os.getpid()),
                **Account.popen_arguments(self.account),
            )

    def ready(self) -> bool:
        """True when the component answers its readiness probe."""
        if self.probe_url.startswith("redis"):
            client = connect(self.probe_url)
            try:
                return ping(client)
            finally:
                client.close()
        if self.probe_url.startswith("postgresql"):
            return postgres_ok(self.probe_url)
        return http_ok(self.probe_url)

    def check_alive(self, during: str) -> None:
        """Raise StartupError, with the tail of the log, when the process has exited."""
        if self.died_unexpectedly() and self.process is not None:
            raise StartupError(
                f"{self.name} {describe_exit(self.process.returncode)} during {during}"
                f"{self.tail_message()}"
            )

    def died_unexpectedly(self) -> bool:
        """True when the process exited without being asked to."""
        return self.process is not None and not self.stopping and self.process.poll() is not None

    def terminate(self) -> None:
        """Ask for a clean stop: SIGTERM to the leader (it stops its own workers)."""
        self.stopping = True
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
        else:
            # The leader is gone already; anything left in its group is an orphan.
            _signal_group(self.process.pid, signal.SIGTERM)

    def gone(self) -> bool:
        """True when the leader has exited and nothing is left in its process group."""
        if self.process is None:
            return True
        return self.process.poll() is not None and not group_members(self.process.pid)

    def kill(self) -> None:
        """SIGKILL whatever is left of the process group, then reap the leader."""
        if self.process is None or self.gone():
            return
        _signal_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def tail_message(self) -> str:
        """The last lines this run wrote to the log, formatted for an error message."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            lines = log.read().decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
        if not lines:
            return f"\n  (nothing in {self.log_path})"
        body = "\n".join(f"  | {line}" for line in lines)
        return f"\n  last lines of {self.log_path}:\n{body}"


def describe_exit(returncode: int) -> str:
    """`exited with status N` or `was killed by SIGNAME`, from a Popen return code."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def http_ok(url: str) -> bool:
    """True when GET `url` answers 200 within the probe timeout."""
    try:
        with _LOCAL_OPENER.open(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def postgres_ok(url: str) -> bool:
    """True when PostgreSQL accepts a connection within the probe timeout."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(PROBE_TIMEOUT_SECONDS))).close()
    except psycopg.Error:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    proc = Path("/proc")
    if not proc.is_dir():
        return _group_members_by_signal(pgid)
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_members_by_signal(pgid: int) -> list[int]:
    """Without /proc: signal 0 tells whether the group has any member."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    return [pgid]


def _signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group that may already be empty."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _exit_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec hook: the child gets SIGTERM if `make run` itself dies (Linux only)."""
    libc = _libc()

    def hook() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            # The parent died between fork and prctl: nobody would ever stop this child.
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _libc() -> ctypes.CDLL | None:
    """The C library when it offers prctl (Linux), else None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "prctl") else None


def probe_host(host: str) -> str:
    """The address to reach a server bound to `host` (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding to it
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


def port_in_use(host: str, port_number: int) -> bool:
    """True when a server could not bind `host:port_number` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so connections in TIME_WAIT do not count as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port_number))
        except OSError:
            return True
    return False


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, so it can be printed."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
