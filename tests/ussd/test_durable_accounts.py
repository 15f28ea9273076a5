"""K2 accounts live in PostgreSQL; the Redis cache of them fails closed.

A FLUSHALL loses no client and revives no disabled one; an admin change takes effect at
the next request even while the record is cached; a cache fill that raced an admin change
is dropped; PostgreSQL down is a quick 503, and the same app recovers when it is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient

from devtools.postgres import EmbeddedPostgres
from services.ussd import accounts
from services.ussd.client_cache import load_into_cache
from services.ussd.runtime import EXTENSION, Runtime
from services.ussd.store import ClientNotCached, client_cache_key
from shared.timestamps import utc_datetime

from .helpers import (
    PASSWORD,
    Partner,
    assert_envelope,
    bearer,
    jwt_parts,
    login,
    login_token,
    new_service_id,
)

ME = "/api/clients/me"
GENERATE = "/api/clients/generate-service-id"
API_KEY = "/api/clients/generate-api-key"
UNAVAILABLE = "Service temporarily unavailable"
# shared.db waits 2 s for a pooled connection; one request may wait that once.
BOUND_SECONDS = 4.0
RECOVERY_BOUND_SECONDS = 15.0


def _flushall(redis_client: redis_py.Redis) -> None:
    redis_client.flushall()
    assert not list(redis_client.scan_iter("*"))


def test_flushall_loses_no_client_and_refuses_old_service_ids(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis
) -> None:
    token = login_token(client, partner)
    old_service_id = new_service_id(client, token)
    assert client.get(ME, headers=bearer(old_service_id)).status_code == 200
    _flushall(redis_client)
    # Service IDs were in Redis only: gone, so refused (and without a database read).
    assert_envelope(client.get(ME, headers=bearer(old_service_id)), 401, "Invalid service ID")
    assert_envelope(
        client.post("/api/clients/revoke-service-id", headers=bearer(old_service_id)),
        401,
        "Invalid service ID",
    )
    # The account itself is in PostgreSQL: logging in again works end to end.
    fresh = new_service_id(client, login_token(client, partner))
    me = client.get(ME, headers=bearer(fresh))
    assert me.status_code == 200
    assert me.get_json()["data"]["client"]["id"] == partner.record["id"]
    assert [c["username"] for c in accounts.list_clients(ctx)] == [partner.username]


def test_flushall_keeps_a_disabled_client_disabled(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis
) -> None:
    token_before = login_token(client, partner)
    accounts.set_active(ctx, partner.username, active=False)
    _flushall(redis_client)
    assert_envelope(login(client, partner.username, partner.password), 403, "Account is disabled")
    # A login JWT minted before the disable is checked against the record reloaded from
    # PostgreSQL (inactive, newer gen): refused.
    assert_envelope(client.post(GENERATE, headers=bearer(token_before)), 401, "Invalid JWT token")
    accounts.set_active(ctx, partner.username, active=True)
    _flushall(redis_client)
    # Re-enabled: logs in again, but the token from before the disable stays dead.
    assert_envelope(client.post(GENERATE, headers=bearer(token_before)), 401, "Invalid JWT token")
    assert new_service_id(client, login_token(client, partner))


def test_disable_while_cached_takes_effect_at_once(
    client: FlaskClient, ctx: Runtime, partner: Partner
) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    assert client.get(ME, headers=bearer(service_id)).status_code == 200  # cached now
    accounts.set_active(ctx, partner.username, active=False)
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    assert_envelope(client.post(GENERATE, headers=bearer(token)), 401, "Invalid JWT token")
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": service_id})
    assert_envelope(response, 401, "Invalid JWT token")


def test_password_reset_while_cached_kills_old_tokens_at_once(
    client: FlaskClient, ctx: Runtime, partner: Partner
) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    assert client.get(ME, headers=bearer(service_id)).status_code == 200
    accounts.reset_password(ctx, partner.username, "a brand new password")
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    assert_envelope(client.post(GENERATE, headers=bearer(token)), 401, "Invalid JWT token")
    assert login(client, partner.username, "a brand new password").status_code == 200


def test_enabling_an_enabled_client_kills_nothing(
    client: FlaskClient, ctx: Runtime, partner: Partner, db
) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    accounts.set_active(ctx, partner.username, active=True)
    assert client.get(ME, headers=bearer(service_id)).status_code == 200
    assert db.execute("SELECT gen FROM k2_clients").fetchone() == (1,)


def test_a_fill_read_before_a_disable_is_dropped(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis
) -> None:
    # A request misses, reads the (still active) row, then the operator disables the
    # client before the request writes what it read: the stale fill must not land.
    service_id = new_service_id(client, login_token(client, partner))
    redis_client.delete(client_cache_key(partner.record["id"]))
    lease = ctx.store.begin_client_fill(partner.record["id"], "lease-1")
    stale = ctx.accounts.client_for_cache(partner.record["id"])
    assert stale is not None and stale["is_active"] == "1"
    accounts.set_active(ctx, partner.username, active=False)
    assert not ctx.store.fill_client_cache(stale, lease)
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")


def test_a_fill_that_lost_its_lease_to_a_flush_is_dropped(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis
) -> None:
    # The disable's cache write is lost (FLUSHALL, or a failover that had not replicated
    # it) while a fill read before the disable is in flight: the lease went with it.
    service_id = new_service_id(client, login_token(client, partner))
    redis_client.delete(client_cache_key(partner.record["id"]))
    lease = ctx.store.begin_client_fill(partner.record["id"], "lease-1")
    stale = ctx.accounts.client_for_cache(partner.record["id"])
    assert stale is not None
    accounts.set_active(ctx, partner.username, active=False)
    _flushall(redis_client)
    assert not ctx.store.fill_client_cache(stale, lease)
    assert not redis_client.exists(client_cache_key(partner.record["id"]))
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")


def test_concurrent_misses_share_one_lease(ctx: Runtime, partner: Partner) -> None:
    first = ctx.store.begin_client_fill(partner.record["id"], "lease-1")
    second = ctx.store.begin_client_fill(partner.record["id"], "lease-2")
    assert first == second == "lease-1"
    record = ctx.accounts.client_for_cache(partner.record["id"])
    assert record is not None and ctx.store.fill_client_cache(record, first)
    assert not ctx.store.fill_client_cache(record, second)  # already filled
    assert ctx.store.begin_client_fill(partner.record["id"], "lease-3") == ""  # cached


def test_a_fill_read_waits_for_an_admin_change_in_flight(ctx: Runtime, partner: Partner) -> None:
    # The disable has written the cache and holds the row lock, not yet committed. A fill
    # reading now must wait for the commit and read the disabled row, never the old one.
    cache_written, commit = threading.Event(), threading.Event()

    def write_cache_then_wait(record: dict[str, str]) -> None:
        ctx.store.replace_client_cache(record)
        cache_written.set()
        assert commit.wait(10)

    admin = threading.Thread(
        target=ctx.accounts.set_active,
        args=(partner.username, False, utc_datetime(ctx.clock()), write_cache_then_wait),
    )
    admin.start()
    assert cache_written.wait(10)
    read: list[dict[str, str] | None] = []
    reader = threading.Thread(
        target=lambda: read.append(ctx.accounts.client_for_cache(partner.record["id"]))
    )
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the fill read did not wait for the admin change"
    commit.set()
    admin.join(10)
    reader.join(10)
    assert read and read[0] is not None and read[0]["is_active"] == "0"


def test_an_admin_change_that_fails_to_commit_fails_closed(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis, db
) -> None:
    service_id = new_service_id(client, login_token(client, partner))

    def write_cache_then_fail(record: dict[str, str]) -> None:
        ctx.store.replace_client_cache(record)
        raise RuntimeError("the commit never happened")

    with pytest.raises(RuntimeError):
        ctx.accounts.set_active(
            partner.username, False, utc_datetime(ctx.clock()), write_cache_then_fail
        )
    assert db.execute("SELECT is_active, gen FROM k2_clients").fetchone() == (True, 1)
    # The cache holds a disable PostgreSQL never got: refused, not served as before.
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    # Once that entry expires, the committed truth is back.
    redis_client.delete(client_cache_key(partner.record["id"]))
    assert client.get(ME, headers=bearer(service_id)).status_code == 200


def test_a_cache_entry_without_a_record_never_authenticates(
    client: FlaskClient, ctx: Runtime, partner: Partner, redis_client: redis_py.Redis
) -> None:
    # A fill lease alone (a fill in progress, or abandoned) is a miss, not a client.
    service_id = new_service_id(client, login_token(client, partner))
    key = client_cache_key(partner.record["id"])
    redis_client.delete(key)
    redis_client.hset(key, mapping={"lease": "abandoned", "is_active": "1"})
    redis_client.expire(key, 5)
    with pytest.raises(ClientNotCached):
        ctx.store.authenticate_service_id(jwt_parts(service_id)[1]["serviceId"])
    # The service then loads the record (under that lease) and answers from it.
    assert load_into_cache(ctx, partner.record["id"])
    assert client.get(ME, headers=bearer(service_id)).status_code == 200


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_postgres_down_gives_503_fast_then_recovers(
    make_app: Callable[..., Flask], own_postgres: EmbeddedPostgres, redis_client: redis_py.Redis
) -> None:
    app = make_app(DATABASE_URL=own_postgres.url)
    ctx: Runtime = app.extensions[EXTENSION]
    client = app.test_client()
    partner = Partner("pg-outage", PASSWORD, accounts.create_client(ctx, "pg-outage", PASSWORD))
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    own_postgres.stop(kill=True)
    try:
        # Whatever needs the database answers the documented 503, quickly.
        for call in (
            lambda: login(client, partner.username, PASSWORD),
            lambda: client.post(API_KEY, headers=bearer(token), json={"service_id": service_id}),
        ):
            response, seconds = _timed(call)
            assert_envelope(response, 503, UNAVAILABLE)  # type: ignore[arg-type]
            assert seconds < BOUND_SECONDS, seconds
        # A cached client is served without the database: the hot paths keep working.
        assert client.get(ME, headers=bearer(service_id)).status_code == 200
        # A cache miss cannot be checked: 503, never a yes (nor a misleading 401).
        _flushall(redis_client)
        response, seconds = _timed(lambda: client.post(GENERATE, headers=bearer(token)))
        assert_envelope(response, 503, UNAVAILABLE)  # type: ignore[arg-type]
        assert seconds < BOUND_SECONDS, seconds
    finally:
        own_postgres.start()
    # The same app, no restart: the pool reconnects by itself (psycopg_pool retries with
    # a backoff, so the first requests after the restart may still get the 503).
    back_at = time.monotonic()
    while login(client, partner.username, PASSWORD).status_code != 200:
        assert time.monotonic() - back_at < RECOVERY_BOUND_SECONDS, "never recovered"
        time.sleep(0.2)
    print(f"\nK2 login works again {time.monotonic() - back_at:.2f} s after PostgreSQL is back")
    fresh = new_service_id(client, token)
    assert client.get(ME, headers=bearer(fresh)).status_code == 200
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": fresh})
    assert response.status_code == 201
