"""Redis connections with bounded timeouts, and the translation of their failures."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from .exceptions import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")

# A request must never hang on Redis: connect and command timeouts are short, and a
# failed command is retried once at most (a fresh connection after a Redis restart).
CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 1.0
HEALTH_CHECK_INTERVAL_SECONDS = 15

TRANSIENT_ERRORS = (redis_py.ConnectionError, redis_py.TimeoutError)
TEMPORARY_RESPONSE_ERRORS = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def connect(url: str, **options: Any) -> redis_py.Redis:
    """A pooled client for `url` that fails fast and reconnects by itself."""
    settings: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [redis_py.ConnectionError],
        "decode_responses": True,
    }
    settings.update(options)
    return redis_py.Redis.from_url(url, **settings)


def translate_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: Redis connection failures and timeouts become StoreUnavailable."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            raise StoreUnavailable() from exc
        except redis_py.ResponseError as exc:
            # Loading, read-only replica, cluster reconfiguration: temporary conditions.
            if str(exc).startswith(TEMPORARY_RESPONSE_ERRORS):
                raise StoreUnavailable() from exc
            raise

    return wrapper


def ping(client: redis_py.Redis) -> bool:
    """True when Redis answers PING in time; never raises."""
    try:
        return bool(client.ping())
    except (redis_py.RedisError, OSError):
        return False
