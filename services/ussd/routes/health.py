"""GET /healthz (no I/O) and GET /readyz (Redis answers PING)."""

from __future__ import annotations

from flask import Response

from shared.redis import ping
from shared.responses import k2_body
from shared.web import health_blueprint, json_response

from ..context import current
from ..errors import UNAVAILABLE


def _ready() -> bool:
    return ping(current().store.redis)


def _render(ok: bool) -> Response:
    if ok:
        return json_response(k2_body(200, "OK", None), 200)
    return json_response(k2_body(503, UNAVAILABLE, None), 503)


bp = health_blueprint(_ready, _render)
