"""Routing table, local routes and request/response passing through unchanged."""

from __future__ import annotations

import pytest

from gateway.docs import docs_asset

from .conftest import GatewayProcess, Upstream, request, upstream_headers

ROUTED = [
    ("POST", "/api/auth/login", "ussd"),
    ("POST", "/api/clients/generate-service-id", "ussd"),
    ("GET", "/api/clients/me", "ussd"),
    ("POST", "/api/v1/generate-auth-token", "sabong"),
    ("GET", "/api/v1/me", "sabong"),
    ("GET", "/login/abc123", "sabong"),
    ("POST", "/login/abc123", "sabong"),
    ("GET", "/me", "sabong"),
    ("POST", "/logout", "sabong"),
]


@pytest.mark.parametrize(("method", "path", "service"), ROUTED)
def test_each_prefix_reaches_its_service(
    platform_gateway: GatewayProcess, method: str, path: str, service: str
) -> None:
    answer = platform_gateway.request(method, path)
    assert answer.status == 200
    echoed = answer.json()
    assert echoed["server"] == service
    assert (echoed["method"], echoed["target"]) == (method, path)


@pytest.mark.parametrize(
    "path", ["/", "/api/", "/api/v2/x", "/api/auth", "/members", "/meh", "/logouts", "/login"]
)
def test_unknown_path_is_404_in_the_neutral_envelope(
    platform_gateway: GatewayProcess, path: str
) -> None:
    answer = platform_gateway.request("GET", path)
    assert answer.status == 404
    assert answer.json() == {"status": 404, "message": "Not found", "data": None}
    assert answer.header("content-type") == "application/json"


@pytest.mark.parametrize("path", ["/api/v1/../../readyz", "/me/../healthz", "/api/auth/./login"])
def test_dot_segment_path_traversal_is_rejected(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream], path: str
) -> None:
    gateway, ussd, sabong = shared_platform
    before = len(ussd.received_ids()) + len(sabong.received_ids())
    answer = gateway.request("GET", path)
    assert answer.status == 404
    assert len(ussd.received_ids()) + len(sabong.received_ids()) == before


def test_raw_path_query_and_body_reach_the_upstream_byte_for_byte(
    platform_gateway: GatewayProcess,
) -> None:
    """Sabong signatures cover the exact body and path: the gateway must not re-encode."""
    body = '{"displayName": "José Ñ", "b":1,  "a" : 2}'.encode()
    target = "/api/v1/get-balance?clientId=CLIENT_001&b=%20x&a=1"
    answer = platform_gateway.request(
        "POST", target, body=body, headers=[("Content-Type", "application/json")]
    )
    echoed = answer.json()
    assert echoed["target"] == target
    assert echoed["body"].encode() == body
    assert upstream_headers(answer)["content-type"] == ["application/json"]


def test_chunked_request_body_is_forwarded_with_a_content_length(
    platform_gateway: GatewayProcess,
) -> None:
    chunks = [b'{"clientId":', b'"CLIENT_001",', b'"expiration":5}']
    answer = platform_gateway.request("POST", "/api/v1/x", body=chunks, chunked=True)
    echoed = answer.json()
    assert echoed["body"].encode() == b"".join(chunks)
    received = upstream_headers(answer)
    assert received["content-length"] == [str(len(b"".join(chunks)))]
    assert "transfer-encoding" not in received


def test_upstream_status_and_headers_are_passed_back(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("GET", "/api/v1/anything?status=418")
    assert answer.status == 418
    assert answer.header("x-upstream") == "sabong"
    assert len(answer.all("date")) == 1  # the gateway's own, not a second one
    assert answer.header("server") is None  # what runs behind the gateway stays private


def test_head_request_gets_headers_only(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("HEAD", "/api/v1/anything")
    assert answer.status == 200
    assert answer.body == b""
    # The connection after a HEAD still works (the body-less answer was framed right).
    assert platform_gateway.request("GET", "/api/v1/anything").status == 200


def test_healthz_answers_without_touching_upstreams(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway, ussd, sabong = shared_platform
    before = len(ussd.received_ids()) + len(sabong.received_ids())
    answer = gateway.request("GET", "/healthz")
    assert answer.status == 200
    assert answer.json() == {"status": 200, "message": "OK", "data": None}
    assert len(ussd.received_ids()) + len(sabong.received_ids()) == before


def test_readyz_reports_redis_and_each_service(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("GET", "/readyz")
    assert answer.status == 200
    assert answer.json() == {
        "status": 200,
        "message": "Ready",
        "data": {"redis": "ok", "ussd": "ok", "ussd-login": "ok", "sabong": "ok"},
    }


def test_readyz_is_503_naming_the_service_that_is_down(start_gateway, start_upstream) -> None:
    ussd = start_upstream("ussd")
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0", GATEWAY_USSD_UPSTREAMS=ussd.address)
    answer = gateway.request("GET", "/readyz")
    assert answer.status == 503
    assert answer.json() == {
        "status": 503,
        "message": "Not ready",
        "data": {
            "redis": "not used",
            "ussd": "ok",
            "ussd-login": "ok",  # the USSD replicas: no login pool of its own was named
            "sabong": "unreachable",
        },
    }


def test_readyz_is_503_when_redis_is_unreachable(start_gateway, start_upstream) -> None:
    from devtools.embedded import free_port

    ussd, sabong = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong.address,
    )
    answer = gateway.request("GET", "/readyz")
    assert answer.status == 503
    assert answer.json()["data"] == {
        "redis": "unreachable",
        "ussd": "ok",
        "ussd-login": "ok",
        "sabong": "ok",
    }


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_docs_are_served_by_the_gateway_itself(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream], path: str
) -> None:
    gateway, ussd, sabong = shared_platform
    before = len(ussd.received_ids()) + len(sabong.received_ids())
    answer = gateway.request("GET", path)
    expected = docs_asset(path)
    assert expected is not None
    assert answer.status == 200
    assert answer.header("content-type") == expected[0]
    assert answer.body == expected[1]
    assert len(ussd.received_ids()) + len(sabong.received_ids()) == before


def test_unknown_docs_asset_is_404(platform_gateway: GatewayProcess) -> None:
    answer = platform_gateway.request("GET", "/docs/../../etc/passwd")
    assert answer.status == 404
    assert answer.json()["status"] == 404


def test_keep_alive_client_connection_carries_many_requests(
    platform_gateway: GatewayProcess,
) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", platform_gateway.port, timeout=5)
    try:
        statuses = [
            request(platform_gateway.port, "GET", f"/api/v1/n{i}", conn=conn).status
            for i in range(20)
        ]
    finally:
        conn.close()
    assert statuses == [200] * 20
