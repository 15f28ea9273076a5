"""`python -m bench --tune`: short runs of a few server settings, side by side.

Each candidate starts its own platform (same private-Redis set-up as the bench) and
measures the endpoints that decide the SPEC ratios. The winner for a 2-core machine
becomes the default in scripts/serve.py (which `make run` and docker-compose share).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .endpoints import (
    CLIENTS_ME,
    DIRECT,
    GATEWAY,
    GENERATE_AUTH_TOKEN,
    GENERATE_SERVICE_ID,
    HEALTHZ_SABONG,
    HEALTHZ_USSD,
    Endpoint,
    prepare,
)
from .platform import Platform
from .runner import Bench
from .wrk import Load

TUNE_SECONDS = 3.0
Patch = Callable[[str, list[str]], list[str]]


@dataclass(frozen=True)
class Candidate:
    """One server configuration: settings overrides, and optionally a changed argv."""

    label: str
    overrides: dict[str, str] = field(default_factory=dict)
    patch: Patch | None = None


def services(workers: int, threads: int, worker_class: str = "gthread") -> dict[str, str]:
    return {
        "USSD_WORKERS": str(workers),
        "USSD_THREADS": str(threads),
        "USSD_WORKER_CLASS": worker_class,
        "SABONG_WORKERS": str(workers),
        "SABONG_THREADS": str(threads),
        "SABONG_WORKER_CLASS": worker_class,
    }


def worker_class(name: str) -> Patch:
    """An argv patch that swaps gunicorn's worker class (for classes serve.py does not offer)."""

    def patch(component: str, argv: list[str]) -> list[str]:
        if "--worker-class" not in argv:
            return argv
        changed = list(argv)
        changed[changed.index("--worker-class") + 1] = name
        return changed

    return patch


CANDIDATES = (
    Candidate("gevent 2", services(2, 1, "gevent")),
    Candidate("gevent 4", services(4, 1, "gevent")),
    Candidate("gthread 2x4", services(2, 4)),
    Candidate("gthread 2x8", services(2, 8)),
    Candidate("gthread 2x16", services(2, 16)),
    Candidate("gthread 4x4", services(4, 4)),
    Candidate("sync 4", services(4, 1), worker_class("sync")),
    Candidate("gthread 2x16, gateway 2", {**services(2, 16), "GATEWAY_WORKERS": "2"}),
)
# Candidates are measured round-robin this many times; each figure is the best round's
# (interference from other programs only ever lowers throughput and raises CPU time).
ROUNDS = 2
MEASURED: tuple[tuple[Endpoint, str], ...] = (
    (HEALTHZ_USSD, DIRECT),
    (HEALTHZ_SABONG, DIRECT),
    (GENERATE_AUTH_TOKEN, DIRECT),
    (GENERATE_AUTH_TOKEN, GATEWAY),
    (GENERATE_SERVICE_ID, DIRECT),
    (GENERATE_SERVICE_ID, GATEWAY),
    (CLIENTS_ME, DIRECT),
)


def measure(
    workdir: Path, candidate: Candidate, load: Load, warmup: float
) -> dict[str, tuple[float, float, float | None]]:
    """Per MEASURED endpoint: requests/s, CPU us per request (all our processes), noise."""
    platform = Platform(workdir, candidate.overrides, command_patch=candidate.patch)
    with platform:
        bench = Bench(platform, prepare(platform, workdir), load, warmup, log=False, retries=1)
        found = {}
        for endpoint, path in MEASURED:
            row = bench.flat_out(endpoint, path)
            found[f"{endpoint.name} {path}"] = (
                row.result.rate,
                sum(row.cpu_us.values()),
                row.other_cores,
            )
    return found


def main(workdir: Path, load: Load, warmup: float) -> None:
    """Measure every candidate ROUNDS times, round-robin; print the best of each figure.

    On a shared machine throughput swings with what else runs; CPU time per request
    (servers, Redis, gateway and wrk together) much less so, and on an otherwise idle
    2-core machine throughput is about 2 s of CPU per second divided by it.
    """
    load = replace(load, seconds=min(load.seconds, TUNE_SECONDS))
    columns = [f"{endpoint.name} {path}" for endpoint, path in MEASURED]
    best: dict[str, dict[str, tuple[float, float, float]]] = {}
    for round_number in range(ROUNDS):
        for number, candidate in enumerate(CANDIDATES):
            workdir_of = workdir / f"tune-{round_number}-{number}"
            found = measure(workdir_of, candidate, load, warmup)
            mine = best.setdefault(candidate.label, {})
            for column, (rate, cost, other) in found.items():
                old = mine.get(column, (0.0, float("inf"), float("inf")))
                mine[column] = (max(old[0], rate), min(old[1], cost), min(old[2], other or 0.0))
            print(f"tune: round {round_number + 1}, {candidate.label} done", file=sys.stderr)
    short = ["hz-ussd", "hz-sab", "token", "token-gw", "sid", "sid-gw", "me"]
    print(f"best of {ROUNDS} rounds: requests/s, CPU us per request (all our processes), and")
    print("the least CPU other programs used in any round")
    print(f"{'candidate':<24} " + " ".join(f"{name:>8}" for name in short) + "  tok/hz sid/hz")
    for candidate in CANDIDATES:
        figures = best[candidate.label]
        rates = [figures[column][0] for column in columns]
        costs = [figures[column][1] for column in columns]
        noise = [figures[column][2] for column in columns]
        print(
            f"{candidate.label:<24} " + " ".join(f"{rate:8.0f}" for rate in rates)
            + f"  {rates[2] / rates[1]:6.2f} {rates[4] / rates[0]:6.2f}"
        )  # fmt: skip
        print(
            f"{'  CPU us/request':<24} " + " ".join(f"{cost:8.0f}" for cost in costs)
            + f"  {costs[1] / costs[2]:6.2f} {costs[0] / costs[4]:6.2f}"
        )  # fmt: skip
        print(f"{'  other cores':<24} " + " ".join(f"{value:8.2f}" for value in noise))
    sys.stdout.flush()
