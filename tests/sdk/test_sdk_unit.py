"""SDK units: signing (the SPEC vectors), JWT claim reading, error mapping, no server deps."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

import jwt
import pytest
from partner_sdk import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    Response,
    ServerError,
    TransportError,
    ValidationError,
    generate_signature,
)
from partner_sdk import signing as sdk_signing
from partner_sdk.jwt_payload import token_expiry, token_lifetime, unverified_claims
from partner_sdk.transport import Transport

from shared import signing as server_signing
from shared.signing import canonical_query
from tests.live_services import PROJECT_ROOT

SECRET = "your-secret-key"
STAMP = 1706802000
PATH = "/api/v1/generate-auth-token"
PAYLOAD = {
    "clientId": "CLIENT_001",
    "username": "testuser001",
    "displayName": "Client One",
    "ipAddress": "192.168.1.100",
    "expiration": 5,
}


def test_dict_payload_is_signed_as_compact_json() -> None:
    expected = "335cf4f5ab98ca80b2615ee2e659312acfb45f9b322288d2b197d71b9edfa2c8"
    assert generate_signature("POST", PATH, PAYLOAD, SECRET, STAMP) == expected
    assert generate_signature("post", PATH, PAYLOAD, SECRET, str(STAMP)) == expected


def test_str_payload_is_signed_as_is() -> None:
    spaced = json.dumps(PAYLOAD)  # Python's default separators: the second vector
    expected = "98baa77255a6f68e222577035d1385a353890c29197b59665296a83cd638649e"
    assert generate_signature("POST", PATH, spaced, SECRET, STAMP) == expected
    assert generate_signature("POST", PATH, spaced.encode(), SECRET, STAMP) == expected


def test_non_ascii_payload_is_signed_as_utf8() -> None:
    payload = {**PAYLOAD, "displayName": "José Ñ"}
    expected = "2aa7665ead3c76afbe8da0d7b64f1eb578ab10df8ec821efb62a0337efb68531"
    assert generate_signature("POST", PATH, payload, SECRET, STAMP) == expected


def test_get_signs_the_canonical_query() -> None:
    query = canonical_query({"clientId": "CLIENT_001"})
    expected = "f2026e7edf9d2b011e91764814d0db900898ad92614981a26f2f80def1a055bf"
    assert generate_signature("GET", "/api/v1/get-balance", query, SECRET, STAMP) == expected


def _unsigned(claims: dict[str, object]) -> str:
    """A JWT-shaped string with the given payload (no padding, as JWTs are sent)."""
    segment = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{segment}.c2ln"


def test_claims_are_read_from_a_real_jwt_without_the_key() -> None:
    token = jwt.encode({"serviceId": "abc", "iat": 1000, "exp": 4600}, "k" * 32, "HS256")
    assert unverified_claims(token) == {"serviceId": "abc", "iat": 1000, "exp": 4600}
    assert token_expiry(token) == 4600.0
    assert token_lifetime(token) == 3600.0


@pytest.mark.parametrize("pad", range(4))
def test_payloads_of_every_length_decode(pad: int) -> None:
    token = _unsigned({"exp": 1234567890, "x": "y" * pad})
    assert token_expiry(token) == 1234567890.0


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b",
        "a..c",
        "a.!!!.c",
        "a.bm90IGpzb24.c",  # "not json"
        _unsigned({"iat": 5}),
        _unsigned({"exp": "soon"}),
        _unsigned({"exp": True}),
    ],
)
def test_unreadable_or_missing_exp_gives_none(token: str) -> None:
    assert token_expiry(token) is None


def test_a_non_object_payload_is_not_claims() -> None:
    segment = base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=").decode()
    assert unverified_claims(f"h.{segment}.s") is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (410, NotFoundError),
        (413, ApiError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
def test_error_statuses_map_to_typed_errors(status: int, kind: type[ApiError]) -> None:
    body = json.dumps({"status": status, "message": "Told by server", "data": None}).encode()
    error = Response(status, {}, body).error()
    assert type(error) is kind
    assert (error.status, error.message, error.data) == (status, "Told by server", None)
    assert str(error) == f"{status} Told by server"


def test_validation_error_exposes_field_errors() -> None:
    errors = {"clientId": ["The clientId field is required."]}
    body = {"status": "failed", "message": "Validation failed", "data": {"errors": errors}}
    error = Response(400, {}, json.dumps(body).encode()).error()
    assert isinstance(error, ValidationError)
    assert error.errors == errors


def test_rate_limit_error_reads_retry_after_and_auth_error_its_reason() -> None:
    limited = Response(429, {"retry-after": "7"}, b"{}").error()
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 7
    assert isinstance(Response(429, {}, b"").error(), RateLimitError)
    assert Response(429, {}, b"").error().message == "HTTP 429"
    rejected = Response(401, {"x-auth-error": "replayed"}, b"{}").error()
    assert isinstance(rejected, AuthenticationError)
    assert rejected.reason == "replayed"


def test_success_does_not_raise_and_exposes_the_envelope() -> None:
    body = b'{"status":201,"message":"Service created","data":{"SERVICE_ID":"x"}}'
    response = Response(201, {}, body).raise_for_status()
    assert (response.message, response.data) == ("Service created", {"SERVICE_ID": "x"})
    with pytest.raises(ServerError):
        Response(500, {}, b"<html>oops</html>").raise_for_status()


def test_refused_connection_is_a_transport_error() -> None:
    from devtools.embedded import free_port

    transport = Transport(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransportError) as caught:
        transport.send("GET", "/secret-path-with-token")
    assert "secret-path-with-token" not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8080", "http://"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        Transport(url)


BLOCKED = (
    "flask",
    "redis",
    "jwt",
    "dotenv",
    "werkzeug",
    "itsdangerous",
    "gunicorn",
    "shared",
    "services",
    "gateway",
)
SDK_SOURCE = str(PROJECT_ROOT / "sdk" / "src")


def _probe(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that sees only the SDK source (not the project)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=SDK_SOURCE,
        env={**os.environ, "PYTHONPATH": SDK_SOURCE},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sdk_imports_without_server_dependencies() -> None:
    probe = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {BLOCKED!r}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked server dependency: " + name)
                return None

        sys.meta_path.insert(0, Blocker())
        import partner_sdk
        from partner_sdk import K2Client, SabongClient, generate_signature
        K2Client("http://127.0.0.1:1", "u", "p")
        SabongClient("http://127.0.0.1:1", "s")
        ours = sorted(m for m in sys.modules if m.split(".")[0] in ("partner_sdk", *BLOCKED))
        print(",".join(ours))
        """
    )
    result = _probe(probe)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().split(","))
    assert {"partner_sdk", "partner_sdk.signing", "partner_sdk.errors"} <= loaded
    assert all(name.startswith("partner_sdk") for name in loaded)


def test_blocker_really_blocks() -> None:
    """The import probe above would be worthless if the blocker let flask through."""
    probe = (
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'flask': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, B())\n"
        "import flask\n"
    )
    result = _probe(probe)
    assert result.returncode != 0
    assert "blocked" in result.stderr


def test_sdk_signing_is_the_servers() -> None:
    """The SDK's copy of the signing rules agrees with the server's on awkward input."""
    cases = [
        ("post", "/api/v1/credit-balance", 1, b'{"amount":"1.00"}'),
        ("GET", "/p", "1706802000", "b=2&a=1&\u00e9=\u00f1"),
        ("DELETE", "/x y", -5, b""),
    ]
    for method, path, stamp, payload in cases:
        assert sdk_signing.sign("k", method, path, stamp, payload) == server_signing.sign(
            "k", method, path, stamp, payload
        )
    pairs = [("b", "2"), ("a", "1"), ("a", "0"), ("\u00e9", "x")]
    assert sdk_signing.canonical_query(pairs) == server_signing.canonical_query(pairs)
    assert sdk_signing.SIGNATURE_WINDOW_SECONDS == server_signing.SIGNATURE_WINDOW_SECONDS
