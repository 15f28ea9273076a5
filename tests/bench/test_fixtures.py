"""Pre-signed generate-auth-token requests and the request files of each endpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench import endpoints, fixtures
from bench.wrk import read_requests
from shared.signing import verify

SECRET = "bench-secret-" + "s" * 32
K2 = fixtures.K2Credentials("partner", "password-123", "login.jwt.x", "service.id.y")


def factory(tmp_path: Path) -> endpoints.RequestFactory:
    return endpoints.RequestFactory(
        tmp_path, K2, SECRET, lambda count: [f"{i:064d}" for i in range(count)]
    )


def split(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """(request line, headers, body) of a rendered request."""
    head, body = raw.split(b"\r\n\r\n", 1)
    first, *lines = head.decode("utf-8").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers.get("Content-Length", "0")) == len(body)
    return first, headers, body


def test_signed_requests_verify_and_are_all_distinct(tmp_path: Path) -> None:
    path, count, _ = factory(tmp_path).build(endpoints.GENERATE_AUTH_TOKEN, "h:1", 600)
    requests = read_requests(path)
    assert count == len(requests) == 600
    signatures = set()
    for raw in requests:
        first, headers, body = split(raw)
        assert first == f"POST {fixtures.TOKEN_PATH} HTTP/1.1"
        signature = verify(
            [SECRET],
            "POST",
            fixtures.TOKEN_PATH,
            headers["x-timestamp"],
            headers["x-signature"],
            body,
            now=time.time(),
        )
        signatures.add(signature)
    assert len(signatures) == 600  # no request is a replay of another


def test_signed_bodies_mix_existing_and_new_users() -> None:
    bodies = [json.loads(b) for b in fixtures.signed_token_bodies(1000, "t")]
    new = [b for b in bodies if b["clientId"].startswith("BENCH-t-N")]
    assert len(new) == 1000 // fixtures.NEW_USER_EVERY
    pool = {b["clientId"] for b in bodies} - {b["clientId"] for b in new}
    assert pool <= {fixtures.pool_client_id(i) for i in range(fixtures.CLIENT_POOL)}
    assert all(b["expiration"] == fixtures.TOKEN_MINUTES for b in bodies)


def test_login_link_requests_use_each_token_once(tmp_path: Path) -> None:
    path, count, _ = factory(tmp_path).build(endpoints.LOGIN_LINK, "h:1", 50)
    lines = [split(raw)[0] for raw in read_requests(path)]
    assert count == 50
    assert len(set(lines)) == 50
    assert lines[0] == f"POST /login/{0:064d} HTTP/1.1"


def test_static_requests_carry_the_right_credential(tmp_path: Path) -> None:
    make = factory(tmp_path)
    _, service_id_headers, _ = split(make.static(endpoints.GENERATE_SERVICE_ID, "h"))
    _, me_headers, _ = split(make.static(endpoints.CLIENTS_ME, "h"))
    _, _, login_body = split(make.static(endpoints.LOGIN, "h"))
    assert service_id_headers["Authorization"] == f"Bearer {K2.login_jwt}"
    assert me_headers["Authorization"] == f"Bearer {K2.service_id}"
    assert json.loads(login_body) == {"username": K2.username, "password": K2.password}


def test_single_use_pools_are_sized_with_a_margin() -> None:
    assert endpoints.single_use_count(5, 2000) == 15000
    assert endpoints.single_use_count(1, 10) == endpoints.MIN_SINGLE_USE


def test_wallet_requests_are_unique_and_verify(tmp_path: Path) -> None:
    now = int(time.time())
    for endpoint in endpoints.WALLET_ENDPOINTS:
        file, written, _ = factory(tmp_path).build(endpoint, "127.0.0.1:1", 2500)
        requests = read_requests(file)
        assert written == len(requests) == 2500
        signatures = set()
        for raw in requests:
            first, headers, body = split(raw)
            method, target, _ = first.split(" ")
            path, _, query = target.partition("?")
            assert (method, path) == (endpoint.method, endpoint.path)
            payload = query.encode() if method == "GET" else body
            signatures.add(verify([SECRET], method, path, headers["x-timestamp"],
                                  headers["x-signature"], payload, now=now))  # fmt: skip
            if method == "POST":
                fields = json.loads(body)
                assert fields["amount"] == "0.01" and fields["reference"].startswith("bench-")
        # Another run built in the same second shares no signature with this one.
        again, _, _ = factory(tmp_path).build(endpoint, "127.0.0.1:1", 100)
        for raw in read_requests(again):
            assert split(raw)[1]["x-signature"].lower() not in signatures
        assert len(signatures) == 2500  # none is a replay of another
