"""Sessions that really end (server-side records), and state-changing requests that
another site cannot make (Flask test client on a real Redis)."""

from __future__ import annotations

import pytest
import redis as redis_py
from flask.testing import FlaskClient

from devtools.embedded import EmbeddedRedis
from services.sabong import session_store as sessions
from services.sabong.signin import SESSION_ID

from .conftest import MakeApp, Partner

OWN_ORIGIN = "http://127.0.0.1:8080"  # the default SABONG_LOGIN_BASE_URL's origin


def signed_in(partner: Partner, client_id: str = "SESS-1") -> FlaskClient:
    """A fresh browser (cookie jar) signed in as `client_id`."""
    browser = partner.client.application.test_client()
    token = partner.issue(clientId=client_id)["token"]
    assert browser.post("/login/" + token).status_code == 303
    return browser


def cookie_of(browser: FlaskClient) -> str:
    cookie = browser.get_cookie("sabong_session")
    assert cookie is not None
    return cookie.value


def session_id_of(browser: FlaskClient) -> str:
    with browser.session_transaction() as stored:
        value: str = stored[SESSION_ID]
    return value


def test_a_copied_cookie_is_dead_after_logout(partner: Partner) -> None:
    browser = signed_in(partner)
    copied = cookie_of(browser)  # what a thief (or a shared computer) keeps
    assert browser.post("/logout").status_code == 303
    replayer = partner.client.application.test_client()
    replayer.set_cookie("sabong_session", copied)
    assert replayer.get("/api/v1/me").status_code == 401
    assert replayer.get("/me").status_code == 303


def test_session_record_is_hashed_and_lives_as_long_as_the_session(
    make_app: MakeApp, redis_client: redis_py.Redis
) -> None:
    partner = Partner(make_app(SABONG_SESSION_SECONDS="120").test_client())
    browser = signed_in(partner, "SESS-TTL")
    parsed = sessions.SessionId.parse(session_id_of(browser))
    assert parsed is not None and parsed.client_id == "SESS-TTL"
    record = sessions.session_key("SESS-TTL", sessions.hash_secret(parsed.secret))
    assert 110 <= redis_client.ttl(record) <= 120
    assert 110 <= redis_client.ttl(sessions.session_index_key("SESS-TTL")) <= 120


def test_logout_all_ends_every_session_of_the_player_only(partner: Partner) -> None:
    phone, laptop = signed_in(partner, "SESS-A"), signed_in(partner, "SESS-A")
    neighbour = signed_in(partner, "SESS-B")
    response = phone.post("/logout/all")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login/?signed_out=1"
    assert phone.get("/api/v1/me").status_code == 401
    assert laptop.get("/api/v1/me").status_code == 401
    assert neighbour.get("/api/v1/me").status_code == 200


def test_logout_without_a_session_sends_no_cookie(client: FlaskClient) -> None:
    for path in ("/logout", "/logout/all"):
        response = client.post(path)
        assert response.status_code == 303
        assert "Set-Cookie" not in response.headers


def test_garbage_session_ids_are_not_sessions(partner: Partner) -> None:
    browser = signed_in(partner)
    for forged in ("", "x", "a" * 43 + ".", "a" * 43 + ".!!", "a" * 42 + ".U0VTUy0x", 7):
        with browser.session_transaction() as stored:
            stored[SESSION_ID] = forged
        assert browser.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:8080.evil.example"},
        {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling origin: another port, a subdomain
        {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
    ],
)
@pytest.mark.parametrize("path", ["/logout", "/logout/all"])
def test_cross_site_post_cannot_log_the_player_out(
    partner: Partner, path: str, headers: dict[str, str]
) -> None:
    browser = signed_in(partner)
    response = browser.post(path, headers=headers)
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers  # the browser would apply it
    assert "another site" in response.get_data(as_text=True)
    assert browser.get("/api/v1/me").status_code == 200


def test_cross_site_post_cannot_use_or_burn_a_login_link(partner: Partner) -> None:
    token = partner.issue(clientId="SESS-CSRF")["token"]
    refused = partner.client.post("/login/" + token, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "Set-Cookie" not in refused.headers
    assert partner.client.get("/login/" + token).status_code == 200  # still live
    accepted = partner.client.post("/login/" + token, headers={"Origin": OWN_ORIGIN})
    assert accepted.status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser, or an old one: no Origin, no Sec-Fetch-Site
        {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked by the user
        # A POST from our own no-referrer page: Chromium sends Origin null, same-origin.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_same_origin_logout_still_works(partner: Partner, headers: dict[str, str]) -> None:
    browser = signed_in(partner)
    assert browser.post("/logout", headers=headers).status_code == 303
    assert browser.get("/api/v1/me").status_code == 401


def test_own_origin_follows_the_login_base_url(make_app: MakeApp) -> None:
    app = make_app(SABONG_LOGIN_BASE_URL="https://Play.Example.com:443/")
    partner = Partner(app.test_client())
    browser = signed_in(partner)
    assert browser.post("/logout", headers={"Origin": OWN_ORIGIN}).status_code == 403
    ours = {"Origin": "https://play.example.com"}
    assert browser.post("/logout", headers=ours).status_code == 303


def test_redis_down_session_paths_answer_503_not_500(
    make_app: MakeApp, own_redis: EmbeddedRedis
) -> None:
    partner = Partner(make_app(redis=own_redis.url).test_client())
    browser = signed_in(partner)
    own_redis.stop()
    try:
        api = browser.get("/api/v1/me")
        assert api.status_code == 503
        assert api.get_json()["message"] == "Service temporarily unavailable"
        for method, path in (("GET", "/me"), ("POST", "/logout"), ("POST", "/logout/all")):
            page = browser.open(path, method=method)
            assert page.status_code == 503 and page.headers["Retry-After"] == "1"
            assert page.mimetype == "text/html"
    finally:
        own_redis.start()
    assert browser.get("/api/v1/me").status_code == 200  # nothing was lost


def test_signing_in_again_ends_the_browsers_previous_session(partner: Partner) -> None:
    browser = signed_in(partner, "SESS-OLD")
    copied = cookie_of(browser)
    assert browser.post("/login/" + partner.issue(clientId="SESS-NEW")["token"]).status_code == 303
    assert browser.get("/api/v1/me").get_json()["data"]["user"]["clientId"] == "SESS-NEW"
    replayer = partner.client.application.test_client()
    replayer.set_cookie("sabong_session", copied)
    assert replayer.get("/api/v1/me").status_code == 401
