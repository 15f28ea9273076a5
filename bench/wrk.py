"""Running wrk: pre-rendered request files, the Lua script that cycles them, its JSON result."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "cycle.lua"
RESULT_PREFIX = "BENCH_RESULT "
INSTALL_HINT = (
    "wrk not found: install it with 'apt-get install wrk' (Debian/Ubuntu) or 'brew install wrk'"
)


class WrkMissing(Exception):
    """No wrk binary on PATH."""


class WrkFailed(Exception):
    """wrk exited with an error or printed no result line."""


@dataclass(frozen=True)
class Load:
    """How wrk drives one run: threads, connections, seconds, and an optional pace."""

    threads: int
    connections: int
    seconds: float
    # Milliseconds each connection waits after an answer; None is a closed loop (flat out).
    pause_ms: float | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class WrkResult:
    """What wrk's done() hook reported for one run."""

    requests: int
    duration_us: int
    status_errors: int
    socket_errors: int
    timeouts: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float

    @property
    def rate(self) -> float:
        """Requests per second over the run."""
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def failures(self) -> int:
        """Answers that were not 2xx/3xx, plus requests that got no answer at all."""
        return self.status_errors + self.socket_errors + self.timeouts


def wrk_binary() -> str:
    """The wrk executable, or WrkMissing with the install hint."""
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing(INSTALL_HINT)
    return found


def render_request(
    method: str,
    path: str,
    host: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """One complete HTTP/1.1 request (keep-alive), exactly as wrk will send it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def write_requests(path: Path, requests: Iterable[bytes]) -> int:
    """Write length-prefixed requests for cycle.lua; the number written."""
    count = 0
    with open(path, "wb") as handle:
        for raw in requests:
            handle.write(b"%d\n" % len(raw))
            handle.write(raw)
            count += 1
    if not count:
        raise ValueError("a request file needs at least one request")
    return count


def read_requests(path: Path) -> list[bytes]:
    """The requests of a file written by write_requests (the format cycle.lua reads)."""
    data = path.read_bytes()
    requests = []
    position = 0
    while position < len(data):
        line_end = data.index(b"\n", position)
        length = int(data[position:line_end])
        requests.append(data[line_end + 1 : line_end + 1 + length])
        position = line_end + 1 + length
    return requests


def pause_for_rate(rate: float, connections: int, latency_us: float) -> float:
    """Per-connection pause (ms) so that `connections` closed loops offer `rate` req/s.

    Each connection sends, waits for the answer (`latency_us`), then pauses: its period is
    latency + pause, so the pause is the period (connections / rate) minus the latency.
    """
    period_ms = connections / rate * 1000.0
    return max(0.0, period_ms - latency_us / 1000.0)


def command(url: str, requests_file: Path, load: Load) -> list[str]:
    """The wrk command line of one run."""
    return [
        wrk_binary(),
        "--threads", str(load.threads),
        "--connections", str(load.connections),
        "--duration", f"{max(1, math.ceil(load.seconds))}s",
        "--timeout", f"{load.timeout_s:g}s",
        "--latency",
        "--script", str(LUA_SCRIPT),
        url,
        "--",
        str(requests_file),
        f"{load.pause_ms or 0:.3f}",
        str(load.threads),
    ]  # fmt: skip


def run(url: str, requests_file: Path, load: Load) -> WrkResult:
    """Run wrk once against `url` with the requests of `requests_file`; its result."""
    argv = command(url, requests_file, load)
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=load.seconds + 60, check=False
    )
    if completed.returncode != 0:
        raise WrkFailed(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return parse_output(completed.stdout)


def parse_output(stdout: str) -> WrkResult:
    """The result line printed by cycle.lua's done() hook."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            latency = data["latency_us"]
            return WrkResult(
                requests=int(data["requests"]),
                duration_us=int(data["duration_us"]),
                status_errors=int(data["status_errors"]),
                socket_errors=int(data["connect_errors"])
                + int(data["read_errors"])
                + int(data["write_errors"]),
                timeouts=int(data["timeouts"]),
                p50_us=int(latency["p50"]),
                p90_us=int(latency["p90"]),
                p99_us=int(latency["p99"]),
                max_us=int(latency["max"]),
                mean_us=float(latency["mean"]),
            )
    raise WrkFailed(f"no {RESULT_PREFIX.strip()} line in wrk output:\n{stdout}")
