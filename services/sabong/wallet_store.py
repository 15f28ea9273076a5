"""Every SQL statement of the Sabong wallets: balances, credits and debits, the history.

Money is `numeric(20, 2)` in PostgreSQL and `Decimal` in Python, never a float.

A credit or debit is ONE statement (`POST_SQL`), run as its own transaction
(`Database.statement()`: one round trip; a statement is atomic, and synchronous commit
makes its success durable): a conditional
UPDATE of the wallet row (`balance + delta >= 0`) and the INSERT of the transaction with
the balance right after it. The UPDATE takes the wallet's row lock, so the transactions
of one wallet are applied one at a time, in the order of their ids, and each
`balance_after` chains to the one before. Under READ COMMITTED, an UPDATE that waited for
the lock re-checks its condition against the row as the other transaction left it: no
interleaving can overdraw, and the CHECK (balance >= 0) constraint is the last line
behind that.

Idempotency by (client_id, type, reference) rests on the table's UNIQUE constraint. The
statement first looks for the original transaction; two identical requests racing each
other both miss it, one INSERT wins and the other fails with a unique violation, which
rolls its UPDATE back too; its retry then finds the original and replays it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from shared.db import Database, PooledConnection
from shared.exceptions import StoreUnavailable
from shared.timestamps import iso_utc

from .exceptions import DuplicateReference, InsufficientBalance, OutcomeUnknown, UserNotFound
from .models import TransactionType
from .validation import HistoryQuery

log = logging.getLogger(__name__)

CURRENCY = "USD"
# A unique violation means the competing transaction has committed, so one retry finds
# the original; a few more only guard against the unexpected.
MAX_POST_ATTEMPTS = 3

# The API's sort fields and the columns they name (a closed list: never user SQL).
SORT_COLUMNS = {
    "id": "id",
    "walletId": "wallet_id",
    "amount": "amount",
    "currency": "currency",
    "type": "type",
    "createdAt": "created_at",
}

BALANCE_SQL = """
SELECT user_id, balance, updated_at FROM sabong_wallets WHERE client_id = %(client_id)s
"""

POST_SQL = """
WITH wallet AS (
    SELECT user_id FROM sabong_wallets WHERE client_id = %(client_id)s
), original AS (
    SELECT id, amount, balance_after FROM sabong_transactions
    WHERE client_id = %(client_id)s AND type = %(type)s AND reference = %(reference)s
), changed AS (
    UPDATE sabong_wallets SET balance = balance + %(delta)s, updated_at = %(now)s
    WHERE client_id = %(client_id)s
      AND balance + %(delta)s >= 0
      AND NOT EXISTS (SELECT 1 FROM original)
    RETURNING id, balance, currency
), posted AS (
    INSERT INTO sabong_transactions (client_id, wallet_id, type, amount, currency,
                                     balance_after, reference, description, created_at)
    SELECT %(client_id)s, id, %(type)s, %(amount)s, currency,
           balance, %(reference)s, %(description)s, %(now)s
    FROM changed
    RETURNING id, balance_after
)
SELECT wallet.user_id, posted.id, posted.balance_after,
       original.id, original.amount, original.balance_after
FROM wallet LEFT JOIN posted ON true LEFT JOIN original ON true
"""

HISTORY_COUNT_SQL = """
SELECT w.user_id, (SELECT count(*) FROM sabong_transactions t WHERE {where})
FROM sabong_wallets w WHERE w.client_id = %(client_id)s
"""

HISTORY_PAGE_SQL = """
SELECT t.id, t.wallet_id, t.amount, t.currency, t.type, t.reference, t.description,
       t.created_at, t.balance_after
FROM sabong_transactions t WHERE {where}
ORDER BY {column} {direction}, t.id {direction}
LIMIT %(limit)s OFFSET %(offset)s
"""

WALLETS_SQL = """
SELECT client_id, id, user_id, currency, balance, created_at, updated_at
FROM sabong_wallets WHERE %(client_id)s::text IS NULL OR client_id = %(client_id)s
ORDER BY client_id
"""

WALLET_BALANCES_SQL = "SELECT client_id, balance FROM sabong_wallets"

TRANSACTIONS_SQL = """
SELECT id, type, amount, currency, balance_after, reference, description, created_at
FROM sabong_transactions WHERE client_id = %(client_id)s ORDER BY id DESC LIMIT %(limit)s
"""

ALL_TRANSACTIONS_SQL = """
SELECT client_id, id, type, amount, balance_after FROM sabong_transactions
ORDER BY client_id, id
"""


@dataclass(frozen=True)
class Balance:
    user_id: int
    client_id: str
    balance: Decimal
    updated_at: datetime | None


@dataclass(frozen=True)
class Posting:
    """A credit or debit to apply."""

    client_id: str
    type: TransactionType
    amount: Decimal
    description: str | None
    reference: str | None
    now: datetime


@dataclass(frozen=True)
class Posted:
    """An applied transaction (`replayed`: applied earlier, found by its reference)."""

    user_id: int
    client_id: str
    type: TransactionType
    amount: Decimal
    transaction_id: int
    balance: Decimal
    replayed: bool


@dataclass(frozen=True)
class HistoryPage:
    total_count: int
    rows: list[dict[str, Any]]


class WalletStore:
    """The wallets and their transactions in PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def balance(self, client_id: str) -> Balance:
        """The wallet's balance and time of last change; UserNotFound if none."""
        with self.database.statement() as conn:
            row: Any = conn.fetch_one(BALANCE_SQL, {"client_id": client_id})
        if row is None:
            raise UserNotFound(client_id)
        user_id, balance, updated_at = row
        return Balance(int(user_id), client_id, balance, updated_at)

    def post(self, posting: Posting) -> Posted:
        """Apply a credit or debit once; raise UserNotFound, InsufficientBalance or
        DuplicateReference (nothing applied), or StoreUnavailable/OutcomeUnknown."""
        for _ in range(MAX_POST_ATTEMPTS):
            try:
                return self._post_once(posting)
            except pg_errors.UniqueViolation:
                # A concurrent request with this reference committed first: look again.
                continue
        raise StoreUnavailable("reference kept colliding")

    def _post_once(self, posting: Posting) -> Posted:
        delta = posting.amount if posting.type == "credit" else -posting.amount
        params = {
            "client_id": posting.client_id,
            "type": posting.type,
            "amount": posting.amount,
            "delta": delta,
            "reference": posting.reference,
            "description": posting.description,
            "now": posting.now,
        }
        with self.database.statement() as conn:
            row: Any = self._apply(conn, params)
            if row is None:
                raise UserNotFound(posting.client_id)
            user_id, posted_id, posted_balance, original_id, original_amount, original_balance = row
            if original_id is not None:
                return self._replay(
                    posting,
                    int(user_id),
                    original_id,
                    original_amount,
                    original_balance,
                )
            if posted_id is None:
                # The conditional UPDATE refused: only a debit over the balance does that.
                raise InsufficientBalance(
                    self._current_balance(conn, posting.client_id), posting.amount
                )
        return Posted(
            int(user_id),
            posting.client_id,
            posting.type,
            posting.amount,
            int(posted_id),
            posted_balance,
            replayed=False,
        )

    @staticmethod
    def _replay(
        posting: Posting, user_id: int, original_id: Any, original_amount: Any, balance: Any
    ) -> Posted:
        """The original transaction of this reference, or DuplicateReference."""
        if original_amount != posting.amount:
            raise DuplicateReference(int(original_id))
        return Posted(
            user_id,
            posting.client_id,
            posting.type,
            original_amount,
            int(original_id),
            balance,
            replayed=True,
        )

    @staticmethod
    def _current_balance(conn: PooledConnection, client_id: str) -> Decimal:
        """The latest committed balance (a new statement sees what the refused UPDATE saw)."""
        row: Any = conn.fetch_one(BALANCE_SQL, {"client_id": client_id})
        return row[1] if row else Decimal("0.00")

    @staticmethod
    def _apply(conn: PooledConnection, params: dict[str, Any]) -> Any:
        """Run POST_SQL, which commits as it ends (its own transaction: one round trip).

        A connection lost during the statement leaves the outcome unknown (the server may
        have committed just before): OutcomeUnknown, so the caller keeps the signature
        spent. A failure to get a connection at all raises StoreUnavailable instead.
        """
        try:
            return conn.fetch_one(POST_SQL, params)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("database lost during a wallet transaction; outcome unknown")
            raise OutcomeUnknown("outcome unknown") from exc

    def history(self, query: HistoryQuery) -> HistoryPage:
        """One page of a wallet's transactions and the total count; UserNotFound if none."""
        where, params = history_filter(query)
        offset = (query.page - 1) * query.limit
        with self.database.transaction() as conn:
            count_sql = sql.SQL(HISTORY_COUNT_SQL).format(where=where)
            found: Any = conn.execute(count_sql, params).fetchone()
            if found is None:
                raise UserNotFound(query.client_id)
            total = int(found[1])
            if offset >= total:
                # Past the end (the offset may also be far beyond what SQL accepts).
                return HistoryPage(total, [])
            page_sql = sql.SQL(HISTORY_PAGE_SQL).format(
                where=where,
                column=sql.SQL("t.") + sql.Identifier(SORT_COLUMNS[query.sort_by]),
                direction=sql.SQL("ASC" if query.sort_order == "asc" else "DESC"),
            )
            params.update(limit=query.limit, offset=offset)
            rows = conn.execute(page_sql, params).fetchall()
        return HistoryPage(total, [history_row(row) for row in rows])

    def wallets(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """Every wallet, or the one of `client_id` (operator CLI)."""
        with self.database.transaction() as conn:
            cur = conn.execute(WALLETS_SQL, {"client_id": client_id})
            names = [column.name for column in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def transactions(self, client_id: str, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` transactions of a wallet, newest first (operator CLI)."""
        with self.database.transaction() as conn:
            cur = conn.execute(TRANSACTIONS_SQL, {"client_id": client_id, "limit": limit})
            names = [column.name for column in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def reconcile(self) -> dict[str, list[str]]:
        """Every wallet whose balance is not credits - debits or whose `balance_after`
        values do not chain, with what is wrong; {} when the ledger is consistent.

        Reads one REPEATABLE READ snapshot, so traffic running meanwhile cannot make a
        consistent ledger look broken. Transactions are streamed (server-side cursor).
        """
        with self.database.transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            rows: list[Any] = conn.execute(WALLET_BALANCES_SQL).fetchall()
            checker = Reconciler({str(client_id): balance for client_id, balance in rows})
            with conn.cursor(name="reconcile") as cur:
                cur.execute(ALL_TRANSACTIONS_SQL)
                streamed: Iterable[Any] = cur
                for client_id, tx_id, kind, amount, after in streamed:
                    checker.add(str(client_id), int(tx_id), str(kind), amount, after)
        return checker.problems()


class Reconciler:
    """Replays every wallet's transactions in id order and notes each disagreement."""

    def __init__(self, balances: dict[str, Any]) -> None:
        self.balances = balances
        self.sums: dict[str, Decimal] = {}
        self.found: dict[str, list[str]] = {}

    def add(self, client_id: str, tx_id: int, kind: str, amount: Decimal, after: Decimal) -> None:
        """One transaction: its balance_after must be the previous one plus or minus it."""
        before = self.sums.get(client_id, Decimal("0.00"))
        expected = before + amount if kind == "credit" else before - amount
        if after != expected:
            self.found.setdefault(client_id, []).append(
                f"transaction {tx_id}: balanceAfter {after} but {before} {kind} {amount}"
                f" makes {expected}"
            )
        self.sums[client_id] = expected

    def problems(self) -> dict[str, list[str]]:
        """The notes so far plus every wallet whose balance differs from its sum."""
        for client_id, balance in self.balances.items():
            total = self.sums.get(client_id, Decimal("0.00"))
            if balance != total:
                self.found.setdefault(client_id, []).append(
                    f"balance {balance} but credits - debits = {total}"
                )
        return dict(sorted(self.found.items()))


def history_filter(query: HistoryQuery) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE clause of a history query and its parameters (values always bound)."""
    clauses = [sql.SQL("t.client_id = %(client_id)s")]
    params: dict[str, Any] = {"client_id": query.client_id}
    if query.type:
        clauses.append(sql.SQL("t.type = %(type)s"))
        params["type"] = query.type
    if query.date_from:
        clauses.append(sql.SQL("t.created_at >= %(date_from)s"))
        params["date_from"] = query.date_from
    if query.date_to:
        # A bare date covers its whole day: date_to is then the next midnight, exclusive.
        operator = "<" if query.date_to_whole_day else "<="
        clauses.append(sql.SQL(f"t.created_at {operator} %(date_to)s"))
        params["date_to"] = query.date_to
    return sql.SQL(" AND ").join(clauses), params


def history_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """One transaction as get-transactions shows it (amounts as two-decimal strings)."""
    tx_id, wallet_id, amount, currency, kind, reference, description, created, after = row
    return {
        "id": int(tx_id),
        "walletId": int(wallet_id),
        "amount": f"{amount:.2f}",
        "currency": currency,
        "type": kind,
        "referenceId": reference,
        "description": description,
        "createdAt": iso_utc(created),
        "balanceAfter": f"{after:.2f}",
    }
