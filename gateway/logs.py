"""One JSON object per line: the gateway's event log and its buffered access log.

Both use the fields of `shared.observability.JsonFormatter` (ts, level, service,
request_id, pid, logger, msg; access lines add route, method, status, duration_ms), so
one query reads the logs of every component.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

from shared.observability import JsonFormatter, iso_timestamp

SERVICE = "gateway"
# Writes to a pipe up to PIPE_BUF bytes are atomic: lines from several gateway
# workers sharing one stderr never interleave mid-line.
_MAX_WRITE = 4096
_FLUSH_INTERVAL_SECONDS = 0.25


def configure_logging(level: int = logging.INFO) -> None:
    """Route the `gateway.*` loggers to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("gateway")
    if any(getattr(h, "_gateway_json", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    # Lines about one request pass its id as `extra={"request_id": ...}`; others say "-".
    handler.setFormatter(JsonFormatter(SERVICE))
    handler._gateway_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


_QUOTED: dict[str | None, str] = {}


def _quoted(value: str | None) -> str:
    """`value` as a JSON string (escaped), remembered: paths, methods and peers repeat."""
    quoted = _QUOTED.get(value)
    if quoted is None:
        quoted = json.dumps(value)
        if len(_QUOTED) < 4096:
            _QUOTED[value] = quoted
    return quoted


class AccessLog:
    """Request lines buffered briefly and written in whole-line batches.

    One write system call per request is a measurable share of the gateway's CPU at
    thousands of requests per second; batching keeps the lines (and their order) while
    paying for the write once per batch. Never holds a line longer than 0.25 s.
    """

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stderr.fileno() if fd is None else fd
        # The constant middle of every line, pid included (made in the worker, after fork).
        self.after_id = f'","pid":{os.getpid()},"logger":"gateway.access","msg":"request","route":'
        self.lines: list[bytes] = []
        self.size = 0
        self.first_at = 0.0

    def write(self, request: Any, status: int, seconds: float) -> None:
        """One line for one request answered in `seconds` (a `gateway.http.Request`).

        `route` is the route prefix (the metrics label); `path` is the route prefix for
        `/login/<token>` and a shortened unrouted path (set by the gateway), never a query
        string; no header values are logged. The request id is validated to
        [A-Za-z0-9._-], so it needs no escaping.
        """
        line = (
            f'{{"ts":"{iso_timestamp(time.time())}","level":"info","service":"{SERVICE}",'
            f'"request_id":"{request.request_id.decode()}{self.after_id}'
            f'{_quoted(request.route)},"method":{_quoted(request.method)},"status":{status},'
            f'"duration_ms":{seconds * 1000:.3f},"path":{_quoted(request.log_path)},'
            f'"client":{_quoted(request.peer)}}}\n'
        ).encode()
        if not self.lines:
            self.first_at = time.monotonic()
        self.lines.append(line)
        self.size += len(line)
        if self.size >= _MAX_WRITE - 512:
            self.flush()

    def flush_if_due(self) -> None:
        if self.lines and time.monotonic() - self.first_at >= _FLUSH_INTERVAL_SECONDS:
            self.flush()

    def flush(self) -> None:
        lines, self.lines, self.size = self.lines, [], 0
        batch = b""
        for line in lines:
            if batch and len(batch) + len(line) > _MAX_WRITE:
                self._write(batch)
                batch = b""
            batch += line
        if batch:
            self._write(batch)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a closed stderr must not take requests down
            os.write(self.fd, data)
