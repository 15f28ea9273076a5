"""The K2 USSD API as partners see it through the gateway: every operation with its request and
response models, examples and security (scripts/openapi.py turns this into the document)."""

from __future__ import annotations

from shared.apidoc import RETRY_AFTER, Api, Operation, reply
from shared.responses import k2_body

from .models import (
    K2ApiKeyRequest,
    K2ApiKeyResponse,
    K2Error,
    K2LoginRequest,
    K2LoginResponse,
    K2MeResponse,
    K2RevokeResponse,
    K2ServiceIdResponse,
)

OPERATIONS = [
    Operation(
        method="post",
        path="/api/auth/login",
        operation_id="k2Login",
        tag="K2 USSD: authentication",
        summary="Log in with username and password",
        description=(
            "Exchanges the partner's credentials (issued by K2 after review; there "
            "is no sign-up) for a **login JWT**. Use the login JWT only to generate"
            " Service IDs and API keys."
        ),
        security=[],
        request=K2LoginRequest,
        responses={
            200: reply(
                "Logged in.",
                K2LoginResponse,
                example=k2_body(
                    200,
                    "Login successful",
                    {
                        "token": (
                            "eyJhbGciOiJIUzI1NiIsInR5cCI6ImxvZ2luK2p3dCJ9.eyJzdWIiOiI0ZjFjMmE5MC0xY"
                            "jJjLTRkNWUtOGY5YS0wYjFjMmQzZTRmNWEiLCJpYXQiOjE3NDk2OTcyNzEsImV4cCI6MTc"
                            "0OTcwMDg3MX0.c2lnbmF0dXJl"
                        ),
                        "user": {
                            "id": "4f1c2a90-1b2c-4d5e-8f9a-0b1c2d3e4f5a",
                            "client_id": "CL-7F3A9C21",
                            "username": "partner_acme",
                            "email": "",
                            "role": "client",
                            "is_active": 1,
                            "msisdn": None,
                            "created_at": "2026-01-05T09:30:00Z",
                            "updated_at": "2026-01-05T09:30:00Z",
                            "deleted_at": None,
                        },
                    },
                ),
            ),
            400: reply(
                (
                    "The body is not JSON, not an object, or `username`/`password` is "
                    "missing or not a string."
                ),
                K2Error,
                examples={
                    "bad": ("Invalid request format", k2_body(400, "Invalid request format", None))
                },
            ),
            401: reply(
                ("Unknown username or wrong password (deliberately the same answer)."),
                K2Error,
                examples={
                    "wrong": (
                        "Invalid username or password",
                        k2_body(401, "Invalid username or password", None),
                    )
                },
            ),
            403: reply(
                "The account is disabled.",
                K2Error,
                examples={
                    "disabled": ("Account is disabled", k2_body(403, "Account is disabled", None))
                },
            ),
            429: "K2TooManyRequests",
            503: reply(
                ("Redis (the service's store) cannot be reached; retry shortly."),
                K2Error,
                examples={
                    "unavailable": (
                        "Service temporarily unavailable",
                        k2_body(503, "Service temporarily unavailable", None),
                    )
                },
            ),
            413: "K2PayloadTooLarge",
            502: "K2BadGateway",
            504: "K2GatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/api/clients/generate-service-id",
        operation_id="k2GenerateServiceId",
        tag="K2 USSD: clients",
        summary="Generate a Service ID (valid 1 hour)",
        description=(
            "Generates the **Service ID** to send as `Authorization: Bearer "
            "<SERVICE_ID>` on every API request. It is valid for 1 hour (3600 s): "
            "read its `exp` claim and regenerate it about 5 minutes before it "
            "expires (the SDK's `K2Client` does this automatically). No request "
            "body is needed; a body that is sent must be JSON."
        ),
        security=[{"k2LoginJwt": []}],
        request_body={
            "required": False,
            "description": "None needed.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        responses={
            201: reply("Service ID created.", K2ServiceIdResponse),
            400: reply(
                "A body was sent and it is not valid JSON.",
                K2Error,
                examples={
                    "bad": ("Invalid request format", k2_body(400, "Invalid request format", None))
                },
            ),
            401: reply(
                (
                    "The login JWT is missing, not `Bearer <token>`, malformed, badly "
                    "signed, of the wrong type (a Service ID is not a login JWT), or the "
                    "client is disabled."
                ),
                K2Error,
                examples={
                    "invalid": ("Invalid JWT token", k2_body(401, "Invalid JWT token", None))
                },
            ),
            403: reply(
                "The login JWT has expired: log in again.",
                K2Error,
                examples={
                    "expired": ("JWT token expired", k2_body(403, "JWT token expired", None))
                },
            ),
            503: reply(
                ("Redis (the service's store) cannot be reached; retry shortly."),
                K2Error,
                examples={
                    "unavailable": (
                        "Service temporarily unavailable",
                        k2_body(503, "Service temporarily unavailable", None),
                    )
                },
            ),
            413: "K2PayloadTooLarge",
            429: "K2TooManyRequests",
            502: "K2BadGateway",
            504: "K2GatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/api/clients/generate-api-key",
        operation_id="k2GenerateApiKey",
        tag="K2 USSD: clients",
        summary="Create an API key for a Service ID",
        description=(
            "Authenticated by the **login JWT** (not the Service ID); the body "
            "names one of this client's live Service IDs. The key is stored linked "
            "to the client and the Service ID."
        ),
        security=[{"k2LoginJwt": []}],
        request=K2ApiKeyRequest,
        responses={
            201: reply(
                "API key created.",
                K2ApiKeyResponse,
                example=k2_body(
                    201, "API Key created", {"id": "0b6f1f0e-6f43-4c5a-9d6e-2b1f3c4d5e6f"}
                ),
            ),
            400: reply(
                "`service_id` is missing or empty (or the body is not JSON).",
                K2Error,
                examples={
                    "missing": (
                        "Service ID is required",
                        k2_body(400, "Service ID is required", None),
                    ),
                    "bad": ("Invalid request format", k2_body(400, "Invalid request format", None)),
                },
            ),
            401: reply(
                (
                    "The login JWT is missing, not `Bearer <token>`, malformed, badly "
                    "signed, of the wrong type (a Service ID is not a login JWT), or the "
                    "client is disabled."
                ),
                K2Error,
                examples={
                    "invalid": ("Invalid JWT token", k2_body(401, "Invalid JWT token", None))
                },
            ),
            403: reply(
                (
                    "The login JWT has expired, or the Service ID is expired, revoked, "
                    "unknown or another client's."
                ),
                K2Error,
                examples={
                    "jwt": ("JWT token expired", k2_body(403, "JWT token expired", None)),
                    "service": (
                        "Service ID expired or invalid",
                        k2_body(403, "Service ID expired or invalid", None),
                    ),
                },
            ),
            503: reply(
                ("Redis (the service's store) cannot be reached; retry shortly."),
                K2Error,
                examples={
                    "unavailable": (
                        "Service temporarily unavailable",
                        k2_body(503, "Service temporarily unavailable", None),
                    )
                },
            ),
            413: "K2PayloadTooLarge",
            429: "K2TooManyRequests",
            502: "K2BadGateway",
            504: "K2GatewayTimeout",
        },
    ),
    Operation(
        method="get",
        path="/api/clients/me",
        operation_id="k2Me",
        tag="K2 USSD: clients",
        summary="The client behind a Service ID",
        description=(
            "Returns the client profile with the presented Service ID's `serviceId`"
            " and expiry. A typical Service-ID-authenticated request."
        ),
        security=[{"k2ServiceId": []}],
        responses={
            200: reply("The client.", K2MeResponse),
            401: reply(
                (
                    "The Service ID is missing, malformed, badly signed, a login JWT, "
                    "unknown or revoked."
                ),
                K2Error,
                examples={
                    "invalid": ("Invalid service ID", k2_body(401, "Invalid service ID", None))
                },
            ),
            403: reply(
                "The Service ID has expired: generate a new one.",
                K2Error,
                examples={
                    "expired": ("Service ID expired", k2_body(403, "Service ID expired", None))
                },
            ),
            503: reply(
                ("Redis (the service's store) cannot be reached; retry shortly."),
                K2Error,
                examples={
                    "unavailable": (
                        "Service temporarily unavailable",
                        k2_body(503, "Service temporarily unavailable", None),
                    )
                },
            ),
            413: "K2PayloadTooLarge",
            429: "K2TooManyRequests",
            502: "K2BadGateway",
            504: "K2GatewayTimeout",
        },
    ),
    Operation(
        method="post",
        path="/api/clients/revoke-service-id",
        operation_id="k2RevokeServiceId",
        tag="K2 USSD: clients",
        summary="Revoke the presented Service ID",
        description=(
            "Revokes the Service ID in the `Authorization` header at once; later "
            "requests with it get 401."
        ),
        security=[{"k2ServiceId": []}],
        responses={
            200: reply(
                "Revoked.",
                K2RevokeResponse,
                example=k2_body(
                    200, "Service ID revoked", {"serviceId": "7864e886-72f2-4e06-bfae-2ebdf7daa00a"}
                ),
            ),
            400: reply(
                "A body was sent and it is not valid JSON.",
                K2Error,
                examples={
                    "bad": ("Invalid request format", k2_body(400, "Invalid request format", None))
                },
            ),
            401: reply(
                (
                    "The Service ID is missing, malformed, badly signed, a login JWT, "
                    "unknown or revoked."
                ),
                K2Error,
                examples={
                    "invalid": ("Invalid service ID", k2_body(401, "Invalid service ID", None))
                },
            ),
            403: reply(
                "The Service ID has expired: generate a new one.",
                K2Error,
                examples={
                    "expired": ("Service ID expired", k2_body(403, "Service ID expired", None))
                },
            ),
            503: reply(
                ("Redis (the service's store) cannot be reached; retry shortly."),
                K2Error,
                examples={
                    "unavailable": (
                        "Service temporarily unavailable",
                        k2_body(503, "Service temporarily unavailable", None),
                    )
                },
            ),
            413: "K2PayloadTooLarge",
            429: "K2TooManyRequests",
            502: "K2BadGateway",
            504: "K2GatewayTimeout",
        },
    ),
]
RESPONSES = {
    "K2NotFound": reply(
        ("No such path (made by the gateway for any path it does not route, or by the service)."),
        K2Error,
        example=k2_body(404, "Not found", None),
    ),
    "K2PayloadTooLarge": reply(
        ("The request body is larger than the gateway's limit (64 KiB by default)."),
        K2Error,
        example=k2_body(413, "Request body too large", None),
    ),
    "K2TooManyRequests": reply(
        ("Rate limit reached (gateway, per client address); retry after `Retry-After` seconds."),
        K2Error,
        example=k2_body(429, "Too many requests", None),
        headers={"Retry-After": RETRY_AFTER},
    ),
    "K2BadGateway": reply(
        ("No replica of the service could be reached (made by the gateway)."),
        K2Error,
        example=k2_body(502, "Bad gateway", None),
    ),
    "K2GatewayTimeout": reply(
        "The service did not answer in time (made by the gateway).",
        K2Error,
        example=k2_body(504, "Gateway timeout", None),
    ),
}

API = Api(
    operations=OPERATIONS,
    tags=[
        {
            "name": "K2 USSD: authentication",
            "description": "Username and password for a login JWT.",
        },
        {"name": "K2 USSD: clients", "description": "Service IDs, API keys and the client itself."},
    ],
    security_schemes={
        "k2LoginJwt": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The login JWT from `POST /api/auth/login`.",
        },
        "k2ServiceId": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "The `SERVICE_ID` from `POST /api/clients/generate-service-id` (valid 1 hour)."
            ),
        },
    },
    responses=RESPONSES,
)
