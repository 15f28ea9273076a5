"""The stdlib HTTP transport: keep-alive connections, timeouts, proxies, safe retries."""

from __future__ import annotations

import http.client
import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .connections import ConnectionPool, Timeout, proxy_from_environment
from .errors import ApiError, RequestTimeout, TransportError, error_for

USER_AGENT = "partner-auth-sdk-python/0.2"
DEFAULT_TIMEOUT = Timeout(connect=5.0, read=10.0)
# Methods retried by default: they change nothing on the server.
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Statuses that mean "not handled, try again": gateway could not reach/hear a replica, or
# the server asked the caller to slow down.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

Headers = Mapping[str, str]


@dataclass(frozen=True)
class Retry:
    """How a retryable request is retried: `total` extra attempts, exponential backoff with
    jitter (`backoff` * 2**n seconds, at most `max_delay`), `Retry-After` honoured up to it."""

    total: int = 2
    backoff: float = 0.25
    max_delay: float = 10.0
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff_delay(self, attempt: int) -> float:
        """Seconds before retry `attempt + 1`: half fixed, half random (spreads a herd)."""
        ceiling = min(self.max_delay, self.backoff * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay_after(self, response: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying after `response`, or None: do not retry."""
        if response.status not in self.statuses or attempt >= self.total:
            return None
        advised = response.headers.get("retry-after", "").strip()
        if advised.isdigit():
            # The server's word wins; beyond our ceiling, give up and hand back its answer.
            return float(advised) if int(advised) <= self.max_delay else None
        return self.backoff_delay(attempt)


NO_RETRY = Retry(total=0)
DEFAULT_RETRY = Retry()


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON: the one serialisation the SDK sends (and signs)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers (lower-case names) and the raw body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """True for 1xx-3xx statuses."""
        return self.status < 400

    def json(self) -> Any:
        """The body parsed as JSON; None for an empty or non-JSON body.

        Fractions become Decimal, never float: a balance of 1600.50 arrives exactly.
        """
        if not self.body:
            return None
        try:
            return json.loads(self.body, parse_float=Decimal)
        except ValueError:
            return None

    @property
    def message(self) -> str | None:
        """The envelope's `message`, when the body is an envelope."""
        body = self.json()
        found = body.get("message") if isinstance(body, dict) else None
        return found if isinstance(found, str) else None

    @property
    def data(self) -> Any:
        """The envelope's `data` (None when absent)."""
        body = self.json()
        return body.get("data") if isinstance(body, dict) else None

    def error(self) -> ApiError:
        """The typed error this response stands for (meaningful only when not `ok`)."""
        return error_for(self.status, self.json(), self.headers)

    def raise_for_status(self) -> Response:
        """Raise the typed ApiError for an error status; return self otherwise."""
        if not self.ok:
            raise self.error()
        return self


class Transport:
    """Sends requests to one base URL (`http://host:port[/prefix]` or https); thread-safe."""

    def __init__(
        self,
        base_url: str,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        *,
        retry: Retry = DEFAULT_RETRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = Timeout.of(timeout)
        self.retry = retry
        pool_port = parts.port or (443 if parts.scheme == "https" else 80)
        # Read once: a client keeps the proxy it was created with.
        proxy = proxy_from_environment(self.scheme, self.host, pool_port)
        self.pool = ConnectionPool(
            self.scheme, self.host, pool_port, self.timeout, ssl_context, proxy
        )

    def full_path(self, path: str) -> str:
        """The request path on the wire: base prefix + path (which must start with `/`)."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return self.prefix + path

    def close(self) -> None:
        """Close the idle keep-alive connections."""
        self.pool.close()

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Headers | None = None,
        *,
        retry: bool | None = None,
        sign: Callable[[], Headers] | None = None,
    ) -> Response:
        """Send a request (`target` = full path + query) and read the whole answer.

        `retry` (default: only for GET/HEAD) allows retries on transport failures and on
        429/502/503/504; `sign` is called before every attempt for headers that must be
        fresh each time (a Sabong signature may be sent once only).
        """
        method = method.upper()
        retryable = method in SAFE_METHODS if retry is None else retry
        attempt = 0
        while True:
            all_headers = self._headers(headers, sign)
            delay: float | None
            try:
                response = self._exchange(method, target, body, all_headers)
            except TransportError as error:
                if not retryable or attempt >= self.retry.total or _hopeless(error):
                    raise
                delay = self.retry.backoff_delay(attempt)
            else:
                delay = self.retry.delay_after(response, attempt) if retryable else None
                if delay is None:
                    return response
            attempt += 1
            time.sleep(delay)

    def _headers(
        self, headers: Headers | None, sign: Callable[[], Headers] | None
    ) -> dict[str, str]:
        """Defaults, then the caller's headers, then this attempt's signature headers."""
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(self.pool.proxy_headers())
        all_headers.update(headers or {})
        all_headers.update(sign() if sign is not None else {})
        return all_headers

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        """One attempt: send on a pooled connection, read the whole answer, give it back."""
        connection: http.client.HTTPConnection | None = None
        reusable = False
        try:
            connection = self._send_request(method, target, body, headers)
            answer = connection.getresponse()
            payload = answer.read()
            reusable = not answer.will_close
            received = {name.lower(): value for name, value in answer.getheaders()}
            return Response(answer.status, received, payload)
        except TimeoutError as exc:
            raise RequestTimeout(self._failure(method, exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(self._failure(method, exc)) from exc
        finally:
            if connection is not None:
                self.pool.release(connection, reusable)

    def _send_request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> http.client.HTTPConnection:
        """Write the request; a reused connection that fails while writing is replaced once.

        A request that could not be written in full was never complete on the server, so
        sending it again on a new connection is safe whatever the method.
        """
        connection, reused = self.pool.acquire()
        wire_target = self.pool.request_target(target)
        while True:
            try:
                connection.request(method, wire_target, body=body, headers=headers)
                return connection
            except (OSError, http.client.HTTPException):
                connection.close()
                if not reused:
                    raise
                connection, reused = self.pool.new_connection(), False

    def _failure(self, method: str, exc: BaseException) -> str:
        """What failed, without the path or headers: they may carry tokens."""
        return f"{method} to {self.host}:{self.port or ''} failed: {exc!r}"


def _hopeless(error: TransportError) -> bool:
    """True for a failure that a retry would only repeat: the server's certificate refused."""
    return isinstance(error.__cause__, ssl.SSLCertVerificationError)
