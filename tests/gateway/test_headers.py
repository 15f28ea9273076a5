"""X-Request-ID, X-Forwarded-*, and hop-by-hop headers in both directions."""

from __future__ import annotations

import re

import pytest

from .conftest import GatewayProcess, upstream_headers


def test_request_id_is_passed_upstream_and_returned(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request(
        "POST", "/api/auth/login", headers=[("X-Request-ID", "partner-req_42.a")]
    )
    assert answer.header("x-request-id") == "partner-req_42.a"
    assert upstream_headers(answer)["x-request-id"] == ["partner-req_42.a"]


def test_request_id_is_generated_when_absent(platform_gateway: GatewayProcess) -> None:
    first = platform_gateway.request("GET", "/api/v1/me")
    second = platform_gateway.request("GET", "/api/v1/me")
    generated = first.header("x-request-id")
    assert generated is not None and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert upstream_headers(first)["x-request-id"] == [generated]
    assert second.header("x-request-id") != generated


def test_gateway_made_answers_carry_a_request_id(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("GET", "/nowhere", headers=[("X-Request-ID", "abc")])
    assert answer.status == 404
    assert answer.header("x-request-id") == "abc"


@pytest.mark.parametrize(
    "spoofed",
    [
        "x" * 129,
        "abc def",
        '{"level":"error"}',
        "<script>alert(1)</script>",
        "id%0d%0aSet-Cookie:x",
    ],
)
def test_spoofed_request_id_is_replaced(platform_gateway: GatewayProcess, spoofed: str) -> None:
    answer = platform_gateway.request("GET", "/api/v1/me", headers=[("X-Request-ID", spoofed)])
    replaced = answer.header("x-request-id")
    assert replaced != spoofed
    assert replaced is not None and re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert upstream_headers(answer)["x-request-id"] == [replaced]


def test_request_id_of_128_plain_characters_is_kept(platform_gateway: GatewayProcess) -> None:
    long_id = "A1._-" * 25 + "xyz"
    assert len(long_id) == 128
    answer = platform_gateway.request("GET", "/api/v1/me", headers=[("X-Request-ID", long_id)])
    assert answer.header("x-request-id") == long_id


def test_forwarded_for_is_set_to_the_peer_address(platform_gateway: GatewayProcess) -> None:
    received = upstream_headers(platform_gateway.request("GET", "/api/v1/me"))
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-forwarded-proto"] == ["http"]
    assert received["x-forwarded-host"] == [f"127.0.0.1:{platform_gateway.port}"]


def test_forwarded_for_from_the_client_gets_the_peer_appended(
    platform_gateway: GatewayProcess,
) -> None:
    """Services trust only the last entry: the one the gateway appended."""
    answer = platform_gateway.request(
        "GET", "/api/v1/me", headers=[("X-Forwarded-For", "6.6.6.6, 7.7.7.7")]
    )
    assert upstream_headers(answer)["x-forwarded-for"] == ["6.6.6.6, 7.7.7.7, 127.0.0.1"]


def test_spoofed_forwarded_proto_and_host_are_overwritten(
    platform_gateway: GatewayProcess,
) -> None:
    answer = platform_gateway.request(
        "GET",
        "/api/v1/me",
        headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")],
    )
    received = upstream_headers(answer)
    assert received["x-forwarded-proto"] == ["http"]
    assert received["x-forwarded-host"] == [f"127.0.0.1:{platform_gateway.port}"]


def test_hop_by_hop_header_smuggling_is_stripped(platform_gateway: GatewayProcess) -> None:
    """Headers named in Connection (and the standard hop-by-hop set) never reach a service,
    so a client cannot strip or inject per-hop headers the service relies on."""
    answer = platform_gateway.request(
        "POST",
        "/api/clients/generate-service-id",
        headers=[
            ("Connection", "keep-alive, X-Internal-Auth, Authorization-Override"),
            ("X-Internal-Auth", "let-me-in"),
            ("Authorization-Override", "admin"),
            ("Keep-Alive", "timeout=99"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Authorization", "Bearer kept"),
        ],
        body=b"{}",
    )
    assert answer.status == 200
    received = upstream_headers(answer)
    for name in (
        "x-internal-auth",
        "authorization-override",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ):
        assert name not in received, name
    assert received["authorization"] == ["Bearer kept"]
    # The gateway speaks its own HTTP/1.1 keep-alive to the upstream: no Connection copied.
    assert "connection" not in received


def test_hop_by_hop_response_headers_are_stripped(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("GET", "/api/v1/me?hop=1")
    assert answer.status == 200
    names = {name for name, _ in answer.headers}
    for name in ("x-upstream-secret", "keep-alive", "proxy-authenticate", "trailer", "upgrade"):
        assert name not in names, name
    assert answer.header("x-upstream") == "sabong"


def test_expect_100_continue_is_answered_by_the_gateway(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request(
        "POST", "/api/v1/x", headers=[("Expect", "100-continue")], body=b'{"a":1}'
    )
    assert answer.status == 200
    assert answer.json()["body"] == '{"a":1}'
    assert "expect" not in upstream_headers(answer)
