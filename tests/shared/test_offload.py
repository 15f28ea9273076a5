"""shared.offload: CPU-heavy native calls off a gevent worker's event loop."""

from __future__ import annotations

import hashlib
import threading

from shared.offload import in_native_thread
from tests.gevent_worker import run_patched

# In a gevent-patched process of its own: while one greenlet hashes a password (about
# 0.1-0.3 s of scrypt), another keeps ticking every 10 ms. Prints the ticks seen during the
# hash; a hash run on the event loop allows none.
GEVENT_WORKER = """
import gevent, hashlib, time
from shared.offload import in_native_thread

ticks = []

def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

ticker = gevent.spawn(tick)
gevent.sleep(0.05)
started = time.monotonic()
in_native_thread(hashlib.scrypt, b"password", salt=b"s" * 16, n=2**15, r=8, p=1,
                 maxmem=64 * 1024 * 1024)
ended = time.monotonic()
ticker.kill()
print(sum(started < t < ended for t in ticks), round(ended - started, 3))
"""


def test_a_password_hash_does_not_stall_a_gevent_worker() -> None:
    printed = run_patched(GEVENT_WORKER)
    ticks, seconds = printed.split()
    # Ticks every 10 ms throughout the hash: the loop kept running (a third of the
    # possible ones leaves room for a loaded machine).
    assert int(ticks) >= max(3, float(seconds) / 0.01 / 3), printed


def test_without_gevent_the_call_is_made_in_the_calling_thread() -> None:
    seen: list[threading.Thread] = []

    def record(value: bytes) -> bytes:
        seen.append(threading.current_thread())
        return hashlib.sha256(value).digest()

    assert in_native_thread(record, b"x") == hashlib.sha256(b"x").digest()
    assert seen == [threading.current_thread()]
