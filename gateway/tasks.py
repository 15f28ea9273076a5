"""The background tasks of one gateway: referenced while they run, failures logged, and
cancelled together when it stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("gateway")


class Tasks:
    """A set of running tasks (the event loop keeps only weak references to them)."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run `coro` in the background; an exception it raises is logged."""
        task = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._done)

    def track(self, future: asyncio.Future[Any]) -> None:
        """Keep `future` until it is done; its awaiters see its outcome, nothing is logged."""
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def cancel_all(self) -> None:
        for task in list(self._running):
            task.cancel()

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed", exc_info=task.exception())
