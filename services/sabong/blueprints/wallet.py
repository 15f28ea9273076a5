"""The wallet API: get-balance, credit-balance, debit-balance, get-transactions (signed).

Refusals (unknown user, insufficient balance, duplicate reference) and store failures
answer through errors.py."""

from __future__ import annotations

from flask import Blueprint, Response

from shared.request_cycle import current_request
from shared.responses import sabong_body
from shared.web import json_response, raw_body

from ..models import TransactionType
from ..runtime import now, runtime
from ..signature import authenticate
from ..wallet import get_balance as balance_data
from ..wallet import get_transactions as transactions_data
from ..wallet import post_money, posted_data

bp = Blueprint("wallet", __name__)

SUCCESS_MESSAGES = {
    "credit": "Balance credited successfully",
    "debit": "Balance debited successfully",
}


def query_args() -> dict[str, str]:
    """The query parameters (the first value of a repeated one)."""
    return current_request().args.to_dict(flat=True)


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
