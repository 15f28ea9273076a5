"""The login link, the session and /me (Flask test client on a real Redis)."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient
from psycopg import Connection
from redis.cluster import RedisCluster

from devtools.embedded import EmbeddedRedis
from devtools.postgres import EmbeddedPostgres
from services.sabong import session_store as sessions
from services.sabong import store
from shared.redis import is_cluster

from .conftest import MakeApp, Partner

EXPIRED_TEXT = "This link is invalid or has expired"


def login_path(data: dict[str, Any]) -> str:
    return "/login/" + data["token"]


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("sabong_session")
    return cookie.value if cookie else None


def test_login_page_posts_itself_and_consumes_nothing(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    data = partner.issue()
    for _ in range(3):  # link scanners, chat previews, a reload
        page = partner.client.get(login_path(data))
        assert page.status_code == 200
    assert redis_client.exists(store.token_key(data["token"]))
    html = page.get_data(as_text=True)
    assert '<form id="login" method="post">' in html
    assert "<button" in html and ".submit()" in html
    assert data["token"] not in html  # the form posts back to its own URL
    assert "http://" not in html and "https://" not in html  # no external assets
    nonce = re.search(r'<script nonce="([^"]+)">', html)
    assert nonce and f"'nonce-{nonce.group(1)}'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert session_cookie(partner.client) is None


def test_post_consumes_the_token_and_starts_a_session(
    app: Flask, partner: Partner, redis_client: redis_py.Redis
) -> None:
    data = partner.issue(clientId="S-1", username="sam", displayName="Sam Smith")
    response = partner.client.post(login_path(data))
    assert response.status_code == 303
    assert response.headers["Location"] == "/me"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert not redis_client.exists(store.token_key(data["token"]))
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Secure" not in set_cookie  # development runs on plain http
    serializer = app.session_interface.get_signing_serializer(app)
    stored = serializer.loads(session_cookie(partner.client))
    assert set(stored) == {"_permanent", "sid"}  # only the session id
    secret, _, _ = stored["sid"].partition(".")
    record = sessions.session_key("S-1", sessions.hash_secret(secret))
    assert redis_client.get(record) == "1"  # the user id, in Redis where logout can end it
    assert not any(secret in key for key in redis_client.keys("*"))  # only its hash is a key


def test_token_consumed_once_sequentially(partner: Partner) -> None:
    data = partner.issue()
    assert partner.client.post(login_path(data)).status_code == 303
    again = partner.client.post(login_path(data))
    assert again.status_code == 410
    assert EXPIRED_TEXT in again.get_data(as_text=True)
    assert partner.client.get(login_path(data)).status_code == 410


def test_unknown_and_expired_tokens_are_410(partner: Partner, redis_client: redis_py.Redis) -> None:
    data = partner.issue()
    redis_client.pexpire(store.token_key(data["token"]), 1)
    time.sleep(0.01)
    for method in (partner.client.get, partner.client.post):
        response = method(login_path(data))
        assert response.status_code == 410
        assert EXPIRED_TEXT in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
    unknown = "A" * 64
    assert partner.client.post("/login/" + unknown).status_code == 410


@pytest.mark.parametrize(
    "token", ["short", "A" * 63, "A" * 65, "A" * 63 + "!", "é" * 64, "A" * 62 + "%20"]
)
def test_malformed_token_is_410_without_touching_redis(
    client: FlaskClient, redis_client: redis_py.Redis, token: str
) -> None:
    # On a cluster, every master must have seen nothing but this test's own bookkeeping.
    every_node: dict[str, Any] = (
        {"target_nodes": RedisCluster.PRIMARIES} if is_cluster(redis_client) else {}
    )
    redis_client.config_resetstat(**every_node)
    assert client.get("/login/" + token).status_code == 410
    assert client.post("/login/" + token).status_code == 410
    stats = redis_client.info("commandstats", **every_node)
    per_node = stats.values() if is_cluster(redis_client) else [stats]
    commands = {name for node in per_node for name in node}
    assert commands <= {"cmdstat_config", "cmdstat_info"}, stats


def test_me_shows_the_signed_in_user(partner: Partner) -> None:
    data = partner.issue(clientId="ME-1", username="mia", displayName="Mia <Moe>")
    partner.client.post(login_path(data))
    page = partner.client.get("/me")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Mia &lt;Moe&gt;" in html and "<Moe>" not in html  # escaped
    assert "mia" in html and "ME-1" in html and "USD 0.00" in html
    assert page.headers["Cache-Control"] == "no-store"


def test_api_me_returns_the_profile_in_the_envelope(partner: Partner) -> None:
    data = partner.issue(clientId="ME-2", username="max", displayName="Max")
    partner.client.post(login_path(data))
    response = partner.client.get("/api/v1/me")  # no signature: the session authenticates
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success"
    assert body["data"]["user"] == {
        "id": 1,
        "username": "max",
        "displayId": "ME-2",
        "displayName": "Max",
        "clientId": "ME-2",
        "referralCode": body["data"]["user"]["referralCode"],
    }
    assert body["data"]["wallet"] == {"currency": "USD", "balance": "0.00"}


def test_profile_follows_updates_from_later_issuances(partner: Partner) -> None:
    first = partner.issue(clientId="UPD", displayName="Old Name")
    partner.issue(clientId="UPD", displayName="New Name")
    partner.client.post(login_path(first))  # the earlier token is still valid
    assert partner.client.get("/api/v1/me").get_json()["data"]["user"]["displayName"] == "New Name"


def test_me_shows_the_live_balance_from_the_database(partner: Partner, db: Connection) -> None:
    partner.client.post(login_path(partner.issue(clientId="RICH", displayName="Rich")))
    db.execute("UPDATE sabong_wallets SET balance = 1600.50 WHERE client_id = 'RICH'")
    wallet = partner.client.get("/api/v1/me").get_json()["data"]["wallet"]
    assert wallet == {"currency": "USD", "balance": "1600.50"}
    assert "USD 1600.50" in partner.client.get("/me").get_data(as_text=True)


def test_without_session_me_redirects_to_not_signed_in(client: FlaskClient) -> None:
    response = client.get("/me")
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "You are not signed in" in page.get_data(as_text=True)


def test_without_session_api_me_is_401_envelope(client: FlaskClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.get_json() == {"status": "error", "message": "Not signed in", "data": None}


def test_forged_session_cookie_is_not_a_session(make_app: MakeApp, partner: Partner) -> None:
    other = make_app(SABONG_SESSION_SECRET="attacker-chosen-secret-" + "x" * 20)
    forger = other.test_client()
    with forger.session_transaction() as forged:
        forged["sid"] = str(sessions.SessionId("CLIENT_001", "a" * 43))
    partner.issue()  # the victim exists
    forged_cookie = session_cookie(forger)
    assert forged_cookie
    partner.client.set_cookie("sabong_session", forged_cookie)
    assert partner.client.get("/api/v1/me").status_code == 401


def test_logout_ends_the_session(partner: Partner) -> None:
    partner.client.post(login_path(partner.issue()))
    assert partner.client.get("/api/v1/me").status_code == 200
    response = partner.client.post("/logout")
    assert response.status_code == 303
    page = partner.client.get(response.headers["Location"])
    assert "You have been signed out" in page.get_data(as_text=True)
    assert partner.client.get("/api/v1/me").status_code == 401
    assert partner.client.get("/me").status_code == 303


def test_session_of_a_deleted_user_is_dropped(partner: Partner, db: Connection) -> None:
    partner.client.post(login_path(partner.issue(clientId="GONE")))
    assert partner.client.get("/api/v1/me").status_code == 200
    db.execute("DELETE FROM sabong_wallets WHERE client_id = 'GONE'")
    db.execute("DELETE FROM sabong_users WHERE client_id = 'GONE'")
    assert partner.client.get("/api/v1/me").status_code == 401
    assert partner.client.get("/me").status_code == 303  # the session ended with the user


def add_user_id(redis_client: redis_py.Redis, data: dict[str, Any]) -> None:
    """Make the token hold its user id, as the issuances of 2026-12-03 to 2026-12-06 left it."""
    key = store.token_key(data["token"])
    redis_client.set(key, f"{data['user']['id']}:{data['user']['displayId']}", keepttl=True)


def test_a_token_names_its_user_by_clientid_and_signs_in_by_looking_it_up(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    # One Redis write per issuance: the user id is not known when the token is stored.
    data = partner.issue(clientId="NO:ID")
    assert redis_client.get(store.token_key(data["token"])) == ":NO:ID"
    assert partner.client.post(login_path(data)).status_code == 303
    me = partner.client.get("/api/v1/me").get_json()["data"]["user"]
    assert (me["id"], me["clientId"]) == (data["user"]["id"], "NO:ID")


def test_a_link_whose_user_was_never_written_is_410(
    partner: Partner, redis_client: redis_py.Redis, db: Connection
) -> None:
    # An issuance whose database write failed and which could not take its token back
    # either (Redis failing too): the token names a user who does not exist.
    data = partner.issue(clientId="GHOST")
    db.execute("DELETE FROM sabong_issuance_audit")
    db.execute("DELETE FROM sabong_wallets")
    db.execute("DELETE FROM sabong_users")
    response = partner.client.post(login_path(data))
    assert response.status_code == 410 and session_cookie(partner.client) is None
    assert not redis_client.exists(store.token_key(data["token"]))  # spent all the same


def test_signing_in_replaces_a_previous_session(partner: Partner) -> None:
    partner.client.post(login_path(partner.issue(clientId="A-USER")))
    partner.client.post(login_path(partner.issue(clientId="B-USER")))
    assert partner.client.get("/api/v1/me").get_json()["data"]["user"]["clientId"] == "B-USER"


def test_app_url_is_configurable(make_app: MakeApp) -> None:
    partner = Partner(make_app(SABONG_APP_URL="https://play.example.com/lobby").test_client())
    response = partner.client.post(login_path(partner.issue()))
    assert response.headers["Location"] == "https://play.example.com/lobby"


def test_production_session_cookie_is_secure(make_app: MakeApp) -> None:
    app = make_app(APP_ENV="production", SABONG_CLIENT_SECRETS="p" * 40)
    partner = Partner(app.test_client(), secret="p" * 40)
    response = partner.client.post(login_path(partner.issue()))
    assert "Secure" in response.headers["Set-Cookie"]


def test_redis_down_on_login_is_503_and_the_link_survives(
    make_app: MakeApp, own_redis: EmbeddedRedis
) -> None:
    partner = Partner(make_app(redis=own_redis.url).test_client())
    data = partner.issue()
    partner.client.post(login_path(partner.issue(clientId="OTHER")))
    own_redis.stop()
    assert partner.client.post(login_path(data)).status_code == 503
    assert partner.client.get(login_path(data)).status_code == 503
    for path in ("/me", login_path(data)):  # the HTML pages promise a retry, as the API does
        page = partner.client.get(path)
        assert page.status_code == 503 and page.headers["Retry-After"] == "1"
    api = partner.client.get("/api/v1/me")
    assert api.status_code == 503 and api.get_json()["status"] == "failed"
    assert api.headers["Retry-After"] == "1"
    own_redis.start()
    assert partner.client.post(login_path(data)).status_code == 303


def test_database_down_on_login_is_503_and_the_link_survives(
    make_app: MakeApp, own_postgres: EmbeddedPostgres, redis_client: redis_py.Redis
) -> None:
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    data = partner.issue(clientId="WAITING")
    ttl_before = redis_client.pttl(store.token_key(data["token"]))
    own_postgres.stop(kill=True)
    page = partner.client.post(login_path(data))
    assert page.status_code == 503 and "your link still works" in page.get_data(as_text=True)
    # Put back for the rest of its life, not a new one.
    assert 0 < redis_client.pttl(store.token_key(data["token"])) <= ttl_before
    own_postgres.start()
    deadline = time.monotonic() + 20  # the pool reconnects with a backoff
    response = partner.client.post(login_path(data))
    while response.status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = partner.client.post(login_path(data))
    assert response.status_code == 303
    assert partner.client.get("/api/v1/me").get_json()["data"]["user"]["clientId"] == "WAITING"


def test_a_token_holding_its_user_id_signs_in_while_the_database_is_down(
    make_app: MakeApp, own_postgres: EmbeddedPostgres, redis_client: redis_py.Redis
) -> None:
    # Tokens issued before 2026-12-06 may hold their user id: no look-up for those.
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    data = partner.issue(clientId="NO-LOOKUP")
    add_user_id(redis_client, data)
    own_postgres.stop(kill=True)
    assert partner.client.post(login_path(data)).status_code == 303


def test_database_down_on_me_is_503_and_the_session_survives(
    make_app: MakeApp, own_postgres: EmbeddedPostgres
) -> None:
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    partner.client.post(login_path(partner.issue(clientId="PATIENT")))
    own_postgres.stop(kill=True)
    assert partner.client.get("/me").status_code == 503
    api = partner.client.get("/api/v1/me")
    assert api.status_code == 503 and api.get_json()["status"] == "failed"
    own_postgres.start()
    deadline = time.monotonic() + 20  # the pool reconnects with a backoff (1 s, 2 s, ...)
    me = partner.client.get("/api/v1/me")
    while me.status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        me = partner.client.get("/api/v1/me")
    assert me.status_code == 200 and me.get_json()["data"]["user"]["clientId"] == "PATIENT"


def test_unknown_browser_path_is_html_404(client: FlaskClient) -> None:
    response = client.get("/login/a/b")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_unexpected_error_is_500_without_details(app: Flask) -> None:
    def boom() -> str:
        raise RuntimeError("secret internals /login/abc")

    app.add_url_rule("/api/v1/boom", "api_boom", boom)
    app.add_url_rule("/boom", "page_boom", boom)
    client = app.test_client()
    api = client.get("/api/v1/boom")
    assert api.status_code == 500
    assert api.get_json() == {"status": "failed", "message": "Internal server error", "data": None}
    page = client.get("/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "secret internals" not in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)


def test_unexpected_error_on_login_never_logs_the_token(
    client: FlaskClient, redis_client: redis_py.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    token = "Zq" * 32
    redis_client.hset(store.token_key(token), "not", "a string")  # WRONGTYPE in the script
    with caplog.at_level(logging.ERROR):
        response = client.post("/login/" + token)
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "/login/<token>" in caplog.text  # the route pattern says where it happened
    assert token not in caplog.text
