"""The wallet API: get-balance, credit-balance, debit-balance, get-transactions (signed)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from shared.exceptions import StoreUnavailable
from shared.observability import WALLET_REFUSALS
from shared.responses import sabong_body
from shared.web import json_response, raw_body

from ..ledger import DuplicateReference, InsufficientBalance, TransactionType, UserNotFound
from ..runtime import now, runtime
from ..signature import authenticate
from ..wallet import get_balance as balance_data
from ..wallet import get_transactions as transactions_data
from ..wallet import insufficient_data, post_money, posted_data

log = logging.getLogger(__name__)

bp = Blueprint("wallet", __name__)

SUCCESS_MESSAGES = {
    "credit": "Balance credited successfully",
    "debit": "Balance debited successfully",
}
# The contract's 500 message of each endpoint when a store (Redis or PostgreSQL) is down.
FAILURE_MESSAGES = {
    "wallet.get_balance": "Failed to get balance",
    "wallet.credit_balance": "Failed to credit balance",
    "wallet.debit_balance": "Failed to debit balance",
    "wallet.get_transactions": "Failed to get transactions",
}
MONEY_ENDPOINTS: dict[str, TransactionType] = {
    "wallet.credit_balance": "credit",
    "wallet.debit_balance": "debit",
}


def query_args() -> dict[str, str]:
    """The query parameters (the first value of a repeated one)."""
    return request.args.to_dict(flat=True)


@bp.get("/api/v1/get-balance")
def get_balance() -> Response:
    rt = runtime()
    signature = authenticate(rt.client_secrets, now())
    data = balance_data(rt, query_args(), signature)
    return json_response(sabong_body("success", "Balance retrieved successfully", data), 200)


@bp.post("/api/v1/credit-balance")
def credit_balance() -> Response:
    return move_money("credit")


@bp.post("/api/v1/debit-balance")
def debit_balance() -> Response:
    return move_money("debit")


def move_money(kind: TransactionType) -> Response:
    """Signature, replay guard, validation, then one ledger transaction."""
    rt = runtime()
    current = now()
    signature = authenticate(rt.client_secrets, current)
    posted = post_money(rt, kind, raw_body(), signature, current)
    body = sabong_body("success", SUCCESS_MESSAGES[kind], posted_data(posted))
    headers = {"Idempotent-Replayed": "true"} if posted.replayed else None
    return json_response(body, 200, headers)


@bp.get("/api/v1/get-transactions")
def get_transactions() -> Response:
    rt = runtime()
    signature = authenticate(rt.client_secrets, now())
    data = transactions_data(rt, query_args(), signature)
    return json_response(sabong_body("success", "Transactions retrieved successfully", data), 200)


def count_refusal(reason: str) -> None:
    kind = MONEY_ENDPOINTS.get(request.endpoint or "")
    if kind:
        WALLET_REFUSALS.labels(kind, reason).inc()


@bp.errorhandler(UserNotFound)
def user_not_found(exc: UserNotFound) -> Response:
    count_refusal("user_not_found")
    return json_response(sabong_body("failed", "User not found"), 404)


@bp.errorhandler(InsufficientBalance)
def insufficient_balance(exc: InsufficientBalance) -> Response:
    count_refusal("insufficient_balance")
    data = insufficient_data(exc.balance, exc.amount)
    return json_response(sabong_body("failed", "Insufficient balance", data), 400)


@bp.errorhandler(DuplicateReference)
def duplicate_reference(exc: DuplicateReference) -> Response:
    count_refusal("duplicate_reference")
    data = {"transactionId": exc.transaction_id}
    return json_response(sabong_body("failed", "Duplicate reference", data), 409)


@bp.errorhandler(StoreUnavailable)
def store_unavailable(exc: StoreUnavailable) -> Response:
    """500 with the endpoint's documented message; nothing about the cause leaks."""
    log.warning("store unavailable on %s: %s", request.endpoint, type(exc).__name__)
    message = FAILURE_MESSAGES.get(request.endpoint or "", "Internal server error")
    return json_response(sabong_body("failed", message), 500)
