"""`make bench` (`python -m bench`): start a private platform, measure, print, write JSON.

Load generator: wrk, one thread and 16 connections by default. On the 2-core reference
machine wrk shares the cores with the servers it measures; one wrk thread (a fraction of
a core at these rates) leaves the most for them, and 16 connections keep every gunicorn
thread (2 workers x 4 threads) and the gateway's event loop busy with a short queue,
without measuring mostly queueing time.

Redis runs with AOF on (appendfsync everysec), as in `make run` and docker-compose: the
bench measures what production pays for durability, not a faster configuration nobody
runs.
"""

from __future__ import annotations

import argparse
import os
import platform as host_platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from . import fixtures, memory, report, tune
from .endpoints import (
    ALL,
    CLIENTS_ME,
    CREDIT,
    DIRECT,
    FLOOR_FLASK,
    GATEWAY,
    GENERATE_AUTH_TOKEN,
    GENERATE_SERVICE_ID,
    GET_BALANCE,
    HEALTHZ_SABONG,
    HEALTHZ_USSD,
    LOGIN,
    REFERENCE,
    Endpoint,
    prepare,
)
from .platform import OTHER_SERVICES, Platform, wait_quiet
from .runner import Bench, FloodRow, PacedRow, Row
from .wrk import INSTALL_HINT, Load, WrkMissing, wrk_binary

RESULTS = Path(__file__).resolve().parent / "results.json"
PACED_ENDPOINTS = (GENERATE_AUTH_TOKEN, GENERATE_SERVICE_ID, CLIENTS_ME)
FLOOD_ENDPOINTS = (GENERATE_AUTH_TOKEN, GENERATE_SERVICE_ID, CLIENTS_ME)
HALF = 0.5
# `--ab`: the endpoints whose requests repeat or are cheap to make, on the two services.
PAIRABLE = tuple(
    endpoint
    for endpoint in ALL
    if endpoint.service in OTHER_SERVICES
    and endpoint.kind != "login_link"
    and endpoint is not LOGIN
)
PAIRED_ENDPOINTS = (
    HEALTHZ_USSD,
    HEALTHZ_SABONG,
    GENERATE_SERVICE_ID,
    CLIENTS_ME,
    GENERATE_AUTH_TOKEN,
    GET_BALANCE,
    CREDIT,
)


class Interrupted(Exception):
    """SIGTERM or SIGHUP: stop measuring and clean up, like Ctrl-C."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each measured run")
    parser.add_argument("--warmup", type=float, default=1.0, help="before each endpoint")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--memory-items", type=int, default=memory.DEFAULT_COUNT)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--only",
        nargs="*",
        help="endpoint names (flat-out table only; the reference app is always measured)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU per request only: direct rows and the reference app, no /healthz "
        "throughput references, gateway rows, half-peak, flood or memory runs",
    )
    parser.add_argument(
        "--flood-only",
        action="store_true",
        help="only p99 beside a login flood (with the direct peaks it is paced from)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the 1-minute load average to drop below 1.5",
    )
    parser.add_argument(
        "--tune", action="store_true", help="compare worker/thread settings instead"
    )
    parser.add_argument(
        "--ab",
        type=Path,
        metavar="OTHER_TREE",
        help="compare CPU per request with another checkout's services instead: both serve "
        "on one platform and take turns (endpoints: --only, else PAIRED_ENDPOINTS)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="turns of each server with --ab")
    parser.add_argument(
        "--turns",
        type=int,
        default=1,
        help="with --cpu: measure the whole table this many times, each turn between two "
        "runs of the reference app; each CPU target is the median of its turns' ratios",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a SPEC target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.turns < 1 or (args.turns > 1 and not args.cpu):
        print("bench: --turns takes a count of 1 or more, and more than 1 only with --cpu",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        wrk_binary()
    except WrkMissing:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    if args.wait_quiet:
        average = wait_quiet(1.5, args.wait_quiet)
        print(f"bench: load average {average:.2f}", file=sys.stderr)
    load = Load(args.threads, args.connections, args.seconds)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        if args.tune:
            tune.main(workdir, load, args.warmup)
            return 0
        if args.ab:
            return paired(args, load, workdir)
        return run(args, load, workdir)
    except (KeyboardInterrupt, Interrupted):
        print("\nbench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"bench: work directory kept: {workdir}", file=sys.stderr)
        else:
            _remove_tree(workdir)


def run(args: argparse.Namespace, load: Load, workdir: Path) -> int:
    """The whole bench; with --strict, 1 when a measured target is missed."""
    started = time.monotonic()
    load_before = os.getloadavg()
    platform = Platform(workdir / "platform")
    say = _say
    say(f"bench: starting the platform in {workdir}")
    with platform:
        prepared = time.monotonic()
        factory = prepare(platform, workdir)
        say(f"bench: K2 partner and {fixtures.CLIENT_POOL} Sabong users in "
            f"{time.monotonic() - prepared:.1f} s")  # fmt: skip
        bench = Bench(platform, factory, load, args.warmup, healthz_references=not args.cpu)
        say(f"bench: flat out, wrk -t{load.threads} -c{load.connections} -d{load.seconds:g}s")
        turns: list[list[Row]] = []
        for turn in range(args.turns):
            if args.turns > 1:
                say(f"bench: turn {turn + 1} of {args.turns}")
            bench.rows = []
            flat_out_table(bench, selected(args), gateway=not (args.cpu or args.flood_only))
            turns.append(bench.rows)
        paced: list[PacedRow] = []
        flood: list[FloodRow] = []
        partial = bool(args.only) or args.cpu
        if not partial:
            paced, flood = paced_and_flooded(bench, flood_only=args.flood_only)
        commands = platform.commands()
    figures: list[memory.MemoryFigure] = []
    if not args.skip_memory and not partial and not args.flood_only:
        say(f"bench: Redis memory, {args.memory_items} live items of each kind")
        figures = memory.measure(workdir, args.memory_items)
    checked = report.targets(turns, paced, flood, figures)
    print()
    print(
        "Flat out (closed loop). 'srv us': CPU time per request of the answering server's"
        " processes; 'x ref': that over\nthe reference Flask app's (mean of its first and"
        " last run); 'CPU us': every process involved (servers,\nRedis, gateway, wrk);"
        " 'other': cores other programs used meanwhile; '*': even the best of its runs\n"
        "was disturbed (see the log)."
    )
    for number, rows in enumerate(turns, start=1):
        if len(turns) > 1:
            print(f"\nTurn {number} of {len(turns)}:")
        print(report.throughput_table(rows))
    if paced:
        print("\nHalf of the direct peak (paced), p99 through the gateway vs direct:")
        print(report.paced_table(paced))
    if flood:
        print("\nThe same paced load through the gateway while logins run flat out through it:")
        print(report.flood_table(flood))
    if figures:
        print("\nRedis memory per live item (INFO used_memory delta):")
        print(report.memory_lines(figures))
    floors = report.floor_lines(bench.rows)
    if floors:
        print(
            "\nEach endpoint over its floor row (bench/floor_app.py: its store round trips alone,"
            " on a bare\nServiceFlask app served like the services); the rest is what the service"
            f" adds{' (last turn)' if len(turns) > 1 else ''}:"
        )
        print(floors)
    if len(turns) > 1:
        print("\nCPU per request / reference app, turn by turn (each turn's own reference runs):")
        print(report.turn_ratio_lines(turns))
    print("\nSPEC section 6 targets:")
    print("\n".join(target.line() for target in checked))
    meta = _meta(args, load, commands, load_before, time.monotonic() - started)
    every_row = [row for rows in turns for row in rows]
    report.write_json(args.output, report.to_json(meta, every_row, paced, flood, figures, checked))
    print(f"\nbench: {meta['elapsed_seconds']:.0f} s; results in {args.output}")
    missed = [target for target in checked if not target.passed]
    return 1 if args.strict and missed else 0


def paired(args: argparse.Namespace, load: Load, workdir: Path) -> int:
    """`--ab`: this tree's services and another checkout's, in turns on one platform."""
    names = args.only or [endpoint.name for endpoint in PAIRED_ENDPOINTS]
    pairable = {endpoint.name: endpoint for endpoint in PAIRABLE}
    unfit = [name for name in names if name not in pairable]
    if unfit:
        print(
            f"bench: --ab measures {', '.join(pairable)}; not {', '.join(unfit)}", file=sys.stderr
        )
        return 2
    platform = Platform(workdir / "platform", other_tree=args.ab.resolve())
    _say(f"bench: starting the platform in {workdir}, with {args.ab}'s services beside it")
    with platform:
        bench = Bench(platform, prepare(platform, workdir), load, args.warmup)
        rows = [bench.paired(pairable[name], args.rounds) for name in names]
    print(f"\nCPU us per request of each service's processes, flat out, {args.rounds} turns:")
    print(report.paired_table(rows))
    return 0


def paced_and_flooded(bench: Bench, flood_only: bool) -> tuple[list[PacedRow], list[FloodRow]]:
    """p99 at half of each direct peak, direct and through the gateway; then the gateway
    runs again while logins run flat out through the gateway (to the USSD login pool)."""
    paced: list[PacedRow] = []
    paths = (GATEWAY,) if flood_only else (DIRECT, GATEWAY)
    _say(f"bench: half of the direct peak ({', '.join(paths)})")
    for endpoint in PACED_ENDPOINTS if not flood_only else FLOOD_ENDPOINTS:
        peak = bench.row(endpoint.name, DIRECT)
        assert peak is not None
        rate = peak.result.rate * HALF
        paced += [bench.paced(endpoint, path, rate) for path in paths]
    _say("bench: the same paced load through the gateway, while logins run flat out")
    flood = []
    for endpoint in FLOOD_ENDPOINTS:
        quiet = next(p for p in paced if p.endpoint == endpoint.name and p.path == GATEWAY)
        flood.append(bench.beside_login_flood(quiet, endpoint))
    return paced, flood


def selected(args: argparse.Namespace) -> list[Endpoint]:
    """The endpoints of the flat-out table: all, those named by --only, or the flood's."""
    wanted = set(args.only or [])
    if args.flood_only:
        wanted = {endpoint.name for endpoint in FLOOD_ENDPOINTS}
    unknown = wanted - {endpoint.name for endpoint in ALL}
    if unknown:
        raise SystemExit(f"bench: unknown endpoint(s) {sorted(unknown)}; one of "
                         f"{[endpoint.name for endpoint in ALL]}")  # fmt: skip
    # The floor rows of the chosen endpoints come along, and the bare one under them.
    floors = {endpoint.floor for endpoint in ALL if endpoint.name in wanted and endpoint.floor}
    wanted |= floors | ({FLOOR_FLASK.name} if floors else set())
    return [endpoint for endpoint in ALL if not wanted or endpoint.name in wanted]


def flat_out_table(bench: Bench, endpoints: list[Endpoint], gateway: bool) -> None:
    """Every endpoint flat out, between two runs of the reference app.

    The reference is measured first and last: the machine's speed drifts within minutes,
    and the CPU ratios use the mean of both.
    """
    bench.flat_out(REFERENCE, DIRECT)
    for endpoint in endpoints:
        if endpoint is REFERENCE:
            continue
        if endpoint.direct:
            bench.flat_out(endpoint, DIRECT)
        if gateway and endpoint.through_gateway:
            bench.flat_out(endpoint, GATEWAY)
    bench.flat_out(REFERENCE, DIRECT)


def _meta(
    args: argparse.Namespace,
    load: Load,
    commands: dict[str, list[str]],
    load_before: tuple[float, float, float],
    elapsed: float,
) -> dict[str, Any]:
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": host_platform.platform(),
            "python": host_platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "wrk": {
            "threads": load.threads,
            "connections": load.connections,
            "seconds": load.seconds,
            "warmup_seconds": args.warmup,
        },
        "redis": {"appendonly": True, "appendfsync": "everysec"},
        "server_commands": {
            name: [Path(argv[0]).name, *argv[1:]] for name, argv in commands.items()
        },
        "sabong_client_pool": fixtures.CLIENT_POOL,
        "new_user_every": fixtures.NEW_USER_EVERY,
    }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
