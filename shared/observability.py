"""JSON logs with request ids, and Prometheus metrics shared by every component.

Metrics work under several workers: when `PROMETHEUS_MULTIPROC_DIR` is set before this
module is imported (scripts.serve sets one directory per component), prometheus_client
keeps per-process files there and `/metrics` aggregates them (see `render_metrics`).
Every component serves `GET /metrics`: ussd, sabong and the gateway, each only to the
networks in `METRICS_ALLOW` (shared.netaccess).

Metrics (`service` is ussd, sabong or gateway; `route` is bounded, never a concrete path:
a Flask URL rule such as `/login/<token>`, at the gateway a route prefix such as
`/login/` or a local path such as `/healthz`; `unmatched` when nothing matched):

- `http_requests_total{service, route, method, status}`: requests answered.
- `http_request_duration_seconds{service, route}`: histogram of the time to answer
  (buckets 1 ms to 5 s). Both are tallied in plain numbers and folded in about once a
  second (`RequestTally`): another worker's latest requests reach `/metrics` within
  `TALLY_FLUSH_SECONDS`.
- `sabong_login_tokens_issued_total`: login tokens (login links) issued.
- `sabong_login_tokens_consumed_total{outcome}`: login-link POSTs; outcome `ok` (signed
  in) or `gone` (used, expired or unknown token).
- `sabong_signature_failures_total{reason}`: rejected signatures; reason
  `missing_headers`, `timestamp_invalid`, `timestamp_expired`, `signature_mismatch`
  or `replayed`.
- `sabong_wallet_transactions_total{type}`: credits and debits applied (`credit`, `debit`).
- `sabong_wallet_refusals_total{type, reason}`: credits and debits refused, moving no
  money; reason `validation`, `user_not_found`, `insufficient_balance` or
  `duplicate_reference`.
- `sabong_wallet_idempotent_replays_total{type}`: credits and debits answered with the
  original transaction of their `reference` (`Idempotent-Replayed: true`).
- `k2_service_ids_issued_total`: K2 Service IDs issued.
- `k2_login_failures_total{reason}`: failed K2 logins; reason `bad_credentials`,
  `disabled` or `rate_limited`.
- `rate_limited_total{service}`: requests refused by a rate limit: `ussd` (the K2 login
  throttle) or `gateway` (the gateway's per-client limit).
- `gateway_upstream_errors_total{service, kind}`: the gateway's trouble with a service
  (`service` is ussd or sabong). Per connection attempt to one replica (the request then
  tries the next): `connect_refused`, `connect_timeout`, `connect_failed`. Per request
  that failed: `no_replica` (502, no replica reachable), `timeout` (504, no answer in
  the read timeout), `broken` (502, closed or garbled after the request was sent),
  `stale_connection` (502, a reused connection died, not retried: not idempotent).
  `stale_retried`: the same, retried on a fresh connection (the client saw no error).

Logs: one JSON object per line with `ts` (ISO 8601 UTC, milliseconds), `level`,
`service`, `request_id` (`-` outside a request), `pid`, `logger` and `msg`; access lines
add `route`, `method`, `status` and `duration_ms` (the gateway's also `path`, a route
prefix or shortened path, and `client`). gunicorn's own lines use the same format
(scripts.gunicorn_hooks). Exceptions are logged by type only (`exc_type`), and a login
token or query string in a logged URL is masked: no password, secret, token, Service ID
or cookie is ever written.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import threading
import time
from _json import encode_basestring, make_encoder
from bisect import bisect_left
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

from .config import read_settings
from .netaccess import (
    DEFAULT_METRICS_ALLOW,
    METRICS_ALLOW_SETTING,
    Network,
    parse_networks,
    peer_allowed,
    wsgi_peer,
)
from .process import current_pid
from .timestamps import iso_from_epoch

if TYPE_CHECKING:
    from flask import Flask, Response

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied request id is echoed into logs and headers: accept only a short,
# plain token so it cannot inject log fields, header lines or markup.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# A URL that reaches a log message (gunicorn's "Error handling request <uri>", a bad
# request line) may carry a login token in its path or credentials in its query.
_LOGIN_PATH_TOKEN = re.compile(r"(/login/)[^/?#\s\"']+")
_QUERY_STRING = re.compile(r"\?[^\s\"']+")

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
WALLET_TRANSACTIONS = Counter(
    "sabong_wallet_transactions_total", "Sabong wallet credits and debits applied", ["type"]
)
WALLET_REFUSALS = Counter(
    "sabong_wallet_refusals_total", "Sabong credits and debits refused", ["type", "reason"]
)
WALLET_REPLAYS = Counter(
    "sabong_wallet_idempotent_replays_total",
    "Sabong credits and debits answered from an earlier transaction with their reference",
    ["type"],
)
SERVICE_IDS_ISSUED = Counter("k2_service_ids_issued_total", "K2 Service IDs issued")
LOGIN_FAILURES = Counter("k2_login_failures_total", "Failed K2 logins", ["reason"])
RATE_LIMITED = Counter("rate_limited_total", "Requests refused by a rate limit", ["service"])
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total", "Gateway upstream failures", ["service", "kind"]
)


# CPython's C encoder, built once: the text json.dumps(entry, default=str,
# ensure_ascii=False) gives, without building an encoder per line (2.8 against 5.3 us
# warm for an access line). No circular-reference check: an access line is flat.
_line_encoder = make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, True)


def _dump_line(entry: dict[str, Any]) -> str:
    """One log line's JSON text, as json.dumps(entry, default=str, ensure_ascii=False)."""
    return "".join(_line_encoder(entry, 0))


# The log lines' `ts` (gateway/logs.py imports it under this name).
iso_timestamp = iso_from_epoch


def new_request_id(incoming: str | None) -> str:
    """The caller's request id when it is sane, else a fresh random one (32 hex digits).

    A correlation id, not a secret: Python's PRNG (seeded from the OS, reseeded in every
    forked worker) is enough and saves the system call uuid4 makes on every request.
    """
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return "%032x" % random.getrandbits(128)  # noqa: UP031 (the fastest spelling)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, request id, message, extras."""

    RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "request_id": request_id_var.get(),
            # Which worker wrote the line: several gunicorn workers share one log.
            "pid": record.process,
            "logger": record.name,
            "msg": mask_urls(record.getMessage()),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        if record.exc_info:
            # Exception type only: a traceback's locals and messages may carry input data.
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry, default=str, ensure_ascii=False)

    def access_line(self, logger: str, request_id: str, fields: dict[str, Any]) -> str:
        """What `format` writes for an access-log record of `logger` with `fields` as extras,
        made without a LogRecord (the message is the constant "request")."""
        entry: dict[str, Any] = {
            "ts": iso_timestamp(time.time()),
            "level": "info",
            "service": self.service,
            "request_id": request_id,
            "pid": current_pid(),
            "logger": logger,
            "msg": "request",
            **fields,
        }
        return _dump_line(entry)


def mask_urls(message: str) -> str:
    """`message` with login tokens in URL paths and whole query strings masked."""
    if "/login/" in message:
        message = _LOGIN_PATH_TOKEN.sub(r"\1<token>", message)
    if "?" in message:
        message = _QUERY_STRING.sub("?<query>", message)
    return message


# The handler configure_logging installed: access lines go straight to it (see AccessLog).
_json_handler: logging.StreamHandler[Any] | None = None


def configure_logging(service: str, level: str | None = None) -> None:
    """Send every log record to stderr as JSON lines tagged with `service`.

    The level is `level`, else LOG_LEVEL from the environment or `.env` (as every other
    setting: shared.config.read_settings); a malformed LOG_LEVEL is a ConfigError.
    """
    global _json_handler
    level = level or read_settings().common.log_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    _json_handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python warnings would otherwise reach stderr as plain text lines.
    logging.captureWarnings(True)


def render_metrics() -> tuple[bytes, str]:
    """Prometheus exposition of this process, or of every worker in multiprocess mode."""
    flush_request_tallies()  # this process's own latest requests, at least
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class AccessLog:
    """One service's access log: `{service}.access` lines, each as JsonFormatter writes it.

    When the only handler is the one configure_logging installed (as in production), a
    line is formatted and written directly: a LogRecord, the handler chain and
    formatting by attribute scan cost more than the rest of the request's bookkeeping.
    Any other set-up (a test's log capture, another handler, a filter) gets a real
    record through `logging`, with the same fields.
    """

    def __init__(self, service: str) -> None:
        self.logger = logging.getLogger(f"{service}.access")

    def write(self, request_id: str, route: str, method: str, status: int, seconds: float) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return  # nothing is formatted for a line nobody writes
        # Taken now, not when the line is formatted (a buffering handler may be later).
        fields = {
            "request_id": request_id,
            "route": route,
            "method": method,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        handler = self._direct_handler()
        if handler is None:
            logger.info("request", extra=fields)
            return
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)  # checked by _direct_handler
        line = formatter.access_line(logger.name, request_id, fields) + handler.terminator
        with handler.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                handler.stream.write(line)
                handler.stream.flush()
            except (OSError, ValueError):
                pass  # as logging does: a log line never fails the request

    def _direct_handler(self) -> logging.StreamHandler[Any] | None:
        """The JSON stderr handler, if a record would reach it and nothing else."""
        handler, logger, root = _json_handler, self.logger, logging.root
        if (
            handler is None
            or root.handlers != [handler]
            or logger.parent is not root
            or logger.handlers
            or logger.filters
            or root.filters
            or handler.filters
            or handler.level > logging.INFO
            or not logger.propagate
            or not isinstance(handler.formatter, JsonFormatter)
        ):
            return None
        return handler


_access_logs: dict[str, AccessLog] = {}


# How often each process folds its services' request tallies into the Prometheus metrics.
TALLY_FLUSH_SECONDS = 1.0
# This process's request tallies, by service; one lock for them all, because gthread
# workers count from many threads (under gevent it is never contended).
_request_tallies: dict[str, RequestTally] = {}
# Events of hot paths (money moved, tokens issued), by counter and label values.
_event_counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
_tallies_lock = threading.Lock()
_flusher_started = False  # in this process (reset in a forked child)


def record_request(service: str, route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request, time it, and write its access-log line."""
    # A tally, not prometheus_client: labels().inc() plus observe() cost about 4.5 us a
    # request (a lock and, with several workers, a shared-file write per value), the
    # tally under its lock about 1 us.
    tally = _request_tallies.get(service) or _new_request_tally(service)
    with _tallies_lock:
        tally.count(route, method, status, seconds)
    access = _access_logs.get(service)
    if access is None:
        access = _access_logs.setdefault(service, AccessLog(service))
    access.write(request_id_var.get(), route, method, status, seconds)


def count_event(counter: Counter, *labels: str) -> None:
    """Add one to `counter` (with these label values) at the next tally flush.

    For the counters of hot paths: prometheus_client's `labels().inc()` takes about 3 us
    with a metrics directory (a lock and a shared-file write), this about 0.2 us.
    """
    key = (counter, labels)
    with _tallies_lock:
        _event_counts[key] = _event_counts.get(key, 0) + 1
        start = _claim_flusher()
    if start:
        _start_flusher()


def flush_request_tallies() -> None:
    """Fold this process's request and event tallies into the Prometheus metrics (about
    once a second, before each `/metrics` answer, and when a gunicorn worker exits)."""
    global _event_counts
    with _tallies_lock:
        for tally in _request_tallies.values():
            tally.flush()
        events, _event_counts = _event_counts, {}
        for (counter, labels), count in events.items():
            (counter.labels(*labels) if labels else counter).inc(count)


def _new_request_tally(service: str) -> RequestTally:
    """The tally of `service` in this process, and the process's flusher once."""
    with _tallies_lock:
        tally = _request_tallies.setdefault(service, RequestTally(service))
        start = _claim_flusher()
    if start:
        _start_flusher()
    return tally


def _claim_flusher() -> bool:
    """Whether the caller is the first in this process to need the flusher (hold the lock)."""
    global _flusher_started
    start, _flusher_started = not _flusher_started, True
    return start


def _start_flusher() -> None:
    # A daemon thread (a greenlet under gevent): it never holds up a worker's exit, where
    # gunicorn_hooks.worker_exit makes the last flush.
    threading.Thread(target=_flush_tallies_forever, name="tally-flush", daemon=True).start()


def _flush_tallies_forever() -> None:
    while True:
        time.sleep(TALLY_FLUSH_SECONDS)
        try:
            flush_request_tallies()
        except Exception:  # the metrics directory's disk full, say: keep the flusher alive
            logging.getLogger(__name__).warning("request metrics flush failed", exc_info=True)


def _forget_tallies_in_child() -> None:
    """After a fork: the parent's counts are its own to flush (never twice), and the
    child starts its own flusher on its first request."""
    global _tallies_lock, _flusher_started
    _request_tallies.clear()
    _event_counts.clear()
    _tallies_lock = threading.Lock()  # it may have been held by another thread at the fork
    _flusher_started = False


os.register_at_fork(after_in_child=_forget_tallies_in_child)


def init_flask(app: Flask, service: str, metrics_allow: tuple[Network, ...] | None = None) -> None:
    """Request ids, access logs and `/metrics` for a Flask service.

    `/metrics` answers only TCP peers in `metrics_allow` (default: loopback and private
    ranges, as at the gateway); anyone else gets the service's ordinary 404.
    """
    from flask import Response as FlaskResponse
    from flask import abort, request

    from .request_cycle import current_request

    allowed = (
        parse_networks(METRICS_ALLOW_SETTING, DEFAULT_METRICS_ALLOW)
        if metrics_allow is None
        else metrics_allow
    )
    started_key = "observability.started"

    @app.before_request
    def _start() -> None:
        environ = current_request().environ
        environ[started_key] = time.perf_counter()
        request_id_var.set(new_request_id(environ.get("HTTP_X_REQUEST_ID")))

    @app.after_request
    def _finish(response: Response) -> Response:
        current = current_request()  # one look-up instead of one per attribute
        request_id = request_id_var.get()
        response.headers[REQUEST_ID_HEADER] = request_id
        # The route pattern, never the path: paths such as /login/<token> carry secrets.
        rule = current.url_rule
        route = rule.rule if rule is not None else "unmatched"
        started = current.environ.get(started_key) or time.perf_counter()
        seconds = time.perf_counter() - started
        record_request(service, route, current.method, response.status_code, seconds)
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        # gthread workers reuse threads: a later log line outside any request must not
        # carry this request's id.
        request_id_var.set("-")

    def metrics() -> Response:
        # The TCP peer, never X-Forwarded-For: a client writes that header itself.
        if not peer_allowed(wsgi_peer(request.environ), allowed):
            abort(404)
        body, content_type = render_metrics()
        return FlaskResponse(body, mimetype=content_type.split(";")[0])

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])


class RequestTally:
    """Request counts and latencies in plain Python numbers, folded into `HTTP_REQUESTS` and
    `HTTP_LATENCY` by `flush` (call it about once a second and before each scrape).

    `count` costs a dict look-up and three additions, where prometheus_client's
    `labels().inc()` plus `observe()` take a lock per value, and in multiprocess mode
    write to a shared file. Not thread-safe: the gateway's event loop uses one directly,
    the services through `record_request` (under a lock).
    """

    def __init__(self, service: str) -> None:
        self.service = service
        # (route, method, status) -> [requests, seconds, hits per latency bucket ..., +Inf]
        self._pending: dict[tuple[str, str, int], list[float]] = {}

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request; `route` must come from a bounded set (never a path)."""
        key = (route, method, status)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0.0] * (len(LATENCY_BUCKETS) + 3)
        entry[0] += 1
        entry[1] += seconds
        # bisect_left finds the first bound >= seconds, the bucket observe() would pick.
        entry[2 + bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus metrics."""
        pending, self._pending = self._pending, {}
        for (route, method, status), entry in pending.items():
            HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc(entry[0])
            histogram = HTTP_LATENCY.labels(self.service, route)
            # prometheus_client has no public "add n observations"; these are the very
            # values observe() increments (sum, and one bucket per observation, made
            # cumulative at collection). tests/shared/test_observability.py checks that the
            # exposition matches observe() exactly, so a library change is caught.
            histogram._sum.inc(entry[1])
            for bucket, hits in zip(histogram._buckets, entry[2:], strict=True):
                if hits:
                    bucket.inc(hits)


def mark_worker_dead(pid: int) -> None:
    """gunicorn `child_exit` hook: drop a dead worker's live gauges in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
