"""Start `python -m scripts.run` as a real subprocess, isolated by ports, data dir and .env."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.embedded import free_port
from shared.config import PROJECT_ROOT, SECRET_NAMES

from .procs import ProcInfo, all_processes, descendants, kill_all

READY_MARK = "is ready in"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 25.0
# Settings from the developer's shell must not leak into the isolated run.
INHERITED_BLOCKLIST = {
    "REDIS_URL",
    "DATABASE_URL",
    "APP_ENV",
    "SABONG_LOGIN_BASE_URL",
    "SABONG_APP_URL",
    "GATEWAY_USSD_UPSTREAMS",
    "GATEWAY_USSD_LOGIN_UPSTREAMS",
    "GATEWAY_SABONG_UPSTREAMS",
    "BIND_HOST",
    *SECRET_NAMES,
}
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RunPorts:
    """The six ports one isolated `make run` uses."""

    redis: int
    ussd: int
    sabong: int
    gateway: int
    ussd_login: int
    postgres: int

    @classmethod
    def allocate(cls) -> RunPorts:
        """Six distinct ports that are free right now."""
        ports: list[int] = []
        while len(ports) < 6:
            candidate = free_port()
            if candidate not in ports:
                ports.append(candidate)
        return cls(*ports)

    def all(self) -> list[int]:
        return [self.redis, self.ussd, self.sabong, self.gateway, self.ussd_login, self.postgres]


@dataclass
class Platform:
    """One `python -m scripts.run` process and everything it started."""

    env: dict[str, str]
    workdir: Path
    ports: RunPorts
    process: subprocess.Popen[bytes] | None = None
    recorded: list[ProcInfo] = field(default_factory=list)
    _runs: int = 0

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def start(self) -> None:
        """Launch `python -m scripts.run` in its own session, output to files."""
        self._runs += 1
        out = open(self.workdir / f"stdout-{self._runs}.txt", "wb")  # noqa: SIM115
        err = open(self.workdir / f"stderr-{self._runs}.txt", "wb")  # noqa: SIM115
        with out, err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scripts.run"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stdout(self) -> str:
        return (self.workdir / f"stdout-{self._runs}.txt").read_text(errors="replace")

    def stderr(self) -> str:
        return (self.workdir / f"stderr-{self._runs}.txt").read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Seconds until the banner appeared; fails with the output if it never does."""
        assert self.process is not None
        started = time.monotonic()
        while READY_MARK not in self.stdout():
            if self.process.poll() is not None:
                pytest.fail(f"scripts.run exited {self.process.returncode}:\n{self.stderr()}")
            if time.monotonic() - started > timeout:
                pytest.fail(f"not ready within {timeout} s:\n{self.stderr()}")
            time.sleep(0.1)
        self.recorded += descendants(self.process.pid)
        return time.monotonic() - started

    def signal(self, signum: int) -> None:
        """Send `signum` to scripts.run only (not to its children)."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> tuple[int, float]:
        """The exit status and how long it took; fails if it does not exit in time."""
        assert self.process is not None
        started = time.monotonic()
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts.run did not exit within {timeout} s:\n{self.stderr()}")
        return status, time.monotonic() - started

    def stop(self) -> tuple[int, float]:
        """SIGTERM, then wait for the exit."""
        self.signal(signal.SIGTERM)
        return self.wait_exit()

    def orphans_using_ports(self) -> list[ProcInfo]:
        """Orphans (re-parented to init) whose command line names one of this run's ports."""
        marks = re.compile("|".join(f":{port}(?!\\d)" for port in self.ports.all()))
        return [p for p in all_processes() if p.ppid == 1 and marks.search(p.cmdline)]

    def cleanup(self) -> None:
        """After the test, whatever happened: nothing of this run may survive."""
        if self.process is not None and self.process.poll() is None:
            self.recorded += descendants(self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        kill_all(self.recorded)


def postgres_data_dir() -> Path:
    """A fresh directory PostgreSQL may use even when it runs as an unprivileged account."""
    directory = Path(tempfile.mkdtemp(prefix="pat-postgres-"))
    directory.chmod(0o711)  # traversable by the server's account, listable by nobody else
    return directory


def isolated_env(workdir: Path, ports: RunPorts) -> dict[str, str]:
    """The environment of an isolated run: own ports, data directory and .env file."""
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_BLOCKLIST}
    env.update(
        {
            "RUN_VAR_DIR": str(workdir / "var"),
            "DOTENV_PATH": str(workdir / ".env"),
            "REDIS_PORT": str(ports.redis),
            "POSTGRES_PORT": str(ports.postgres),
            # Beside the tmp tree: PostgreSQL's unprivileged account must reach its data.
            "POSTGRES_DATA_DIR": str(postgres_data_dir() / "postgres"),
            "USSD_PORT": str(ports.ussd),
            "USSD_LOGIN_PORT": str(ports.ussd_login),
            "SABONG_PORT": str(ports.sabong),
            "GATEWAY_PORT": str(ports.gateway),
            # One worker each keeps the 2-core box responsive; workers still exist to leak.
            "USSD_WORKERS": "1",
            "SABONG_WORKERS": "1",
            "GATEWAY_WORKERS": "1",
            "USSD_THREADS": "2",
            "SABONG_THREADS": "2",
            "RUN_READY_TIMEOUT": str(READY_TIMEOUT - 5),
        }
    )
    return env


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """An isolated, not yet started `make run`; everything it started is gone afterwards."""
    ports = RunPorts.allocate()
    run = Platform(isolated_env(tmp_path, ports), tmp_path, ports)
    try:
        yield run
    finally:
        run.cleanup()


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and decoded JSON body (or text) of one request, errors included."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with _LOCAL.open(request, timeout=10) as response:
            status, head, raw = int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, text
