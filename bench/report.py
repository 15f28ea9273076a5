"""The printed table, SPEC section 6 targets with PASS/MISS, and bench/results.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

from .endpoints import (
    BY_NAME,
    CREDIT,
    DEBIT,
    DIRECT,
    FLOORS,
    GATEWAY,
    GENERATE_AUTH_TOKEN,
    GENERATE_SERVICE_ID,
    GET_BALANCE,
    HEALTHZ_SABONG,
    HEALTHZ_USSD,
    LOGIN,
    LOGIN_LINK,
    REFERENCE,
)
from .memory import MemoryFigure
from .runner import FloodRow, PacedRow, PairedRow, Row
from .wrk import WrkResult

# SPEC section 6.
TOKEN_TO_HEALTHZ = 0.70
SERVICE_ID_TO_HEALTHZ = 0.75
GATEWAY_TO_DIRECT = 0.80
GATEWAY_P99_FACTOR = 2.0
TOKEN_BYTES = 250
SERVICE_ID_BYTES = 200
FLOOD_P99_FACTOR = 3.0
CREDIT_DEBIT_TO_HEALTHZ = 0.30
BALANCE_TO_HEALTHZ = 0.45
# CPU per request of a service's own processes, as a multiple of the reference app's.
PARTNER_CPU_FACTOR = 1.5
HEALTHZ_CPU_FACTOR = 1.1
HEALTHZ_ROWS = (HEALTHZ_USSD.name, HEALTHZ_SABONG.name)
# No CPU target: the reference itself, the gateway's own /healthz (not a service), login
# (bounded by the password hash on purpose), the login link (the player's browser
# follows it; it is not a partner call), and the floor rows (not services).
NO_CPU_TARGET = frozenset(
    {REFERENCE.name, "healthz (gateway)", LOGIN.name, LOGIN_LINK.name}
    | {floor.name for floor in FLOORS}
)
# Every partner endpoint's gateway ratio is a target (the /healthz rows have none).
GATEWAY_TARGET_ENDPOINTS = (
    "generate-auth-token",
    "generate-service-id",
    "clients/me",
    "login",
    "login-link POST",
    "get-balance",
    "credit-balance",
    "debit-balance",
)


@dataclass(frozen=True)
class Target:
    """One SPEC target: what was measured against what limit."""

    name: str
    measured: float
    limit: float
    at_least: bool  # True: measured >= limit passes; False: measured <= limit passes
    unit: str = ""

    @property
    def passed(self) -> bool:
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "PASS" if self.passed else "MISS"
        return (
            f"  {verdict}  {self.name:<67} {self.measured:8.2f}{self.unit} "
            f"(target {sign} {self.limit:g}{self.unit})"
        )


def ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.2f}"


def cores(value: float | None) -> str:
    """CPU other programs used during a run (a noise indicator); '-' when unknown."""
    return "-" if value is None else f"{value:.2f}"


def commits(per_second: float | None) -> str:
    """PostgreSQL write commits per second during a run; '' when it committed nothing."""
    return f"{per_second:.0f}" if per_second and per_second >= 1 else ""


def reference_cpu_us(rows: Sequence[Row]) -> float | None:
    """The reference app's server CPU per request: the mean of its runs (first and last)."""
    found = [row.server_cpu_us for row in rows if row.endpoint == REFERENCE.name]
    found = [value for value in found if value > 0.0]
    return sum(found) / len(found) if found else None


def cpu_ratio(row: Row, reference_us: float | None) -> float | None:
    """A direct row's server CPU per request as a multiple of the reference app's."""
    if row.path != DIRECT or not reference_us or row.server_cpu_us <= 0.0:
        return None
    return row.server_cpu_us / reference_us


def throughput_table(rows: Sequence[Row]) -> str:
    """The main table: one line per endpoint and path.

    'srv us' is the CPU per request of the answering server's own processes, 'x ref' that
    figure over the reference app's; 'CPU us' adds everything else involved.
    """
    header = (
        f"{'endpoint':<20} {'path':<8} {'url path':<34} {'req/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'/healthz':>9} {'gw/direct':>9} {'srv us':>7} {'x ref':>6} "
        f"{'non-2xx':>8} {'CPU us':>7} {'other':>6} {'commits/s':>9}"
    )
    lines = [header, "-" * len(header)]
    reference_us = reference_cpu_us(rows)
    for row in rows:
        healthz_ratio = f"{row.ratio:.2f}" if row.path == DIRECT and row.ratio else ""
        gateway_ratio = f"{row.ratio:.2f}" if row.path == GATEWAY and row.ratio else ""
        to_reference = cpu_ratio(row, reference_us)
        result = row.result
        lines.append(
            f"{row.endpoint:<20} {row.path:<8} {row.url_path:<34} {result.rate:8.0f} "
            f"{ms(result.p50_us):>8} {ms(result.p99_us):>8} {healthz_ratio:>9} "
            f"{gateway_ratio:>9} {row.server_cpu_us:7.0f} "
            f"{'' if to_reference is None else f'{to_reference:.2f}':>6} "
            f"{result.failures:>8} {sum(row.cpu_us.values()):7.0f} "
            f"{cores(row.other_cores):>6} {commits(row.commits_per_s):>9}"
            f"{' *' if row.disturbance else ''}"
        )
    return "\n".join(lines)


def paced_table(rows: Sequence[PacedRow]) -> str:
    header = (
        f"{'endpoint':<20} {'path':<8} {'offered/s':>9} {'achieved/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'other':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        result = row.result
        lines.append(
            f"{row.endpoint:<20} {row.path:<8} {row.target_rate:9.0f} {result.rate:10.0f} "
            f"{ms(result.p50_us):>8} {ms(result.p99_us):>8} {result.failures:>8} "
            f"{cores(row.other_cores):>6}{' *' if row.disturbance else ''}"
        )
    return "\n".join(lines)


def paired_table(rows: Sequence[PairedRow]) -> str:
    """`--ab`: each endpoint's CPU per request on this tree and the other, run by run."""
    header = (
        f"{'endpoint':<20} {'this tree us (median: runs)':<36} "
        f"{'other tree us (median: runs)':<36} {'this/other':>10} {'non-2xx':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.endpoint:<20} {_runs(row.this_us):<36} {_runs(row.other_us):<36} "
            f"{row.change * 100:+9.1f}% {row.failures:>8}"
        )
    return "\n".join(lines)


def _runs(values: Sequence[float]) -> str:
    return f"{median(values):.0f}: " + " ".join(f"{value:.0f}" for value in values)


def flood_table(rows: Sequence[FloodRow]) -> str:
    header = (
        f"{'endpoint (gateway)':<20} {'offered/s':>9} {'p99 alone':>10} {'p99 flood':>10} "
        f"{'ratio':>6} {'logins/s':>9} {'non-2xx':>8} {'other':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = row.flooded.p99_us / row.quiet.p99_us if row.quiet.p99_us else 0.0
        lines.append(
            f"{row.endpoint:<20} {row.target_rate:9.0f} {ms(row.quiet.p99_us):>10} "
            f"{ms(row.flooded.p99_us):>10} {ratio:6.2f} {row.login_during.rate:9.0f} "
            f"{row.flooded.failures:>8} {cores(row.other_cores):>6}"
            f"{' *' if row.disturbance else ''}"
        )
    return "\n".join(lines)


def memory_lines(figures: Sequence[MemoryFigure]) -> str:
    return "\n".join(
        f"  {figure.item:<12} {figure.bytes_per_item:7.1f} bytes each on {figure.server} "
        f"({figure.count} live, written in {figure.seconds:.1f} s)"
        for figure in figures
    )


def targets(
    turns: Sequence[Sequence[Row]],
    paced: Sequence[PacedRow],
    flood: Sequence[FloodRow],
    memory: Sequence[MemoryFigure],
) -> list[Target]:
    """Every SPEC section 6 target that this run measured (`turns`: the flat-out table's
    rows, once or more; CPU ratios over several turns are their medians)."""
    found: list[Target] = []
    rows = turns[-1]

    def row(name: str, path: str) -> Row | None:
        return next((r for r in rows if r.endpoint == name and r.path == path), None)

    for endpoint, limit in (
        (GENERATE_AUTH_TOKEN, TOKEN_TO_HEALTHZ),
        (GENERATE_SERVICE_ID, SERVICE_ID_TO_HEALTHZ),
        (GET_BALANCE, BALANCE_TO_HEALTHZ),
        (CREDIT, CREDIT_DEBIT_TO_HEALTHZ),
        (DEBIT, CREDIT_DEBIT_TO_HEALTHZ),
    ):
        direct = row(endpoint.name, DIRECT)
        if direct and direct.ratio is not None:
            name = f"{endpoint.name} direct / {endpoint.healthz_of} throughput"
            found.append(Target(name, direct.ratio, limit, True))
    found += cpu_targets(rows) if len(turns) == 1 else median_cpu_targets(turns)
    for name in GATEWAY_TARGET_ENDPOINTS:
        through = row(name, GATEWAY)
        if through and through.ratio is not None:
            found.append(Target(f"{name} gateway / direct throughput", through.ratio,
                                GATEWAY_TO_DIRECT, True))  # fmt: skip
    for name in dict.fromkeys(p.endpoint for p in paced):
        pair = {p.path: p for p in paced if p.endpoint == name}
        if DIRECT in pair and GATEWAY in pair and pair[DIRECT].result.p99_us:
            ratio = pair[GATEWAY].result.p99_us / pair[DIRECT].result.p99_us
            found.append(Target(f"{name} p99 gateway / direct at half peak", ratio,
                                GATEWAY_P99_FACTOR, False))  # fmt: skip
    for item in flood:
        if item.quiet.p99_us:
            ratio = item.flooded.p99_us / item.quiet.p99_us
            found.append(Target(f"{item.endpoint} p99 beside a login flood / alone", ratio,
                                FLOOD_P99_FACTOR, False))  # fmt: skip
    limits = {"login token": TOKEN_BYTES, "Service ID": SERVICE_ID_BYTES}
    for figure in memory:
        found.append(Target(f"Redis bytes per live {figure.item} ({figure.server})",
                            figure.bytes_per_item, limits[figure.item], False, " B"))  # fmt: skip
    return found


def cpu_targets(rows: Sequence[Row]) -> list[Target]:
    """Each service endpoint's CPU per request against the reference app's (same run)."""
    reference_us = reference_cpu_us(rows)
    found = []
    for row in rows:
        ratio = cpu_ratio(row, reference_us)
        if ratio is None or row.endpoint in NO_CPU_TARGET:
            continue
        limit = HEALTHZ_CPU_FACTOR if row.endpoint in HEALTHZ_ROWS else PARTNER_CPU_FACTOR
        found.append(Target(f"{row.endpoint} CPU per request / reference app", ratio,
                            limit, False, "x"))  # fmt: skip
    return found


def median_cpu_targets(turns: Sequence[Sequence[Row]]) -> list[Target]:
    """The CPU targets of several turns, each the median of its turns' ratios (a ratio
    taken against its own turn's reference runs: the machine's speed drifts in between)."""
    by_name: dict[str, list[Target]] = {}
    for rows in turns:
        for target in cpu_targets(rows):
            by_name.setdefault(target.name, []).append(target)
    return [
        Target(
            f"{name} (median)",
            median(target.measured for target in measured),
            measured[0].limit,
            False,
            "x",
        )
        for name, measured in by_name.items()
    ]


def turn_ratio_lines(turns: Sequence[Sequence[Row]]) -> str:
    """Each endpoint's CPU ratio in every turn, and their median."""
    by_endpoint: dict[str, list[float]] = {}
    for rows in turns:
        reference_us = reference_cpu_us(rows)
        for row in rows:
            ratio = cpu_ratio(row, reference_us)
            if ratio is not None and row.endpoint != REFERENCE.name:
                by_endpoint.setdefault(row.endpoint, []).append(ratio)
    return "\n".join(
        f"  {endpoint:<20} " + " ".join(f"{ratio:5.2f}" for ratio in ratios)
        + f"   median {median(ratios):.2f}"
        for endpoint, ratios in by_endpoint.items()
    )  # fmt: skip


def floor_lines(rows: Sequence[Row]) -> str:
    """Each endpoint's CPU per request split into its floor row's and the service's own."""
    by_name = {row.endpoint: row for row in rows if row.path == DIRECT}
    reference_us = reference_cpu_us(rows)
    lines = []
    for row in by_name.values():
        endpoint = BY_NAME.get(row.endpoint)
        floor = by_name.get(endpoint.floor or "") if endpoint else None
        if floor is None or row.server_cpu_us <= 0.0 or floor.server_cpu_us <= 0.0:
            continue
        floor_ratio = cpu_ratio(floor, reference_us)
        to_reference = "" if floor_ratio is None else f" ({floor_ratio:.2f}x ref)"
        lines.append(
            f"  {row.endpoint:<20} {row.server_cpu_us:5.0f} us = {floor.endpoint:<16}"
            f" {floor.server_cpu_us:5.0f} us{to_reference}"
            f" + the service's own {row.server_cpu_us - floor.server_cpu_us:5.0f} us"
        )
    return "\n".join(lines)


def _result(result: WrkResult) -> dict[str, Any]:
    return {**asdict(result), "requests_per_second": round(result.rate, 1)}


def to_json(
    meta: dict[str, Any],
    rows: Sequence[Row],
    paced: Sequence[PacedRow],
    flood: Sequence[FloodRow],
    memory: Sequence[MemoryFigure],
    checked: Sequence[Target],
) -> dict[str, Any]:
    """Everything the run measured, as one JSON document."""
    reference_us = reference_cpu_us(rows)
    return {
        **meta,
        "reference_app_cpu_us_per_request": round(reference_us, 1) if reference_us else None,
        "throughput": [
            {
                "endpoint": r.endpoint,
                "path": r.path,
                "url_path": r.url_path,
                "requests_per_second": round(r.result.rate, 1),
                "p50_ms": r.result.p50_us / 1000,
                "p99_ms": r.result.p99_us / 1000,
                "ratio_to_healthz": round(r.ratio, 3) if r.path == DIRECT and r.ratio else None,
                "healthz_reference_per_second": round(r.reference_rate, 1)
                if r.reference_rate
                else None,
                "ratio_gateway_to_direct": round(r.ratio, 3)
                if r.path == GATEWAY and r.ratio
                else None,
                "non_2xx_3xx": r.result.failures,
                "postgres_commits_per_second": round(r.commits_per_s, 1)
                if r.commits_per_s
                else None,
                "single_use_requests_prepared": r.prepared,
                "other_programs_cpu_cores": r.other_cores,
                "disturbance": r.disturbance,
                "cpu_us_per_request": {k: round(v, 1) for k, v in r.cpu_us.items()},
                "server": r.server,
                "server_cpu_us_per_request": round(r.server_cpu_us, 1),
                "cpu_ratio_to_reference": _rounded(cpu_ratio(r, reference_us)),
                "wrk": _result(r.result),
            }
            for r in rows
        ],
        "half_peak": [
            {
                "endpoint": p.endpoint,
                "path": p.path,
                "offered_per_second": round(p.target_rate, 1),
                "pause_ms": round(p.pause_ms, 3),
                "other_programs_cpu_cores": p.other_cores,
                "disturbance": p.disturbance,
                "wrk": _result(p.result),
            }
            for p in paced
        ],
        "login_flood": [
            {
                "endpoint": f.endpoint,
                "offered_per_second": round(f.target_rate, 1),
                "p99_alone_ms": f.quiet.p99_us / 1000,
                "p99_beside_flood_ms": f.flooded.p99_us / 1000,
                "logins_per_second_during": round(f.login_during.rate, 1),
                "other_programs_cpu_cores": f.other_cores,
                "disturbance": f.disturbance,
                "wrk_alone": _result(f.quiet),
                "wrk_beside_flood": _result(f.flooded),
                "wrk_login_flood": _result(f.login_during),
            }
            for f in flood
        ],
        "memory": [asdict(m) for m in memory],
        "targets": [{**asdict(t), "passed": t.passed} for t in checked],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
