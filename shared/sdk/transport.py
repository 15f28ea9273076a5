"""A minimal stdlib HTTP transport: one connection per request, bytes in, bytes out."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import ApiError, TransportError, error_for

USER_AGENT = "partner-auth-sdk-python/0.1"
DEFAULT_TIMEOUT = 10.0


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
    """Sends requests to one base URL (`http://host:port[/prefix]` or https)."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout

    def full_path(self, path: str) -> str:
        """The request path on the wire: base prefix + path (which must start with `/`)."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return self.prefix + path

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send one request (`target` = full path + query) and read the whole answer."""
        connection = self._connect()
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(headers or {})
        try:
            connection.request(method.upper(), target, body=body, headers=all_headers)
            answer = connection.getresponse()
            payload = answer.read()
            received = {name.lower(): value for name, value in answer.getheaders()}
            return Response(answer.status, received, payload)
        except (OSError, http.client.HTTPException) as exc:
            # Never the path or headers: they may carry tokens.
            where = f"{self.host}:{self.port or ''}"
            raise TransportError(f"{method.upper()} to {where} failed: {exc!r}") from exc
        finally:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        """A fresh connection; no pooling keeps the transport trivially thread-safe."""
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
