"""CPU-heavy native calls (password hashing) kept off a gevent worker's event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .greenlets import patched_by_gevent

R = TypeVar("R")


def in_native_thread(func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """`func(*args, **kwargs)`, run where it cannot stall other requests.

    Under gevent (monkey-patched threading) the call runs in the hub's pool of native
    threads and only this request's greenlet waits: scrypt releases the GIL, so the
    event loop keeps serving the other requests meanwhile. Otherwise (gthread, scripts,
    tests) the caller is a native thread already and the call is made directly. Callers
    bound how many run at once (the login's hash slots).
    """
    if patched_by_gevent("threading") is None:
        return func(*args, **kwargs)
    import gevent

    result: R = gevent.get_hub().threadpool.apply(func, args, kwargs)
    return result
