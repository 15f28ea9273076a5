"""GET /healthz (no I/O) and GET /readyz (Redis answers PING)."""

from __future__ import annotations

from flask import Response

from shared.redis import ping
from shared.responses import k2_body
from shared.web import health_blueprint, json_response

from ..errors import UNAVAILABLE
from ..runtime import runtime


def _ready() -> bool:
    return ping(runtime().store.redis)


def _render(ok: bool) -> Response:
    if ok:
        return json_response(k2_body(200, "OK", None), 200)
    return json_response(k2_body(503, UNAVAILABLE, None), 503)


bp = health_blueprint(_ready, _render)
