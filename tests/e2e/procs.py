"""Process-tree helpers for the `make run` tests: who was started, and is any of it left."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """One process as /proc shows it; `start` tells a pid apart from a later reuse of it."""

    pid: int
    ppid: int
    pgid: int
    state: str
    start: int
    cmdline: str


def read_proc(pid: int) -> ProcInfo | None:
    """The /proc view of `pid`, or None when it does not exist."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw_cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cmdline = raw_cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return ProcInfo(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]), cmdline)


def all_processes() -> list[ProcInfo]:
    """Every process on the machine."""
    found = (read_proc(int(p.name)) for p in PROC.iterdir() if p.name.isdigit())
    return [info for info in found if info is not None]


def descendants(root: int) -> list[ProcInfo]:
    """Every process below `root` in the process tree (children, grandchildren, ...)."""
    processes = all_processes()
    tree: list[ProcInfo] = []
    parents = {root}
    while True:
        layer = [p for p in processes if p.ppid in parents and p not in tree]
        if not layer:
            return tree
        tree += layer
        parents = {p.pid for p in layer}


def is_alive(info: ProcInfo) -> bool:
    """True when that very process (same pid and start time) still runs (zombies are dead)."""
    now = read_proc(info.pid)
    return now is not None and now.start == info.start and now.state != "Z"


def survivors(recorded: list[ProcInfo]) -> list[ProcInfo]:
    """Recorded processes still alive, plus anything alive in their process groups."""
    groups = {info.pgid for info in recorded}
    alive = [info for info in recorded if is_alive(info)]
    in_groups = [p for p in all_processes() if p.pgid in groups and p.state != "Z"]
    return alive + [p for p in in_groups if p.pid not in {a.pid for a in alive}]


def kill_all(recorded: list[ProcInfo]) -> None:
    """Clean-up after a failed test: SIGKILL every recorded process group still alive."""
    own_group = os.getpgrp()
    for pgid in {info.pgid for info in survivors(recorded)} - {own_group}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
