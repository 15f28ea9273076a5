"""Start a server, wait until it is ready, stop its whole process group: the one helper
`make run`, the tests and the bench start their servers with.

Every server runs in a session (process group) of its own, output appended to a log file,
and gets SIGTERM if the process that started it dies. Readiness is a probe polled until a
deadline; a server that exits or is not ready in time is a StartupError that quotes the
end of its log. Stopping sends the clean-stop signal to the leader (it stops its own
workers), waits, and SIGKILLs whatever is left of the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devtools.postgres import Account
from shared.config import PROJECT_ROOT

PROBE_TIMEOUT_SECONDS = 1.0
POLL_SECONDS = 0.1
DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_STOP_GRACE = 15.0
TAIL_LINES = 25
_PR_SET_PDEATHSIG = 1
# Probes talk to this machine only: an http_proxy in the environment must not intercept them.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartupError(Exception):
    """A server could not start, did not become ready, or stopped on its own."""


def serve_command(component: str) -> list[str]:
    """The one command line that serves a component, in make run, tests, bench and images."""
    return [sys.executable, "-m", "scripts.serve", component]


@dataclass
class ServerProcess:
    """One server process in its own process group (argv None: external, only probed)."""

    name: str
    argv: list[str] | None
    env: dict[str, str]
    log_path: Path | None
    process: subprocess.Popen[bytes] | None = None
    stopping: bool = False
    # The account to run as (PostgreSQL refuses root), and the signal for a clean stop.
    account: Account | None = None
    stop_signal: int = signal.SIGTERM
    cwd: Path | None = None
    _log_offset: int = field(default=0, repr=False)

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

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str = "") -> None:
        """Poll `ready` until true; StartupError with the log's end on exit or timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive(during="start-up")
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{self.name} is not ready within {timeout:g} s{what}{self.tail_message()}"
                )
            time.sleep(POLL_SECONDS)

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

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the whole process group (leader and workers)."""
        if self.process is not None:
            signal_group(self.process.pid, signum)

    def terminate(self) -> None:
        """Ask for a clean stop: the stop signal to the leader (it stops its own workers)."""
        self.stopping = True
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
        else:
            # The leader is gone already; anything left in its group is an orphan.
            self.signal_group(signal.SIGTERM)

    def gone(self) -> bool:
        """True when the leader has exited and nothing is left in its process group."""
        if self.process is None:
            return True
        return self.process.poll() is not None and not group_members(self.process.pid)

    def kill(self) -> None:
        """SIGKILL whatever is left of the process group, then reap the leader."""
        if self.process is None or self.gone():
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def stop(self, grace: float = DEFAULT_STOP_GRACE) -> bool:
        """Terminate, wait `grace` s for the whole group, SIGKILL the rest; True if clean."""
        self.terminate()
        deadline = time.monotonic() + grace
        while not self.gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        clean = self.gone()
        self.kill()
        return clean

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


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    log_path: Path,
    ready_url: str,
    timeout: float = DEFAULT_READY_TIMEOUT,
    grace: float = DEFAULT_STOP_GRACE,
) -> Iterator[ServerProcess]:
    """Start `argv`, wait until GET `ready_url` answers 200, yield it; always stop it."""
    server = ServerProcess(name, argv, dict(env), log_path)
    try:
        server.start()
        server.wait_ready(lambda: http_ok(ready_url), timeout, f" ({ready_url})")
        yield server
    finally:
        server.stop(grace)


def served(
    component: str,
    env: Mapping[str, str],
    log_path: Path,
    base_url: str,
    probe: str = "/healthz",
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> contextlib.AbstractContextManager[ServerProcess]:
    """`python -m scripts.serve <component>` (port and sizing in `env`), ready on `probe`."""
    argv = serve_command(component)
    return running(component, argv, env, log_path, base_url + probe, timeout)


def http_ok(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """True when GET `url` answers 200 within `timeout`."""
    try:
        with _LOCAL_OPENER.open(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def describe_exit(returncode: int) -> str:
    """`exited with status N` or `was killed by SIGNAME`, from a Popen return code."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


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


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group that may already be empty."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _exit_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec hook: the child gets SIGTERM if the process that started it dies (Linux)."""
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
