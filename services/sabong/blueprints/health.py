"""/healthz (no I/O) and /readyz (Redis reachable)."""

from __future__ import annotations

from flask import Response

from shared.redis import ping
from shared.responses import sabong_body
from shared.web import health_blueprint, json_response

from ..runtime import runtime


def ready() -> bool:
    """Redis answers PING in time."""
    return ping(runtime().store.client)


def render(ok: bool) -> Response:
    if ok:
        return json_response(sabong_body("success", "OK"), 200)
    return json_response(sabong_body("error", "Service unavailable"), 503)


bp = health_blueprint(ready, render)
