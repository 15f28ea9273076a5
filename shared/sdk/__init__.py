"""Partner SDK for the K2 USSD and Sabong v1.0 APIs: stdlib only, no server dependencies.

Usage::

    from shared.sdk import K2Client, SabongClient

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

Errors are typed: ApiError (status, message, data) and its subclasses, or TransportError.
"""

from __future__ import annotations

from .errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    RateLimitError,
    SdkError,
    ServerError,
    TransportError,
    ValidationError,
)
from .k2 import K2Client
from .sabong import SabongClient, generate_signature
from .transport import Response

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "InsufficientBalanceError",
    "K2Client",
    "NotFoundError",
    "RateLimitError",
    "Response",
    "SabongClient",
    "SdkError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "generate_signature",
]
