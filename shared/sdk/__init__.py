"""Partner SDK for the K2 USSD and Sabong v1.0 APIs: stdlib only, no server dependencies.

Usage::

    from shared.sdk import K2Client, SabongClient

    k2 = K2Client("https://gateway.example", "username", "password")
    k2.me()  # logs in, generates the Service ID and keeps it fresh
    k2.request("GET", "/api/clients/me")  # any call, as Authorization: Bearer <SERVICE_ID>

    sabong = SabongClient("https://gateway.example", "client-secret")
    data = sabong.generate_auth_token("CLIENT_001", "user1", "User One", "192.0.2.10")
    data["loginLink"]

Errors are typed: ApiError (status, message, data) and its subclasses, or TransportError.
"""

from __future__ import annotations

from .errors import (
    ApiError,
    AuthenticationError,
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
