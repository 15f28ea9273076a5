"""gunicorn settings module (`--config python:scripts.gunicorn_hooks`): worker lifecycle
hooks, and gunicorn's own log lines as JSON like the services' (access log stays off)."""

from __future__ import annotations

import os
import warnings
from typing import Any

from gunicorn.glogging import Logger

from scripts.serve import WORKER_NICE_ENV
from shared.observability import JsonFormatter, flush_request_tallies, mark_worker_dead


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


def worker_exit(server: Any, worker: Any) -> None:
    """The worker stops: fold in its last request counts, and close its database pools
    while their threads can still stop."""
    # Imported here, in the worker: psycopg picks its wait function when first imported,
    # and must see gevent's patch to pick a cooperative one (see test_serve).
    from shared.db import close_all

    flush_request_tallies()  # else up to a second of its requests would never be counted
    close_all()


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker: lower its CPU priority when serve.py asked for it (the login pool),
    so password hashing yields the CPU to the other endpoints' workers; quiet gevent's
    warning about `ssl` before the worker patches (see below)."""
    nice = int(os.environ.get(WORKER_NICE_ENV, "0") or "0")
    if nice > 0:
        os.nice(nice)
    # gunicorn itself imports `ssl` in the master, before any worker exists, so gevent's
    # patch in the worker always warns that `ssl` came first. The danger it warns of is an
    # SSLContext subclass made before the patch (urllib3 makes one); nothing that the
    # master imports makes one, and the warning would be the one non-JSON log line.
    warnings.filterwarnings(
        "ignore", message="Monkey-patching ssl after ssl has already been imported"
    )
