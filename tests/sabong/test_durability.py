"""Users, wallets and the audit are durable records in PostgreSQL; Redis holds only what
expires. What a Redis flush, a database outage and a failed commit leave behind."""

from __future__ import annotations

import time

import redis as redis_py
from psycopg import Connection
from werkzeug.test import TestResponse

from devtools.postgres import EmbeddedPostgres
from services.sabong import store

from .conftest import MakeApp, Partner, compact, valid_fields

STORE_FAILURE = {
    "status": "failed",
    "message": "Failed to generate auth token",
    "data": {"error": "Database connection failed"},
}
# The pool waits 2 s for a connection and connecting gives up after 3 s (shared.db).
OUTAGE_ANSWER_SECONDS = 6.0
# The pool retries a lost server with an exponential backoff (psycopg_pool: 1 s, 2 s, ...).
RECOVERY_SECONDS = 20.0


def counts(db: Connection) -> tuple[object, ...]:
    """(users, wallets, audit rows) in the database."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM sabong_users), (SELECT count(*) FROM sabong_wallets),"
        " (SELECT count(*) FROM sabong_issuance_audit)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_redis_flushall_loses_no_user_wallet_or_audit_entry(
    partner: Partner, redis_client: redis_py.Redis, db: Connection
) -> None:
    first = partner.issue(clientId="KEEP", displayName="Kept")
    partner.issue(clientId="OTHER")
    redis_client.flushall()
    again = partner.issue(clientId="KEEP")
    assert (first["isNewUser"], again["isNewUser"]) == (True, False)
    assert again["user"]["id"] == first["user"]["id"] == 1
    assert counts(db) == (2, 2, 3)
    # The new token works: signing in needs Redis and the database, nothing lost between.
    assert partner.client.post(f"/login/{again['token']}").status_code == 303
    assert partner.client.get("/api/v1/me").get_json()["data"]["user"]["clientId"] == "KEEP"


def test_database_down_is_the_500_envelope_and_the_same_request_works_later(
    make_app: MakeApp, own_postgres: EmbeddedPostgres, redis_client: redis_py.Redis
) -> None:
    partner = Partner(make_app(DATABASE_URL=own_postgres.url).test_client())
    assert partner.issue(clientId="PG-1")["isNewUser"] is True
    keys_before = sorted(redis_client.scan_iter("*"))
    own_postgres.stop(kill=True)
    body, stamp = compact(valid_fields(clientId="PG-2")), partner.now()
    started = time.monotonic()
    response = partner.post(body, timestamp=stamp)
    assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
    assert (response.status_code, response.get_json()) == (500, STORE_FAILURE)
    # The token and the guard written before the upsert were taken back.
    assert sorted(redis_client.scan_iter("*")) == keys_before
    own_postgres.start()
    # The very request (same bytes, same signature) is no replay: nothing was spent. The
    # pool reconnects with a backoff, so the partner may need a few resends (each one
    # the same 500 until then).
    resent = resend_until_ok(partner, body, stamp)
    assert resent.get_json()["data"]["isNewUser"] is True
    assert partner.issue(clientId="PG-1")["isNewUser"] is False  # no app restart needed


def resend_until_ok(partner: Partner, body: bytes, stamp: int) -> TestResponse:
    """Resend one signed request (bounded) until it succeeds; every failure is the 500."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        response = partner.post(body, timestamp=stamp)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert (response.status_code, response.get_json()) == (500, STORE_FAILURE)
        time.sleep(0.2)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


DIE_AT_COMMIT = """
CREATE FUNCTION test_die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.client_id = 'DOOMED' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_die_at_commit AFTER INSERT ON sabong_issuance_audit
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_die_at_commit();
"""


def test_a_failed_commit_takes_the_token_back_and_frees_the_signature(
    partner: Partner, redis_client: redis_py.Redis, db: Connection
) -> None:
    # A deferred trigger runs at the statement's COMMIT, after the token was stored in
    # Redis: the server ends the connection right there, as a database crash would.
    db.execute(DIE_AT_COMMIT)
    body, stamp = compact(valid_fields(clientId="DOOMED")), partner.now()
    try:
        response = partner.post(body, timestamp=stamp)
    finally:
        db.execute("DROP TRIGGER test_die_at_commit ON sabong_issuance_audit")
        db.execute("DROP FUNCTION test_die_at_commit()")
    assert (response.status_code, response.get_json()) == (500, STORE_FAILURE)
    assert counts(db) == (0, 0, 0)
    assert not list(redis_client.scan_iter("sabong:*"))  # neither the token nor the guard
    resent = partner.post(body, timestamp=stamp)
    assert resent.status_code == 200, resent.get_data(as_text=True)
    assert resent.get_json()["data"]["isNewUser"] is True
    assert counts(db) == (1, 1, 1)


def test_a_replay_writes_nothing_to_the_database(partner: Partner, db: Connection) -> None:
    body, stamp = compact(valid_fields(clientId="ONCE-ONLY")), partner.now()
    assert partner.post(body, timestamp=stamp).status_code == 200
    assert partner.post(body, timestamp=stamp).status_code == 401
    assert counts(db) == (1, 1, 1)
    user = db.execute("SELECT updated_at = created_at FROM sabong_users").fetchone()
    assert user == (True,)  # the replay never reached the database


def test_redis_keeps_only_expiring_keys(partner: Partner, redis_client: redis_py.Redis) -> None:
    data = partner.issue(clientId="TTL-ONLY")
    keys = list(redis_client.scan_iter("*"))
    assert sorted(keys) == sorted(
        [store.token_key(data["token"]), *redis_client.scan_iter("sabong:{c:TTL-ONLY}:r:*")]
    )
    assert len(keys) == 2
    assert all(redis_client.ttl(key) > 0 for key in keys)
