"""Flask glue used by both services: strict JSON bodies, JSON responses, health checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request

from .exceptions import BadRequest
from .responses import to_json

JSON_MIMETYPE = "application/json"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signer it builds for every request: a
    request without any cookie (every partner API call) has an empty session."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


class ServiceFlask(Flask):
    """Flask as both services use it: what Flask re-checks on every request is done once."""

    session_interface = CookieSessions()

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask asks for every hook and view, on every request, whether it is `async`
        (an inspect call each): the answer never changes, so it is remembered."""
        found = self._synchronous.get(func)
        if found is None:
            found = self._synchronous[func] = super().ensure_sync(func)
        return found


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response with the given status and extra headers."""
    return Response(to_json(body), status=status, mimetype=JSON_MIMETYPE, headers=headers)


def raw_body() -> bytes:
    """The request body exactly as received (cached, so signatures see the same bytes)."""
    return request.get_data(cache=True)


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Decode strict UTF-8 JSON that must be an object; anything else is BadRequest."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest() from None
    if not isinstance(value, dict):
        raise BadRequest()
    return value


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them unless told not to."""
    raise ValueError(f"invalid JSON constant {name}")


def health_blueprint(ready: Callable[[], bool], render: Callable[[bool], Response]) -> Blueprint:
    """`/healthz` (process alive, no I/O) and `/readyz` (`ready()` must be true)."""
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return render(True)

    @bp.get("/readyz")
    def readyz() -> Response:
        return render(ready())

    return bp
