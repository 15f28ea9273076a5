"""POST /api/v1/generate-auth-token: a signed partner call that issues a login token."""

from __future__ import annotations

from flask import Blueprint, Response

from shared.observability import LOGIN_TOKENS_ISSUED, count_event
from shared.responses import sabong_body
from shared.web import json_response, raw_body

from ..issuance import generate_auth_token as issue
from ..runtime import now, runtime
from ..signature import authenticate

bp = Blueprint("tokens", __name__)


@bp.post("/api/v1/generate-auth-token")
def generate_auth_token() -> Response:
    """Signature first, then validation; one database transaction and one Redis round trip."""
    rt = runtime()
    current = now()
    signature = authenticate(rt.client_secrets, current)
    data = issue(rt.users, rt.store, raw_body(), signature, current, rt.login_base_url)
    count_event(LOGIN_TOKENS_ISSUED)
    return json_response(sabong_body("success", "Auth token generated successfully", data), 200)
