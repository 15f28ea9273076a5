"""The measurements: each endpoint flat out, at half of its peak, and beside a login flood."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from typing import TypeVar

from . import cpu, fixtures, wrk
from .endpoints import (
    BY_NAME,
    DIRECT,
    GATEWAY,
    LOGIN,
    Endpoint,
    RequestFactory,
    single_use_count,
)
from .platform import FLOOR, REFERENCE, Platform, other

T = TypeVar("T")
PILOT_SECONDS = 2.0
# A login flood starts this long before the measured run, and is given this much slack.
FLOOD_LEAD_SECONDS = 1.0
FLOOD_SLACK_SECONDS = 3.0
# Other programs using more CPU than this during a run make its figures doubtful.
NOISY_CORES = 0.15
# One worker doing more than this many times its even share of a service's work: the
# connections landed unevenly (see Bench.imbalanced).
IMBALANCED_FACTOR = 1.5


@dataclass
class Row:
    """One line of the throughput table."""

    endpoint: str
    path: str  # direct or gateway
    url_path: str
    result: wrk.WrkResult
    prepared: int  # single-use requests available (1 when the request repeats)
    prepare_seconds: float
    ratio: float | None = None  # direct: to its service's /healthz; gateway: to direct
    other_cores: float | None = None  # CPU other programs used meanwhile (noise)
    # CPU microseconds per request by component (redis, ussd, sabong, gateway, bench+wrk).
    cpu_us: dict[str, float] = field(default_factory=dict)
    # Direct rows: the service's /healthz req/s, measured right before and after (mean).
    reference_rate: float | None = None
    disturbance: str = ""  # why even the best of its runs is doubtful; "" when clean
    # Durable (write) transactions PostgreSQL committed per second during the run.
    commits_per_s: float | None = None
    server: str = ""  # the component that answered: the service, the gateway, or reference

    @property
    def server_cpu_us(self) -> float:
        """CPU microseconds per request of the answering server's processes alone."""
        return self.cpu_us.get(self.server, 0.0)


@dataclass
class PairedRow:
    """One endpoint served by this checkout and by another (`--ab`), measured in turns:
    CPU microseconds per request of each server's processes, run by run."""

    endpoint: str
    this_us: list[float]
    other_us: list[float]
    failures: int  # responses other than 2xx/3xx, both servers together

    @property
    def change(self) -> float:
        """This tree's median over the other's, minus one (-0.2: this tree 20 % cheaper)."""
        return median(self.this_us) / median(self.other_us) - 1.0


@dataclass
class PacedRow:
    """One endpoint at a fixed offered rate: p99 direct and through the gateway."""

    endpoint: str
    path: str
    target_rate: float
    pause_ms: float
    result: wrk.WrkResult
    other_cores: float | None = None
    disturbance: str = ""


@dataclass
class FloodRow:
    """One endpoint's p99 at a fixed rate, alone and while logins run flat out."""

    endpoint: str
    target_rate: float
    quiet: wrk.WrkResult
    flooded: wrk.WrkResult
    login_during: wrk.WrkResult
    other_cores: float | None = None
    disturbance: str = ""


@dataclass
class Bench:
    """Runs wrk against a started platform and keeps every result."""

    platform: Platform
    factory: RequestFactory
    load: wrk.Load
    warmup_seconds: float
    log: bool = True
    retries: int = 2
    # Direct rows' /healthz throughput, measured right before and after each (see flat_out);
    # off in the CPU-only mode, where only CPU per request is compared.
    healthz_references: bool = True
    rows: list[Row] = field(default_factory=list)
    last_cpu_us: dict[str, float] = field(default_factory=dict)
    last_balance: dict[str, float] = field(default_factory=dict)
    last_other: float | None = None
    last_disturbance: str = ""
    chosen_disturbance: str = ""
    last_balance_bad: bool = False
    last_commits_per_s: float | None = None

    def say(self, message: str) -> None:
        if self.log:
            print(message, file=sys.stderr, flush=True)

    def target(self, endpoint: Endpoint, path: str) -> str:
        """The component a request goes to: the endpoint's service, or its gateway."""
        return endpoint.service if path == DIRECT else endpoint.gateway

    def measure(
        self, url: str, file: Path, load: wrk.Load, extra_pids: Sequence[int] = ()
    ) -> tuple[wrk.WrkResult, float | None]:
        """One wrk run, and how much CPU other programs used meanwhile.

        `extra_pids`: our own processes that run alongside (a login flood's wrk).
        """
        components = self.platform.pids_by_component()
        commits_before = fixtures.write_commits(self.platform.postgres.url)
        before = cpu.sample({**components, "load": extra_pids})
        result = wrk.run(url, file, load)
        after = cpu.sample({**components, "load": extra_pids})
        # Minus 1: the first reading took a transaction id itself.
        commits = fixtures.write_commits(self.platform.postgres.url) - commits_before - 1
        seconds = result.duration_us / 1e6
        self.last_commits_per_s = commits / seconds if seconds else None
        used = cpu.component_seconds(before, after)
        self.last_cpu_us = {
            name: seconds * 1e6 / result.requests if result.requests else 0.0
            for name, seconds in used.items()
        }
        self.last_balance = {}
        for service in ("ussd", "sabong", REFERENCE, FLOOR):
            workers = components.get(service, [])
            share = cpu.busiest_share(before, after, workers)
            if share is not None and len(workers) > 2:  # a leader and at least 2 workers
                self.last_balance[service] = share
        other = cpu.other_cores(before, after)
        reasons = (
            [f"other programs used {other:.2f} cores"] if (other or 0.0) >= NOISY_CORES else []
        )
        imbalance = self.imbalanced()
        reasons += [imbalance] if imbalance else []
        self.last_balance_bad = bool(imbalance)
        self.last_other, self.last_disturbance = other, "; ".join(reasons)
        return result, other

    def imbalanced(self) -> str:
        """Why the last run does not count, if one worker did nearly all of a service's work.

        gthread workers race to accept new connections: now and then one worker takes
        all 16 of wrk's keep-alive connections, and that run measures one core, not two.
        """
        for service, share in self.last_balance.items():
            workers = len(self.platform.pids_by_component().get(service, [])) - 1
            if workers > 1 and share > IMBALANCED_FACTOR / workers:
                return f"one {service} worker did {share:.0%} of its work"
        return ""

    def row(self, name: str, path: str) -> Row | None:
        for row in self.rows:
            if row.endpoint == name and row.path == path:
                return row
        return None

    def expected_rate(self, endpoint: Endpoint) -> float:
        """An upper bound of the endpoint's rate: its service's /healthz rate in this run."""
        ceiling = self.row(endpoint.healthz_of or "", DIRECT)
        return ceiling.result.rate if ceiling else 5000.0

    def flat_out(self, endpoint: Endpoint, path: str) -> Row:
        """Warm up, then measure the endpoint closed-loop with the common wrk settings.

        A disturbed run is measured again (see `_undisturbed`). A direct row's /healthz
        reference is measured right before and right after it: this machine's speed
        drifts by tens of percent within minutes, so only a ratio of neighbouring runs
        means something.
        """
        target = self.target(endpoint, path)
        url, host = self.platform.url(target), self.platform.host_header(target)
        rate = self.expected_rate(endpoint)
        self._warm_up(endpoint, url, host, rate)
        wanted = path == DIRECT and self.healthz_references
        reference = BY_NAME.get(endpoint.healthz_of or "") if wanted else None
        references = [self._reference_rate(reference)] if reference else []
        best = self._undisturbed(lambda: self._flat_out_once(endpoint, path, url, host, rate))
        best.disturbance = self.chosen_disturbance
        if reference:
            references.append(self._reference_rate(reference))
            best.reference_rate = sum(references) / len(references)
            self.say(
                f"      {reference.name} right before and after: "
                + ", ".join(f"{value:.0f}" for value in references)
                + " req/s"
            )
        best.ratio = self._ratio(endpoint, path, best)
        self.rows.append(best)
        if self.log:
            spent = ", ".join(f"{name} {us:.0f}" for name, us in best.cpu_us.items() if us >= 1)
            self.say(f"      CPU us/request: {spent}")
        return best

    def _reference_rate(self, reference: Endpoint) -> float:
        """Requests/s of a /healthz, measured now with the common settings."""
        url = self.platform.url(reference.service)
        file, _, _ = self.factory.build(reference, self.platform.host_header(reference.service), 1)
        result, _ = self._undisturbed(lambda: self.measure(url, file, self.load))
        return result.rate

    def _flat_out_once(
        self, endpoint: Endpoint, path: str, url: str, host: str, rate: float
    ) -> Row:
        count = single_use_count(self.load.seconds, rate)
        file, prepared, prep_s = self.factory.build(endpoint, host, count)
        result, other = self.measure(url, file, self.load)
        if endpoint.kind != "static" and result.requests > prepared:
            # Faster than the pool was sized for: the excess were replays. Once more, bigger.
            self.say(f"  {endpoint.name}: {result.requests} requests > {prepared}; re-run")
            count = single_use_count(self.load.seconds, result.rate * 1.2)
            file, prepared, prep_s = self.factory.build(endpoint, host, count)
            result, other = self.measure(url, file, self.load)
        self.say(
            f"  {endpoint.name:<20} {path:<8} {result.rate:8.0f} req/s  "
            f"p50 {result.p50_us / 1000:6.2f} ms  p99 {result.p99_us / 1000:7.2f} ms  "
            f"non-2xx/3xx {result.failures}{commits_note(self.last_commits_per_s)}"
            f"{note(self.last_disturbance)}"
        )
        return Row(
            endpoint.name,
            path,
            endpoint.path,
            result,
            prepared if endpoint.kind != "static" else 1,
            prep_s,
            other_cores=other,
            cpu_us=self.last_cpu_us,
            commits_per_s=self.last_commits_per_s,
            server=self.target(endpoint, path),
        )

    def _ratio(self, endpoint: Endpoint, path: str, row: Row) -> float | None:
        if path == GATEWAY:
            direct = self.row(endpoint.name, DIRECT)
            return row.result.rate / direct.result.rate if direct and direct.result.rate else None
        if row.reference_rate:
            return row.result.rate / row.reference_rate
        return None

    def paired(self, endpoint: Endpoint, rounds: int) -> PairedRow:
        """The endpoint flat out on its service and on the other tree's, taking turns.

        One run on each, `rounds` times: a drift of the machine's speed between runs
        (tens of percent within minutes on a shared host) then touches both alike, where
        two separate benches would compare two different machines.
        """
        servers = (endpoint.service, other(endpoint.service))
        rate = self.expected_rate(endpoint)
        for server in servers:
            self._warm_up(
                endpoint, self.platform.url(server), self.platform.host_header(server), rate
            )
        found: dict[str, list[float]] = {server: [] for server in servers}
        failures = 0
        for _ in range(rounds):
            for server in servers:
                url, host = self.platform.url(server), self.platform.host_header(server)
                file, _, _ = self.factory.build(
                    endpoint, host, single_use_count(self.load.seconds, rate)
                )
                result, _ = self.measure(url, file, self.load)
                failures += result.failures
                found[server].append(self.last_cpu_us.get(server, 0.0))
                self.say(f"  {endpoint.name:<20} {server:<14} {found[server][-1]:7.0f} us/request")
        return PairedRow(endpoint.name, found[servers[0]], found[servers[1]], failures)

    def _warm_up(self, endpoint: Endpoint, url: str, host: str, rate: float) -> None:
        if self.warmup_seconds <= 0:
            return
        count = single_use_count(self.warmup_seconds, rate)
        file, _, _ = self.factory.build(endpoint, host, count)
        wrk.run(url, file, replace(self.load, seconds=self.warmup_seconds))

    def paced(self, endpoint: Endpoint, path: str, rate: float) -> PacedRow:
        """p99 at `rate` req/s offered: a pilot finds the latency, then the pause is set."""
        target = self.target(endpoint, path)
        url, host = self.platform.url(target), self.platform.host_header(target)
        connections = self.load.connections
        pilot_load = replace(
            self.load,
            seconds=PILOT_SECONDS,
            pause_ms=wrk.pause_for_rate(rate, connections, 0.0),
        )
        file, _, _ = self.factory.build(endpoint, host, single_use_count(PILOT_SECONDS, rate))
        pilot = wrk.run(url, file, pilot_load)
        pause = wrk.pause_for_rate(rate, connections, pilot.mean_us)
        result, other = self._undisturbed(
            lambda: self.measure(
                url,
                self.factory.build(endpoint, host, single_use_count(self.load.seconds, rate))[0],
                replace(self.load, pause_ms=pause),
            )
        )
        self.say(
            f"  {endpoint.name:<20} {path:<8} at {rate:6.0f} req/s offered: "
            f"{result.rate:6.0f} req/s  p99 {result.p99_us / 1000:7.2f} ms"
            f"{note(self.chosen_disturbance)}"
        )
        return PacedRow(endpoint.name, path, rate, pause, result, other, self.chosen_disturbance)

    def _undisturbed(self, run: Callable[[], T]) -> T:
        """`run()` (which measures once), repeated while the run was disturbed, and the
        least disturbed result; its disturbance, if any, is left in `chosen_disturbance`.

        Connections piled on one worker are luck, and another run usually has better:
        up to `retries` more runs. Other programs' load tends to last: one more run
        only, so that a busy machine does not stretch the bench much.
        """
        best = run()
        best_key = (bool(self.last_disturbance), self.last_other or 0.0)
        self.chosen_disturbance = self.last_disturbance
        for attempt in range(self.retries):
            if not self.chosen_disturbance:
                break
            if attempt >= 1 and not self.last_balance_bad:
                break  # only others' load left, and it was retried once already
            self.say(f"      disturbed ({self.chosen_disturbance}): again")
            again = run()
            key = (bool(self.last_disturbance), self.last_other or 0.0)
            if key < best_key:
                best, best_key, self.chosen_disturbance = again, key, self.last_disturbance
        return best

    def beside_login_flood(self, quiet: PacedRow, endpoint: Endpoint) -> FloodRow:
        """The same paced run as `quiet`, while logins run flat out through the gateway
        (which sends them to the USSD login pool, as in production)."""
        flooded, other, login_during = self._undisturbed(lambda: self._flooded_run(quiet, endpoint))
        self.say(
            f"  {endpoint.name:<20} p99 {quiet.result.p99_us / 1000:7.2f} ms alone, "
            f"{flooded.p99_us / 1000:7.2f} ms beside {login_during.rate:.0f} logins/s"
            f"{note(self.chosen_disturbance)}"
        )
        return FloodRow(
            endpoint.name,
            quiet.target_rate,
            quiet.result,
            flooded,
            login_during,
            other,
            self.chosen_disturbance,
        )

    def _flooded_run(
        self, quiet: PacedRow, endpoint: Endpoint
    ) -> tuple[wrk.WrkResult, float | None, wrk.WrkResult]:
        login_url = self.platform.url("gateway")
        flood_file, _, _ = self.factory.build(LOGIN, self.platform.host_header("gateway"), 1)
        flood_load = replace(
            self.load, seconds=self.load.seconds + FLOOD_LEAD_SECONDS + FLOOD_SLACK_SECONDS
        )
        # Prepared before the flood starts, so making them does not shorten the overlap.
        count = single_use_count(self.load.seconds, quiet.target_rate)
        target = self.target(endpoint, quiet.path)
        file, _, _ = self.factory.build(endpoint, self.platform.host_header(target), count)
        flood = subprocess.Popen(
            wrk.command(login_url, flood_file, flood_load),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(FLOOD_LEAD_SECONDS)
            flooded, other = self.measure(
                self.platform.url(target),
                file,
                replace(self.load, pause_ms=quiet.pause_ms),
                extra_pids=[flood.pid],
            )
            stdout, stderr = flood.communicate(timeout=flood_load.seconds + 60)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait()
        if flood.returncode != 0:
            raise wrk.WrkFailed(f"login flood failed: {stderr.strip()}")
        return flooded, other, wrk.parse_output(stdout)


def note(disturbance: str) -> str:
    """A warning for a run whose figures are doubtful, and why."""
    return f"  [disturbed: {disturbance}]" if disturbance else ""


def commits_note(per_second: float | None) -> str:
    """PostgreSQL commits per second beside a run that committed anything."""
    return f"  commits/s {per_second:.0f}" if per_second and per_second >= 1 else ""
