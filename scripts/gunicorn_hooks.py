"""gunicorn settings module (`--config python:scripts.gunicorn_hooks`): worker lifecycle hooks."""

from __future__ import annotations

from typing import Any

from shared.observability import mark_worker_dead


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live metrics, so /metrics reports only running workers."""
    mark_worker_dead(worker.pid)
