"""Login JWTs and Service IDs: issuing them and reading them from `Authorization`."""

from __future__ import annotations

from dataclasses import dataclass

from shared import tokens
from shared.exceptions import TokenExpired, TokenInvalid

from .exceptions import LoginTokenExpired, LoginTokenInvalid, ServiceIdExpired, ServiceIdInvalid
from .runtime import Runtime
from .store import is_uuid

# Far above any token we issue; refusing longer ones keeps garbage away from the JWT parser.
MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True)
class LoginClaims:
    """Who a login JWT speaks for: the client UUID and its credential generation."""

    client_uuid: str
    gen: int


@dataclass(frozen=True)
class ServiceIdClaims:
    """A genuine, unexpired Service ID (not yet checked against Redis)."""

    service_id: str
    issued_at: int
    expires_at: int


def issue_login_token(ctx: Runtime, client_uuid: str, gen: int) -> str:
    return tokens.issue(ctx.login_token, {"sub": client_uuid, "gen": gen}, now=int(ctx.clock()))


def issue_service_id(ctx: Runtime, service_id: str, now: int) -> str:
    # The payload is exactly serviceId, iat, exp (the seed's SERVICE_ID); nothing else.
    return tokens.issue(ctx.service_id_token, {"serviceId": service_id}, now=now)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


def login_claims(ctx: Runtime, authorization: str | None) -> LoginClaims:
    """Claims of the login JWT in the header; LoginTokenInvalid / LoginTokenExpired else."""
    token = bearer_token(authorization)
    if token is None:
        raise LoginTokenInvalid()
    try:
        claims = ctx.verified_login_tokens.verify(token, int(ctx.clock()))
    except TokenExpired:
        raise LoginTokenExpired() from None
    except TokenInvalid:
        raise LoginTokenInvalid() from None
    sub, gen = claims.get("sub"), claims.get("gen")
    if not is_uuid(sub) or not isinstance(gen, int) or isinstance(gen, bool):
        raise LoginTokenInvalid()
    return LoginClaims(client_uuid=sub, gen=gen)


def service_id_claims(ctx: Runtime, token: str | None) -> ServiceIdClaims:
    """Claims of a Service ID token; ServiceIdInvalid / ServiceIdExpired else."""
    if token is None or len(token) > MAX_TOKEN_CHARS:
        raise ServiceIdInvalid()
    try:
        claims = ctx.verified_service_ids.verify(token, int(ctx.clock()))
    except TokenExpired:
        raise ServiceIdExpired() from None
    except TokenInvalid:
        raise ServiceIdInvalid() from None
    service_id = claims.get("serviceId")
    if not is_uuid(service_id):
        raise ServiceIdInvalid()
    return ServiceIdClaims(service_id, issued_at=claims["iat"], expires_at=claims["exp"])
