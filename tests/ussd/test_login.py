"""POST /api/auth/login: the success shape, every failure message, password storage."""

from __future__ import annotations

import re
import time
import uuid

import redis as redis_py
from flask.testing import FlaskClient

from services.ussd import accounts
from services.ussd import login as login_module
from services.ussd.runtime import EXTENSION
from shared import tokens

from .helpers import (
    PASSWORD,
    Partner,
    assert_envelope,
    jwt_parts,
    login,
    login_token,
    new_service_id,
)

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_login_returns_token_and_user_object(client: FlaskClient, make_partner) -> None:
    partner = make_partner("acme", email="ops@acme.example", msisdn="+639170000000")
    response = login(client, "acme", partner.password)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["status"] == 200 and body["message"] == "Login successful"
    assert set(body["data"]) == {"token", "user"}
    user = body["data"]["user"]
    assert set(user) == {
        "id", "client_id", "username", "email", "role", "is_active",
        "msisdn", "created_at", "updated_at", "deleted_at",
    }  # fmt: skip
    assert str(uuid.UUID(user["id"])) == user["id"]
    assert isinstance(user["client_id"], str) and user["client_id"]
    assert user["username"] == "acme"
    assert user["email"] == "ops@acme.example"
    assert user["role"] == "client"
    assert user["is_active"] == 1
    assert user["msisdn"] == "+639170000000"
    assert ISO_UTC.fullmatch(user["created_at"]) and ISO_UTC.fullmatch(user["updated_at"])
    assert user["deleted_at"] is None


def test_user_object_defaults_empty_email_and_null_msisdn(client: FlaskClient, partner) -> None:
    user = login(client, partner.username, partner.password).get_json()["data"]["user"]
    assert user["email"] == "" and user["msisdn"] is None


def test_login_jwt_has_own_type_and_required_claims(client: FlaskClient, partner) -> None:
    token = login(client, partner.username, partner.password).get_json()["data"]["token"]
    header, payload = jwt_parts(token)
    assert header == {"alg": "HS256", "typ": "k2-login+jwt"}
    assert payload["sub"] == partner.record["id"]
    assert payload["exp"] - payload["iat"] == 3600


def test_login_jwt_lifetime_is_configurable(make_app, redis_url: str) -> None:
    app = make_app(USSD_LOGIN_JWT_TTL="120")
    accounts.create_client(app.extensions[EXTENSION], "shortlived", PASSWORD)
    token = login(app.test_client(), "shortlived", PASSWORD).get_json()["data"]["token"]
    _, payload = jwt_parts(token)
    assert payload["exp"] - payload["iat"] == 120


def test_username_is_matched_case_insensitively(client: FlaskClient, partner) -> None:
    assert login(client, partner.username.upper(), partner.password).status_code == 200


def test_wrong_password_and_unknown_user_answer_alike(client: FlaskClient, partner) -> None:
    wrong = login(client, partner.username, "not the password")
    unknown = login(client, "nobody-here", partner.password)
    assert_envelope(wrong, 401, "Invalid username or password")
    assert_envelope(unknown, 401, "Invalid username or password")
    assert wrong.get_data() == unknown.get_data()


def test_unknown_user_costs_a_full_hash_user_enumeration_by_timing(
    make_app, redis_url: str
) -> None:
    # A costlier N than the other tests so the hash dominates the measured time.
    app = make_app(USSD_SCRYPT_N=str(2**13))
    accounts.create_client(app.extensions[EXTENSION], "timed", PASSWORD)
    client = app.test_client()

    def fastest_seconds(username: str) -> float:
        # The minimum is the intrinsic cost; scheduling noise only ever adds to it.
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            assert login(client, username, "wrong password").status_code == 401
            samples.append(time.perf_counter() - start)
        return min(samples)

    known, unknown = fastest_seconds("timed"), fastest_seconds("ghost")
    assert unknown > 0.5 * known, (known, unknown)


def test_disabled_account_with_right_password_is_403(client: FlaskClient, ctx, partner) -> None:
    accounts.set_active(ctx, partner.username, active=False)
    assert_envelope(login(client, partner.username, partner.password), 403, "Account is disabled")


def test_disabled_account_with_wrong_password_is_plain_401(
    client: FlaskClient, ctx, partner
) -> None:
    # Whether an account is disabled is told only to someone who knows its password.
    accounts.set_active(ctx, partner.username, active=False)
    assert_envelope(login(client, partner.username, "wrong"), 401, "Invalid username or password")


def test_password_is_never_stored_in_clear(
    client: FlaskClient, partner: Partner, redis_client: redis_py.Redis, db
) -> None:
    login(client, partner.username, partner.password)
    login(client, partner.username, "another secret guess")
    new_service_id(client, login_token(client, partner))  # the client record is cached too
    stored = _every_stored_string(redis_client)
    assert stored, "nothing stored?"
    assert not any(partner.password in value for value in stored)
    assert not any("another secret guess" in value for value in stored)
    # The hash stays in PostgreSQL: Redis (the cache included) never holds it.
    assert not any(value.startswith("scrypt$") for value in stored)
    (password_hash,) = db.execute("SELECT password_hash FROM k2_clients").fetchone()
    assert password_hash.startswith("scrypt$16$8$1$")
    assert partner.password not in password_hash


def test_stored_hash_is_upgraded_when_the_cost_is_raised(make_app, db) -> None:
    old = make_app()
    record = accounts.create_client(old.extensions[EXTENSION], "upgrade", PASSWORD)
    query = "SELECT password_hash FROM k2_clients WHERE id = %s"
    assert db.execute(query, (record["id"],)).fetchone()[0].startswith("scrypt$16$")
    new = make_app(USSD_SCRYPT_N="32")
    assert login(new.test_client(), "upgrade", PASSWORD).status_code == 200
    assert db.execute(query, (record["id"],)).fetchone()[0].startswith("scrypt$32$")
    assert login(new.test_client(), "upgrade", PASSWORD).status_code == 200


def test_expired_login_jwt_is_403_not_401(client: FlaskClient, ctx, partner) -> None:
    past = int(time.time()) - 7200
    token = tokens.issue(ctx.login_token, {"sub": partner.record["id"], "gen": 1}, now=past)
    response = client.post(
        "/api/clients/generate-service-id", headers={"Authorization": f"Bearer {token}"}
    )
    assert_envelope(response, 403, "JWT token expired")


def _every_stored_string(client: redis_py.Redis) -> list[str]:
    values: list[str] = []
    for key in client.scan_iter("*"):
        values.append(key)
        kind = client.type(key)
        if kind == "string":
            values.append(client.get(key))
        elif kind == "hash":
            values.extend(v for pair in client.hgetall(key).items() for v in pair)
        elif kind in ("set", "zset", "list"):
            values.extend(client.sort(key, alpha=True))
    return values


def test_login_burst_waits_for_a_hash_slot_then_gets_503(
    client: FlaskClient, ctx, partner, monkeypatch
) -> None:
    # Every hash slot of the process is busy (as under a flood of logins) for too long.
    monkeypatch.setattr(login_module, "HASH_SLOT_WAIT_SECONDS", 0.05)
    assert ctx.hash_slots.acquire(timeout=1)
    try:
        response = login(client, partner.username, partner.password)
    finally:
        ctx.hash_slots.release()
    assert_envelope(response, 503, "Service temporarily unavailable")
    assert login(client, partner.username, partner.password).status_code == 200
