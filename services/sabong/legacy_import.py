"""One-off import of the users, wallets and audit the previous version kept in Redis.

The previous version's keys (prefix `sabong:`; the `{...}` hash tag is the cluster slot):

    sabong:{c:<clientId>}:u     hash    the user: id, username, name, displayId, clientId,
                                        referralCode, password, role, status, createdAt,
                                        updatedAt (times ISO 8601 UTC, e.g. ...T15:40:00.000Z)
    sabong:{c:<clientId>}:w     hash    the wallet: currency, balance ("0.00")
    sabong:{c:<clientId>}:log   stream  audit of token issuances (capped): clientId, userId,
                                        ipAddress, expiresIn, at
    sabong:{g}:next_id          string  the user id counter
    sabong:{g}:ids              hash    user id -> clientId

Safe to run again: a user already in PostgreSQL is left as it is (PostgreSQL wins), and
each audit entry is copied once (entries are compared by content, so running twice adds
nothing). The user id sequence moves past every imported id and past the old counter
(ids a cluster wasted were handed out to nobody, but never reuse one). Run it before the
new version takes traffic: ids are only unique because the sequence starts after them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis as redis_py

from shared.db import Database
from shared.redis import translate_errors

PREFIX = "sabong:"
USER_KEY_PATTERN = f"{PREFIX}{{c:*}}:u"
NEXT_ID_KEY = f"{PREFIX}{{g}}:next_id"
SCAN_BATCH = 1000


def user_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:u"


def wallet_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:w"


def audit_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:log"


INSERT_USER_SQL = """
INSERT INTO sabong_users (client_id, id, username, name, display_id, referral_code,
                          password, role, status, created_at, updated_at)
VALUES (%(clientId)s, %(id)s, %(username)s, %(name)s, %(displayId)s, %(referralCode)s,
        %(password)s, %(role)s, %(status)s, %(createdAt)s, %(updatedAt)s)
ON CONFLICT (client_id) DO NOTHING
"""

INSERT_WALLET_SQL = """
INSERT INTO sabong_wallets (client_id, user_id, currency, balance, created_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (client_id) DO NOTHING
"""

EXISTING_AUDIT_SQL = """
SELECT user_id, ip_address, expires_in, issued_at FROM sabong_issuance_audit
 WHERE client_id = %s
"""

INSERT_AUDIT_SQL = """
INSERT INTO sabong_issuance_audit (client_id, user_id, ip_address, expires_in, issued_at)
VALUES (%s, %s, %s, %s, %s)
"""

# setval(n) makes nextval return n + 1; only ever moves the sequence forward.
ADVANCE_SEQUENCE_SQL = """
SELECT setval('sabong_user_ids', GREATEST(%s, (SELECT max(id) FROM sabong_users)))
 WHERE GREATEST(%s, (SELECT max(id) FROM sabong_users)) >=
       (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM sabong_user_ids)
"""

AuditEntry = tuple[int, str, int, datetime]


@translate_errors
def import_from_redis(client: redis_py.Redis, database: Database) -> dict[str, int]:
    """Copy every legacy user, wallet and audit entry into PostgreSQL; counts of what was added."""
    counts = {"users": 0, "wallets": 0, "auditEntries": 0, "usersAlreadyPresent": 0}
    for key in client.scan_iter(match=USER_KEY_PATTERN, count=SCAN_BATCH):
        user = _text_hash(client.hgetall(key))
        client_id = user.get("clientId", "")
        if not user.get("id") or user_key(client_id) != _text(key):
            continue  # not a user hash of the old scheme (or a half-written one): skip
        added = _import_user(client, database, user)
        for name, value in added.items():
            counts[name] += value
    with database.transaction() as conn:
        last_id = int(_text(client.get(NEXT_ID_KEY) or "0"))
        conn.execute(ADVANCE_SEQUENCE_SQL, (last_id, last_id))
    return counts


def _import_user(
    client: redis_py.Redis, database: Database, user: dict[str, str]
) -> dict[str, int]:
    """One user, its wallet and its audit entries, in one transaction."""
    client_id = user["clientId"]
    wallet = _text_hash(client.hgetall(wallet_key(client_id)))
    stream: list[tuple[Any, Any]] = client.xrange(audit_key(client_id))  # type: ignore[assignment]
    entries = [_audit_entry(_text_hash(fields)) for _, fields in stream]
    with database.transaction() as conn:
        inserted = conn.execute(INSERT_USER_SQL, _user_row(user)).rowcount
        wallets = conn.execute(
            INSERT_WALLET_SQL,
            (
                client_id,
                int(user["id"]),
                wallet.get("currency") or "USD",
                Decimal(wallet.get("balance") or "0.00"),
                _time(user.get("createdAt")),
            ),
        ).rowcount
        audited = _import_audit(conn, client_id, entries)
    return {
        "users": inserted,
        "usersAlreadyPresent": 1 - inserted,
        "wallets": wallets,
        "auditEntries": audited,
    }


def _import_audit(conn: psycopg.Connection[Any], client_id: str, entries: list[AuditEntry]) -> int:
    """Insert the entries PostgreSQL lacks (as many copies as are missing); how many."""
    rows = conn.execute(EXISTING_AUDIT_SQL, (client_id,)).fetchall()
    present = Counter((int(u), str(ip), int(e), t) for u, ip, e, t in rows)
    missing = Counter(entries) - present
    new_rows = [(client_id, *entry) for entry in sorted(missing.elements(), key=lambda e: e[3])]
    if new_rows:
        with conn.cursor() as cursor:
            cursor.executemany(INSERT_AUDIT_SQL, new_rows)
    return len(new_rows)


def _user_row(user: dict[str, str]) -> dict[str, Any]:
    """The legacy hash as the columns of sabong_users."""
    created = _time(user.get("createdAt"))
    return {
        "clientId": user["clientId"],
        "id": int(user["id"]),
        "username": user.get("username", ""),
        "name": user.get("name", ""),
        "displayId": user.get("displayId") or user["clientId"],
        "referralCode": user.get("referralCode", ""),
        "password": user.get("password") or "!",
        "role": user.get("role") or "user",
        "status": user.get("status") or "active",
        "createdAt": created,
        "updatedAt": _time(user.get("updatedAt")) if user.get("updatedAt") else created,
    }


def _audit_entry(fields: dict[str, str]) -> AuditEntry:
    return (
        int(fields.get("userId") or 0),
        fields.get("ipAddress", ""),
        int(fields.get("expiresIn") or 0),
        _time(fields.get("at")),
    )


def _time(value: str | None) -> datetime:
    """An ISO 8601 time of the old records (`...Z`); the epoch when absent."""
    return datetime.fromisoformat(value or "1970-01-01T00:00:00+00:00")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text_hash(mapping: Any) -> dict[str, str]:
    """A Redis hash or stream entry as str -> str, whether the client decodes or not."""
    return {_text(k): _text(v) for k, v in dict(mapping).items()}
