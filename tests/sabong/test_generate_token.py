"""POST /api/v1/generate-auth-token: response shape, users, wallets, tokens, audit, outages."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any

import pytest
import redis as redis_py
from flask import Flask

from services.sabong import store
from services.sabong.issuance import _BYTE_TO_CHAR, TOKEN_ALPHABET, new_login_token
from services.sabong.runtime import EXTENSION
from shared.embedded import EmbeddedRedis
from shared.redis import is_cluster

from .conftest import PATH, MakeApp, Partner, valid_fields

TOKEN_RE = re.compile(r"[A-Za-z0-9]{64}")
ISO_MILLIS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_success_has_exactly_the_seed_shape(partner: Partner) -> None:
    response = partner.post(valid_fields())
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success"
    assert body["message"] == "Auth token generated successfully"
    data = body["data"]
    assert set(data) == {"token", "expiration", "expiresIn", "loginLink", "user", "isNewUser"}
    assert TOKEN_RE.fullmatch(data["token"])
    assert ISO_MILLIS_RE.fullmatch(data["expiration"])
    assert data["expiresIn"] == 300
    assert data["loginLink"] == "http://127.0.0.1:8080/login/" + data["token"]
    assert data["user"] == {
        "id": 1,
        "username": "testuser001",
        "displayId": "CLIENT_001",
        "displayName": "Client One",
    }
    assert data["isNewUser"] is True


def test_expiration_is_now_plus_minutes_in_utc_millis(vector_partner: Partner) -> None:
    data = vector_partner.issue(expiration=1440)
    assert data["expiration"] == "2024-02-02T15:40:00.000Z"
    assert data["expiresIn"] == 86400


def test_login_base_url_is_configurable(make_app: MakeApp) -> None:
    partner = Partner(make_app(SABONG_LOGIN_BASE_URL="https://play.example.com/").test_client())
    data = partner.issue()
    assert data["loginLink"] == "https://play.example.com/login/" + data["token"]


def test_new_user_record_and_wallet(vector_partner: Partner, redis_client: redis_py.Redis) -> None:
    vector_partner.issue(clientId="C-42", username="alice", displayName="Alice A")
    user = redis_client.hgetall(store.user_key("C-42"))
    assert user == {
        "id": "1",
        "username": "alice",
        "name": "Alice A",
        "displayId": "C-42",
        "clientId": "C-42",
        "referralCode": "REF-2024-" + store.referral_suffix(1),
        "password": user["password"],
        "role": "user",
        "status": "active",
        "createdAt": "2024-02-01T15:40:00.000Z",
        "updatedAt": "2024-02-01T15:40:00.000Z",
    }
    # A hash of random bytes: not empty, not the username, marked unusable.
    assert re.fullmatch(r"![0-9a-f]{64}", user["password"])
    assert redis_client.hgetall(store.wallet_key("C-42")) == {"currency": "USD", "balance": "0.00"}


def test_existing_user_is_updated_not_duplicated(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    first = partner.issue(clientId="C-7", username="bob", displayName="Bob")
    second = partner.issue(clientId="C-7", username="bobby", displayName="Robert")
    assert first["isNewUser"] is True and second["isNewUser"] is False
    assert first["user"]["id"] == second["user"]["id"] == 1
    assert second["user"] == {
        "id": 1,
        "username": "bobby",
        "displayId": "C-7",
        "displayName": "Robert",
    }
    user = redis_client.hgetall(store.user_key("C-7"))
    assert (user["username"], user["name"]) == ("bobby", "Robert")
    assert redis_client.hlen(store.IDS_KEY) == 1


def test_user_ids_count_up_and_referral_codes_are_distinct(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    ids = [partner.issue(clientId=f"CL-{n}")["user"]["id"] for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    codes = [redis_client.hget(store.user_key(f"CL-{n}"), "referralCode") for n in range(5)]
    year = time.gmtime().tm_year
    assert codes == [f"REF-{year}-{store.referral_suffix(i)}" for i in ids]
    assert len(set(codes)) == 5


def test_referral_mapping_is_a_bijection_by_construction() -> None:
    assert math.gcd(store.REFERRAL_MULTIPLIER, store.REFERRAL_MODULUS) == 1
    suffixes = {store.referral_suffix(i) for i in range(1, 100_001)}
    assert len(suffixes) == 100_000
    assert all(re.fullmatch(r"[0-9A-Z]{6}", s) for s in list(suffixes)[:1000])


def test_lua_referral_matches_python_for_large_ids(
    partner: Partner, redis_client: redis_py.Redis
) -> None:
    # Near 2^31 the product id * multiplier exceeds 2^53; the Lua must stay exact.
    redis_client.set(store.NEXT_ID_KEY, 2_176_782_000)
    user_id = partner.issue(clientId="BIG")["user"]["id"]
    assert user_id == 2_176_782_001
    code = redis_client.hget(store.user_key("BIG"), "referralCode")
    assert code is not None and code.endswith(store.referral_suffix(user_id))


def test_earlier_tokens_stay_valid(partner: Partner, redis_client: redis_py.Redis) -> None:
    tokens = [partner.issue()["token"] for _ in range(3)]
    assert len(set(tokens)) == 3
    assert all(redis_client.exists(store.token_key(t)) for t in tokens)


@pytest.mark.parametrize(("minutes", "seconds"), [(None, 120), (1, 60), (5, 300), (1440, 86400)])
def test_token_ttl_matches_expiration(
    partner: Partner, redis_client: redis_py.Redis, minutes: int | None, seconds: int
) -> None:
    from .conftest import DROP

    data = partner.issue(expiration=DROP if minutes is None else minutes)
    assert data["expiresIn"] == seconds
    ttl = redis_client.ttl(store.token_key(data["token"]))
    assert seconds - 2 <= ttl <= seconds


def test_token_never_stored_in_clear(partner: Partner, redis_client: redis_py.Redis) -> None:
    tokens = [partner.issue(clientId=f"SCAN-{n % 2}")["token"] for n in range(4)]
    everything = []
    for key in redis_client.scan_iter("*"):
        everything.append(key)
        kind = redis_client.type(key)
        if kind == "string":
            everything.append(redis_client.get(key) or "")
        elif kind == "hash":
            everything.extend(f"{k}={v}" for k, v in redis_client.hgetall(key).items())
        elif kind == "stream":
            for _, fields in redis_client.xrange(key):
                everything.extend(f"{k}={v}" for k, v in fields.items())
        else:
            pytest.fail(f"unexpected key type {kind} for {key}")
    dump = "\n".join(everything)
    assert len(everything) > 10
    for token in tokens:
        assert token not in dump
        assert token[:32] not in dump and token[32:] not in dump
    # The token key holds only its user (the id; in a cluster also the clientId, so that
    # signing in needs no other slot): small, and nothing secret.
    owner = "1:SCAN-0" if is_cluster(redis_client) else "1"
    assert redis_client.get(store.token_key(tokens[0])) == owner


def test_redis_round_trips_per_issuance(
    app: Flask, partner: Partner, redis_client: redis_py.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner.issue(clientId="WARM-UP")  # the first call also caches the scripts
    client = app.extensions[EXTENSION].store.client
    sent: list[str] = []
    original = client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    partner.issue(clientId="RT")
    for_new_user = list(sent)
    sent.clear()
    partner.issue(clientId="RT")
    if is_cluster(redis_client):
        # One slot per step: client script (asks for an id), counter, client script
        # (creates), id index, token; an existing user needs the client script and token.
        assert for_new_user == ["EVALSHA", "INCRBY", "EVALSHA", "HSET", "SET"]
        assert sent == ["EVALSHA", "SET"]
    else:
        assert for_new_user == sent == ["EVALSHA"]  # one atomic script: one round trip


def test_every_issuance_is_audited(partner: Partner, redis_client: redis_py.Redis) -> None:
    partner.issue(clientId="AUD", ipAddress="10.0.0.1")
    partner.issue(clientId="AUD", ipAddress="2001:db8::1", expiration=10)
    entries = redis_client.xrevrange(store.audit_key("AUD"))
    assert [fields["ipAddress"] for _, fields in entries] == ["2001:db8::1", "10.0.0.1"]
    newest = entries[0][1]
    assert newest["clientId"] == "AUD" and newest["userId"] == "1" and newest["expiresIn"] == "600"
    assert re.fullmatch(ISO_MILLIS_RE, newest["at"])


def test_audit_stream_is_capped(make_app: MakeApp, redis_client: redis_py.Redis) -> None:
    partner = Partner(make_app(SABONG_AUDIT_MAXLEN="10").test_client())
    for _ in range(250):
        partner.issue(clientId="CAPPED")
    # MAXLEN ~ trims whole stream nodes (100 entries): cheap, and bounded.
    assert 10 <= redis_client.xlen(store.audit_key("CAPPED")) < 250


def test_unknown_fields_are_ignored(partner: Partner, redis_client: redis_py.Redis) -> None:
    data = partner.issue(clientId="U1", role="admin", balance="99999.00", id=77)
    assert data["user"]["id"] == 1
    assert redis_client.hget(store.user_key("U1"), "role") == "user"
    assert redis_client.hget(store.wallet_key("U1"), "balance") == "0.00"


def test_login_tokens_are_uniform_alphanumeric() -> None:
    tokens = {new_login_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(TOKEN_RE.fullmatch(t) for t in tokens)
    # Rejection sampling: the first 248 byte values cover each of the 62 chars exactly 4
    # times (no modulo bias); bytes 248..255 are dropped before mapping.
    assert Counter(_BYTE_TO_CHAR[:248]) == Counter({c: 4 for c in TOKEN_ALPHABET})
    counts = Counter("".join(tokens))
    assert set(counts) == set(TOKEN_ALPHABET.decode())
    expected = 2000 * 64 / 62
    assert all(abs(n - expected) < expected * 0.15 for n in counts.values())


def test_oversized_body_is_413_envelope(partner: Partner) -> None:
    response = partner.post(b'{"clientId":"' + b"x" * (64 * 1024) + b'"}')
    assert response.status_code == 413
    assert response.get_json() == {
        "status": "error",
        "message": "Request body too large",
        "data": None,
    }


def test_redis_down_gives_500_envelope_quickly_then_recovers(
    make_app: MakeApp, own_redis: EmbeddedRedis
) -> None:
    partner = Partner(make_app(redis=own_redis.url).test_client())
    assert partner.issue(clientId="R1")["isNewUser"] is True
    own_redis.stop()
    started = time.monotonic()
    response = partner.post(valid_fields(clientId="R1"))
    assert time.monotonic() - started < 3.0
    assert response.status_code == 500
    assert response.get_json() == {
        "status": "failed",
        "message": "Failed to generate auth token",
        "data": {"error": "Database connection failed"},
    }
    assert partner.client.get("/readyz").status_code == 503
    own_redis.start()
    data = partner.issue(clientId="R1")
    assert data["isNewUser"] is False  # AOF kept the user; no restart of the app needed
    assert partner.client.get("/readyz").status_code == 200


def test_health_endpoints(partner: Partner) -> None:
    assert partner.client.get("/healthz").get_json() == {
        "status": "success",
        "message": "OK",
        "data": None,
    }
    assert partner.client.get("/readyz").status_code == 200


def test_wrong_method_is_405_envelope(partner: Partner) -> None:
    response = partner.client.get(PATH)
    assert response.status_code == 405
    assert response.get_json() == {"status": "error", "message": "Method not allowed", "data": None}
    assert "POST" in response.headers["Allow"]


def test_unknown_api_path_is_404_envelope(partner: Partner) -> None:
    response = partner.client.post("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json() == {"status": "error", "message": "Not found", "data": None}
