"""Laravel-style validation of partner requests through the models in models.py: every
failing field reported, in field order, with Laravel's messages (see rules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.exceptions import ValidationFailed

from .models import (
    BalanceQuery,
    GenerateAuthTokenRequest,
    SortField,
    SortOrder,
    TransactionsQuery,
    TransactionType,
    WalletMoneyRequest,
)
from .rules import REQUIRED, optional_value, parse_iso_date

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], fields: dict[str, Any]) -> M:
    """`fields` validated by `model`, or ValidationFailed with Laravel's messages."""
    try:
        return model.model_validate(fields)
    except ValidationError as failed:
        raise ValidationFailed(laravel_errors(failed)) from None


def laravel_errors(failed: ValidationError) -> dict[str, list[str]]:
    """Each failing field (its wire name) with its messages, in the model's field order."""
    errors: dict[str, list[str]] = {}
    for error in failed.errors(include_url=False, include_input=False):
        field = str(error["loc"][0])
        if error["type"] == "laravel":
            templates = error["ctx"]["messages"]
        elif error["type"] == "missing":
            templates = [REQUIRED]
        else:  # a rule let through what the declared type refuses: a bug, say so plainly
            templates = ["The {field} is invalid."]
        errors.setdefault(field, []).extend(t.format(field=field) for t in templates)
    return errors


@dataclass(frozen=True)
class TokenRequest:
    """A validated generate-auth-token request."""

    client_id: str
    username: str
    display_name: str
    ip_address: str
    expiration_minutes: int


@dataclass(frozen=True)
class MoneyRequest:
    """A validated credit-balance or debit-balance request (amount exact, two places)."""

    client_id: str
    amount: Decimal
    description: str | None
    reference: str | None


@dataclass(frozen=True)
class HistoryQuery:
    """A validated get-transactions query."""

    client_id: str
    limit: int
    page: int
    type: TransactionType | None
    sort_by: SortField
    sort_order: SortOrder
    date_from: datetime | None
    date_to: datetime | None  # exclusive when `date_to_whole_day`, else inclusive
    date_to_whole_day: bool
    filters: dict[str, str]


def validate_token_request(body: dict[str, Any]) -> TokenRequest:
    """The validated request, or ValidationFailed listing every failing field in order."""
    fields = validated(GenerateAuthTokenRequest, body)
    return TokenRequest(
        client_id=fields.clientId,
        username=fields.username,
        display_name=fields.displayName,
        ip_address=fields.ipAddress,
        expiration_minutes=fields.expiration,
    )


def validate_client_id(value: Any) -> str:
    """The clientId of a get-balance query, or ValidationFailed."""
    return validated(BalanceQuery, {"clientId": value}).clientId


def validate_money_request(body: dict[str, Any]) -> MoneyRequest:
    """The validated credit/debit body, or ValidationFailed listing every failing field."""
    fields = validated(WalletMoneyRequest, body)
    return MoneyRequest(
        client_id=fields.clientId,
        amount=fields.amount,
        description=fields.description,
        reference=fields.reference,
    )


def validate_history_query(args: dict[str, str]) -> HistoryQuery:
    """The validated get-transactions query string, or ValidationFailed (every field)."""
    query = validated(TransactionsQuery, args)
    date_from = parse_iso_date(query.dateFrom) if query.dateFrom else None
    date_to = parse_iso_date(query.dateTo) if query.dateTo else None
    given = {k: args[k] for k in ("type", "dateFrom", "dateTo") if optional_value(args.get(k))}
    whole_day = bool(date_to and date_to[1])
    return HistoryQuery(
        client_id=query.clientId,
        limit=query.limit,
        page=query.page,
        type=query.type,
        sort_by=query.sortBy,
        sort_order=query.sortOrder,
        date_from=date_from[0] if date_from else None,
        date_to=(date_to[0] + timedelta(days=1) if whole_day else date_to[0]) if date_to else None,
        date_to_whole_day=whole_day,
        filters=given,
    )
