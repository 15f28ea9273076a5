"""Every SQL statement of the USSD service: K2 client accounts and API keys (PostgreSQL).

PostgreSQL is the truth about accounts (tables k2_clients and k2_api_keys, migration
0001). Redis only caches what the per-request scripts read (services/ussd/store.py).

A record travels as the same `dict[str, str]` the rest of the service uses: timestamps as
ISO 8601 UTC strings, `is_active` "1"/"0", `gen` a decimal string, `msisdn` "" for none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from shared.db import Database
from shared.timestamps import iso_utc, parse_iso

from .store import client_tag, username_field

# Every read returns these columns in this order (_record() unpacks them):
#   id::text, client_id, username, email, role, is_active, msisdn, created_at,
#   updated_at, password_hash, gen
INSERT_CLIENT = """
INSERT INTO k2_clients (id, client_id, username, username_key, email, msisdn, role,
                        password_hash, is_active, gen, created_at, updated_at)
VALUES (%(id)s, %(client_id)s, %(username)s, %(username_key)s, %(email)s, %(msisdn)s,
        %(role)s, %(password_hash)s, %(is_active)s, %(gen)s, %(created_at)s, %(updated_at)s)
"""
# The imported twin: a row already there (same id, or same username) is kept as it is, so
# an import can be run again, and never undoes a change made since.
IMPORT_CLIENT = INSERT_CLIENT + " ON CONFLICT DO NOTHING RETURNING id"
BY_USERNAME = """
SELECT id::text, client_id, username, email, role, is_active, msisdn, created_at,
       updated_at, password_hash, gen
FROM k2_clients WHERE username_key = %s
"""
BY_USERNAME_FOR_UPDATE = BY_USERNAME + " FOR UPDATE"
# FOR SHARE: a cache fill waits for an admin change in flight on this row (which holds the
# row lock from its UPDATE until its commit), so it reads that change, never the old row.
FOR_CACHE_FILL = """
SELECT id::text, client_id, username, email, role, is_active, msisdn, created_at,
       updated_at, password_hash, gen
FROM k2_clients WHERE tag = %s FOR SHARE
"""
ALL_CLIENTS = """
SELECT id::text, client_id, username, email, role, is_active, msisdn, created_at,
       updated_at, password_hash, gen
FROM k2_clients ORDER BY created_at, id
"""
# Disabling bumps gen (every token dies); enabling does not (dead tokens stay dead). No
# row when the client is already in that state.
SET_ACTIVE = """
UPDATE k2_clients SET is_active = %(active)s, updated_at = %(now)s,
       gen = gen + CASE WHEN %(active)s THEN 0 ELSE 1 END
WHERE username_key = %(username_key)s AND is_active <> %(active)s
RETURNING id::text, client_id, username, email, role, is_active, msisdn, created_at,
       updated_at, password_hash, gen
"""
NEW_CREDENTIALS = """
UPDATE k2_clients SET password_hash = %(hash)s, updated_at = %(now)s, gen = gen + 1
WHERE username_key = %(username_key)s
RETURNING id::text, client_id, username, email, role, is_active, msisdn, created_at,
       updated_at, password_hash, gen
"""
# Compare-and-set: a login upgrading an old hash can never undo a concurrent reset.
UPGRADE_HASH = """
UPDATE k2_clients SET password_hash = %s WHERE id = %s AND password_hash = %s
"""
INSERT_API_KEY = """
INSERT INTO k2_api_keys (client, id, service_id, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s)
"""
IMPORT_API_KEY = INSERT_API_KEY + " ON CONFLICT DO NOTHING RETURNING id"
CLIENT_EXISTS = "SELECT 1 FROM k2_clients WHERE id = %s"
# Fill reads wait at most this long for an admin change's row lock (then 503, not a hang).
SET_FILL_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"

USERNAME_CONSTRAINT = "k2_clients_username_key"


@dataclass(frozen=True)
class NewClient:
    """Outcome of an insert: created, or refused because the username or the id is taken."""

    created: bool
    username_taken: bool = False


def _record(row: tuple[Any, ...]) -> dict[str, str]:
    """A k2_clients row (COLUMNS order) as the service's record dict."""
    (client_uuid, client_id, username, email, role, active, msisdn, created, updated,
     password_hash, gen) = row  # fmt: skip
    return {
        "id": client_uuid,
        "client_id": client_id,
        "username": username,
        "email": email,
        "role": role,
        "is_active": "1" if active else "0",
        "msisdn": msisdn or "",
        "created_at": iso_utc(created),
        "updated_at": iso_utc(updated),
        "password_hash": password_hash,
        "gen": str(gen),
    }


def _row_params(record: Mapping[str, str]) -> dict[str, Any]:
    """INSERT_CLIENT's parameters for a record dict."""
    return {
        "id": record["id"],
        "client_id": record["client_id"],
        "username": record["username"],
        "username_key": username_field(record["username"]),
        "email": record.get("email", ""),
        "msisdn": record.get("msisdn") or None,
        "role": record["role"],
        "password_hash": record["password_hash"],
        "is_active": record["is_active"] == "1",
        "gen": int(record["gen"]),
        "created_at": parse_iso(record["created_at"]),
        "updated_at": parse_iso(record["updated_at"]),
    }


class AccountStore:
    """K2 clients and API keys in PostgreSQL; outages surface as StoreUnavailable."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def insert_client(self, record: Mapping[str, str]) -> NewClient:
        """Insert a new client; refused (not raised) when its username or id is taken."""
        try:
            with self.database.transaction() as conn:
                conn.execute(INSERT_CLIENT, _row_params(record))
        except psycopg.errors.UniqueViolation as exc:
            return NewClient(False, username_taken=exc.diag.constraint_name == USERNAME_CONSTRAINT)
        return NewClient(True)

    def client_by_username(self, username: str) -> dict[str, str] | None:
        """The full record (with the password hash) of this username, case-insensitively."""
        if "\x00" in username:
            return None  # no username holds a NUL (PostgreSQL text cannot store one)
        with self.database.transaction() as conn:
            row = conn.execute(BY_USERNAME, (username_field(username),)).fetchone()
        return _record(row) if row else None

    def client_for_cache(self, tagged: str) -> dict[str, str] | None:
        """The committed record of the client with `tagged`'s tag, for a cache fill."""
        with self.database.transaction() as conn:
            conn.execute(SET_FILL_LOCK_TIMEOUT)
            row = conn.execute(FOR_CACHE_FILL, (client_tag(tagged),)).fetchone()
        return _record(row) if row else None

    def all_clients(self) -> list[dict[str, str]]:
        """Every client, oldest first."""
        with self.database.transaction() as conn:
            rows = conn.execute(ALL_CLIENTS).fetchall()
        return [_record(row) for row in rows]

    def set_active(
        self,
        username: str,
        active: bool,
        now: datetime,
        before_commit: Callable[[dict[str, str]], None],
    ) -> dict[str, str] | None:
        """Enable or disable (disabling bumps gen) as of `now`; None when there is no such
        client.

        `before_commit` gets the changed record while the row is still locked and the
        change not yet committed; an exception from it rolls the change back. A client
        already in that state is not changed, but still handed to `before_commit`.
        """
        params = {"active": active, "now": now}
        return self._change(SET_ACTIVE, username, params, before_commit)

    def set_password_hash(
        self,
        username: str,
        password_hash: str,
        now: datetime,
        before_commit: Callable[[dict[str, str]], None],
    ) -> dict[str, str] | None:
        """Replace the password hash and bump gen; None when there is no such client."""
        params = {"hash": password_hash, "now": now}
        return self._change(NEW_CREDENTIALS, username, params, before_commit)

    def _change(
        self,
        update: str,
        username: str,
        params: dict[str, Any],
        before_commit: Callable[[dict[str, str]], None],
    ) -> dict[str, str] | None:
        """Run one UPDATE ... RETURNING, hand the row to `before_commit`, then commit."""
        key = username_field(username)
        with self.database.transaction() as conn:
            row = conn.execute(update, {**params, "username_key": key}).fetchone()
            if row is None:  # no such client, or nothing to change: lock and read it
                row = conn.execute(BY_USERNAME_FOR_UPDATE, (key,)).fetchone()
            if row is None:
                return None
            record = _record(row)
            before_commit(record)
        return record

    def upgrade_password_hash(self, client_uuid: str, verified: str, replacement: str) -> bool:
        """Swap `verified` for `replacement` unless the hash changed meanwhile."""
        with self.database.transaction() as conn:
            updated = conn.execute(UPGRADE_HASH, (replacement, client_uuid, verified)).rowcount
        return updated == 1

    def insert_api_key(
        self,
        client_uuid: str,
        key_id: str,
        service_id: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        """Record a new API key of the client, linked to its Service ID."""
        with self.database.transaction() as conn:
            conn.execute(INSERT_API_KEY, (client_uuid, key_id, service_id, created_at, expires_at))

    # -- the one-off import of the previous version's Redis data (legacy_import.py) ---

    def import_client(self, record: Mapping[str, str]) -> bool:
        """Insert a client kept as it was; False when its id or username is already here."""
        with self.database.transaction() as conn:
            return conn.execute(IMPORT_CLIENT, _row_params(record)).fetchone() is not None

    def has_client(self, client_uuid: str) -> bool:
        """True when a client with this id exists."""
        with self.database.transaction() as conn:
            return conn.execute(CLIENT_EXISTS, (client_uuid,)).fetchone() is not None

    def import_api_key(
        self, client_uuid: str, key_id: str, service_id: str, expires_at: datetime
    ) -> bool | None:
        """Insert an API key unless present (False); None when its client is not here."""
        with self.database.transaction() as conn:
            if conn.execute(CLIENT_EXISTS, (client_uuid,)).fetchone() is None:
                return None
            row = conn.execute(
                IMPORT_API_KEY, (client_uuid, key_id, service_id, datetime.now(UTC), expires_at)
            ).fetchone()
        return row is not None
