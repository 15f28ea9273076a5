"""LeanCycleFlask against Flask itself: the same requests through two apps built alike
answer alike and call every hook, handler and signal in the same order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask import Blueprint, Flask, abort, after_this_request, g, session
from flask import request as current_request
from werkzeug.test import Client

from shared.request_cycle import LeanCycleFlask

SIGNALS = (
    "request_started",
    "request_finished",
    "request_tearing_down",
    "got_request_exception",
    "appcontext_pushed",
    "appcontext_popped",
    "appcontext_tearing_down",
)


def build(cls: type[Flask], events: list[str], propagate: bool = False) -> Flask:
    """An app with hooks at every level, nested blueprints, error handlers and routes
    that take every way through the request cycle; `events` records what runs."""
    app = cls(__name__)
    app.secret_key = "test-secret-key-of-some-length"
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    record = events.append

    @app.url_value_preprocessor
    def preprocess(endpoint: str | None, values: dict[str, Any] | None) -> None:
        record(f"preprocess:{endpoint}:{sorted(values or {})}")

    @app.before_request
    def first_before() -> Any:
        record("app.before")
        return "short-circuited" if current_request.path == "/short" else None

    @app.after_request
    def app_after_one(response: flask.Response) -> flask.Response:
        record("app.after.1")
        return response

    @app.after_request
    def app_after_two(response: flask.Response) -> flask.Response:
        record("app.after.2")
        response.headers["X-After"] = "2"
        return response

    @app.teardown_request
    def app_teardown(error: BaseException | None) -> None:
        record(f"app.teardown:{type(error).__name__ if error else None}")

    @app.teardown_appcontext
    def appcontext_teardown(error: BaseException | None) -> None:
        record(f"appcontext.teardown:{type(error).__name__ if error else None}")

    @app.errorhandler(KeyError)
    def key_error(error: KeyError) -> tuple[str, int]:
        record("handler:KeyError")
        return "handled", 418

    add_routes(app, record)
    app.register_blueprint(nested_blueprints(record))
    for name in SIGNALS:
        signal = getattr(flask, name)
        signal.connect(lambda sender, name=name, **extra: record(f"signal:{name}"), app, weak=False)
    return app


def add_routes(app: Flask, record: Callable[[str], None]) -> None:
    @app.get("/")
    def index() -> str:
        record("view:index")
        return "ok"

    @app.get("/short")
    def short() -> str:  # never reached: the before hook answers
        return "view"

    @app.post("/session")
    def write_session() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/handled")
    def handled() -> str:
        raise KeyError("x")

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("unhandled")

    @app.get("/forbidden")
    def forbidden() -> str:
        abort(403)

    @app.get("/after-this")
    def after_this() -> str:
        @after_this_request
        def add_header(response: flask.Response) -> flask.Response:
            record("after_this_request")
            response.headers["X-This"] = "1"
            return response

        return "ok"

    @app.get("/g")
    def fresh_g() -> str:
        seen = g.get("mark", "absent")
        g.mark = "set"
        return str(seen)


def nested_blueprints(record: Callable[[str], None]) -> Blueprint:
    outer = Blueprint("outer", __name__, url_prefix="/outer")
    inner = Blueprint("inner", __name__, url_prefix="/inner")
    for blueprint in (outer, inner):
        name = blueprint.name
        blueprint.before_request(lambda name=name: record(f"{name}.before"))
        blueprint.after_request(lambda response, name=name: record(f"{name}.after") or response)
        blueprint.teardown_request(lambda error, name=name: record(f"{name}.teardown"))

    @inner.route("/item/<int:number>", methods=["GET", "POST"])
    def item(number: int) -> str:
        record(f"view:item:{number}")
        return str(number * 2)

    @outer.get("/plain")
    def plain() -> str:
        return "outer"

    outer.register_blueprint(inner)
    return outer


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/", {}),
    ("HEAD", "/", {}),
    ("OPTIONS", "/", {}),
    ("POST", "/", {}),  # 405
    ("GET", "/missing", {}),  # 404: no endpoint, so app hooks only
    ("GET", "/short", {}),
    ("POST", "/session", {}),
    ("POST", "/session", {}),  # the cookie from the first comes back
    ("GET", "/handled", {}),
    ("GET", "/boom", {}),
    ("GET", "/forbidden", {}),
    ("GET", "/after-this", {}),
    ("GET", "/g", {}),
    ("GET", "/g", {}),  # g is new for every request
    ("GET", "/outer/plain", {}),
    ("GET", "/outer/inner/item/21", {}),
    ("POST", "/outer/inner/item/4", {"data": b"body"}),
    ("GET", "/outer/inner/item/x", {}),  # 404 under a blueprint's prefix
]


def run_all(app: Flask, events: list[str]) -> list[tuple[Any, ...]]:
    """Every request of REQUESTS: status, headers, body and the events it caused."""
    client = Client(app)
    seen = []
    for method, path, extra in REQUESTS:
        events.clear()
        response = client.open(path, method=method, **extra)
        headers = sorted((k, v) for k, v in response.headers.items() if k != "Date")
        seen.append((method, path, response.status, headers, response.data, list(events)))
        assert not flask.has_request_context() and not flask.has_app_context()
    return seen


def test_every_request_answers_and_calls_hooks_as_flask_does() -> None:
    flask_events: list[str] = []
    lean_events: list[str] = []
    expected = run_all(build(Flask, flask_events), flask_events)
    found = run_all(build(LeanCycleFlask, lean_events), lean_events)
    for want, got in zip(expected, found, strict=True):
        assert got == want
    # The comparison covers what it should: hooks at every level, handlers, signals.
    everything = {event for *_, events in expected for event in events}
    for event in ("inner.before", "outer.after", "handler:KeyError", "after_this_request",
                  "signal:got_request_exception", "appcontext.teardown:None"):  # fmt: skip
        assert event in everything
    assert [row[4] for row in found if row[1] == "/g"] == [b"absent", b"absent"]


def test_an_unhandled_error_propagates_after_the_same_teardown() -> None:
    results = []
    for cls in (Flask, LeanCycleFlask):
        events: list[str] = []
        app = build(cls, events, propagate=True)
        with pytest.raises(RuntimeError, match="unhandled"):
            Client(app).get("/boom")
        results.append(events)
        assert not flask.has_request_context() and not flask.has_app_context()
    assert results[0] == results[1]
    assert "app.teardown:RuntimeError" in results[1]


def test_a_request_inside_an_active_app_context_uses_it() -> None:
    app = build(LeanCycleFlask, [])
    with app.app_context():
        g.mark = "outer"
        assert Client(app).get("/g").data == b"outer"  # as Flask: the active one is used
        assert g.mark == "set"
    assert not flask.has_app_context()


def test_the_test_clients_kept_context_still_works() -> None:
    app = build(LeanCycleFlask, [])
    with app.test_client() as client:
        assert client.get("/outer/plain").data == b"outer"
        assert current_request.path == "/outer/plain"  # Flask's own cycle kept it
    assert not flask.has_request_context()


def test_hooks_are_gathered_once_per_blueprint() -> None:
    app = build(LeanCycleFlask, [])
    client = Client(app)
    client.get("/outer/inner/item/1")
    hooks = app.hooks_for("outer.inner")  # type: ignore[attr-defined]
    client.get("/outer/inner/item/2")
    assert app.hooks_for("outer.inner") is hooks  # type: ignore[attr-defined]
    assert len(hooks.before_request) == 3 and len(hooks.teardown_request) == 3
