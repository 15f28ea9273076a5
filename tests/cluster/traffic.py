"""Background request traffic that records every call, for the failover tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.exceptions import StoreUnavailable

# After an error a real worker answers 503 and moves on; pausing a little keeps the test's
# threads from spinning on a dead node and starving the Redis processes of CPU.
PAUSE_AFTER_ERROR_SECONDS = 0.01
PAUSE_AFTER_SUCCESS_SECONDS = 0.001


@dataclass(frozen=True)
class Call:
    """One recorded call: when it started and ended, on which key, and how it went."""

    started: float
    ended: float
    key: str
    value: int | None
    error: str | None  # "StoreUnavailable", or "unexpected <type>: <message>"

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass
class Traffic:
    """`threads` threads calling `operation(key)` round-robin over `keys` until stopped."""

    operation: Callable[[str], int]
    keys: list[str]
    threads: int = 4
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Traffic:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._workers.append(worker)
            worker.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout)
        assert not any(worker.is_alive() for worker in self._workers), "a call hung"

    def _run(self, index: int) -> None:
        position = index
        while not self._stop.is_set():
            key = self.keys[position % len(self.keys)]
            position += self.threads
            started = time.monotonic()
            value, error = None, None
            try:
                value = self.operation(key)
            except StoreUnavailable:
                error = "StoreUnavailable"
            except Exception as exc:  # recorded, then asserted on by the test
                error = f"unexpected {type(exc).__name__}: {exc}"
            call = Call(started, time.monotonic(), key, value, error)
            with self._lock:
                self.calls.append(call)
            time.sleep(PAUSE_AFTER_ERROR_SECONDS if error else PAUSE_AFTER_SUCCESS_SECONDS)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for_success(self, keys: set[str], since: float, timeout: float) -> float | None:
        """End time of the first success on one of `keys` that started after `since`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            successes = [
                call.ended
                for call in self.snapshot()
                if call.key in keys and call.started >= since and call.error is None
            ]
            if successes:
                return min(successes)
            time.sleep(0.02)
        return None


@dataclass(frozen=True)
class Report:
    """What a failover did to the traffic."""

    requests: int
    errors: int
    errors_by_kind: dict[str, int]
    affected_requests: int
    affected_errors: int
    other_requests: int
    other_errors: int
    recovery_seconds: float | None
    longest_call_seconds: float
    lost_increments: int

    def line(self, title: str) -> str:
        recovery = "never" if self.recovery_seconds is None else f"{self.recovery_seconds:.2f}s"
        return (
            f"{title}: requests={self.requests} errors={self.errors} "
            f"(affected keys {self.affected_errors}/{self.affected_requests}, "
            f"other keys {self.other_errors}/{self.other_requests}) "
            f"kinds={self.errors_by_kind} recovery={recovery} "
            f"longest_call={self.longest_call_seconds:.3f}s "
            f"acknowledged_increments_lost={self.lost_increments}"
        )


def summarise(
    calls: list[Call],
    affected: set[str],
    killed_at: float,
    recovered_at: float | None,
    final_values: dict[str, int],
) -> Report:
    """Count requests and errors; count acknowledged increments that did not survive.

    INCR answers each number once; after a failover that lost acknowledged increments the
    promoted replica hands the same numbers out again (duplicates), and a counter can end
    below the highest number ever acknowledged (a lost tail).
    """
    acknowledged: dict[str, list[int]] = {}
    for call in calls:
        if call.value is not None:
            acknowledged.setdefault(call.key, []).append(call.value)
    lost = sum(
        (len(values) - len(set(values))) + max(0, max(values) - final_values.get(key, 0))
        for key, values in acknowledged.items()
    )
    errors = [call for call in calls if call.error]
    return Report(
        requests=len(calls),
        errors=len(errors),
        errors_by_kind=dict(Counter(str(call.error) for call in errors)),
        affected_requests=sum(call.key in affected for call in calls),
        affected_errors=sum(call.key in affected for call in errors),
        other_requests=sum(call.key not in affected for call in calls),
        other_errors=sum(call.key not in affected for call in errors),
        recovery_seconds=None if recovered_at is None else recovered_at - killed_at,
        longest_call_seconds=max((call.duration for call in calls), default=0.0),
        lost_increments=lost,
    )
