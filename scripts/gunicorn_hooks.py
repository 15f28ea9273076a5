"""gunicorn settings module (`--config python:scripts.gunicorn_hooks`): worker lifecycle
hooks, and gunicorn's own log lines as JSON like the services' (access log stays off)."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from scripts.serve import WORKER_NICE_ENV
from shared.observability import JsonFormatter, mark_worker_dead


def service_name(app_uri: str) -> str:
    """`ussd` for `services.ussd.wsgi:app`; any other app URI as it is."""
    parts = app_uri.split(":", 1)[0].split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else app_uri


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with its error-log lines (start-up, workers, signals) in JSON."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter(service_name(str(cfg.proc_name)))
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)


# gunicorn reads the module's settings by name.
logger_class = JsonLogger


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live metrics, so /metrics reports only running workers."""
    mark_worker_dead(worker.pid)


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker: lower its CPU priority when serve.py asked for it (the login pool),
    so password hashing yields the CPU to the other endpoints' workers."""
    nice = int(os.environ.get(WORKER_NICE_ENV, "0") or "0")
    if nice > 0:
        os.nice(nice)
