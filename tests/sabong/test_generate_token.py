"""POST /api/v1/generate-auth-token: response shape, users, wallets, tokens, audit, outages."""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import redis as redis_py
from flask import Flask
from psycopg import Connection
from psycopg.rows import dict_row

from devtools.embedded import EmbeddedRedis
from services.sabong import store
from services.sabong.issuance import _BYTE_TO_CHAR, TOKEN_ALPHABET, new_login_token
from services.sabong.runtime import EXTENSION
from services.sabong.user_store import REFERRAL_MODULUS, REFERRAL_MULTIPLIER, referral_suffix
from shared.db import PooledConnection
from shared.redis import is_cluster
from tests.conftest import SentCommands

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


def user_row(db: Connection, client_id: str) -> dict[str, Any] | None:
    """Every column of a user, as stored."""
    return (
        db.cursor(row_factory=dict_row)
        .execute("SELECT * FROM sabong_users WHERE client_id = %s", (client_id,))
        .fetchone()
    )


def wallet_rows(db: Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT client_id, user_id, currency, balance::text, updated_at FROM sabong_wallets"
        " ORDER BY user_id"
    ).fetchall()


def test_new_user_record_and_wallet(vector_partner: Partner, db: Connection) -> None:
    vector_partner.issue(clientId="C-42", username="alice", displayName="Alice A")
    user = user_row(db, "C-42")
    assert user is not None
    created = datetime(2024, 2, 1, 15, 40, tzinfo=UTC)
    assert user == {
        "client_id": "C-42",
        "id": 1,
        "username": "alice",
        "name": "Alice A",
        "display_id": "C-42",
        "referral_code": "REF-2024-" + referral_suffix(1),
        "password": user["password"],
        "role": "user",
        "status": "active",
        "created_at": created,
        "updated_at": created,
    }
    # A hash of random bytes: not empty, not the username, marked unusable.
    assert re.fullmatch(r"![0-9a-f]{64}", user["password"])
    assert wallet_rows(db) == [("C-42", 1, "USD", "0.00", None)]


def test_existing_user_is_updated_not_duplicated(partner: Partner, db: Connection) -> None:
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
    user = user_row(db, "C-7")
    assert user is not None and (user["username"], user["name"]) == ("bobby", "Robert")
    assert user["updated_at"] >= user["created_at"]
    assert db.execute("SELECT count(*) FROM sabong_users").fetchone() == (1,)
    assert len(wallet_rows(db)) == 1


def test_user_ids_count_up_and_referral_codes_are_distinct(
    partner: Partner, db: Connection
) -> None:
    ids = []
    for n in range(5):
        ids.append(partner.issue(clientId=f"CL-{n}")["user"]["id"])
        partner.issue(clientId=f"CL-{n}")  # an existing user draws no id from the sequence
    assert ids == [1, 2, 3, 4, 5]
    codes = [row[0] for row in db.execute("SELECT referral_code FROM sabong_users ORDER BY id")]
    year = time.gmtime().tm_year
    assert codes == [f"REF-{year}-{referral_suffix(i)}" for i in ids]
    assert len(set(codes)) == 5


def test_referral_mapping_is_a_bijection_by_construction() -> None:
    assert math.gcd(REFERRAL_MULTIPLIER, REFERRAL_MODULUS) == 1
    suffixes = {referral_suffix(i) for i in range(1, 100_001)}
    assert len(suffixes) == 100_000
    assert all(re.fullmatch(r"[0-9A-Z]{6}", s) for s in list(suffixes)[:1000])


def test_sql_referral_function_equals_python_for_many_ids(db: Connection) -> None:
    # Small ids, a random sample of the whole range, and the edges of 36^6, where
    # id * multiplier is far beyond 2^53 (exact in SQL numeric, exact in Python).
    rng = random.Random(11)
    ids = [*range(1, 5001), *(rng.randrange(1, 2**40) for _ in range(5000))]
    ids += [REFERRAL_MODULUS - 1, REFERRAL_MODULUS, REFERRAL_MODULUS + 1, 2**62]
    rows = db.execute(
        "SELECT i, sabong_referral_code(i, 2026) FROM unnest(%s::bigint[]) AS i", (ids,)
    ).fetchall()
    assert len(rows) == len(ids)
    assert [code for _, code in rows] == [f"REF-2026-{referral_suffix(i)}" for i in ids]


def test_large_ids_get_the_python_referral_code(partner: Partner, db: Connection) -> None:
    db.execute("SELECT setval('sabong_user_ids', 2176782000)")
    user_id = partner.issue(clientId="BIG")["user"]["id"]
    assert user_id == 2_176_782_001
    user = user_row(db, "BIG")
    assert user is not None and user["referral_code"].endswith(referral_suffix(user_id))


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
        else:
            pytest.fail(f"unexpected key type {kind} for {key}")
    dump = "\n".join(everything)
    assert len(everything) == 16  # four tokens and four replay guards, keys and values
    for token in tokens:
        assert token not in dump
        assert token[:32] not in dump and token[32:] not in dump
    # The token key holds only its user's clientId (signing in looks the user up by it):
    # small, and nothing secret.
    assert redis_client.get(store.token_key(tokens[0])) == ":SCAN-0"


def test_round_trips_per_issuance(
    app: Flask,
    partner: Partner,
    redis_client: redis_py.Redis,
    db: Connection,
    redis_commands_sent: SentCommands,
) -> None:
    partner.issue(clientId="WARM-UP")  # the first call also caches the script
    sent = redis_commands_sent(app.extensions[EXTENSION].store.client)
    partner.issue(clientId="RT")
    for_new_user = list(sent)
    sent.clear()
    partner.issue(clientId="RT")
    if is_cluster(redis_client):
        # The replay guard and the token live in different slots: one command each.
        assert for_new_user == sent == ["SET", "SET"]
    else:
        # One script, one round trip (SPEC section 6), for a new user and an update alike.
        assert for_new_user == sent == ["EVALSHA"]


def test_an_issuance_waits_on_postgresql_once(
    partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The token goes to Redis first, so the user's upsert needs no transaction around it:
    # one statement, one round trip (no BEGIN, no COMMIT). Warm-up: each pooled connection
    # (the pool hands them out in turn) prepares the statement on its first use.
    for index in range(4):
        partner.issue(clientId=f"WARM-UP-{index}")
    waits: list[object] = []
    original = PooledConnection.wait

    def counted(self: PooledConnection, gen: Any, *args: Any, **kwargs: Any) -> Any:
        waits.append(gen)
        return original(self, gen, *args, **kwargs)

    monkeypatch.setattr(PooledConnection, "wait", counted)
    for client_id in ("ONE-TRIP", "TWO-TRIP"):
        assert partner.issue(clientId=client_id)["isNewUser"] is True
        assert partner.issue(clientId=client_id)["isNewUser"] is False
    assert len(waits) == 4


def test_every_issuance_is_audited(partner: Partner, db: Connection) -> None:
    partner.issue(clientId="AUD", ipAddress="10.0.0.1")
    partner.issue(clientId="AUD", ipAddress="2001:db8::1", expiration=10)
    rows = db.execute(
        "SELECT client_id, user_id, ip_address, expires_in, issued_at"
        " FROM sabong_issuance_audit ORDER BY id DESC"
    ).fetchall()
    assert [row[2] for row in rows] == ["2001:db8::1", "10.0.0.1"]
    assert rows[0][:4] == ("AUD", 1, "2001:db8::1", 600)
    assert abs(rows[0][4].timestamp() - time.time()) < 60


def test_unknown_fields_are_ignored(partner: Partner, db: Connection) -> None:
    data = partner.issue(clientId="U1", role="admin", balance="99999.00", id=77)
    assert data["user"]["id"] == 1
    user = user_row(db, "U1")
    assert user is not None and user["role"] == "user"
    assert wallet_rows(db) == [("U1", 1, "USD", "0.00", None)]


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


def test_body_limit_is_a_setting(make_app: MakeApp) -> None:
    """SABONG_MAX_BODY_BYTES moves the limit (default 64 KiB), as USSD_MAX_BODY_BYTES does."""
    partner = Partner(make_app(SABONG_MAX_BODY_BYTES="300").test_client())
    assert partner.issue()["loginLink"]
    response = partner.post(b'{"clientId":"' + b"x" * 300 + b'"}')
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
