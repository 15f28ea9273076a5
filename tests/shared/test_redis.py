"""Redis helpers: bounded failure when Redis is down, recovery when it is back."""

from __future__ import annotations

import time

import pytest

from devtools.embedded import EmbeddedRedis
from shared import redis as shared_redis
from shared.exceptions import StoreUnavailable


@shared_redis.translate_errors
def _incr(client: object) -> int:
    return client.incr("counter")  # type: ignore[attr-defined, no-any-return]


def test_redis_down_is_store_unavailable_quickly_then_recovers(own_redis: EmbeddedRedis) -> None:
    client = shared_redis.connect(own_redis.url)
    assert _incr(client) == 1
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        _incr(client)
    assert time.monotonic() - started < 3.0
    assert shared_redis.ping(client) is False
    own_redis.start()
    assert _incr(client) == 2  # AOF kept the counter; the pool reconnected by itself
