"""shared.web: the Flask class both services use (cookie sessions, URL adapter, response
headers), each the same as Flask's own where it takes a shorter way."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, Response, current_app, request, session
from flask.wrappers import Request
from itsdangerous import BadSignature
from werkzeug.exceptions import BadHost, ClientDisconnected
from werkzeug.routing import MapAdapter
from werkzeug.test import EnvironBuilder

from shared.exceptions import BadRequest
from shared.request_cycle import current_flask_app, current_request
from shared.web import (
    JSON_MIMETYPE,
    MAX_KEPT_HOSTS,
    ServiceFlask,
    ServiceRequest,
    ServiceResponse,
    parse_json,
    raw_body,
)


def make_app(secret: str, *fallbacks: str) -> ServiceFlask:
    app = ServiceFlask(__name__)
    app.config.update(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=list(fallbacks))
    return app


def test_the_session_serializer_is_built_once_per_set_of_keys() -> None:
    app = make_app("k" * 32)
    sessions = app.session_interface
    first = sessions.get_signing_serializer(app)
    assert first is not None
    assert sessions.get_signing_serializer(app) is first
    app.config["SECRET_KEY"] = "n" * 32
    rotated = sessions.get_signing_serializer(app)
    assert rotated is not None and rotated is not first
    assert rotated.loads(rotated.dumps({"sid": "x"})) == {"sid": "x"}


def test_a_cookie_signed_with_a_retired_key_is_refused() -> None:
    old = make_app("old-" + "k" * 28)
    sessions = old.session_interface
    old_serializer = sessions.get_signing_serializer(old)
    assert old_serializer is not None
    cookie = old_serializer.dumps({"sid": "victim"})
    rotating = make_app("new-" + "n" * 28, "old-" + "k" * 28)
    during = sessions.get_signing_serializer(rotating)
    assert during is not None and during.loads(cookie) == {"sid": "victim"}
    retired = make_app("new-" + "n" * 28)
    after = sessions.get_signing_serializer(retired)
    assert after is not None
    with pytest.raises(BadSignature):
        after.loads(cookie)


def test_without_a_secret_key_there_are_no_cookie_sessions() -> None:
    app = ServiceFlask(__name__)
    assert app.session_interface.get_signing_serializer(app) is None


ADAPTER_FIELDS = (
    "server_name", "script_name", "subdomain", "url_scheme", "path_info", "default_method",
    "query_args",
)  # fmt: skip


def adapter_fields(adapter: MapAdapter | None) -> tuple[Any, ...]:
    assert adapter is not None
    return tuple(getattr(adapter, name) for name in ADAPTER_FIELDS)


def environ_of(
    host: str, path: str = "/items/1", headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    builder = EnvironBuilder(path=path, headers={"Host": host, **(headers or {})}, **extra)
    return dict(builder.get_environ())


HOSTS = [
    "localhost", "LOCALHOST:8080", "example.com", "Bücher.example", "[::1]:5000",
    "127.0.0.1", "api.partner.example:443",
]  # fmt: skip


@pytest.mark.parametrize("host", HOSTS)
def test_the_url_adapter_is_the_one_flask_builds(host: str) -> None:
    app = ServiceFlask(__name__)
    app.add_url_rule("/items/<int:item>", "item", lambda item: str(item))
    environs = [
        environ_of(host),
        environ_of(host, "/items/2", query_string="a=1&b=%C3%A9"),
        environ_of(host, "/caf\u00e9/", base_url="https://localhost/mount"),
        environ_of(host, headers={"Connection": "Upgrade", "Upgrade": "websocket"}),
    ]
    for environ in environs * 2:  # the second time, the host's IDNA form is remembered
        ours = app.create_url_adapter(Request(environ))
        flasks = Flask.create_url_adapter(app, Request(environ))
        assert adapter_fields(ours) == adapter_fields(flasks)
    ours, flasks = Request(environ_of(host)), Request(environ_of(host))
    app.create_url_adapter(ours)
    Flask.create_url_adapter(app, flasks)
    assert ours.host == flasks.host  # what Flask leaves on the request


def test_a_host_that_is_no_domain_name_is_refused_as_flask_refuses_it() -> None:
    app = ServiceFlask(__name__)
    bad = environ_of("a" * 64 + ".example")  # a label over 63 characters: no IDNA form
    for _ in range(2):
        with pytest.raises(BadHost):
            app.create_url_adapter(Request(bad))
    assert not app._server_names


def test_host_header_flooding_keeps_the_remembered_hosts_bounded() -> None:
    app = ServiceFlask(__name__)
    for number in range(MAX_KEPT_HOSTS * 3):
        app.create_url_adapter(Request(environ_of(f"host-{number}.example")))
        assert len(app._server_names) <= MAX_KEPT_HOSTS


def responses() -> Iterator[tuple[str, Response]]:
    """Responses of every kind werkzeug's header pass treats differently."""
    yield "json", ServiceResponse(b'{"ok":true}', mimetype="application/json")
    yield "created", ServiceResponse(b"{}", status=201, headers={"X-Request-ID": "r1"})
    yield "no content", ServiceResponse(b"", status=204, headers={"Content-Length": "0"})
    yield "not modified", ServiceResponse(b"x", status=304, headers={"ETag": '"e"'})
    yield "switching", ServiceResponse(b"", status=101)
    yield "redirect", ServiceResponse(b"", status=303, headers={"Location": "/me?x=\u00e9"})
    yield "located", ServiceResponse(b"{}", headers={"Content-Location": "/caf\u00e9"})
    yield "streamed", ServiceResponse(iter([b"a", b"b"]), mimetype="text/plain")


@pytest.mark.parametrize("kind", [kind for kind, _ in responses()])
def test_response_headers_are_those_werkzeug_sends(kind: str) -> None:
    response = dict(responses())[kind]
    environ = environ_of("example.com", "/where")
    expected = Response.get_wsgi_headers(response, environ).to_wsgi_list()
    assert response.get_wsgi_headers(environ).to_wsgi_list() == expected


def bodies() -> Iterator[tuple[str, str, Response]]:
    """(kind, method, response) for every way werkzeug's body pass goes."""
    for method in ("GET", "HEAD"):
        for kind, response in responses():
            yield kind, method, response
    yield "text", "GET", ServiceResponse("caf\u00e9", mimetype="text/plain")
    yield "two pieces", "GET", ServiceResponse([b"a", b"b"])
    yield "passthrough", "GET", ServiceResponse([b"x"], direct_passthrough=True)
    closing = ServiceResponse(b"{}")
    closing.call_on_close(lambda: None)
    yield "on close", "GET", closing


@pytest.mark.parametrize(("kind", "method"), [(kind, method) for kind, method, _ in bodies()])
def test_response_bodies_are_those_werkzeug_sends(kind: str, method: str) -> None:
    def fresh() -> Response:
        return next(r for k, m, r in bodies() if (k, m) == (kind, method))

    environ = EnvironBuilder(method=method, path="/").get_environ()
    expected = Response.get_app_iter(fresh(), environ)
    found = fresh().get_app_iter(environ)
    assert list(found) == list(expected)
    if kind in ("json", "created", "located", "text") and method == "GET":
        assert type(found) is list  # the one-piece body goes out as it is
    if kind == "on close":
        assert not isinstance(found, list)  # its callback still runs at close()


def test_an_untouched_session_sets_no_cookie_and_a_read_one_varies_on_cookie() -> None:
    app = make_app("k" * 32)
    app.add_url_rule("/plain", "plain", lambda: "plain")
    app.add_url_rule("/read", "read", lambda: str(session.get("sid")))
    client = app.test_client()
    client.set_cookie("session", "not-a-valid-cookie")
    for path, vary in (("/plain", None), ("/read", "Cookie")):
        response = client.get(path)
        assert response.headers.get("Vary") == vary
        assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"x\\ud800"}',  # a lone high surrogate
        b'{"x\\udfff":1}',  # in a key
        b'[["\\uDC00"]]',  # upper-case hex, nested
        b'{"a":"\\\\","b":"\\ud83d"}',  # after an escaped backslash
    ],
)
def test_a_lone_surrogate_escape_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json(body)
    with pytest.raises(BadRequest):
        parse_json(body, exact=True)


def test_escapes_that_make_real_characters_are_accepted() -> None:
    assert parse_json(b'{"a":"\\u00e9\\ud83d\\ude00","b":"\\\\u0041"}') == {
        "a": "é😀",
        "b": "\\u0041",  # an escaped backslash, then the letters u0041
    }
    assert parse_json(b'{"amount":0.10}', exact=True) == {"amount": Decimal("0.10")}
    assert parse_json(b'{"amount":0.10}') == {"amount": 0.1}
    with pytest.raises(BadRequest):
        parse_json(b'{"amount":NaN}')
    with pytest.raises(BadRequest):
        parse_json(b'{"amount":1e999}')


def routed_app() -> ServiceFlask:
    """Static, variable, trailing-slash and method-restricted routes."""
    app = ServiceFlask(__name__)
    app.add_url_rule("/api/v1/credit-balance", "credit", lambda: "c", methods=["POST"])
    app.add_url_rule("/healthz", "health", lambda: "h")
    app.add_url_rule("/items/<int:item>", "item", lambda item: str(item))
    app.add_url_rule("/folder/", "folder", lambda: "f")
    app.add_url_rule("/login/<token>", "login", lambda token: token, methods=["GET", "POST"])
    return app


ROUTED_REQUESTS = [
    ("POST", "/api/v1/credit-balance"), ("post", "/api/v1/credit-balance"),
    ("GET", "/api/v1/credit-balance"), ("OPTIONS", "/api/v1/credit-balance"),
    ("GET", "/healthz"), ("HEAD", "/healthz"), ("DELETE", "/healthz"),
    ("GET", "/items/7"), ("GET", "/items/x"), ("GET", "/folder"), ("GET", "/folder/"),
    ("GET", "//healthz"), ("GET", "/healthz/"), ("GET", "/HEALTHZ"), ("POST", "/login/abc"),
    ("GET", "/nowhere"),
]  # fmt: skip


def match_outcome(adapter: MapAdapter | None) -> tuple[Any, ...]:
    """What a match gives: the rule and its arguments, or the exception and its target."""
    assert adapter is not None
    try:
        rule, view_args = adapter.match(return_rule=True)
    except Exception as e:  # werkzeug's HTTPExceptions and RequestRedirect
        return type(e).__name__, getattr(e, "new_url", None), getattr(e, "valid_methods", None)
    return rule, dict(view_args)


def test_url_matches_are_werkzeugs_the_first_time_and_every_time_after() -> None:
    app = routed_app()
    for _ in range(3):  # the first pass finds; the later ones read what was kept
        for method, path in ROUTED_REQUESTS:
            environ = environ_of("localhost", path, method=method)
            ours = match_outcome(app.create_url_adapter(Request(environ)))
            werkzeugs = match_outcome(Flask.create_url_adapter(app, Request(environ)))
            assert ours == werkzeugs, (method, path)
    kept = {(path, method) for path, method in app._static_routes}
    assert kept == {
        ("/api/v1/credit-balance", "POST"), ("/api/v1/credit-balance", "OPTIONS"),
        ("/healthz", "GET"), ("/healthz", "HEAD"), ("/folder/", "GET"),
    }  # fmt: skip


def test_a_kept_match_hands_out_fresh_view_arguments() -> None:
    app = routed_app()
    environ = environ_of("localhost", "/healthz")
    for _ in range(2):
        adapter = app.create_url_adapter(Request(environ))
        assert adapter is not None
        _, view_args = adapter.match(return_rule=True)
        assert view_args == {}
        view_args["changed"] = "by a url value preprocessor"  # type: ignore[index]


def test_method_and_path_flooding_keeps_the_kept_routes_bounded() -> None:
    app = routed_app()
    for number in range(300):
        method = "".join(c.upper() if number >> i & 1 else c for i, c in enumerate("post"))
        for path in ("/api/v1/credit-balance", f"/items/{number}", f"/x{number}"):
            app.create_url_adapter(Request(environ_of("localhost", path, method=method)))
            adapter = app.create_url_adapter(Request(environ_of("localhost", path, method=method)))
            match_outcome(adapter)
    assert set(app._static_routes) == {("/api/v1/credit-balance", "POST")}


def test_explicit_match_arguments_go_werkzeugs_way() -> None:
    app = routed_app()
    adapter = app.create_url_adapter(Request(environ_of("localhost", "/healthz")))
    assert adapter is not None
    assert adapter.match("/items/3", "GET") == ("item", {"item": 3})
    assert adapter.match() == ("health", {})
    assert not app._static_routes  # only what Flask asks for the request itself is kept


@pytest.mark.parametrize("limit", [None, 64])
def test_the_body_limit_is_the_one_flask_reads(limit: int | None) -> None:
    app = ServiceFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = limit
    environ = environ_of("localhost", "/upload", method="POST", data=b"x" * 100)
    with app.app_context():
        assert ServiceRequest(environ).max_content_length == Request(environ).max_content_length
        ours, flasks = ServiceRequest(environ), Request(environ)
        ours.max_content_length = flasks.max_content_length = 10  # Flask 3.1's per request
        assert ours.max_content_length == flasks.max_content_length == 10
    assert ServiceRequest(environ).max_content_length == Request(environ).max_content_length


def test_a_body_over_the_limit_is_refused_with_413() -> None:
    app = ServiceFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64
    app.add_url_rule("/upload", "upload", lambda: str(len(raw_body())), methods=["POST"])
    client = app.test_client()
    assert client.post("/upload", data=b"x" * 64).get_data() == b"64"
    assert client.post("/upload", data=b"x" * 65).status_code == 413


def body_environ(body: bytes, terminated: bool, declared: int | None = None) -> dict[str, Any]:
    """A POST's environ; `declared`: a Content-Length other than the body's own length."""
    environ = environ_of("localhost", "/upload", method="POST", data=body)
    if declared is not None:
        environ["CONTENT_LENGTH"] = str(declared)
    if terminated:  # as gevent's and gunicorn's servers say: they end the input themselves
        environ["wsgi.input_terminated"] = True
    return environ


def read_both_ways(environ: dict[str, Any], limit: int | None = None) -> tuple[Any, Any]:
    """What ServiceRequest and werkzeug's own Request read from copies of one environ:
    the body (asked for twice), or the exception's type."""
    outcomes = []
    for kind in (ServiceRequest, Request):
        copy = {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}
        read = kind(copy)
        read.max_content_length = limit
        try:
            outcomes.append((read.get_data(), read.get_data()))
        except Exception as exc:
            outcomes.append(type(exc))
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("terminated", [False, True])
@pytest.mark.parametrize(
    ("body", "limit"),
    [(b'{"clientId": "A"}', None), (b"", None), (b"x" * 63, 64), (b"x" * 65, 64)],
)
def test_a_declared_body_is_read_as_werkzeug_reads_it(
    body: bytes, limit: int | None, terminated: bool
) -> None:
    ours, werkzeugs = read_both_ways(body_environ(body, terminated), limit)
    assert ours == werkzeugs  # over the limit: 413 for both, before anything is read


@pytest.mark.parametrize("declared", [20, 5, -3])  # -3: a Content-Length werkzeug reads as 0
def test_a_body_other_than_declared_is_read_as_werkzeug_reads_it(declared: int) -> None:
    # Only an input the server does not end itself can differ from Content-Length.
    ours, werkzeugs = read_both_ways(body_environ(b"x" * 10, False, declared))
    assert ours == werkzeugs


class BrokenInput(io.BytesIO):
    """An input whose connection breaks mid-body."""

    def read(self, size: int | None = -1) -> bytes:
        raise ConnectionResetError("peer went away")

    def readinto(self, buffer: Any) -> int:
        raise ConnectionResetError("peer went away")


@pytest.mark.parametrize("terminated", [False, True])
def test_a_connection_broken_mid_body_is_a_client_disconnect(terminated: bool) -> None:
    outcomes = []
    for kind in (ServiceRequest, Request):
        environ = body_environ(b"x" * 10, terminated)
        environ["wsgi.input"] = BrokenInput()
        try:
            kind(environ).get_data()
        except Exception as exc:
            outcomes.append(type(exc))
    # werkzeug reads an input the server ends, with no size limit, unwrapped: the socket's
    # own error would reach the app's error handler (a 500); a disconnect is a 400.
    assert outcomes == [
        ClientDisconnected,
        ConnectionResetError if terminated else ClientDisconnected,
    ]


def test_a_stream_read_first_leaves_the_body_to_werkzeug() -> None:
    read = ServiceRequest(body_environ(b"abcdef", terminated=True))
    assert read.stream.read(2) == b"ab"
    assert read.get_data() == b"cdef"  # what werkzeug's own stream still had


def test_a_body_without_a_declared_length_goes_werkzeugs_way() -> None:
    environ = body_environ(b"chunked", terminated=True)
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    ours, werkzeugs = read_both_ways(environ)
    assert ours == werkzeugs == (b"chunked", b"chunked")


def test_a_declared_body_skips_werkzeugs_limited_stream() -> None:
    read = ServiceRequest(body_environ(b"abc", terminated=True))
    assert read.get_data(as_text=True) == "abc"
    assert type(read.stream) is io.BytesIO and read.stream.read() == b""  # no LimitedStream
    form = ServiceRequest(
        environ_of("localhost", "/f", method="POST", data={"a": "1"})
        | {"wsgi.input_terminated": True}
    )
    assert form.get_data() == b"a=1" and form.form["a"] == "1"  # a form parses from the cache


def test_current_request_and_app_are_what_the_proxies_name() -> None:
    app = ServiceFlask(__name__)
    seen: list[bool] = []

    def view() -> str:
        seen.append(current_request() is request._get_current_object())  # type: ignore[attr-defined]
        seen.append(current_flask_app() is current_app._get_current_object())  # type: ignore[attr-defined]
        return "ok"

    app.add_url_rule("/", "view", view)
    assert app.test_client().get("/").status_code == 200
    assert seen == [True, True]
    with pytest.raises(LookupError):
        current_request()


JSON_STATUSES = [200, 201, 400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503, 299]


@pytest.mark.parametrize("status", JSON_STATUSES)
def test_a_json_response_made_directly_is_the_one_werkzeug_makes(status: int) -> None:
    body = b'{"status":"success","message":"caf\xc3\xa9"}'
    environ = EnvironBuilder(path="/").get_environ()
    for _ in range(2):  # the first response of a status is werkzeug's; the next are direct
        made = ServiceResponse.of_json(body, status)
        usual = ServiceResponse(body, status=status, mimetype=JSON_MIMETYPE)
        assert type(made) is type(usual)
        assert vars(made) == vars(usual)  # every attribute, the headers as a set
        assert list(made.headers.items()) == list(usual.headers.items())  # and in order
        assert (made.status, made.status_code, made.get_data()) == (usual.status, status, body)
        made.headers["X-Request-Id"] = "abc"  # as the after-request hook adds it
        usual.headers["X-Request-Id"] = "abc"
        sent = Client(made, environ)
        assert sent == Client(usual, environ)
        assert sent.headers == [
            ("Content-Type", JSON_MIMETYPE),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", "abc"),
        ]


class Client:
    """What a WSGI server receives from a response: status line, header list, body."""

    def __init__(self, response: Response, environ: dict[str, Any]) -> None:
        captured: list[Any] = []
        body = response(environ, lambda status, headers: captured.extend((status, headers)))
        self.status, self.headers = captured[0], list(captured[1])
        self.body = b"".join(body)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Client) and vars(self) == vars(other)
