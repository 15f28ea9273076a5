"""Service IDs: minting, authenticating requests with them, revoking, API keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from shared.observability import SERVICE_IDS_ISSUED

from .accounts import iso_utc, public_user
from .context import SERVICE_ID_LIFETIME, UssdContext
from .credentials import (
    LoginClaims,
    ServiceIdClaims,
    bearer_token,
    issue_service_id,
    service_id_claims,
)
from .exceptions import (
    LoginTokenInvalid,
    ServiceIdExpired,
    ServiceIdInvalid,
    ServiceIdRejected,
)
from .store import tagged_uuid


def generate_service_id(ctx: UssdContext, login: LoginClaims) -> str:
    """A new SERVICE_ID for the login JWT's client; one Redis round trip."""
    now = int(time.time())
    service_id = tagged_uuid(login.client_uuid)
    # One script checks the client is active on the login JWT's generation and records
    # the ID with its TTL; Redis TTL starts after `now`, so it never undercuts `exp`.
    if not ctx.store.issue_service_id(
        login.client_uuid, login.gen, service_id, SERVICE_ID_LIFETIME
    ):
        raise LoginTokenInvalid()
    SERVICE_IDS_ISSUED.inc()
    return issue_service_id(ctx, service_id, now=now)


def create_api_key(ctx: UssdContext, login: LoginClaims, service_id_token: str) -> str:
    """A new API key id linked to the client and its live Service ID; one round trip."""
    try:
        service_id: str | None = service_id_claims(ctx, service_id_token).service_id
    except (ServiceIdInvalid, ServiceIdExpired):
        service_id = None  # still ask Redis: a disabled client must hear 401, not 403
    key_id = tagged_uuid(login.client_uuid)
    outcome = ctx.store.create_api_key(login.client_uuid, login.gen, service_id, key_id)
    if outcome < 0:
        raise LoginTokenInvalid()
    if outcome == 0:
        raise ServiceIdRejected()
    return key_id


def authenticate(
    ctx: UssdContext, authorization: str | None
) -> tuple[ServiceIdClaims, dict[str, str]]:
    """The live Service ID of the header and its client's profile; one round trip."""
    claims = service_id_claims(ctx, bearer_token(authorization))
    profile = ctx.store.authenticate_service_id(claims.service_id)
    if profile is None:
        raise ServiceIdInvalid()
    return claims, profile


def describe(ctx: UssdContext, authorization: str | None) -> dict[str, Any]:
    """GET /api/clients/me: the client profile, the serviceId and its expiry."""
    claims, profile = authenticate(ctx, authorization)
    return {
        "client": public_user(profile),
        "serviceId": claims.service_id,
        "expires_at": _iso(claims.expires_at),
        "expires_in": max(0, claims.expires_at - int(time.time())),
    }


def revoke(ctx: UssdContext, authorization: str | None) -> dict[str, Any]:
    """Revoke the presented Service ID at once; one round trip."""
    claims = service_id_claims(ctx, bearer_token(authorization))
    if not ctx.store.revoke_service_id(claims.service_id):
        raise ServiceIdInvalid()
    return {"serviceId": claims.service_id}


def _iso(timestamp: int) -> str:
    return iso_utc(datetime.fromtimestamp(timestamp, UTC))
