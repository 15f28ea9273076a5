"""The K2 USSD contract as pydantic models: request bodies (with their validation rules)
and responses (the envelope `{"status": <HTTP status>, "message", "data"}` and each data
shape). validation.py validates through the request models; scripts/openapi.py turns all
of them into the JSON Schemas of the OpenAPI document. Field names are the wire names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.web import is_unicode_text

from .credentials import MAX_TOKEN_CHARS

MAX_USERNAME_CHARS = 100
MAX_PASSWORD_CHARS = 1024
JWT_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
SERVICE_ID_EXAMPLE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXJ2aWNlSWQiOiI3ODY0ZTg4Ni03MmYyLTRlMDYtYmZhZS0y"
    "ZWJkZjdkYWEwMGEiLCJpYXQiOjE3NDk2OTcyNzEsImV4cCI6MTc0OTcwMDg3MX0.jAMYfPaeql64PbXWl0waYKX6JK"
    "qUiS8OF1ECg00C6uc"
)


def unicode_text(value: str) -> str:
    """Only Unicode scalar values: parse_json refuses lone surrogates too; belt and braces."""
    if not is_unicode_text(value):
        raise ValueError("not valid Unicode text")
    return value


def text(max_chars: int) -> Any:
    """A non-empty JSON string of at most `max_chars` characters (no coercion)."""
    return Field(strict=True, min_length=1, max_length=max_chars)


Text = AfterValidator(unicode_text)


# -- requests ----------------------------------------------------------------------------


class K2LoginRequest(BaseModel):
    """Username and password; unknown fields are ignored."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"username": "partner_acme", "password": "correct horse battery staple"}
        }
    )

    username: Annotated[str, text(MAX_USERNAME_CHARS), Text]
    password: Annotated[
        str, text(MAX_PASSWORD_CHARS), Text, Field(json_schema_extra={"format": "password"})
    ]


class K2ApiKeyRequest(BaseModel):
    """The Service ID to create an API key for."""

    model_config = ConfigDict(json_schema_extra={"example": {"service_id": SERVICE_ID_EXAMPLE}})

    service_id: Annotated[
        str, text(MAX_TOKEN_CHARS), Text, Field(description="A live Service ID of this client.")
    ]


# -- responses ---------------------------------------------------------------------------


class K2Error(BaseModel):
    """K2 envelope of an error: the HTTP status repeated, a message, `data: null`."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"status": 401, "message": "Invalid JWT token", "data": None}}
    )

    status: int = Field(ge=400, le=599)
    message: str
    data: None


ISO_UTC = "ISO 8601, UTC."


class K2User(BaseModel):
    """The partner account (a K2 *client*)."""

    id: str = Field(description="Account id.", json_schema_extra={"format": "uuid"})
    client_id: str = Field(description="The partner's client id.")
    username: str
    email: str = Field(description="May be empty.")
    role: str = Field(examples=["client"])
    is_active: Literal[0, 1]
    msisdn: str | None
    created_at: str = Field(description=ISO_UTC, json_schema_extra={"format": "date-time"})
    updated_at: str = Field(description=ISO_UTC, json_schema_extra={"format": "date-time"})
    deleted_at: None


class K2Login(BaseModel):
    """The `data` of a login."""

    token: str = Field(
        pattern=JWT_PATTERN,
        description="The login JWT: use it (only) to generate Service IDs and API keys.",
    )
    user: K2User


class K2LoginResponse(BaseModel):
    """200 of the login."""

    status: Literal[200]
    message: Literal["Login successful"]
    data: K2Login


class K2ServiceId(BaseModel):
    """A new Service ID."""

    model_config = ConfigDict(extra="forbid")

    SERVICE_ID: str = Field(
        pattern=JWT_PATTERN,
        description="An HS256 JWT whose payload is exactly `serviceId` (UUID4), `iat` and "
        "`exp`, with `exp - iat == 3600`. Send it as `Authorization: Bearer <SERVICE_ID>`.",
    )


class K2ServiceIdResponse(BaseModel):
    """201 of generate-service-id."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": 201,
                "message": "Service created",
                "data": {"SERVICE_ID": SERVICE_ID_EXAMPLE},
            }
        }
    )

    status: Literal[201]
    message: Literal["Service created"]
    data: K2ServiceId


class K2ApiKey(BaseModel):
    """A new API key."""

    id: str = Field(description="The API key's id.", json_schema_extra={"format": "uuid"})


class K2ApiKeyResponse(BaseModel):
    """201 of generate-api-key."""

    status: Literal[201]
    message: Literal["API Key created"]
    data: K2ApiKey


class K2Me(BaseModel):
    """The client profile and the presented Service ID."""

    client: K2User
    serviceId: str = Field(
        description="The `serviceId` claim of the presented Service ID.",
        json_schema_extra={"format": "uuid"},
    )
    expires_at: str = Field(
        description="When the Service ID expires (ISO 8601 UTC).",
        json_schema_extra={"format": "date-time"},
    )
    expires_in: int = Field(ge=0, le=3600, description="Seconds until it expires.")


class K2MeResponse(BaseModel):
    """200 of /api/clients/me."""

    status: Literal[200]
    message: str
    data: K2Me


class K2Revoked(BaseModel):
    """The revoked Service ID."""

    serviceId: str = Field(
        description="The `serviceId` claim of the revoked Service ID.",
        json_schema_extra={"format": "uuid"},
    )


class K2RevokeResponse(BaseModel):
    """200 of revoke-service-id."""

    status: Literal[200]
    message: Literal["Service ID revoked"]
    data: K2Revoked
