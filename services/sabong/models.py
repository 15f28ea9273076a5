"""The Sabong v1.0 contract as pydantic models: requests (with their validation rules) and
responses (the `status`/`message`/`data` envelope and each data shape).

validation.py validates through the request models; scripts/openapi.py turns all of them
into the JSON Schemas of the OpenAPI document. Field names are the wire names.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

from .rules import (
    Amount,
    Choice,
    Integer,
    IsoDate,
    OptionalString,
    RequiredString,
    parse_iso_date,
    refuse,
)

ISO_MILLIS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
CENTS = r"^\d+\.\d{2}$"
MONEY_DESCRIPTION = "Exact, with two decimals on the wire (`1600.50`); parse as a decimal."
TransactionType = Literal["credit", "debit"]
SortField = Literal["id", "walletId", "amount", "currency", "type", "createdAt"]
SortOrder = Literal["asc", "desc"]


def money(description: str = MONEY_DESCRIPTION) -> Any:
    """A Decimal written as a JSON number with two decimals (see shared.responses)."""
    return WithJsonSchema({"type": "number", "minimum": 0, "description": description})


def example(value: Any) -> ConfigDict:
    """Model config carrying a schema-level example."""
    return ConfigDict(json_schema_extra={"example": value})


# -- requests ----------------------------------------------------------------------------

MAX_CLIENT_ID_CHARS = 255
ClientId = Annotated[str, Field(min_length=1, max_length=MAX_CLIENT_ID_CHARS), RequiredString()]


class GenerateAuthTokenRequest(BaseModel):
    """Unknown fields are ignored. The signature is checked before validation."""

    model_config = example(
        {
            "clientId": "CLIENT_001",
            "username": "testuser001",
            "displayName": "Client One",
            "ipAddress": "192.168.1.100",
            "expiration": 5,
        }
    )

    clientId: Annotated[
        ClientId, Field(description="Your identifier of the user; links your user to ours.")
    ]
    username: Annotated[str, Field(min_length=1, max_length=100), RequiredString()]
    displayName: Annotated[str, Field(min_length=1, max_length=100), RequiredString()]
    ipAddress: Annotated[
        str,
        Field(
            max_length=45,
            description="The user's IP address (IPv4 or IPv6), kept for audit.",
            json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        ),
        RequiredString(ip=True),
    ]
    expiration: Annotated[
        int,
        Field(
            ge=1,
            le=1440,
            description="Token lifetime in minutes (default 2, at most 24 hours). An "
            'integer-valued numeric string such as `"5"` is accepted too; booleans and '
            "fractions are not.",
        ),
        Integer(),
    ] = 2


class WalletMoneyRequest(BaseModel):
    """A credit-balance or debit-balance body."""

    model_config = example(
        {
            "clientId": "CLIENT_001",
            "amount": 100.5,
            "description": "Deposit",
            "reference": "TXN-20260201-0001",
        }
    )

    clientId: ClientId
    amount: Annotated[
        Decimal,
        Field(ge=Decimal("0.01"), le=Decimal("1000000"), decimal_places=2),
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "number", "minimum": 0.01, "maximum": 1000000},
                    {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$"},
                ],
                "description": "0.01 .. 1000000, at most two decimal places; a numeric string "
                'such as `"10.50"` is accepted. Parsed exactly (never as a binary float).',
            }
        ),
        Amount(),
    ]
    description: Annotated[str | None, Field(max_length=500), OptionalString()] = None
    reference: Annotated[
        str | None,
        Field(
            max_length=255,
            description="Your own transaction id. A (clientId, type, reference) is applied "
            "once: a repeat with the same amount answers 200 with the original transaction "
            "and `Idempotent-Replayed: true`; with another amount 409 `Duplicate reference`. "
            "Without a reference nothing is deduplicated.",
        ),
        OptionalString(),
    ] = None


QUERY_CLIENT_ID = "The partner's user id (as given to generate-auth-token)."


class BalanceQuery(BaseModel):
    """The get-balance query."""

    clientId: Annotated[ClientId, Field(description=QUERY_CLIENT_ID, examples=["CLIENT_001"])]


class TransactionsQuery(BaseModel):
    """The get-transactions query: filters, sort and page."""

    clientId: Annotated[ClientId, Field(description=QUERY_CLIENT_ID, examples=["CLIENT_001"])]
    limit: Annotated[int, Field(ge=1, le=100, description="Page size."), Integer()] = 10
    page: Annotated[int, Field(ge=1, description="Page number, from 1."), Integer()] = 1
    type: Annotated[
        TransactionType | None, Field(description="Only credits or only debits."), Choice()
    ] = None
    sortBy: Annotated[SortField, Field(description="Sort field."), Choice()] = "createdAt"
    sortOrder: Annotated[
        SortOrder,
        Field(description="Sort order; ties broken by `id` in the same order."),
        Choice(),
    ] = "desc"
    dateFrom: Annotated[
        str | None,
        Field(
            description="ISO 8601 date or date-time (UTC unless an offset is given); inclusive.",
            json_schema_extra={"format": "date"},
        ),
        IsoDate(),
    ] = None
    dateTo: Annotated[
        str | None,
        Field(
            description="ISO 8601 date or date-time; inclusive (a bare date covers that "
            "whole day, UTC).",
            json_schema_extra={"format": "date"},
        ),
        IsoDate(),
    ] = None

    @field_validator("dateTo")
    @classmethod
    def not_before_date_from(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Laravel `after_or_equal:dateFrom`, judged only when both dates are valid."""
        start, end = info.data.get("dateFrom"), value
        if start is None or end is None:
            return value
        parsed_start, parsed_end = parse_iso_date(start), parse_iso_date(end)
        if parsed_start and parsed_end and parsed_end[0] < parsed_start[0]:
            refuse("The {field} must be a date after or equal to dateFrom.")
        return value


# -- envelopes ---------------------------------------------------------------------------


class SabongError(BaseModel):
    """Sabong envelope of an error (`data` null unless stated)."""

    model_config = example({"status": "error", "message": "Invalid signature", "data": None})

    status: Literal["failed", "error"]
    message: str
    data: dict[str, Any] | None


class ValidationErrors(BaseModel):
    """The `data` of a validation failure."""

    errors: dict[str, Annotated[list[str], Field(min_length=1)]] = Field(
        description="Every failing field with its messages."
    )


class SabongValidationFailed(BaseModel):
    """400: fields failed validation; every failing field is listed."""

    status: Literal["failed"]
    message: Literal["Validation failed"]
    data: ValidationErrors


class SabongInvalidJson(BaseModel):
    """400: the body is not a JSON object."""

    status: Literal["failed"]
    message: Literal["Invalid JSON body"]
    data: None


class Strict(BaseModel):
    """A response shape that holds exactly its fields (additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid")


class IssuedUser(Strict):
    """The user a login token was issued for."""

    id: int = Field(ge=1, description="Internal user id.")
    username: str
    displayId: str = Field(description="The clientId.")
    displayName: str


class IssuedToken(Strict):
    """The `data` of generate-auth-token."""

    token: str = Field(
        pattern=r"^[A-Za-z0-9]{64}$", description="64-character single-use login token."
    )
    expiration: Annotated[
        str,
        Field(
            pattern=ISO_MILLIS,
            description="When the token expires: ISO 8601 UTC with milliseconds.",
            json_schema_extra={"format": "date-time"},
        ),
    ]
    expiresIn: int = Field(
        ge=60, le=86400, description="Token validity in seconds (`expiration` minutes x 60)."
    )
    loginLink: Annotated[
        str,
        Field(
            description="`SABONG_LOGIN_BASE_URL` + `/login/` + token: send the user there.",
            json_schema_extra={"format": "uri"},
        ),
    ]
    user: IssuedUser
    isNewUser: bool = Field(
        description="True when this call created the user (and its USD wallet)."
    )


TOKEN_EXAMPLE = "aB3dE5fGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjK"  # noqa: S105 - an example token, not a secret


class GenerateAuthTokenResponse(BaseModel):
    """200 of generate-auth-token: a single-use login link for the user."""

    model_config = example(
        {
            "status": "success",
            "message": "Auth token generated successfully",
            "data": {
                "token": TOKEN_EXAMPLE,
                "expiration": "2026-02-01T14:59:42.123Z",
                "expiresIn": 300,
                "loginLink": f"https://your-app.com/login/{TOKEN_EXAMPLE}",
                "user": {
                    "id": 123,
                    "username": "testuser001",
                    "displayId": "CLIENT_001",
                    "displayName": "Client One",
                },
                "isNewUser": True,
            },
        }
    )

    status: Literal["success"]
    message: Literal["Auth token generated successfully"]
    data: IssuedToken


class ProfileUser(BaseModel):
    """The signed-in user."""

    id: int
    username: str
    displayId: str
    displayName: str
    clientId: Annotated[str | None, WithJsonSchema({"type": "string"})] = None
    referralCode: Annotated[
        str | None, WithJsonSchema({"type": "string", "pattern": r"^REF-\d{4}-[A-Z0-9]{6}$"})
    ] = None


class ProfileWallet(BaseModel):
    """The signed-in user's wallet."""

    currency: str = Field(examples=["USD"])
    balance: str = Field(pattern=r"^-?\d+\.\d{2}$", examples=["0.00"])


class Profile(BaseModel):
    """The signed-in user and their wallet."""

    user: ProfileUser
    wallet: ProfileWallet


class SabongMeResponse(BaseModel):
    """200 of /api/v1/me."""

    model_config = example(
        {
            "status": "success",
            "message": "Profile retrieved successfully",
            "data": {
                "user": {
                    "id": 123,
                    "username": "testuser001",
                    "displayId": "CLIENT_001",
                    "displayName": "Client One",
                    "clientId": "CLIENT_001",
                    "referralCode": "REF-2026-A1B2C3",
                },
                "wallet": {"currency": "USD", "balance": "0.00"},
            },
        }
    )

    status: Literal["success"]
    message: str
    data: Profile


# -- the wallet --------------------------------------------------------------------------


class Balance(Strict):
    """A wallet's balance."""

    userId: int = Field(ge=1)
    clientId: str
    balance: Annotated[Decimal, money()]
    updatedAt: str | None = Field(
        pattern=ISO_MILLIS,
        description="Time of the last balance change (UTC, milliseconds); null before the first.",
    )


class WalletBalanceResponse(BaseModel):
    """200 of get-balance."""

    model_config = example(
        {
            "status": "success",
            "message": "Balance retrieved successfully",
            "data": {
                "userId": 1,
                "clientId": "CLIENT_001",
                "balance": 1600.5,
                "updatedAt": "2026-02-01T14:59:42.123Z",
            },
        }
    )

    status: Literal["success"]
    message: Literal["Balance retrieved successfully"]
    data: Balance


class Posted(Strict):
    """A credit or debit as applied."""

    userId: int = Field(ge=1)
    clientId: str
    amount: Annotated[Decimal, money()]
    type: TransactionType
    transactionId: int = Field(ge=1)
    balance: Annotated[Decimal, money("The balance right after this transaction.")]


def posted_example(kind: str, message: str, balance: float) -> ConfigDict:
    """The example of a credit or debit response."""
    data = {
        "userId": 1,
        "clientId": "CLIENT_001",
        "amount": 100.5,
        "type": kind,
        "transactionId": 42,
        "balance": balance,
    }
    return example({"status": "success", "message": message, "data": data})


class Credited(Posted):
    """A credit as applied."""

    type: Literal["credit"]


class Debited(Posted):
    """A debit as applied."""

    type: Literal["debit"]


class WalletCreditResponse(BaseModel):
    """200 of credit-balance."""

    model_config = posted_example("credit", "Balance credited successfully", 1600.5)

    status: Literal["success"]
    message: Literal["Balance credited successfully"]
    data: Credited


class WalletDebitResponse(BaseModel):
    """200 of debit-balance."""

    model_config = posted_example("debit", "Balance debited successfully", 1399.5)

    status: Literal["success"]
    message: Literal["Balance debited successfully"]
    data: Debited


class Shortfall(Strict):
    """The balance and the amount that exceeds it."""

    balance: Annotated[Decimal, money()]
    amount: Annotated[Decimal, money()]


class WalletInsufficientBalance(BaseModel):
    """400 of debit-balance: the amount exceeds the balance."""

    model_config = example(
        {
            "status": "failed",
            "message": "Insufficient balance",
            "data": {"balance": 50.0, "amount": 100.5},
        }
    )

    status: Literal["failed"]
    message: Literal["Insufficient balance"]
    data: Shortfall


class Original(Strict):
    """The transaction a reference already names."""

    transactionId: int = Field(ge=1, description="The original transaction of this reference.")


class WalletDuplicateReference(BaseModel):
    """409: the reference was already used with another amount."""

    model_config = example(
        {"status": "failed", "message": "Duplicate reference", "data": {"transactionId": 42}}
    )

    status: Literal["failed"]
    message: Literal["Duplicate reference"]
    data: Original


class WalletTransaction(Strict):
    """One ledger row, amounts as exact decimal strings."""

    id: int = Field(ge=1)
    walletId: int = Field(ge=1)
    amount: str = Field(pattern=CENTS, description='Exact decimal as a string (`"100.50"`).')
    currency: Literal["USD"]
    type: TransactionType
    referenceId: str | None
    description: str | None
    createdAt: str = Field(pattern=ISO_MILLIS)
    balanceAfter: str = Field(
        pattern=CENTS,
        description="The balance right after this transaction (for reconciliation): each one "
        "is the previous plus a credit or minus a debit.",
    )


# Present as a string, or absent (never null on the wire).
OptionalText = Annotated[str | None, WithJsonSchema({"type": "string"})]


class Filters(Strict):
    """Only the filters given."""

    type: OptionalText = None
    dateFrom: OptionalText = None
    dateTo: OptionalText = None


class Sort(Strict):
    """The sort used."""

    sortBy: SortField
    sortOrder: SortOrder


class TransactionsPage(Strict):
    """One page of transactions with the counts, filters and sort used."""

    clientId: str
    totalCount: int = Field(ge=0)
    resultCount: int = Field(ge=0)
    totalPages: int = Field(ge=0)
    currentPage: int = Field(ge=1)
    limit: int = Field(ge=1, le=100)
    filters: Filters
    sort: Sort
    data: list[WalletTransaction]


class WalletTransactionsResponse(BaseModel):
    """200 of get-transactions."""

    model_config = example(
        {
            "status": "success",
            "message": "Transactions retrieved successfully",
            "data": {
                "clientId": "CLIENT_001",
                "totalCount": 1,
                "resultCount": 1,
                "totalPages": 1,
                "currentPage": 1,
                "limit": 10,
                "filters": {"type": "credit"},
                "sort": {"sortBy": "createdAt", "sortOrder": "desc"},
                "data": [
                    {
                        "id": 42,
                        "walletId": 1,
                        "amount": "100.50",
                        "currency": "USD",
                        "type": "credit",
                        "referenceId": "TXN-20260201-0001",
                        "description": "Deposit",
                        "createdAt": "2026-02-01T14:59:42.123Z",
                        "balanceAfter": "1600.50",
                    }
                ],
            },
        }
    )

    status: Literal["success"]
    message: Literal["Transactions retrieved successfully"]
    data: TransactionsPage
