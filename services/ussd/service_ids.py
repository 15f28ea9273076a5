"""Service IDs: minting, authenticating requests with them, revoking, API keys.

Each check is one Redis script over the client's cached record and the Service ID (one
round trip); on a cache miss client_cache.py loads the record and the check runs again.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.observability import SERVICE_IDS_ISSUED, count_event
from shared.timestamps import iso_utc, utc_datetime

from .accounts import public_user
from .client_cache import with_client_cached
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
from .runtime import SERVICE_ID_LIFETIME, Runtime
from .store import tagged_uuid


def generate_service_id(ctx: Runtime, login: LoginClaims) -> str:
    """A new SERVICE_ID for the login JWT's client; one Redis round trip."""
    now = int(ctx.clock())
    service_id = tagged_uuid(login.client_uuid)
    # One script checks the client is active on the login JWT's generation and records
    # the ID with its TTL; Redis TTL starts after `now`, so it never undercuts `exp`.
    issued = with_client_cached(
        ctx,
        login.client_uuid,
        lambda: ctx.store.issue_service_id(
            login.client_uuid, login.gen, service_id, SERVICE_ID_LIFETIME
        ),
        LoginTokenInvalid,
    )
    if not issued:
        raise LoginTokenInvalid()
    count_event(SERVICE_IDS_ISSUED)
    return issue_service_id(ctx, service_id, now=now)


def create_api_key(ctx: Runtime, login: LoginClaims, service_id_token: str) -> str:
    """A new API key id, stored in PostgreSQL linked to the client and its live Service ID."""
    try:
        claims: ServiceIdClaims | None = service_id_claims(ctx, service_id_token)
    except (ServiceIdInvalid, ServiceIdExpired):
        claims = None  # still ask Redis: a disabled client must hear 401, not 403
    service_id = claims.service_id if claims else None
    outcome = with_client_cached(
        ctx,
        login.client_uuid,
        lambda: ctx.store.check_api_key_grant(login.client_uuid, login.gen, service_id),
        LoginTokenInvalid,
    )
    if outcome < 0:
        raise LoginTokenInvalid()
    if outcome == 0 or claims is None:
        raise ServiceIdRejected()
    key_id = str(uuid.uuid4())
    # The key lives as long as its Service ID: until the SERVICE_ID's own `exp`.
    expires_at = utc_datetime(claims.expires_at)
    ctx.accounts.insert_api_key(
        login.client_uuid, key_id, claims.service_id, utc_datetime(ctx.clock()), expires_at
    )
    return key_id


def authenticate(ctx: Runtime, authorization: str | None) -> tuple[ServiceIdClaims, dict[str, str]]:
    """The live Service ID of the header and its client's profile; one round trip."""
    claims = service_id_claims(ctx, bearer_token(authorization))
    profile = with_client_cached(
        ctx,
        claims.service_id,
        lambda: ctx.store.authenticate_service_id(claims.service_id),
        ServiceIdInvalid,
    )
    if profile is None:
        raise ServiceIdInvalid()
    return claims, profile


def describe(ctx: Runtime, authorization: str | None) -> dict[str, Any]:
    """GET /api/clients/me: the client profile, the serviceId and its expiry."""
    claims, profile = authenticate(ctx, authorization)
    return {
        "client": public_user(profile),
        "serviceId": claims.service_id,
        "expires_at": _iso(claims.expires_at),
        "expires_in": max(0, claims.expires_at - int(ctx.clock())),
    }


def revoke(ctx: Runtime, authorization: str | None) -> dict[str, Any]:
    """Revoke the presented Service ID at once; one round trip."""
    claims = service_id_claims(ctx, bearer_token(authorization))
    revoked = with_client_cached(
        ctx,
        claims.service_id,
        lambda: ctx.store.revoke_service_id(claims.service_id),
        ServiceIdInvalid,
    )
    if not revoked:
        raise ServiceIdInvalid()
    return {"serviceId": claims.service_id}


def _iso(timestamp: int) -> str:
    return iso_utc(utc_datetime(timestamp))
