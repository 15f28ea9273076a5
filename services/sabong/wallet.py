"""The wallet API's steps between the signed request and the ledger (views call these)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from shared.exceptions import BadRequest, StoreUnavailable, ValidationFailed
from shared.observability import (
    WALLET_REFUSALS,
    WALLET_REPLAYS,
    WALLET_TRANSACTIONS,
    count_event,
)
from shared.timestamps import iso_utc, utc_datetime
from shared.web import parse_json_object

from .exceptions import OutcomeUnknown
from .models import MAX_CLIENT_ID_CHARS, TransactionType
from .rules import is_missing
from .runtime import Runtime
from .validation import (
    HistoryQuery,
    validate_client_id,
    validate_history_query,
    validate_money_request,
)
from .wallet_store import Balance, HistoryPage, Posted, Posting, WalletStore

R = TypeVar("R")


def replay_key_client(value: Any) -> str | None:
    """The clientId to group a replay guard under, when it is a usable one; else None."""
    if isinstance(value, str) and not is_missing(value) and len(value) <= MAX_CLIENT_ID_CHARS:
        return value
    return None


def get_balance(rt: Runtime, args: dict[str, str], signature: str) -> dict[str, Any]:
    """The `data` of get-balance: userId, clientId, balance, updatedAt."""

    def read() -> Balance:
        return WalletStore(rt.database).balance(validate_client_id(args.get("clientId")))

    found = read_behind_replay_guard(rt, signature, replay_key_client(args.get("clientId")), read)
    return {
        "userId": found.user_id,
        "clientId": found.client_id,
        "balance": found.balance,
        "updatedAt": iso_utc(found.updated_at),
    }


def post_money(
    rt: Runtime, kind: TransactionType, body: bytes, signature: str, now: float
) -> Posted:
    """Apply a signed credit or debit body (once per reference); the applied transaction."""
    try:
        fields: dict[str, Any] | None = parse_json_object(body, exact=True)
    except BadRequest:
        fields = None
    client_key = replay_key_client(fields.get("clientId")) if fields else None
    # The signature is spent before anything else: a replay never reaches the ledger. Its
    # guard's reply is read after validation, which runs while Redis answers.
    try:
        posting = read_behind_replay_guard(
            rt, signature, client_key, lambda: money_posting(kind, fields, now)
        )
    except (BadRequest, ValidationFailed):
        WALLET_REFUSALS.labels(kind, "validation").inc()
        raise
    posted = with_replay_release(
        rt, signature, client_key, lambda: WalletStore(rt.database).post(posting)
    )
    count_event(WALLET_REPLAYS if posted.replayed else WALLET_TRANSACTIONS, kind)
    return posted


def money_posting(kind: TransactionType, fields: dict[str, Any] | None, now: float) -> Posting:
    """The posting a credit or debit body asks for; BadRequest or ValidationFailed."""
    if fields is None:
        raise BadRequest()
    request = validate_money_request(fields)
    return Posting(
        client_id=request.client_id,
        type=kind,
        amount=request.amount,
        description=request.description,
        reference=request.reference,
        now=utc_datetime(now),
    )


def posted_data(posted: Posted) -> dict[str, Any]:
    """The `data` of a credit or debit response (amounts and balance as JSON numbers)."""
    return {
        "userId": posted.user_id,
        "clientId": posted.client_id,
        "amount": posted.amount,
        "type": posted.type,
        "transactionId": posted.transaction_id,
        "balance": posted.balance,
    }


def get_transactions(rt: Runtime, args: dict[str, str], signature: str) -> dict[str, Any]:
    """The `data` of get-transactions: one page, the counts, filters and sort used."""

    def read() -> tuple[HistoryQuery, HistoryPage]:
        query = validate_history_query(args)
        return query, WalletStore(rt.database).history(query)

    query, page = read_behind_replay_guard(
        rt, signature, replay_key_client(args.get("clientId")), read
    )
    return history_data(query, page)


def history_data(query: HistoryQuery, page: HistoryPage) -> dict[str, Any]:
    total_pages = -(-page.total_count // query.limit)
    return {
        "clientId": query.client_id,
        "totalCount": page.total_count,
        "resultCount": len(page.rows),
        "totalPages": total_pages,
        "currentPage": query.page,
        "limit": query.limit,
        "filters": query.filters,
        "sort": {"sortBy": query.sort_by, "sortOrder": query.sort_order},
        "data": page.rows,
    }


def with_replay_release(
    rt: Runtime, signature: str, client_key: str | None, work: Callable[[], R]
) -> R:
    """Run `work()`; when the database fails before anything can have been applied, free
    the signature so the partner may resend the request that got the 500.

    After the connection is lost during the write the outcome is unknown (OutcomeUnknown)
    and the signature stays spent: a resend might apply the money twice (a resend with a
    `reference` is always safe).
    """
    try:
        return work()
    except OutcomeUnknown:
        raise
    except StoreUnavailable:
        rt.store.forget_signature(signature, client_key)
        raise


def read_behind_replay_guard(
    rt: Runtime, signature: str, client_key: str | None, read: Callable[[], R]
) -> R:
    """Spend the signature and run `read()` meanwhile: validation and a database read
    (get-balance, one wait for both stores instead of two) or validation alone (credit and
    debit, whose CPU then overlaps Redis's answer).

    The guard's verdict still decides first: a replay is refused whatever `read()` did or
    raised (a read changes nothing, so running it early is harmless). When the database
    fails, the signature is freed again so that the partner may resend.
    """
    guard = rt.store.send_signature_guard(signature, client_key)
    try:
        result = read()
    except StoreUnavailable:
        guard.confirm()
        rt.store.forget_signature(signature, client_key)
        raise
    except BaseException:
        guard.confirm()
        raise
    guard.confirm()
    return result


def insufficient_data(balance: Decimal, amount: Decimal) -> dict[str, Any]:
    return {"balance": balance, "amount": amount}
