"""Login throttling: per username and per source address, 429 with Retry-After."""

from __future__ import annotations

import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient

from services.ussd import accounts
from services.ussd.context import EXTENSION

from .helpers import PASSWORD, assert_envelope, login

LIMITS = {
    "USSD_LOGIN_MAX_FAILURES_PER_USERNAME": "3",
    "USSD_LOGIN_MAX_FAILURES_PER_ADDRESS": "5",
    "USSD_LOGIN_FAILURE_WINDOW": "60",
}


@pytest.fixture
def limited(make_app) -> Flask:
    app = make_app(**LIMITS)
    accounts.create_client(app.extensions[EXTENSION], "victim", PASSWORD)
    return app


def test_brute_force_on_one_username_is_throttled(limited: Flask) -> None:
    client = limited.test_client()
    # Each guess from a different address: only the per-username counter can stop it.
    for attempt in range(3):
        response = login(client, "victim", f"guess-{attempt}", address=f"198.51.100.{attempt}")
        assert_envelope(response, 401, "Invalid username or password")
    blocked = login(client, "victim", PASSWORD, address="198.51.100.99")
    assert_envelope(blocked, 429, "Too many login attempts")
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60


def test_throttled_username_is_case_insensitive(limited: Flask) -> None:
    client = limited.test_client()
    for attempt in range(3):
        login(client, "VICTIM", f"guess-{attempt}", address=f"198.51.100.{attempt}")
    assert login(client, "victim", PASSWORD, address="198.51.100.50").status_code == 429


def test_password_spraying_from_one_address_is_throttled(limited: Flask) -> None:
    client = limited.test_client()
    # Different usernames (below their own limit), one address.
    for attempt in range(5):
        response = login(client, f"user{attempt}", "password1", address="203.0.113.7")
        assert response.status_code == 401
    blocked = login(client, "victim", PASSWORD, address="203.0.113.7")
    assert_envelope(blocked, 429, "Too many login attempts")
    assert int(blocked.headers["Retry-After"]) >= 1
    # Another address is not affected, and the right password works there.
    assert login(client, "victim", PASSWORD, address="203.0.113.8").status_code == 200


def test_success_clears_the_username_counter(limited: Flask) -> None:
    client = limited.test_client()
    for attempt in range(2):
        login(client, "victim", f"guess-{attempt}", address="192.0.2.1")
    assert login(client, "victim", PASSWORD, address="192.0.2.2").status_code == 200
    for attempt in range(2):
        assert login(client, "victim", f"again-{attempt}", address="192.0.2.3").status_code == 401
    assert login(client, "victim", PASSWORD, address="192.0.2.4").status_code == 200


def test_failure_counters_expire_with_the_window(
    limited: Flask, redis_client: redis_py.Redis
) -> None:
    client = limited.test_client()
    login(client, "victim", "wrong", address="192.0.2.9")
    counters = list(redis_client.scan_iter("ussd:{lf}:*"))
    assert len(counters) == 2
    assert all(0 < redis_client.ttl(key) <= 60 for key in counters)


def test_forged_forwarded_for_cannot_dodge_the_address_limit(limited: Flask) -> None:
    client = limited.test_client()
    # One trusted hop (the gateway) appends the real peer; the client-written entries
    # before it are ignored.
    for attempt in range(5):
        forged = f"10.0.0.{attempt}, 203.0.113.20"
        login(client, f"spray{attempt}", "password1", address=forged)
    assert login(client, "victim", PASSWORD, address="10.9.9.9, 203.0.113.20").status_code == 429


def test_without_trusted_proxies_forwarded_for_is_ignored(make_app) -> None:
    app = make_app(USSD_TRUSTED_PROXY_COUNT="0", **LIMITS)
    accounts.create_client(app.extensions[EXTENSION], "victim", PASSWORD)
    client: FlaskClient = app.test_client()
    for attempt in range(5):
        login(client, f"spray{attempt}", "password1", address=f"198.18.0.{attempt}")
    # All came from the test client's own address, whatever the header said.
    assert login(client, "victim", PASSWORD, address="198.18.0.200").status_code == 429


def test_a_counter_without_ttl_cannot_lock_out_forever(
    limited: Flask, redis_client: redis_py.Redis
) -> None:
    client = limited.test_client()
    for attempt in range(3):
        login(client, "victim", f"guess-{attempt}", address="192.0.2.30")
    (counter,) = redis_client.scan_iter("ussd:{lf}:u:*")
    redis_client.persist(counter)  # as if a TTL had been lost
    assert login(client, "victim", PASSWORD, address="192.0.2.31").status_code == 429
    assert 0 < redis_client.ttl(counter) <= 60
