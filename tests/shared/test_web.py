"""shared.web: the cookie-session interface both services' apps use."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature

from shared.web import ServiceFlask


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
