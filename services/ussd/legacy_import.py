"""One-off import of the K2 accounts the previous version kept in Redis into PostgreSQL.

The previous version's keys (this module is the only one that still knows them)::

    ussd:users              hash    casefolded username -> client UUID (the login index)
    ussd:{T}:c              hash    the client record (profile, password_hash, is_active, gen)
    ussd:{T}:k:<24 hex>     hash    an API key: c = client UUID, s = serviceId; TTL = the
                                    remaining lifetime of its Service ID

A client is imported as it was: same id, client_id, password hash, `gen` and
`is_active`, so its users log in with the same password, and its live Service IDs (which
stay in Redis, under the same keys) keep working until they expire. Only records the
login index points at are imported: any other was unreachable in the previous version (a
creation that failed half-way). API keys still live are imported with their expiry.

Idempotent: a client or key already in PostgreSQL is left exactly as it is (it may have
been changed since), so the import can be run again. It only reads Redis, unless asked
(`delete_legacy`) to remove the old records of clients now in PostgreSQL (and their
index entries): they hold password hashes, and nothing reads them any more.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import cast

import redis as redis_py

from shared.db import Database
from shared.redis import translate_errors
from shared.timestamps import parse_iso

from .account_store import AccountStore
from .store import TAG_LENGTH, is_uuid, username_field

LEGACY_USERS_KEY = "ussd:users"
# `{` and `}` are plain characters in a SCAN pattern; only `*` is a wildcard here.
LEGACY_CLIENT_PATTERN = "ussd:{*}:c"
LEGACY_API_KEY_PATTERN = "ussd:{*}:k:*"
_API_KEY = re.compile(r"ussd:\{([0-9a-f]{8})\}:k:([0-9a-f]{24})")
REQUIRED_FIELDS = ("id", "client_id", "username", "password_hash", "created_at", "updated_at")
SCAN_BATCH = 1000


def legacy_client_key(client_uuid: str) -> str:
    return f"ussd:{{{client_uuid[:TAG_LENGTH]}}}:c"


def import_from_redis(
    redis_client: redis_py.Redis, database: Database, delete_legacy: bool = False
) -> dict[str, int]:
    """Copy the previous version's clients and live API keys into PostgreSQL; the counts."""
    accounts = AccountStore(database)
    counts: Counter[str] = Counter()
    in_database = _import_clients(redis_client, accounts, counts)
    _import_api_keys(redis_client, accounts, counts)
    if delete_legacy:
        counts["legacy_records_deleted"] = _delete_records(redis_client, in_database)
    names = ("imported", "already_present", "skipped")
    report = {f"{kind}_{name}": counts[f"{kind}_{name}"] for kind in ("clients", "api_keys")
              for name in names}  # fmt: skip
    report["clients_unreachable"] = counts["clients_unreachable"]
    if delete_legacy:
        report["legacy_records_deleted"] = counts["legacy_records_deleted"]
    return report


@translate_errors
def _import_clients(
    redis_client: redis_py.Redis, accounts: AccountStore, counts: Counter[str]
) -> dict[str, str]:
    """Import what the index reaches; {casefolded username: UUID} of those now in PostgreSQL."""
    index = cast(dict[str, str], redis_client.hgetall(LEGACY_USERS_KEY))
    in_database = {}
    for name_key, client_uuid in index.items():
        record = _legacy_record(redis_client, name_key, client_uuid)
        if record is None:
            counts["clients_skipped"] += 1
            continue
        if accounts.import_client(record):
            counts["clients_imported"] += 1
        else:
            counts["clients_already_present"] += 1
        if accounts.has_client(client_uuid):  # not so when another id has the username
            in_database[name_key] = client_uuid
    reachable = {legacy_client_key(client_uuid) for client_uuid in index.values()}
    for key in redis_client.scan_iter(match=LEGACY_CLIENT_PATTERN, count=SCAN_BATCH):
        if key not in reachable:
            counts["clients_unreachable"] += 1
    return in_database


@translate_errors
def _delete_records(redis_client: redis_py.Redis, in_database: dict[str, str]) -> int:
    """Delete the old records (and index entries) of clients now in PostgreSQL."""
    for name_key, client_uuid in in_database.items():
        redis_client.delete(legacy_client_key(client_uuid))
        redis_client.hdel(LEGACY_USERS_KEY, name_key)
    return len(in_database)


def _legacy_record(
    redis_client: redis_py.Redis, name_key: str, client_uuid: str
) -> dict[str, str] | None:
    """The record the index points at, checked and completed; None when unusable."""
    if not is_uuid(client_uuid):
        return None
    record = cast(dict[str, str], redis_client.hgetall(legacy_client_key(client_uuid)))
    if any(not record.get(name) for name in REQUIRED_FIELDS):
        return None
    if record["id"] != client_uuid or username_field(record["username"]) != name_key:
        return None
    if record.get("is_active") not in ("0", "1") or not record.get("gen", "").isdigit():
        return None
    try:
        parse_iso(record["created_at"])
        parse_iso(record["updated_at"])
    except ValueError:
        return None
    return {"email": "", "msisdn": "", "role": "client", **record}


@translate_errors
def _import_api_keys(
    redis_client: redis_py.Redis, accounts: AccountStore, counts: Counter[str]
) -> None:
    for key in redis_client.scan_iter(match=LEGACY_API_KEY_PATTERN, count=SCAN_BATCH):
        found = _legacy_api_key(redis_client, key)
        if found is None:
            counts["api_keys_skipped"] += 1
            continue
        outcome = accounts.import_api_key(*found)
        if outcome is None:  # its client was not imported
            counts["api_keys_skipped"] += 1
        else:
            counts["api_keys_imported" if outcome else "api_keys_already_present"] += 1


def _legacy_api_key(
    redis_client: redis_py.Redis, key: str
) -> tuple[str, str, str, datetime] | None:
    """(client UUID, key id, serviceId, expires_at) of a live legacy API key, else None."""
    match = _API_KEY.fullmatch(key)
    fields = cast(dict[str, str], redis_client.hgetall(key))
    milliseconds_left = int(redis_client.pttl(key))
    if match is None or milliseconds_left <= 0:
        return None
    tag, rest = match.groups()
    key_id = f"{tag}-{rest[:4]}-{rest[4:8]}-{rest[8:12]}-{rest[12:]}"
    client_uuid, service_id = fields.get("c"), fields.get("s")
    if not is_uuid(client_uuid) or not is_uuid(service_id) or client_uuid[:TAG_LENGTH] != tag:
        return None
    # The wall clock, not a Runtime's: the TTL runs on Redis's real time (an offline import).
    expires_at = datetime.now(UTC) + timedelta(milliseconds=milliseconds_left)
    return client_uuid, key_id, service_id, expires_at
