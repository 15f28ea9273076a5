"""Partner SDK for the K2 USSD and Sabong v1.0 APIs: standard library only.

Usage::

    from partner_sdk import K2Client, SabongClient

    k2 = K2Client("https://gateway.example", "username", "password")
    k2.me()  # logs in, generates the Service ID and keeps it fresh
    k2.request("GET", "/api/clients/me")  # any call, as Authorization: Bearer <SERVICE_ID>

    sabong = SabongClient("https://gateway.example", "client-secret")
    data = sabong.generate_auth_token("CLIENT_001", "user1", "User One", "192.0.2.10")
    data["loginLink"]
    sabong.credit("CLIENT_001", Decimal("10.50"), reference="deposit-42")
    sabong.get_balance("CLIENT_001")["balance"]  # Decimal("10.50"): money is never a float
    for transaction in sabong.transactions("CLIENT_001"):  # every page, oldest first
        ...

Connections are kept alive and shared by threads; `timeout=Timeout(connect=5, read=10)`;
HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured; GETs and credits/debits carrying a
`reference` are retried with backoff (`retry=Retry(...)`, `NO_RETRY` to switch off).
Errors are typed: ApiError (status, message, data) and its subclasses, or TransportError.
"""

from __future__ import annotations

from .connections import Timeout
from .errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    SdkError,
    ServerError,
    TransportError,
    ValidationError,
)
from .k2 import K2Client
from .sabong import SabongClient, generate_signature
from .transport import DEFAULT_RETRY, DEFAULT_TIMEOUT, NO_RETRY, Response, Retry

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "InsufficientBalanceError",
    "K2Client",
    "NotFoundError",
    "RateLimitError",
    "RequestTimeout",
    "Response",
    "Retry",
    "SabongClient",
    "SdkError",
    "ServerError",
    "Timeout",
    "TransportError",
    "ValidationError",
    "generate_signature",
]
