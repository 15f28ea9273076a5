"""JSON logs with request ids, and Prometheus metrics shared by every component.

Metrics work under several gunicorn workers: when `PROMETHEUS_MULTIPROC_DIR` is set
before this module is imported, prometheus_client keeps per-process files there and
`/metrics` aggregates them (see `render_metrics`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

if TYPE_CHECKING:
    from flask import Flask, Response

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied request id is echoed into logs and headers: accept only a short,
# plain token so it cannot inject log fields, header lines or markup.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "route"],
    buckets=LATENCY_BUCKETS,
)
LOGIN_TOKENS_ISSUED = Counter("sabong_login_tokens_issued_total", "Sabong login tokens issued")
LOGIN_TOKENS_CONSUMED = Counter(
    "sabong_login_tokens_consumed_total", "Sabong login links used", ["outcome"]
)
SIGNATURE_FAILURES = Counter(
    "sabong_signature_failures_total", "Rejected Sabong request signatures", ["reason"]
)
SERVICE_IDS_ISSUED = Counter("k2_service_ids_issued_total", "K2 Service IDs issued")
LOGIN_FAILURES = Counter("k2_login_failures_total", "Failed K2 logins", ["reason"])
RATE_LIMITED = Counter("rate_limited_total", "Requests refused by a rate limit", ["service"])
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total", "Gateway upstream failures", ["service", "kind"]
)


def new_request_id(incoming: str | None) -> str:
    """The caller's request id when it is sane, else a fresh random one."""
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, request id, message, extras."""

    RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "request_id": request_id_var.get(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        if record.exc_info:
            # Exception type only: a traceback's locals and messages may carry input data.
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str | None = None) -> None:
    """Send every log record to stderr as JSON lines tagged with `service`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO").upper())


def render_metrics() -> tuple[bytes, str]:
    """Prometheus exposition of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def record_request(service: str, route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request, time it, and write its access-log line."""
    HTTP_REQUESTS.labels(service, route, method, str(status)).inc()
    HTTP_LATENCY.labels(service, route).observe(seconds)
    logging.getLogger(f"{service}.access").info(
        "request",
        extra={
            "route": route,
            "method": method,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )


def init_flask(app: Flask, service: str) -> None:
    """Request ids, access logs and `/metrics` for a Flask service."""
    from flask import Response as FlaskResponse
    from flask import g, request

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        request_id_var.set(new_request_id(request.headers.get(REQUEST_ID_HEADER)))

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id_var.get()
        # The route pattern, never the path: paths such as /login/<token> carry secrets.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started = g.get("started", time.perf_counter())
        seconds = time.perf_counter() - started
        record_request(service, route, request.method, response.status_code, seconds)
        return response

    def metrics() -> Response:
        body, content_type = render_metrics()
        return FlaskResponse(body, mimetype=content_type.split(";")[0])

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])


def mark_worker_dead(pid: int) -> None:
    """gunicorn `child_exit` hook: drop a dead worker's live gauges in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
