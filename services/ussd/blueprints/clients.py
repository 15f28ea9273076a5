"""/api/clients: Service IDs (login JWT), API keys, and Service-ID-authenticated calls."""

from __future__ import annotations

from flask import Blueprint, Response, request

from shared.responses import k2_body
from shared.web import ensure_empty_or_json, json_object_body, json_response

from .. import service_ids
from ..credentials import login_claims
from ..runtime import runtime
from ..validation import service_id_field
from .auth import NO_STORE

bp = Blueprint("clients", __name__, url_prefix="/api/clients")


@bp.post("/generate-service-id")
def generate_service_id_view() -> Response:
    ctx = runtime()
    claims = login_claims(ctx, request.headers.get("Authorization"))
    ensure_empty_or_json()
    token = service_ids.generate_service_id(ctx, claims)
    return json_response(k2_body(201, "Service created", {"SERVICE_ID": token}), 201, NO_STORE)


@bp.post("/generate-api-key")
def generate_api_key_view() -> Response:
    ctx = runtime()
    claims = login_claims(ctx, request.headers.get("Authorization"))
    service_id = service_id_field(json_object_body())
    key_id = service_ids.create_api_key(ctx, claims, service_id)
    return json_response(k2_body(201, "API Key created", {"id": key_id}), 201, NO_STORE)


@bp.get("/me")
def me_view() -> Response:
    data = service_ids.describe(runtime(), request.headers.get("Authorization"))
    return json_response(k2_body(200, "Client retrieved", data), 200, NO_STORE)


@bp.post("/revoke-service-id")
def revoke_service_id_view() -> Response:
    data = service_ids.revoke(runtime(), request.headers.get("Authorization"))
    return json_response(k2_body(200, "Service ID revoked", data), 200)
