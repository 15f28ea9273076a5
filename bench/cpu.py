"""CPU used by processes that are not the bench's during a run: a noise indicator.

On a shared machine another program's work shows up as lower throughput and higher
latency, and the table cannot tell. The busy time of all CPUs (from /proc/stat, steal
included: another VM on the same host) minus the time of our own processes (the bench,
its reaped wrk runs, and every process of the platform) is the time someone else used.
irq/softirq time is left out of both: our own loopback traffic is handled there.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
# A group of processes using less than this many cores on average is not being measured.
BUSY_CORES = 0.3


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of everything, of our processes, and of each component."""

    at: float
    busy_s: float | None  # None where /proc/stat is unavailable
    ours_s: float
    components: dict[str, float]
    processes: dict[int, float]  # CPU seconds of every pid of every component


def all_busy_seconds() -> float | None:
    """user + nice + system + steal of all CPUs since boot, in seconds."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, steal = int(fields[1]), int(fields[2]), int(fields[3]), int(fields[8])
    return (user + nice + system + steal) / CLOCK_TICKS


def process_seconds(pid: int) -> float:
    """utime + stime of a live process, plus those of children it has reaped."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name (in parentheses, may hold spaces): utime is the 12th.
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def own_seconds() -> float:
    """This process and its reaped children (the wrk runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sample(components: Mapping[str, Iterable[int]]) -> CpuSample:
    """Now: all CPUs' busy time, ours, and each component's (name -> its pids)."""
    own = own_seconds()
    processes = {
        pid: process_seconds(pid)
        for pids in components.values()
        for pid in pids
        if pid != os.getpid()
    }
    per_component = {
        name: sum(processes.get(pid, 0.0) for pid in set(pids)) for name, pids in components.items()
    }
    # The bench itself and its reaped children: wrk, mostly.
    per_component["bench+wrk"] = own
    ours = sum(per_component.values())
    return CpuSample(time.monotonic(), all_busy_seconds(), ours, per_component, processes)


def component_seconds(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds each component used between two samples."""
    return {
        name: max(0.0, after.components.get(name, 0.0) - used)
        for name, used in before.components.items()
    }


def busiest_share(before: CpuSample, after: CpuSample, pids: Iterable[int]) -> float | None:
    """The share of a group's CPU time that its busiest process used (None: idle group)."""
    used = [
        max(0.0, after.processes.get(pid, 0.0) - before.processes.get(pid, 0.0)) for pid in pids
    ]
    total = sum(used)
    if total <= 0.0 or after.at <= before.at or total / (after.at - before.at) < BUSY_CORES:
        return None
    return max(used) / total


def other_cores(before: CpuSample, after: CpuSample) -> float | None:
    """Cores' worth of CPU that other processes used between two samples."""
    if before.busy_s is None or after.busy_s is None or after.at <= before.at:
        return None
    others = (after.busy_s - before.busy_s) - (after.ours_s - before.ours_s)
    return max(0.0, others / (after.at - before.at))
