"""Flask's request cycle, with what never changes between requests looked up once."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextvars import Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from flask.ctx import AppContext, RequestContext
from flask.globals import _cv_app, _cv_request
from flask.helpers import _split_blueprint_path
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from flask.wrappers import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Hook = Callable[..., Any]
_NOT_GIVEN: Any = object()  # do_teardown_request's "the exception being handled"
# Where a request's hooks are kept on its RequestContext (the URL match does not change).
_HOOKS_ATTRIBUTE = "lean_cycle_hooks"


def current_request() -> Request:
    """The request being handled, as `flask.request` names it, in one look-up.

    Each attribute read through the `flask.request` proxy looks the request up again
    (about 1 us each on the bench machine); hot paths read it once with this.
    """
    return _cv_request.get().request


def current_flask_app() -> Flask:
    """The app handling the current request or app context, as `flask.current_app`."""
    return _cv_app.get().app


@dataclass(frozen=True)
class EndpointHooks:
    """The request hooks of one blueprint's endpoints (the app's own included), each list
    in the order Flask calls it."""

    url_value_preprocessors: tuple[Hook, ...]
    before_request: tuple[Hook, ...]
    after_request: tuple[Hook, ...]
    teardown_request: tuple[Hook, ...]


class LeanCycleFlask(Flask):
    """Flask whose request cycle takes Flask's steps in Flask's order, with less work:

    - a request's app and request contexts are set as context variables directly, not
      pushed: Flask's push and pop also keep a stack of tokens for contexts pushed more
      than once, which a WSGI call never does;
    - the hooks of each blueprint's endpoints (url value preprocessors, before, after
      and teardown request functions, the app's and its parent blueprints' included) are
      gathered once: Flask gathers them on every request, and refuses new ones once the
      first request is served;
    - a signal is sent only when something is connected to it.

    A request whose contexts the test client keeps (`with client:`) goes Flask's way.
    Paired on the services (`bench --ab`, 6 turns, 2026-12-05): 3.5-10 % less CPU per
    request (README, "CPU per request"). tests/shared/test_request_cycle.py checks each
    step against Flask's own.
    """

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._hooks_by_blueprint: dict[str | None, EndpointHooks] = {}

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Flask's `wsgi_app`, `RequestContext.push` and `pop` in one pass."""
        if "werkzeug.debug.preserve_context" in environ:
            return super().wsgi_app(environ, start_response)
        ctx = self.request_context(environ)
        app_token = self._enter_app_context()
        request_token = _cv_request.set(ctx)
        error: BaseException | None = None
        try:
            try:
                self._open_session_and_match(ctx)
                response = self.full_dispatch_request()
            except Exception as e:
                error = e
                response = self.handle_exception(e)
            except BaseException as e:  # as Flask: the teardown sees what ended the request
                error = e
                raise
            return response(environ, start_response)
        finally:
            if error is not None and self.should_ignore_error(error):
                error = None
            self._leave(ctx, error, request_token, app_token)

    def _enter_app_context(self) -> Token[AppContext] | None:
        """A new app context (the token that unsets it), unless one of this app is already
        active: Flask then uses that one, and None is returned."""
        active = _cv_app.get(None)
        if active is not None and active.app is self:
            return None
        token = _cv_app.set(self.app_context())
        if appcontext_pushed.receivers:
            appcontext_pushed.send(self, _async_wrapper=self.ensure_sync)
        return token

    def _open_session_and_match(self, ctx: RequestContext) -> None:
        """The end of `RequestContext.push`: the session, then the URL match."""
        if ctx._session is None:
            interface = self.session_interface
            session = interface.open_session(self, ctx.request)
            ctx._session = interface.make_null_session(self) if session is None else session
        if ctx.url_adapter is not None:
            ctx.match_request()

    def _leave(
        self,
        ctx: RequestContext,
        error: BaseException | None,
        request_token: Token[RequestContext],
        app_token: Token[AppContext] | None,
    ) -> None:
        """`RequestContext.pop` and `AppContext.pop`: teardown, then the contexts unset."""
        try:
            self.do_teardown_request(error)
            close = getattr(ctx.request, "close", None)
            if close is not None:
                close()
        finally:
            _cv_request.reset(request_token)
            ctx.request.environ["werkzeug.request"] = None  # no cycle left for the GC
            if app_token is not None:  # this request made its app context
                try:
                    self.do_teardown_appcontext(error)
                finally:
                    _cv_app.reset(app_token)
                if appcontext_popped.receivers:
                    appcontext_popped.send(self, _async_wrapper=self.ensure_sync)

    def full_dispatch_request(self) -> Response:
        self._got_first_request = True
        try:
            if request_started.receivers:
                request_started.send(self, _async_wrapper=self.ensure_sync)
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        return self.finalize_request(rv)

    def dispatch_request(self) -> Any:
        """Flask's `dispatch_request`, reading the request without the proxy."""
        req = current_request()
        if req.routing_exception is not None:
            self.raise_routing_exception(req)
        rule: Any = req.url_rule
        if getattr(rule, "provide_automatic_options", False) and req.method == "OPTIONS":
            return self.make_default_options_response()
        view_args: Any = req.view_args
        return self.ensure_sync(self.view_functions[rule.endpoint])(**view_args)

    def finalize_request(self, rv: Any, from_error_handler: bool = False) -> Response:
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
            if request_finished.receivers:
                request_finished.send(self, _async_wrapper=self.ensure_sync, response=response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def preprocess_request(self) -> Any:
        ctx = _cv_request.get()
        request = ctx.request
        hooks = self._hooks_of(ctx)
        for preprocess in hooks.url_value_preprocessors:
            preprocess(request.endpoint, request.view_args)
        for before in hooks.before_request:
            rv = before()
            if rv is not None:
                return rv
        return None

    def process_response(self, response: Response) -> Response:
        ctx = _cv_request.get()
        for func in ctx._after_request_functions:
            response = self.ensure_sync(func)(response)
        for after in self._hooks_of(ctx).after_request:
            response = after(response)
        session = ctx._session
        if session is not None and not self.session_interface.is_null_session(session):
            self.session_interface.save_session(self, session, response)
        return response

    def do_teardown_request(self, exc: BaseException | None = _NOT_GIVEN) -> None:
        if exc is _NOT_GIVEN:
            exc = sys.exc_info()[1]
        for teardown in self._hooks_of(_cv_request.get()).teardown_request:
            teardown(exc)
        if request_tearing_down.receivers:
            request_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def do_teardown_appcontext(self, exc: BaseException | None = _NOT_GIVEN) -> None:
        if self.teardown_appcontext_funcs or appcontext_tearing_down.receivers:
            super().do_teardown_appcontext(sys.exc_info()[1] if exc is _NOT_GIVEN else exc)

    def _hooks_of(self, ctx: RequestContext) -> EndpointHooks:
        """The hooks of the request's endpoint, kept on its context for the later steps."""
        found: EndpointHooks | None = ctx.__dict__.get(_HOOKS_ATTRIBUTE)
        if found is None:
            found = ctx.__dict__[_HOOKS_ATTRIBUTE] = self.hooks_for(ctx.request.blueprint)
        return found

    def hooks_for(self, blueprint: str | None) -> EndpointHooks:
        """The hooks of `blueprint`'s endpoints (None: the app's own, or no endpoint)."""
        found = self._hooks_by_blueprint.get(blueprint)
        if found is None:
            found = self._hooks_by_blueprint[blueprint] = self._gather_hooks(blueprint)
        return found

    def _gather_hooks(self, blueprint: str | None) -> EndpointHooks:
        """Flask's order: preprocessors and before hooks from the app down to the
        blueprint, each in registration order; after and teardown hooks from the
        blueprint up to the app, each in reverse registration order."""
        names: list[str | None] = list(_split_blueprint_path(blueprint)) if blueprint else []
        downwards = [None, *reversed(names)]
        upwards = [*names, None]
        sync = self.ensure_sync
        return EndpointHooks(
            url_value_preprocessors=tuple(
                func for name in downwards for func in self.url_value_preprocessors.get(name, ())
            ),
            before_request=tuple(
                sync(func) for name in downwards for func in self.before_request_funcs.get(name, ())
            ),
            after_request=tuple(
                sync(func)
                for name in upwards
                for func in reversed(self.after_request_funcs.get(name, ()))
            ),
            teardown_request=tuple(
                sync(func)
                for name in upwards
                for func in reversed(self.teardown_request_funcs.get(name, ()))
            ),
        )
