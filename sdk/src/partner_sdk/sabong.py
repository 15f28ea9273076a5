"""Sabong API v1.0 client: every request HMAC-signed over exactly the bytes it sends."""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any

from .connections import Timeout
from .signing import SIGNATURE_WINDOW_SECONDS, canonical_query, sign
from .transport import DEFAULT_RETRY, DEFAULT_TIMEOUT, Response, Retry, Transport, dump_json

__all__ = ["SabongClient", "generate_signature"]

GENERATE_AUTH_TOKEN_PATH = "/api/v1/generate-auth-token"  # noqa: S105 - a path
GET_BALANCE_PATH = "/api/v1/get-balance"
CREDIT_PATH = "/api/v1/credit-balance"
DEBIT_PATH = "/api/v1/debit-balance"
GET_TRANSACTIONS_PATH = "/api/v1/get-transactions"
MAX_PAGE_SIZE = 100
# Every (method, path) this client calls; a test checks each against shared/openapi.json.
ENDPOINTS = (
    ("POST", GENERATE_AUTH_TOKEN_PATH),
    ("GET", GET_BALANCE_PATH),
    ("POST", CREDIT_PATH),
    ("POST", DEBIT_PATH),
    ("GET", GET_TRANSACTIONS_PATH),
)
# The server applies a (clientId, type, reference) once and answers a repeat with the
# original transaction, so these POSTs may be retried when they carry a reference.
IDEMPOTENT_BY_REFERENCE = frozenset({CREDIT_PATH, DEBIT_PATH})
# What the server strips before deciding a reference is blank (PHP's trim set).
_BLANK = " \t\n\r\0\x0b"

Amount = Decimal | int | str

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
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        *,
        clock: Clock = time.time,
        retry: Retry = DEFAULT_RETRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self._transport = Transport(base_url, timeout, retry=retry, ssl_context=ssl_context)
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        # Signatures already sent, by timestamp: the server rejects a repeat as a replay.
        self._sent: dict[int, set[str]] = {}

    def __repr__(self) -> str:
        return f"SabongClient(host={self._transport.host!r})"

    def __enter__(self) -> SabongClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle keep-alive connections (the client stays usable)."""
        self._transport.close()

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

    def get_balance(self, client_id: str) -> dict[str, Any]:
        """`GET /api/v1/get-balance`: `data` with userId, clientId, balance (a Decimal)
        and updatedAt."""
        return self._data("GET", GET_BALANCE_PATH, params={"clientId": client_id})

    def credit(
        self,
        client_id: str,
        amount: Amount,
        *,
        reference: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """`POST /api/v1/credit-balance`; `data` with transactionId and balance (Decimal).

        Give a `reference` (your own transaction id) to make retries safe: the server
        applies a reference once and answers a repeat with the original transaction.
        """
        body = money_body(client_id, amount, reference, description)
        return self._data("POST", CREDIT_PATH, json=body)

    def debit(
        self,
        client_id: str,
        amount: Amount,
        *,
        reference: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """`POST /api/v1/debit-balance`; InsufficientBalanceError when it exceeds the
        balance, ConflictError when `reference` was used for another amount."""
        body = money_body(client_id, amount, reference, description)
        return self._data("POST", DEBIT_PATH, json=body)

    def transactions(
        self,
        client_id: str,
        *,
        transaction_type: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every transaction of a wallet, oldest first, fetched page by page.

        Sorted by id, so transactions made while iterating come last, never twice.
        Amounts are strings as the API sends them (`Decimal(t["amount"])` is exact).
        """
        params = {"clientId": client_id, "limit": str(page_size), "sortBy": "id"}
        params["sortOrder"] = "asc"
        optional = {"type": transaction_type, "dateFrom": date_from, "dateTo": date_to}
        params.update({k: v for k, v in optional.items() if v is not None})
        page = 1
        while True:
            data = self._data("GET", GET_TRANSACTIONS_PATH, params={**params, "page": str(page)})
            rows = data.get("data") or []
            yield from rows
            if len(rows) < page_size:
                return
            page += 1

    def _data(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        data = self.request(method, path, json=json, params=params).data
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
        """Send one signed request: the body is serialised once, signed and sent as is.

        Retried only when safe - a GET, or a credit/debit carrying a `reference` - and
        re-signed for every attempt: the server refuses a signature it has seen.
        """
        method = method.upper()
        wire_path = self._transport.full_path(path)
        query = sorted((params or {}).items())
        if method == "GET":
            body, payload = None, canonical_query(query).encode("utf-8")
        else:
            body = b"" if json is None else dump_json(json)
            payload = body

        def signature_headers() -> dict[str, str]:
            timestamp, signature = self._unique_signature(method, wire_path, payload)
            return {"x-signature": signature, "x-timestamp": str(timestamp)}

        headers = {"Content-Type": "application/json"} if body else {}
        target = wire_path + ("?" + urllib.parse.urlencode(query) if query else "")
        retry = method == "GET" or (path in IDEMPOTENT_BY_REFERENCE and _has_reference(json))
        response = self._transport.send(
            method, target, body, headers, retry=retry, sign=signature_headers
        )
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


def money_body(
    client_id: str, amount: Amount, reference: str | None, description: str | None
) -> dict[str, Any]:
    """A credit/debit body; the amount goes as a decimal string, so no float rounds it."""
    if isinstance(amount, float | bool):
        raise TypeError("amount must be a Decimal, an int or a decimal string, not a float")
    text = format(amount, "f") if isinstance(amount, Decimal) else str(amount)
    body: dict[str, Any] = {"clientId": client_id, "amount": text}
    if reference is not None:
        body["reference"] = reference
    if description is not None:
        body["description"] = description
    return body


def _has_reference(payload: Any) -> bool:
    """True when a JSON body carries a non-blank `reference` (the server's test)."""
    reference = payload.get("reference") if isinstance(payload, dict) else None
    return isinstance(reference, str) and reference.strip(_BLANK) != ""
