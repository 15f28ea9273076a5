"""HMAC signature authentication of partner requests (`x-signature`, `x-timestamp`)."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Request

from shared import signing
from shared.request_cycle import current_request
from shared.web import raw_body

BODYLESS_METHODS = frozenset({"GET", "HEAD"})


def signed_payload(request: Request) -> bytes:
    """What the partner signed: the raw body, or for GET the canonical query string."""
    if request.method in BODYLESS_METHODS:
        return signing.canonical_query(request.args.items(multi=True)).encode("utf-8")
    # The raw bytes as received: re-serialised JSON would differ in spacing and escapes.
    return raw_body()


def authenticate(secrets: Sequence[str], now: float) -> str:
    """Verify the current request's signature; the normalised signature for replay checks.

    Raises SignatureRejected. The path is signed without its query string.
    """
    request = current_request()
    headers = request.headers
    return signing.verify(
        secrets,
        request.method,
        request.path,
        headers.get("x-timestamp"),
        headers.get("x-signature"),
        signed_payload(request),
        now=now,
    )
