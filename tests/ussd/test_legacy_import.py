"""`import-from-redis`: the previous version's K2 accounts, written to a real Redis in its
own key format, are copied into PostgreSQL as they were, once."""

from __future__ import annotations

import json
import uuid

import pytest
import redis as redis_py
from flask.testing import FlaskClient

from services.ussd import cli
from services.ussd.legacy_import import import_from_redis
from services.ussd.passwords import hash_password
from services.ussd.runtime import Runtime
from services.ussd.store import service_id_key, tagged_uuid
from shared.config import load_settings
from shared.tokens import issue

from .conftest import ussd_config
from .helpers import PASSWORD, assert_envelope, bearer, login, new_service_id

CREATED = "2025-03-04T05:06:07.089Z"


def write_legacy_client(
    redis_client: redis_py.Redis, ctx: Runtime, username: str, /, **fields: str
) -> dict[str, str]:
    """A client exactly as the previous version stored it: record hash + users index."""
    client_uuid = str(uuid.uuid4())
    record = {
        "id": client_uuid, "client_id": f"K2-{client_uuid[:10].upper()}", "username": username,
        "email": f"{username}@example.com", "role": "client", "is_active": "1", "msisdn": "",
        "created_at": CREATED, "updated_at": CREATED, "gen": "3",
        "password_hash": hash_password(PASSWORD, ctx.scrypt), **fields,
    }  # fmt: skip
    redis_client.hset(f"ussd:{{{client_uuid[:8]}}}:c", mapping=record)
    redis_client.hset("ussd:users", username.casefold(), client_uuid)
    return record


def write_legacy_api_key(
    redis_client: redis_py.Redis, client_uuid: str, service_id: str, ttl: int
) -> str:
    key_id = tagged_uuid(client_uuid)
    key = f"ussd:{{{key_id[:8]}}}:k:{key_id[9:].replace('-', '')}"
    redis_client.hset(key, mapping={"c": client_uuid, "s": service_id})
    redis_client.expire(key, ttl)
    return key_id


def test_import_keeps_ids_hashes_gen_and_state(
    ctx: Runtime, client: FlaskClient, redis_client: redis_py.Redis, db
) -> None:
    active = write_legacy_client(redis_client, ctx, "Legacy-Active", msisdn="639170000001")
    disabled = write_legacy_client(redis_client, ctx, "legacy-off", is_active="0", gen="7")
    report = import_from_redis(ctx.store.redis, ctx.database)
    assert report["clients_imported"] == 2 and report["clients_skipped"] == 0
    rows = db.execute(
        "SELECT id::text, client_id, username, password_hash, is_active, gen, msisdn,"
        " created_at = %s::timestamptz FROM k2_clients ORDER BY username",
        (CREATED,),
    ).fetchall()
    assert rows == [
        (active["id"], active["client_id"], "Legacy-Active", active["password_hash"], True, 3,
         "639170000001", True),
        (disabled["id"], disabled["client_id"], "legacy-off", disabled["password_hash"], False,
         7, None, True),
    ]  # fmt: skip
    # Same password (same hash); usernames still match case-insensitively.
    response = login(client, "legacy-active", PASSWORD)
    assert response.status_code == 200
    assert response.get_json()["data"]["user"]["id"] == active["id"]
    assert_envelope(login(client, "legacy-off", PASSWORD), 403, "Account is disabled")


def test_live_service_ids_of_imported_clients_keep_working(
    ctx: Runtime, client: FlaskClient, redis_client: redis_py.Redis
) -> None:
    # A partner mid-session during the upgrade: its Service ID (kept in Redis, same key)
    # was issued under the client's gen, which the import keeps.
    legacy = write_legacy_client(redis_client, ctx, "mid-session")
    service_id = tagged_uuid(legacy["id"])
    redis_client.set(service_id_key(service_id), legacy["gen"], ex=3600)
    token = issue(ctx.service_id_token, {"serviceId": service_id})
    import_from_redis(ctx.store.redis, ctx.database)
    me = client.get("/api/clients/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.get_json()["data"]["client"]["id"] == legacy["id"]


def test_live_api_keys_are_imported_with_their_expiry(
    ctx: Runtime, redis_client: redis_py.Redis, db
) -> None:
    legacy = write_legacy_client(redis_client, ctx, "with-keys")
    service_id = tagged_uuid(legacy["id"])
    key_id = write_legacy_api_key(redis_client, legacy["id"], service_id, ttl=1800)
    orphan_owner = str(uuid.uuid4())  # a key whose client is not in the index
    write_legacy_api_key(redis_client, orphan_owner, tagged_uuid(orphan_owner), ttl=1800)
    report = import_from_redis(ctx.store.redis, ctx.database)
    assert report["api_keys_imported"] == 1 and report["api_keys_skipped"] == 1
    rows = db.execute(
        "SELECT client::text, id::text, service_id::text,"
        " extract(epoch FROM expires_at - now())::int FROM k2_api_keys"
    ).fetchall()
    assert len(rows) == 1
    assert rows[0][:3] == (legacy["id"], key_id, service_id)
    assert 1790 <= rows[0][3] <= 1800


def test_import_is_idempotent_and_never_undoes_a_later_change(
    ctx: Runtime, client: FlaskClient, redis_client: redis_py.Redis, db
) -> None:
    legacy = write_legacy_client(redis_client, ctx, "twice")
    write_legacy_api_key(redis_client, legacy["id"], tagged_uuid(legacy["id"]), ttl=600)
    first = import_from_redis(ctx.store.redis, ctx.database)
    assert (first["clients_imported"], first["api_keys_imported"]) == (1, 1)
    # Disabled since the import; a second run must not resurrect the old (active) record.
    cli_settings = load_settings(ussd_config(ctx.settings.redis_url or ""))
    assert cli.main(["disable-client", "--username", "twice"], settings=cli_settings) == 0
    second = import_from_redis(ctx.store.redis, ctx.database)
    assert second["clients_imported"] == 0 and second["clients_already_present"] == 1
    assert second["api_keys_imported"] == 0 and second["api_keys_already_present"] == 1
    assert db.execute("SELECT count(*), bool_or(is_active) FROM k2_clients").fetchone() == (
        1,
        False,
    )
    assert_envelope(login(client, "twice", PASSWORD), 403, "Account is disabled")


@pytest.mark.parametrize(
    "damage",
    [
        {"password_hash": ""},
        {"is_active": "yes"},
        {"gen": "x"},
        {"created_at": "yesterday"},
        {"username": "someone-else"},  # the index's name is not the record's
    ],
)
def test_unusable_records_are_skipped_not_imported(
    ctx: Runtime, redis_client: redis_py.Redis, db, damage: dict[str, str]
) -> None:
    write_legacy_client(redis_client, ctx, "damaged", **damage)
    write_legacy_client(redis_client, ctx, "fine")
    report = import_from_redis(ctx.store.redis, ctx.database)
    assert report["clients_imported"] == 1 and report["clients_skipped"] == 1
    assert db.execute("SELECT username FROM k2_clients").fetchall() == [("fine",)]


def test_records_the_index_does_not_reach_are_counted_not_imported(
    ctx: Runtime, redis_client: redis_py.Redis, db
) -> None:
    # The previous version wrote the record, then claimed the name: a crash in between
    # left a record nobody could log in to.
    write_legacy_client(redis_client, ctx, "half-created")
    redis_client.delete("ussd:users")
    report = import_from_redis(ctx.store.redis, ctx.database)
    assert report["clients_imported"] == 0 and report["clients_unreachable"] == 1
    assert db.execute("SELECT count(*) FROM k2_clients").fetchone() == (0,)


def test_import_from_redis_cli_command(
    ctx: Runtime, client: FlaskClient, redis_client: redis_py.Redis, capsys
) -> None:
    write_legacy_client(redis_client, ctx, "via-cli")
    settings = load_settings(ussd_config(ctx.settings.redis_url or ""))
    assert cli.main(["import-from-redis"], settings=settings) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clients_imported"] == 1
    token = login(client, "via-cli", PASSWORD).get_json()["data"]["token"]
    assert new_service_id(client, token)


def test_delete_legacy_removes_only_records_now_in_postgres(
    ctx: Runtime, client: FlaskClient, redis_client: redis_py.Redis, capsys
) -> None:
    moved = write_legacy_client(redis_client, ctx, "moved")
    broken = write_legacy_client(redis_client, ctx, "broken", gen="x")
    settings = load_settings(ussd_config(ctx.settings.redis_url or ""))
    assert cli.main(["import-from-redis", "--delete-legacy"], settings=settings) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clients_imported"] == 1 and report["legacy_records_deleted"] == 1
    # The moved client's password hash is no longer in Redis; the broken record (not
    # imported) is left for the operator to look at.
    assert not redis_client.exists(f"ussd:{{{moved['id'][:8]}}}:c")
    assert redis_client.exists(f"ussd:{{{broken['id'][:8]}}}:c")
    assert redis_client.hgetall("ussd:users") == {"broken": broken["id"]}
    assert login(client, "moved", PASSWORD).status_code == 200
