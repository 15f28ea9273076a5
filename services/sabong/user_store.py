"""Every SQL statement on Sabong users, their wallets' creation and the issuance audit.

The durable records live in PostgreSQL (tables in migrations/versions/0001_initial.py):
a user per clientId (`sabong_users`), the wallet created with it (`sabong_wallets`) and
one audit row per token issuance (`sabong_issuance_audit`). The wallet's money
movements belong to services/sabong/wallet_store.py.

One issuance is ONE statement (`UPSERT_SQL`): update the user if it exists, else insert
it with its wallet; then the audit row. Concurrent first calls for one clientId meet on
the primary key: one inserts (`xmax = 0`, so `is_new`), the others wait for its commit
and update instead, so there is one user, one wallet and exactly one `is_new`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row

from shared.db import Database, PooledConnection
from shared.timestamps import iso_utc

# REF-YYYY-XXXXXX: XXXXXX = base-36 of (id * MULTIPLIER + OFFSET) mod 36^6. MULTIPLIER is
# coprime to 36 (so to 36^6), which makes the map a bijection: distinct ids below 36^6
# (about 2.18 billion users) get distinct codes with no uniqueness lookup, and codes do
# not reveal how many users exist at a glance. The database computes it
# (sabong_referral_code, migration 0001); this is its Python twin, for tests and tools.
REFERRAL_MODULUS = 36**6
REFERRAL_MULTIPLIER = 1_345_325_471
REFERRAL_OFFSET = 918_273_645
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def referral_suffix(user_id: int) -> str:
    """The six base-36 characters of a user's referral code."""
    value = (user_id * REFERRAL_MULTIPLIER + REFERRAL_OFFSET) % REFERRAL_MODULUS
    chars = []
    for _ in range(6):
        value, digit = divmod(value, 36)
        chars.append(BASE36[digit])
    return "".join(reversed(chars))


# The UPDATE comes first so that a call for an existing user draws no number from the
# sequence (an INSERT ... ON CONFLICT evaluates its id default before it sees the
# conflict): ids count up 1, 2, ... and stay far below the referral codes' range, 36^6.
# Only a lost race for a brand-new clientId wastes one id.
UPSERT_SQL = """
WITH updated AS (
    UPDATE sabong_users
       SET username = %(username)s, name = %(name)s, updated_at = %(now)s
     WHERE client_id = %(client_id)s
    RETURNING id, false AS is_new
), inserted AS (
    INSERT INTO sabong_users AS u (client_id, id, username, name, display_id,
                                   referral_code, password, created_at, updated_at)
    SELECT %(client_id)s, fresh.id, %(username)s, %(name)s, %(client_id)s,
           sabong_referral_code(fresh.id, %(year)s), %(password)s, %(now)s, %(now)s
      FROM (SELECT nextval('sabong_user_ids') AS id) AS fresh
     WHERE NOT EXISTS (SELECT FROM updated)
    ON CONFLICT (client_id) DO UPDATE
       SET username = EXCLUDED.username, name = EXCLUDED.name, updated_at = EXCLUDED.updated_at
    RETURNING u.id, (u.xmax = 0) AS is_new
), person AS (
    SELECT id, is_new FROM updated UNION ALL SELECT id, is_new FROM inserted
), wallet AS (
    INSERT INTO sabong_wallets (client_id, user_id, created_at)
    SELECT %(client_id)s, id, %(now)s FROM person WHERE is_new
    ON CONFLICT (client_id) DO NOTHING
), audit AS (
    INSERT INTO sabong_issuance_audit (client_id, user_id, ip_address, expires_in, issued_at)
    SELECT %(client_id)s, id, %(ip_address)s, %(expires_in)s, %(now)s FROM person
)
SELECT id, is_new FROM person
"""

# A user with its wallet (the live balance): one row per user.
USERS_SQL = """
SELECT u.id, u.username, u.name, u.display_id, u.client_id, u.referral_code, u.role,
       u.status, u.created_at, u.updated_at, w.currency, w.balance
  FROM sabong_users u LEFT JOIN sabong_wallets w ON w.client_id = u.client_id
"""
FIND_SQL = USERS_SQL + " WHERE u.client_id = %s"
USER_ID_SQL = "SELECT id FROM sabong_users WHERE client_id = %(client_id)s"
LIST_SQL = USERS_SQL + " ORDER BY u.id, u.client_id"

AUDIT_SQL = """
SELECT id, client_id, user_id, ip_address, expires_in, issued_at
  FROM sabong_issuance_audit
 WHERE client_id = %s
 ORDER BY id DESC
 LIMIT %s
"""


@dataclass(frozen=True)
class Issuance:
    """What one token issuance writes to the database."""

    client_id: str
    username: str
    display_name: str
    ip_address: str
    expires_in: int
    issued_at: datetime
    password_hash: str


@dataclass(frozen=True)
class IssueResult:
    """Outcome of an issuance: the user id and whether this call created the user."""

    user_id: int
    is_new: bool


def user_record(row: dict[str, Any]) -> dict[str, Any]:
    """A user row as the service shows it (no password), with its wallet."""
    return {
        "user": {
            "id": int(row["id"]),
            "username": row["username"],
            "name": row["name"],
            "displayId": row["display_id"],
            "clientId": row["client_id"],
            "referralCode": row["referral_code"],
            "role": row["role"],
            "status": row["status"],
            "createdAt": iso_utc(row["created_at"]),
            "updatedAt": iso_utc(row["updated_at"]),
        },
        # A user always has a wallet (created in the same statement); the fallback only
        # keeps a hand-edited database readable.
        "wallet": {
            "currency": row["currency"] or "USD",
            "balance": str(row["balance"] if row["balance"] is not None else "0.00"),
        },
    }


def upsert_user(conn: PooledConnection, item: Issuance) -> IssueResult:
    """Create (with its wallet) or update the user, and audit the issuance; one statement."""
    params = {
        "client_id": item.client_id,
        "username": item.username,
        "name": item.display_name,
        "now": item.issued_at,
        "year": item.issued_at.astimezone(UTC).year,
        "password": item.password_hash,
        "ip_address": item.ip_address,
        "expires_in": item.expires_in,
    }
    row = conn.fetch_one(UPSERT_SQL, params)
    assert row is not None  # the statement returns exactly one row by construction
    return IssueResult(user_id=int(row[0]), is_new=bool(row[1]))


class UserStore:
    """PostgreSQL reads of Sabong users and the audit; each read is one short transaction.

    The write, `upsert_user`, runs on the issuance's own connection (issuance.py).
    Connection failures surface as StoreUnavailable (shared.db).
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def find(self, client_id: str) -> dict[str, Any] | None:
        """The user of a clientId and its wallet (live balance), or None."""
        with self.database.transaction() as conn:
            row = conn.cursor(row_factory=dict_row).execute(FIND_SQL, (client_id,)).fetchone()
        return None if row is None else user_record(row)

    def user_id(self, client_id: str) -> int | None:
        """The id of a clientId's user, or None; one statement, no transaction."""
        with self.database.statement() as conn:
            row = conn.fetch_one(USER_ID_SQL, {"client_id": client_id})
        return None if row is None else int(row[0])

    def list_all(self) -> list[dict[str, Any]]:
        """Every user (without wallets' details), by id."""
        with self.database.transaction() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(LIST_SQL).fetchall()
        return [user_record(row)["user"] for row in rows]

    def audit(self, client_id: str, count: int) -> list[dict[str, Any]]:
        """The most recent `count` issuances of a client, newest first."""
        with self.database.transaction() as conn:
            rows = conn.execute(AUDIT_SQL, (client_id, count)).fetchall()
        return [
            {
                "entryId": entry_id,
                "clientId": owner,
                "userId": user_id,
                "ipAddress": ip_address,
                "expiresIn": expires_in,
                "at": iso_utc(issued_at),
            }
            for entry_id, owner, user_id, ip_address, expires_in, issued_at in rows
        ]
