"""The Sabong v1.0 API as partners see it through the gateway: every operation with its request and
response models, examples and security (scripts/openapi.py turns this into the document)."""

from __future__ import annotations

from shared.apidoc import RETRY_AFTER, Api, Operation, reply
from shared.exceptions import SignatureRejected
from shared.responses import sabong_body

from .models import (
    BalanceQuery,
    GenerateAuthTokenRequest,
    GenerateAuthTokenResponse,
    SabongError,
    SabongInvalidJson,
    SabongMeResponse,
    SabongValidationFailed,
    TransactionsQuery,
    WalletBalanceResponse,
    WalletCreditResponse,
    WalletDebitResponse,
    WalletDuplicateReference,
    WalletInsufficientBalance,
    WalletMoneyRequest,
    WalletTransactionsResponse,
)

# Every signed endpoint's 401.
SIGNATURE_REFUSED = reply(
    (
        "The signature was refused: headers missing or empty, timestamp not an "
        "integer or outside the 300 s window (`Missing required signature "
        "headers or secret`), no secret matches (`Invalid signature`), or the "
        "same signature was already accepted (`Duplicate request signature`). "
        "`X-Auth-Error` says which."
    ),
    SabongError,
    examples={
        "mismatch": (
            "Invalid signature",
            sabong_body("error", "Invalid signature", None),
        ),
        "expired": (
            "Missing required signature headers or secret",
            sabong_body("error", "Missing required signature headers or secret", None),
        ),
        "replayed": (
            "Duplicate request signature",
            sabong_body("error", "Duplicate request signature", None),
        ),
    },
    headers={
        "X-Auth-Error": {
            "description": (
                "Why the signature was refused, for debugging the partner's signing: "
                "`missing_headers`, `timestamp_invalid`, `timestamp_expired`, "
                "`signature_mismatch` or `replayed`. The body stays generic."
            ),
            "schema": {
                "type": "string",
                "enum": list(SignatureRejected.REASONS),
            },
        }
    },
)

# The two headers of a signed request (see "Sabong request signing" in the document).
SIGNATURE_HEADERS = [
    {
        "name": "x-signature",
        "in": "header",
        "required": True,
        "description": (
            "Lowercase hex HMAC-SHA256 of `METHOD + PATH + TIMESTAMP + PAYLOAD` "
            "with your client secret (see *Sabong request signing* above); for GET "
            "the payload is the query sorted by key."
        ),
        "schema": {"type": "string"},
    },
    {
        "name": "x-timestamp",
        "in": "header",
        "required": True,
        "description": ("Unix time in seconds; must be within 300 s of the server's clock."),
        "schema": {"type": "string"},
        "example": "1706802000",
    },
]

OPERATIONS = [
    Operation(
        method="post",
        path="/api/v1/generate-auth-token",
        operation_id="sabongGenerateAuthToken",
        tag="Sabong v1.0: partner API",
        summary="Generate a single-use login token and link for a user",
        description=(
            "Creates a time-limited, single-use token for the user identified by "
            "`clientId` and returns a login link. An unknown `clientId` creates the"
            " user (with a USD wallet, `isNewUser: true`); a known one has its "
            "`username` and display name updated. Earlier tokens stay valid until "
            "they expire or are used.\n"
            "\n"
            "**Signed request**: compute `x-signature` over the exact body bytes "
            "you send (see *Sabong request signing*)."
        ),
        request=GenerateAuthTokenRequest,
        parameters=[
            {
                "name": "x-signature",
                "in": "header",
                "required": True,
                "description": (
                    "Lowercase hex HMAC-SHA256 of `METHOD + PATH + TIMESTAMP + PAYLOAD` "
                    "with your client secret (see *Sabong request signing* above)."
                ),
                "schema": {"type": "string"},
                "example": ("335cf4f5ab98ca80b2615ee2e659312acfb45f9b322288d2b197d71b9edfa2c8"),
            },
            {
                "name": "x-timestamp",
                "in": "header",
                "required": True,
                "description": (
                    "Unix time in seconds; must be within 300 s of the server's clock."
                ),
                "schema": {"type": "string"},
                "example": "1706802000",
            },
        ],
        responses={
            200: reply("Token generated.", GenerateAuthTokenResponse),
            400: {
                "description": (
                    "Validation failed (every failing field reported), or the body is not a"
                    " JSON object."
                ),
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [SabongValidationFailed, SabongInvalidJson]},
                        "examples": {
                            "validation": {
                                "summary": "Validation failed",
                                "value": sabong_body(
                                    "failed",
                                    "Validation failed",
                                    {
                                        "errors": {
                                            "clientId": ["The clientId field is required."],
                                            "username": ["The username field is required."],
                                            "expiration": ["The expiration must be at least 1."],
                                        }
                                    },
                                ),
                            },
                            "json": {
                                "summary": "Invalid JSON body",
                                "value": sabong_body("failed", "Invalid JSON body", None),
                            },
                        },
                    }
                },
            },
            401: SIGNATURE_REFUSED,
            500: reply(
                ("The store (Redis) cannot be reached. Nothing was issued; retry."),
                SabongError,
                examples={
                    "store": (
                        "Failed to generate auth token",
                        sabong_body(
                            "failed",
                            "Failed to generate auth token",
                            {"error": "Database connection failed"},
                        ),
                    )
                },
            ),
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/api/v1/get-balance",
        operation_id="sabongGetBalance",
        tag="Sabong v1.0: wallet",
        summary="A user's wallet balance",
        description=(
            "The balance of the user's USD wallet and when it last changed.\n"
            "\n"
            "**Signed request** (see *Sabong request signing*)."
        ),
        query=BalanceQuery,
        parameters=SIGNATURE_HEADERS,
        responses={
            200: reply("The balance.", WalletBalanceResponse),
            400: reply(
                "`clientId` missing.",
                SabongValidationFailed,
                examples={
                    "validation": (
                        "Validation failed",
                        sabong_body(
                            "failed",
                            "Validation failed",
                            {"errors": {"clientId": ["The clientId field is required."]}},
                        ),
                    )
                },
            ),
            404: reply(
                "No user has this `clientId`.",
                SabongError,
                examples={
                    "missing": ("User not found", sabong_body("failed", "User not found", None))
                },
            ),
            500: reply(
                "A store cannot be reached; nothing changed, retry.",
                SabongError,
                examples={
                    "store": (
                        "Failed to get balance",
                        sabong_body("failed", "Failed to get balance", None),
                    )
                },
            ),
            401: SIGNATURE_REFUSED,
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/api/v1/credit-balance",
        operation_id="sabongCreditBalance",
        tag="Sabong v1.0: wallet",
        summary="Credit a user's wallet",
        description=(
            "Credits `amount` to the user's USD wallet in one committed transaction"
            " and returns the balance right after it.\n"
            "\n"
            "**Signed request** (see *Sabong request signing*)."
        ),
        request=WalletMoneyRequest,
        parameters=SIGNATURE_HEADERS,
        responses={
            200: reply(
                ("Applied and committed (or, with `Idempotent-Replayed: true`, applied earlier)."),
                WalletCreditResponse,
                headers={
                    "Idempotent-Replayed": {
                        "description": (
                            "`true` when this answer is the original transaction of the request's "
                            "`reference` (nothing new was applied)."
                        ),
                        "schema": {"const": "true"},
                    }
                },
            ),
            400: {
                "description": (
                    "Validation failed (every failing field) or not a JSON object; nothing applied."
                ),
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [SabongValidationFailed, SabongInvalidJson]},
                        "examples": {
                            "validation": {
                                "summary": "Validation failed",
                                "value": sabong_body(
                                    "failed",
                                    "Validation failed",
                                    {
                                        "errors": {
                                            "amount": ["The amount must have 0-2 decimal places."]
                                        }
                                    },
                                ),
                            },
                            "json": {
                                "summary": "Invalid JSON body",
                                "value": sabong_body("failed", "Invalid JSON body", None),
                            },
                        },
                    }
                },
            },
            404: reply(
                "No user has this `clientId`.",
                SabongError,
                examples={
                    "missing": ("User not found", sabong_body("failed", "User not found", None))
                },
            ),
            409: reply(
                ("The `reference` was already used with another amount; nothing applied."),
                WalletDuplicateReference,
            ),
            500: reply(
                (
                    "A store cannot be reached. Resend the same request (with a `reference`"
                    " a resend is always safe: it is applied at most once)."
                ),
                SabongError,
                examples={
                    "store": (
                        "Failed to credit balance",
                        sabong_body("failed", "Failed to credit balance", None),
                    )
                },
            ),
            401: SIGNATURE_REFUSED,
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/api/v1/debit-balance",
        operation_id="sabongDebitBalance",
        tag="Sabong v1.0: wallet",
        summary="Debit a user's wallet",
        description=(
            "Debits `amount` from the user's USD wallet in one committed "
            "transaction and returns the balance right after it.\n"
            "\n"
            "**Signed request** (see *Sabong request signing*)."
        ),
        request=WalletMoneyRequest,
        parameters=SIGNATURE_HEADERS,
        responses={
            200: reply(
                ("Applied and committed (or, with `Idempotent-Replayed: true`, applied earlier)."),
                WalletDebitResponse,
                headers={
                    "Idempotent-Replayed": {
                        "description": (
                            "`true` when this answer is the original transaction of the request's "
                            "`reference` (nothing new was applied)."
                        ),
                        "schema": {"const": "true"},
                    }
                },
            ),
            400: {
                "description": (
                    "Validation failed (every failing field), not a JSON object, or "
                    "`Insufficient balance` (nothing applied; a balance never goes below "
                    "0.00)."
                ),
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                SabongValidationFailed,
                                SabongInvalidJson,
                                WalletInsufficientBalance,
                            ]
                        },
                        "examples": {
                            "validation": {
                                "summary": "Validation failed",
                                "value": sabong_body(
                                    "failed",
                                    "Validation failed",
                                    {
                                        "errors": {
                                            "amount": ["The amount must have 0-2 decimal places."]
                                        }
                                    },
                                ),
                            },
                            "json": {
                                "summary": "Invalid JSON body",
                                "value": sabong_body("failed", "Invalid JSON body", None),
                            },
                            "insufficient": {
                                "summary": "Insufficient balance",
                                "value": sabong_body(
                                    "failed",
                                    "Insufficient balance",
                                    {"balance": 50.0, "amount": 100.5},
                                ),
                            },
                        },
                    }
                },
            },
            404: reply(
                "No user has this `clientId`.",
                SabongError,
                examples={
                    "missing": ("User not found", sabong_body("failed", "User not found", None))
                },
            ),
            409: reply(
                ("The `reference` was already used with another amount; nothing applied."),
                WalletDuplicateReference,
            ),
            500: reply(
                (
                    "A store cannot be reached. Resend the same request (with a `reference`"
                    " a resend is always safe: it is applied at most once)."
                ),
                SabongError,
                examples={
                    "store": (
                        "Failed to debit balance",
                        sabong_body("failed", "Failed to debit balance", None),
                    )
                },
            ),
            401: SIGNATURE_REFUSED,
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/api/v1/get-transactions",
        operation_id="sabongGetTransactions",
        tag="Sabong v1.0: wallet",
        summary="A user's wallet transactions, filtered, sorted and paged",
        description=(
            "One page of the wallet's transactions with `balanceAfter` for "
            "reconciliation. A page past the end is an empty list.\n"
            "\n"
            "**Signed request** (see *Sabong request signing*)."
        ),
        query=TransactionsQuery,
        parameters=SIGNATURE_HEADERS,
        responses={
            200: reply("One page.", WalletTransactionsResponse),
            400: reply(
                "Validation failed (every failing parameter).",
                SabongValidationFailed,
                examples={
                    "validation": (
                        "Validation failed",
                        sabong_body(
                            "failed",
                            "Validation failed",
                            {
                                "errors": {
                                    "limit": ["The limit must not be greater than 100."],
                                    "dateTo": [
                                        "The dateTo must be a date after or equal to dateFrom."
                                    ],
                                }
                            },
                        ),
                    )
                },
            ),
            404: reply(
                "No user has this `clientId`.",
                SabongError,
                examples={
                    "missing": ("User not found", sabong_body("failed", "User not found", None))
                },
            ),
            500: reply(
                "A store cannot be reached; retry.",
                SabongError,
                examples={
                    "store": (
                        "Failed to get transactions",
                        sabong_body("failed", "Failed to get transactions", None),
                    )
                },
            ),
            401: SIGNATURE_REFUSED,
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/api/v1/me",
        operation_id="sabongMe",
        tag="Sabong v1.0: login link and session",
        summary="The signed-in user (JSON)",
        description=(
            "The signed-in user's own session (the cookie set by the login link), "
            "not a partner signature. Same content as `/me`."
        ),
        security=[{"sabongSession": []}],
        responses={
            200: reply(
                "The user and wallet.",
                SabongMeResponse,
                headers={
                    "Cache-Control": {"schema": {"type": "string"}, "description": "`no-store`."}
                },
            ),
            401: reply(
                "No (valid) session.",
                SabongError,
                examples={"none": ("Not signed in", sabong_body("error", "Not signed in", None))},
            ),
            503: reply(
                "The store (Redis) cannot be reached; retry shortly.",
                SabongError,
                examples={
                    "store": (
                        "Service temporarily unavailable",
                        sabong_body(
                            "failed",
                            "Service temporarily unavailable",
                            {"error": "Database connection failed"},
                        ),
                    )
                },
                headers={"Retry-After": RETRY_AFTER},
            ),
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/login/{token}",
        operation_id="sabongLoginPage",
        tag="Sabong v1.0: login link and session",
        summary="Open a login link",
        description=(
            "A small HTML page that signs the user in automatically (it submits "
            "`POST /login/{token}` by script, with a visible button as fallback). "
            "This GET consumes nothing, so link scanners and previews cannot burn "
            "the token."
        ),
        parameters=[
            {
                "name": "token",
                "in": "path",
                "required": True,
                "description": "The 64-character token from `loginLink`.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{64}$"},
                "example": ("aB3dE5fGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjK"),
            }
        ],
        responses={
            200: {
                "description": "The sign-in page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            410: {
                "description": (
                    "Unknown, used or expired token: a page saying the link is invalid or "
                    "has expired."
                ),
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            503: "SabongPageUnavailable",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/login/{token}",
        operation_id="sabongLogin",
        tag="Sabong v1.0: login link and session",
        summary="Consume the token and start a session",
        description=(
            "Consumes the token atomically (of any number of concurrent requests "
            "exactly one wins), sets the session cookie (HttpOnly, SameSite=Lax, "
            "Secure in production) and redirects to the app (`SABONG_APP_URL`, "
            "default `/me`). Refused (403) when the request comes from another site"
            " or origin: a page elsewhere can neither sign the visitor in nor burn "
            "the link."
        ),
        parameters=[
            {
                "name": "token",
                "in": "path",
                "required": True,
                "description": "The 64-character token from `loginLink`.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{64}$"},
                "example": ("aB3dE5fGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjK"),
            }
        ],
        responses={
            303: {
                "description": "Signed in; redirect to the app.",
                "headers": {
                    "Location": {
                        "description": "Where the browser goes next.",
                        "schema": {"type": "string"},
                        "required": True,
                    },
                    "Set-Cookie": {
                        "description": "The session cookie `sabong_session`.",
                        "schema": {"type": "string"},
                    },
                },
            },
            403: "SabongCrossSite",
            410: {
                "description": (
                    "Unknown, used or expired token: a page saying the link is invalid or "
                    "has expired."
                ),
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            503: "SabongPageUnavailable",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/login/",
        operation_id="sabongNotSignedIn",
        tag="Sabong v1.0: login link and session",
        summary="Not signed in page",
        description="Where `/me` and `/logout` send a browser without a session.",
        parameters=[
            {
                "name": "signed_out",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["1"]},
                "description": "`1` after a logout: the page says so.",
            }
        ],
        responses={
            200: {
                "description": "A page saying the user is not signed in.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/me",
        operation_id="sabongMePage",
        tag="Sabong v1.0: login link and session",
        summary="The signed-in user's page",
        description=(
            "Shows the display name, username, client id and wallet balance (`USD 0.00`)."
        ),
        security=[{"sabongSession": []}, {}],
        responses={
            200: {
                "description": "The user's page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            303: {
                "description": "Not signed in: redirect to the not-signed-in page.",
                "headers": {
                    "Location": {
                        "description": "Where the browser goes next.",
                        "schema": {"type": "string"},
                        "required": True,
                    }
                },
            },
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            503: "SabongPageUnavailable",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/logout",
        operation_id="sabongLogout",
        tag="Sabong v1.0: login link and session",
        summary="End the session",
        description=(
            "Ends the session on the server (the session record in Redis is "
            "deleted: this cookie never works again, from anywhere), clears the "
            "cookie and redirects to the signed-out page. Refused (403, no "
            "`Set-Cookie`) when another site or origin started the request."
        ),
        security=[{"sabongSession": []}, {}],
        responses={
            303: {
                "description": "Signed out.",
                "headers": {
                    "Location": {
                        "description": "Where the browser goes next.",
                        "schema": {"type": "string"},
                        "required": True,
                    }
                },
            },
            403: "SabongCrossSite",
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            503: "SabongPageUnavailable",
            504: "SabongGatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/logout/all",
        operation_id="sabongLogoutEverywhere",
        tag="Sabong v1.0: login link and session",
        summary="End every session of the signed-in player",
        description=(
            "Ends every session of the signed-in player (other browsers and devices"
            " too), clears this browser's cookie and redirects to the signed-out "
            "page. Without a session it only redirects. Refused (403, no "
            "`Set-Cookie`) when another site or origin started the request."
        ),
        security=[{"sabongSession": []}, {}],
        responses={
            303: {
                "description": "Signed out everywhere.",
                "headers": {
                    "Location": {
                        "description": "Where the browser goes next.",
                        "schema": {"type": "string"},
                        "required": True,
                    }
                },
            },
            403: "SabongCrossSite",
            413: "SabongPayloadTooLarge",
            429: "SabongTooManyRequests",
            502: "SabongBadGateway",
            503: "SabongPageUnavailable",
            504: "SabongGatewayTimeout",
        },
    ),
]
RESPONSES = {
    "SabongNotFound": reply(
        ("No such path (made by the gateway for any path it does not route, or by the service)."),
        SabongError,
        example=sabong_body("error", "Not found", None),
    ),
    "SabongPayloadTooLarge": reply(
        ("The request body is larger than the gateway's limit (64 KiB by default)."),
        SabongError,
        example=sabong_body("error", "Request body too large", None),
    ),
    "SabongTooManyRequests": reply(
        ("Rate limit reached (gateway, per client address); retry after `Retry-After` seconds."),
        SabongError,
        example=sabong_body("error", "Too many requests", None),
        headers={"Retry-After": RETRY_AFTER},
    ),
    "SabongBadGateway": reply(
        ("No replica of the service could be reached (made by the gateway)."),
        SabongError,
        example=sabong_body("error", "Bad gateway", None),
    ),
    "SabongGatewayTimeout": reply(
        "The service did not answer in time (made by the gateway).",
        SabongError,
        example=sabong_body("error", "Gateway timeout", None),
    ),
    "SabongCrossSite": {
        "description": (
            "Refused: the browser says another site or origin started this request "
            "(`Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` that is "
            "not `SABONG_LOGIN_BASE_URL`'s). Nothing changes and no `Set-Cookie` is"
            " sent."
        ),
        "content": {
            "text/html": {
                "schema": {"type": "string"},
                "example": ("<!doctype html>… <h1>This request came from another site</h1> …"),
            }
        },
    },
    "SabongPageUnavailable": {
        "description": (
            "The store (Redis) cannot be reached: a page asking to try again in a moment."
        ),
        "content": {
            "text/html": {
                "schema": {"type": "string"},
                "example": "<!doctype html>… <h1>Temporarily unavailable</h1> …",
            }
        },
        "headers": {"Retry-After": RETRY_AFTER},
    },
}

API = Api(
    operations=OPERATIONS,
    tags=[
        {"name": "Sabong v1.0: partner API", "description": "HMAC-signed partner calls."},
        {
            "name": "Sabong v1.0: wallet",
            "description": "HMAC-signed money calls: balance, credit, debit, history.",
        },
        {
            "name": "Sabong v1.0: login link and session",
            "description": "What the partner's user does with a login link.",
        },
    ],
    security_schemes={
        "sabongSession": {
            "type": "apiKey",
            "in": "cookie",
            "name": "sabong_session",
            "description": "The session cookie set by `POST /login/{token}`.",
        }
    },
    responses=RESPONSES,
)
