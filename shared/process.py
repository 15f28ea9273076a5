"""This process's id, kept current across forks without a system call per look-up."""

from __future__ import annotations

import os

# glibc no longer caches getpid(): os.getpid() is a system call each time, and the stores
# ask on every command whether they were inherited across a fork.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """`os.getpid()`, as of the last fork."""
    return _pid
