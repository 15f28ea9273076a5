"""POST /api/auth/login."""

from __future__ import annotations

from flask import Blueprint, Response, request

from shared.responses import k2_body
from shared.web import json_object_body, json_response

from ..login import login
from ..runtime import runtime
from ..validation import login_fields

bp = Blueprint("auth", __name__, url_prefix="/api/auth")

# Tokens must not be kept by browsers or intermediaries.
NO_STORE = {"Cache-Control": "no-store"}


@bp.post("/login")
def login_view() -> Response:
    username, password = login_fields(json_object_body())
    # remote_addr is the peer as ProxyFix sees it: the client address the trusted gateway
    # appended to X-Forwarded-For (see USSD_TRUSTED_PROXY_COUNT in create_app).
    data = login(runtime(), username, password, request.remote_addr or "")
    return json_response(k2_body(200, "Login successful", data), 200, NO_STORE)
