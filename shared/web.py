"""Flask glue used by both services: strict JSON bodies, JSON responses, health checks,
URL matching without redirects, and the same-origin check of state-changing requests."""

from __future__ import annotations

import io
import json
import math
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request
from itsdangerous import URLSafeTimedSerializer
from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.routing import MapAdapter, Rule
from werkzeug.wsgi import get_content_length, get_host

from .exceptions import BadRequest
from .request_cycle import LeanCycleFlask, current_flask_app, current_request
from .responses import to_json

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

JSON_MIMETYPE = "application/json"
# ServiceResponse.of_json: status code -> werkzeug's status line for it (the services answer
# with a handful of statuses; the bound only guards against a bug making new ones).
_JSON_STATUS_LINES: dict[int, str] = {}
MAX_KEPT_STATUS_LINES = 64


# Host headers whose IDNA form a ServiceFlask keeps (a client may send any host: bounded).
MAX_KEPT_HOSTS = 64
# Signing serializers kept per set of session keys (a process has one or two sets; the
# bound only guards against a process that keeps changing its key).
MAX_KEPT_SERIALIZERS = 8


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signer it builds for every request: a
    request without any cookie (every partner API call) has an empty session, and the
    serializer is built once per set of keys (Flask builds one per request, and building
    one serializes a test value to learn that the serializer makes text)."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[str | bytes, ...], URLSafeTimedSerializer] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # What Flask does for a session never touched and still empty (every partner API
        # call): nothing, after reading six cookie settings from the config.
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        found = self._serializers.get(keys)
        if found is None:
            found = super().get_signing_serializer(app)
            if found is None:
                return None
            if len(self._serializers) >= MAX_KEPT_SERIALIZERS:
                self._serializers.clear()
            self._serializers[keys] = found
        return found


def _wsgi_string(environ: WSGIEnvironment, name: str) -> str | None:
    """An environ string as werkzeug's URL map reads it (WSGI's latin-1 back to UTF-8)."""
    value = environ.get(name)
    return None if value is None else value.encode("latin-1").decode(errors="replace")


class ServiceRequest(Request):
    """Flask's request, reading the app's body-size limit without the `current_app` proxy
    (Flask's property looks the app up twice, on every body read)."""

    @property
    def max_content_length(self) -> int | None:
        """Flask's own rule: this request's limit if set, else the app's MAX_CONTENT_LENGTH."""
        if self._max_content_length is not None:
            return self._max_content_length
        try:
            app = current_flask_app()
        except LookupError:  # no app context: werkzeug's default, as Flask
            return super(Request, self).max_content_length
        limit: int | None = app.config["MAX_CONTENT_LENGTH"]
        return limit

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def get_data(  # type: ignore[override]  # werkzeug's overloads, one body
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        """werkzeug's `get_data`; a body of declared length is read from the server's input
        directly, not through the LimitedStream werkzeug wraps around it (3 us less)."""
        if (
            cache
            and not parse_form_data
            and not self.shallow
            and "stream" not in self.__dict__
            and getattr(self, "_cached_data", None) is None
        ):
            data = self._declared_body()
            if data is not None:
                self._cached_data = data
        return super().get_data(cache, as_text, parse_form_data)  # type: ignore[call-overload,no-any-return]

    def _declared_body(self) -> bytes | None:
        """The body when Content-Length declares it (None: chunked or undeclared), with
        werkzeug's checks: 413 over the size limit, a disconnect (400) when the connection
        breaks or an input the server does not end runs short."""
        environ = self.environ
        length = get_content_length(environ)
        if length is None:
            return None
        limit = self.max_content_length
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        try:
            data: bytes = environ["wsgi.input"].read(length)
        except (OSError, ValueError):  # as werkzeug: the connection broke mid-body
            raise ClientDisconnected() from None
        # A server that ends the input itself (gevent, gunicorn) gives a short body as it
        # is, as werkzeug does; for any other, the client went away before it was sent.
        if len(data) < length and "wsgi.input_terminated" not in environ:
            raise ClientDisconnected()
        self.__dict__["stream"] = io.BytesIO()  # consumed: a later read gives nothing
        return data


class StaticRouteAdapter(MapAdapter):
    """werkzeug's URL adapter, which remembers what a path matched when the rule is that
    very path, with no variable parts: the next request for it skips werkzeug's matcher.

    Only a successful match is kept, so redirects, 404 and 405 go werkzeug's way each
    time. A rule without variables always matches its path, with empty view arguments, so
    the kept answer is the matcher's own; the routes cannot change once the first request
    is served (Flask refuses new rules then), and there are at most rules x methods paths.
    """

    def __init__(self, kept: dict[tuple[str, str], Rule], *args: Any) -> None:
        super().__init__(*args)
        self._kept = kept

    def match(
        self,
        path_info: str | None = None,
        method: str | None = None,
        return_rule: bool = False,
        query_args: Mapping[str, Any] | str | None = None,
        websocket: bool | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        """MapAdapter.match; the request's own path and method as Flask asks are kept."""
        asked_otherwise = (path_info, method, query_args, websocket) != (None, None, None, None)
        if not return_rule or asked_otherwise or self.websocket:
            # werkzeug overloads match() on return_rule's literal value; this passes it on.
            asked: tuple[Any, Mapping[str, Any]] = super().match(
                path_info,
                method,
                return_rule,
                query_args,
                websocket,  # type: ignore[call-overload]
            )
            return asked
        key = (self.path_info, self.default_method.upper())
        rule = self._kept.get(key)
        if rule is not None:
            return rule, {}  # a new dict: url value preprocessors may change it
        found, view_args = super().match(return_rule=True)
        if not view_args and not found.arguments and found.rule == self.path_info:
            self._kept[key] = found
        return found, view_args


class ServiceResponse(Response):
    """Flask's response, sent with its own headers when werkzeug would only copy them."""

    @classmethod
    def of_json(cls, body: bytes, status: int) -> ServiceResponse:
        """`cls(body, status=status, mimetype=JSON_MIMETYPE)`, made directly.

        werkzeug checks each header value for line breaks and parses the status on every
        response (3.3 us of construction here, against 1.2 us): these two headers are
        always valid, and each status line is werkzeug's own, kept from the first
        response made with it. tests/shared/test_web.py compares every attribute.
        """
        status_line = _JSON_STATUS_LINES.get(status)
        if status_line is None:
            response = cls(body, status=status, mimetype=JSON_MIMETYPE)
            if len(_JSON_STATUS_LINES) < MAX_KEPT_STATUS_LINES:
                _JSON_STATUS_LINES[status] = response.status
            return response
        response = cls.__new__(cls)
        headers = Headers()
        # Headers keeps its fields in _list; filling it skips the per-value checks.
        headers._list = [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(body)))]
        response.headers = headers
        response._status = status_line
        response._status_code = status
        response.direct_passthrough = False
        response._on_close = []
        response.response = [body]
        return response

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        # werkzeug copies every header (validating each again) to make a Location absolute,
        # drop a Content-Length that the status forbids, or count a missing one. A response
        # with a length and neither location header, whose status allows a body, has
        # none of that to do.
        status = self.status_code
        if status < 200 or status in (204, 304):
            return super().get_wsgi_headers(environ)
        has_length = False
        for key, _ in self.headers:
            lowered = key.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in ("location", "content-location"):
                return super().get_wsgi_headers(environ)
        return self.headers if has_length else super().get_wsgi_headers(environ)

    def get_app_iter(self, environ: WSGIEnvironment) -> Iterable[bytes]:
        # werkzeug wraps even a one-piece body in a generator and a ClosingIterator, whose
        # close() closes the body and runs call_on_close callbacks: a list holding one
        # bytes object, with no such callback, has nothing to encode or close.
        body = self.response
        status = self.status_code
        if (
            type(body) is list
            and len(body) == 1
            and type(body[0]) is bytes
            and not self._on_close
            and not self.direct_passthrough
            and environ["REQUEST_METHOD"] != "HEAD"
            and status >= 200
            and status not in (204, 304)
        ):
            return body
        return super().get_app_iter(environ)


class ServiceFlask(LeanCycleFlask):
    """Flask as both services use it: what Flask re-checks on every request is done once."""

    session_interface = CookieSessions()
    request_class = ServiceRequest
    response_class = ServiceResponse

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._server_names: dict[str, str] = {}  # Host header -> the adapter's server name
        self._static_routes: dict[tuple[str, str], Rule] = {}  # see StaticRouteAdapter

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        """Flask's URL adapter for a request, made in one pass over the environ.

        Flask reads the host, then werkzeug's `bind_to_environ` reads it again, re-decodes
        the path and IDNA-encodes the host on every request. With the services' plain
        routing (no SERVER_NAME, TRUSTED_HOSTS, host or subdomain matching) the same
        adapter is built here directly; a host is IDNA-encoded once, by werkzeug itself.
        """
        if request is None or not self._routes_by_path_alone():
            return super().create_url_adapter(request)
        environ = request.environ
        host = get_host(environ)
        server_name = self._server_names.get(host)
        if server_name is None or "HTTP_UPGRADE" in environ:  # ws:// schemes: werkzeug's way
            adapter = super().create_url_adapter(request)
            if adapter is not None:
                if len(self._server_names) >= MAX_KEPT_HOSTS:
                    self._server_names.clear()  # the Host header is the client's to choose
                self._server_names[host] = adapter.server_name
            return adapter
        request.host = host  # as Flask sets it (a cached property)
        script_name = _wsgi_string(environ, "SCRIPT_NAME")
        path_info = _wsgi_string(environ, "PATH_INFO")
        return StaticRouteAdapter(
            self._static_routes,
            self.url_map,
            server_name,
            "/" if script_name is None else script_name,
            self.url_map.default_subdomain or "",
            environ["wsgi.url_scheme"],
            "/" if path_info is None else path_info,
            environ["REQUEST_METHOD"],
            _wsgi_string(environ, "QUERY_STRING"),
        )

    def _routes_by_path_alone(self) -> bool:
        """No setting that makes Flask bind the URL map differently from the path alone."""
        config = self.config
        return (
            config["SERVER_NAME"] is None
            and config["TRUSTED_HOSTS"] is None
            and not self.url_map.host_matching
            and not self.subdomain_matching
        )

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask asks for every hook and view, on every request, whether it is `async`
        (an inspect call each): the answer never changes, so it is remembered."""
        found = self._synchronous.get(func)
        if found is None:
            found = self._synchronous[func] = super().ensure_sync(func)
        return found


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response with the given status and extra headers."""
    if headers:
        return ServiceResponse(
            to_json(body), status=status, mimetype=JSON_MIMETYPE, headers=headers
        )
    return ServiceResponse.of_json(to_json(body), status)


def raw_body() -> bytes:
    """The request body exactly as received (cached, so signatures see the same bytes)."""
    return current_request().get_data(cache=True)


def parse_json(data: bytes, exact: bool = False) -> Any:
    """Decode strict UTF-8 JSON; BadRequest for anything a later step could not handle.

    Refused besides bad syntax: NaN/Infinity, numbers too large for a float (`1e999`
    would become infinity), integers beyond Python's digit limit, nesting deeper than the
    parser's recursion, and strings that are not Unicode scalar values: a `\\ud800`
    escape decodes to a lone surrogate, which no UTF-8 encoder (Redis, logs, templates)
    accepts, so it must stop here rather than fail as a 500 somewhere downstream.

    With `exact`, numbers with a fraction or exponent become Decimal, never float: money
    is parsed digit for digit (`0.1` stays 0.1; `1e309` is a huge Decimal, not infinity,
    left for validation to refuse as over the maximum).
    """
    decoder = _EXACT_DECODER if exact else _FLOAT_DECODER
    try:
        value = decoder.decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest() from None
    # Strict UTF-8 decoding lets no surrogate through: only a \u escape can make one, so a
    # body without any needs no look at its strings.
    if b"\\u" in data and not _all_strings_are_unicode(value):
        raise BadRequest()
    return value


def parse_json_object(data: bytes, exact: bool = False) -> dict[str, Any]:
    """Decode strict UTF-8 JSON that must be an object; anything else is BadRequest.

    `exact`: fractions as Decimal (see parse_json)."""
    value = parse_json(data, exact)
    if not isinstance(value, dict):
        raise BadRequest()
    return value


def json_object_body() -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}`. A body that is sent must
    be declared `application/json` (UTF-8) and be a JSON object, else BadRequest."""
    data = raw_body()
    if not data:
        return {}
    if request.mimetype != JSON_MIMETYPE:
        raise BadRequest()
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise BadRequest()
    return parse_json_object(data)


def ensure_empty_or_json() -> None:
    """For endpoints that take no body: one that is sent anyway must still be valid JSON."""
    data = raw_body()
    if data:
        parse_json(data)


def is_unicode_text(text: str) -> bool:
    """Whether `text` holds only Unicode scalar values (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _all_strings_are_unicode(value: Any) -> bool:
    """Every string in a decoded JSON value, keys included, is valid Unicode.

    Iterative, so a document nested as deep as the parser allows cannot exhaust the stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_unicode_text(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them unless told not to."""
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    """A JSON fraction or exponent as a float; one that overflows to infinity is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


# Built once: json.loads with options builds a decoder and its scanner on every call.
_FLOAT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_EXACT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=Decimal)


def without_url_redirects(app: Flask) -> None:
    """Match URLs as they are: no merging of `//`, no redirect adding or removing a slash.

    Werkzeug answers `GET /login//abc` with a 308 whose Location is absolute and built
    from the request's Host header (attacker-chosen, or the internal address when there
    is none), and a 308 replays a POST with its body. With both off, such a path simply
    matches or is a 404. Call before any route is added: rules take the map's defaults
    when they are bound.
    """
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.redirect_defaults = False
    for rule in app.url_map.iter_rules():  # e.g. a static route Flask added itself
        rule.merge_slashes = False
        rule.strict_slashes = False


def origin_of(url: str) -> str:
    """The origin (`scheme://host[:port]`, lower case, default port dropped) of a URL."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{scheme}://{host}{port}"


def is_cross_site_request(own_origin: str) -> bool:
    """Whether the browser says this request came from another site or origin.

    Refused: `Sec-Fetch-Site: cross-site` or `same-site` (another origin; the browser sets
    this header and no page can forge it), or an `Origin` header that is present and not
    `own_origin`. One exception: `Origin: null` together with `Sec-Fetch-Site:
    same-origin`, which is what a browser sends for a POST from a page of ours served with
    `Referrer-Policy: no-referrer` (the login and /me pages). A request with neither
    header is not a browser's cross-site request (every browser sends Origin on a POST).
    The request's own Host is never taken as "our" origin: it is whatever the client wrote.
    """
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    origin = origin.strip().lower()
    if origin == "null" and site == "same-origin":
        return False
    return origin != own_origin


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
