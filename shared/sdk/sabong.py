"""Sabong API v1.0 client: every request HMAC-signed over exactly the bytes it sends."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from shared.signing import SIGNATURE_WINDOW_SECONDS, canonical_query, sign

from .transport import DEFAULT_TIMEOUT, Response, Transport, dump_json

__all__ = ["SabongClient", "generate_signature"]

GENERATE_AUTH_TOKEN_PATH = "/api/v1/generate-auth-token"  # noqa: S105 - a path

Clock = Callable[[], float]


def generate_signature(
    method: str,
    path: str,
    payload: Any,
    secret: str,
    timestamp: int | str,
) -> str:
    """The `x-signature` value, as in the partner docs.

    A dict (or any JSON value but str/bytes) is signed as compact JSON
    (`separators=(",", ":")`, UTF-8) - so send exactly those bytes; a str or bytes
    payload is signed as-is (for GET pass the canonical query, `key=value&...` sorted by key).
    """
    if payload is None:
        body = b""
    elif isinstance(payload, bytes | str):
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
    else:
        body = dump_json(payload)
    return sign(secret, method, path, timestamp, body)


class SabongClient:
    """Signs and sends Sabong partner requests; safe to share across threads."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        clock: Clock = time.time,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self._transport = Transport(base_url, timeout)
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        # Signatures already sent, by timestamp: the server rejects a repeat as a replay.
        self._sent: dict[int, set[str]] = {}

    def __repr__(self) -> str:
        return f"SabongClient(host={self._transport.host!r})"

    def generate_auth_token(
        self,
        client_id: str,
        username: str,
        display_name: str,
        ip_address: str,
        expiration: int | None = None,
    ) -> dict[str, Any]:
        """`POST /api/v1/generate-auth-token`; returns `data` (token, loginLink, user, ...)."""
        payload: dict[str, Any] = {
            "clientId": client_id,
            "username": username,
            "displayName": display_name,
            "ipAddress": ip_address,
        }
        if expiration is not None:
            payload["expiration"] = expiration
        data = self.request("POST", GENERATE_AUTH_TOKEN_PATH, json=payload).data
        return data if isinstance(data, dict) else {}

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        check: bool = True,
    ) -> Response:
        """Send one signed request: the body is serialised once, signed and sent as is."""
        method = method.upper()
        wire_path = self._transport.full_path(path)
        query = sorted((params or {}).items())
        if method == "GET":
            body, payload = None, canonical_query(query).encode("utf-8")
        else:
            body = b"" if json is None else dump_json(json)
            payload = body
        timestamp, signature = self._unique_signature(method, wire_path, payload)
        headers = {"x-signature": signature, "x-timestamp": str(timestamp)}
        if body:
            headers["Content-Type"] = "application/json"
        target = wire_path + ("?" + urllib.parse.urlencode(query) if query else "")
        response = self._transport.send(method, target, body, headers)
        return response.raise_for_status() if check else response

    def _unique_signature(self, method: str, path: str, payload: bytes) -> tuple[int, str]:
        """Timestamp and signature never sent before by this client.

        Two identical requests in one second would sign identically and the second would be
        refused as a replay, so the later one is stamped a second on (well inside the window).
        """
        now = int(self._clock())
        with self._lock:
            for stale in [stamp for stamp in self._sent if stamp < now]:
                del self._sent[stale]
            for timestamp in range(now, now + SIGNATURE_WINDOW_SECONDS // 2):
                signature = sign(self._secret, method, path, timestamp, payload)
                used = self._sent.setdefault(timestamp, set())
                if signature not in used:
                    used.add(signature)
                    return timestamp, signature
        raise RuntimeError("too many identical requests in the signature window")
