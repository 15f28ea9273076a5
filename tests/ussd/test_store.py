"""The Redis key scheme: one hash slot per script, TTLs, and memory per Service ID."""

from __future__ import annotations

import uuid

import pytest
import redis as redis_py
from flask.testing import FlaskClient
from redis.crc import key_slot

from services.ussd import store
from services.ussd.client_cache import load_into_cache
from services.ussd.store import ClientNotCached, UssdStore
from shared import tokens

from .helpers import assert_envelope, bearer, jwt_parts, login, login_token, new_service_id

# SPEC section 6: Redis memory per live Service ID <= 200 bytes.
MAX_BYTES_PER_SERVICE_ID = 200


def test_every_per_request_script_stays_in_one_hash_slot() -> None:
    client_uuid = str(uuid.uuid4())
    service_id = store.tagged_uuid(client_uuid)
    slots = {
        key_slot(key.encode())
        for key in (
            store.client_cache_key(client_uuid),
            store.service_id_key(service_id),
            store.client_cache_key(service_id),  # the record found from the serviceId alone
        )
    }
    assert len(slots) == 1
    login_counters = {
        key_slot(key.encode())
        for username, address in (("x{y}", "2001:db8::1"), ("z", "not an {address}"))
        for key in store.login_counter_keys(username, address)
    }
    assert len(login_counters) == 1


def test_tagged_ids_are_uuid4_and_keys_are_prefixed() -> None:
    client_uuid = str(uuid.uuid4())
    minted = store.tagged_uuid(client_uuid)
    assert uuid.UUID(minted).version == 4 and minted[:8] == client_uuid[:8]
    assert minted != store.tagged_uuid(client_uuid)
    for key in (store.client_cache_key(client_uuid), store.service_id_key(minted)):
        assert key.startswith("ussd:")


def test_every_key_has_a_ttl(client: FlaskClient, partner, redis_client: redis_py.Redis) -> None:
    # Accounts and API keys are in PostgreSQL; everything in Redis expires, the client
    # cache included.
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    client.post("/api/clients/generate-api-key", headers=bearer(token),
                json={"service_id": service_id})  # fmt: skip
    login(client, partner.username, "wrong password")
    keys = set(redis_client.scan_iter("*"))
    assert store.client_cache_key(partner.record["id"]) in keys
    for key in keys:
        assert redis_client.ttl(key) > 0, key


def test_client_cache_lives_for_the_configured_ttl(
    make_app, make_partner, redis_client: redis_py.Redis
) -> None:
    app = make_app(USSD_CLIENT_CACHE_TTL="42")
    partner = make_partner()
    client = app.test_client()
    new_service_id(client, login_token(client, partner))
    assert 40 <= redis_client.ttl(store.client_cache_key(partner.record["id"])) <= 42


@pytest.mark.single_redis("INFO memory of one server; a cluster node also indexes keys by slot")
def test_service_id_memory_is_at_most_200_bytes(redis_url: str, ctx, partner) -> None:
    redis_store: UssdStore = ctx.store
    client_uuid = partner.record["id"]
    assert load_into_cache(ctx, client_uuid)
    count = 5_000  # a stable average in ~1 s (20k gave the same figure, seconds slower)
    before = redis_store.redis.info("memory")["used_memory"]
    for _ in range(count):
        assert redis_store.issue_service_id(client_uuid, 1, store.tagged_uuid(client_uuid), 3600)
    after = redis_store.redis.info("memory")["used_memory"]
    per_id = (after - before) / count
    print(f"redis memory per live Service ID: {per_id:.1f} bytes")
    assert per_id <= MAX_BYTES_PER_SERVICE_ID


def test_a_cache_miss_never_issues_a_service_id(ctx, partner) -> None:
    client_uuid = partner.record["id"]
    with pytest.raises(ClientNotCached):
        ctx.store.issue_service_id(client_uuid, 1, store.tagged_uuid(client_uuid), 3600)
    assert not list(ctx.store.redis.scan_iter("ussd:*:s:*"))


def test_service_id_for_a_missing_client_is_refused(client: FlaskClient, ctx) -> None:
    ghost = str(uuid.uuid4())
    token = tokens.issue(ctx.login_token, {"sub": ghost, "gen": 1})
    response = client.post("/api/clients/generate-service-id", headers=bearer(token))
    assert_envelope(response, 401, "Invalid JWT token")
    assert not list(ctx.store.redis.scan_iter("ussd:*:s:*"))


def test_service_ids_of_two_clients_resolve_to_their_own_records(
    client: FlaskClient, make_partner
) -> None:
    first, second = make_partner("first"), make_partner("second")
    sid_first = new_service_id(client, login_token(client, first))
    sid_second = new_service_id(client, login_token(client, second))
    me_first = client.get("/api/clients/me", headers=bearer(sid_first)).get_json()["data"]
    me_second = client.get("/api/clients/me", headers=bearer(sid_second)).get_json()["data"]
    assert me_first["client"]["id"] == first.record["id"]
    assert me_second["client"]["id"] == second.record["id"]
    assert jwt_parts(sid_first)[1]["serviceId"][:8] == first.record["id"][:8]


def test_hot_paths_take_one_redis_round_trip(
    client: FlaskClient, ctx, partner, redis_commands_sent
) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    sent = redis_commands_sent(ctx.store.redis)
    calls = {
        "generate-service-id": lambda: client.post(
            "/api/clients/generate-service-id", headers=bearer(token)
        ),
        "me": lambda: client.get("/api/clients/me", headers=bearer(service_id)),
        "generate-api-key": lambda: client.post(
            "/api/clients/generate-api-key", headers=bearer(token), json={"service_id": service_id}
        ),
        "revoke-service-id": lambda: client.post(
            "/api/clients/revoke-service-id", headers=bearer(service_id)
        ),
    }
    for name, call in calls.items():
        assert call().status_code in (200, 201), name  # first use also loads the script
        sent.clear()
        call()
        assert sent == ["EVALSHA"], (name, sent)
