"""Gateway-made errors: status, envelope of the path's API family, and timing."""

from __future__ import annotations

import socket
import time

import pytest

from devtools.embedded import free_port

from .conftest import GatewayProcess, Upstream

K2_PATH = "/api/clients/generate-service-id"
SABONG_PATH = "/api/v1/generate-auth-token"


def k2(status: int, message: str) -> dict[str, object]:
    return {"status": status, "message": message, "data": None}


def sabong(word: str, message: str) -> dict[str, object]:
    return {"status": word, "message": message, "data": None}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (K2_PATH, k2(502, "Bad gateway")),
        ("/api/auth/login", k2(502, "Bad gateway")),
        (SABONG_PATH, sabong("failed", "Bad gateway")),
        ("/login/tok", sabong("failed", "Bad gateway")),
    ],
)
def test_502_when_no_replica_is_reachable(start_gateway, path: str, expected: dict) -> None:
    # Both upstream addresses are free ports: nothing listens, every connect is refused.
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0")
    started = time.monotonic()
    answer = gateway.request("POST", path, body=b"{}")
    assert answer.status == 502
    assert answer.json() == expected
    assert time.monotonic() - started < 2.0  # a refused connect fails fast


def test_502_tries_every_replica_before_giving_up(start_gateway, start_upstream) -> None:
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    alive = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=",".join([*dead, alive.address])
    )
    answers = [gateway.request("POST", SABONG_PATH, body=b"{}") for _ in range(6)]
    assert [a.status for a in answers] == [200] * 6  # never sent to a dead one: retried


def test_connect_timeout_is_bounded(start_gateway) -> None:
    """A replica that accepts nothing (full backlog) costs at most the connect timeout."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        fillers = []
        try:
            # Fill the accept queue so further SYNs are dropped, never answered.
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(blackhole.getsockname())
                fillers.append(filler)
            port = blackhole.getsockname()[1]
            gateway = start_gateway(
                GATEWAY_RATE_LIMIT="0",
                GATEWAY_CONNECT_TIMEOUT="0.3",
                GATEWAY_SABONG_UPSTREAMS=f"127.0.0.1:{port}",
            )
            started = time.monotonic()
            answer = gateway.request("POST", SABONG_PATH, body=b"{}")
            elapsed = time.monotonic() - started
        finally:
            for filler in fillers:
                filler.close()
    assert answer.status == 502
    assert answer.json() == sabong("failed", "Bad gateway")
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (K2_PATH + "?sleep=3", k2(504, "Gateway timeout")),
        (SABONG_PATH + "?sleep=3", sabong("failed", "Gateway timeout")),
    ],
)
def test_504_when_upstream_answers_after_the_read_timeout(
    start_gateway, start_upstream, path: str, expected: dict
) -> None:
    ussd, sabong_upstream = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_READ_TIMEOUT="0.5",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong_upstream.address,
    )
    started = time.monotonic()
    answer = gateway.request("POST", path, body=b"{}")
    elapsed = time.monotonic() - started
    assert answer.status == 504
    assert answer.json() == expected
    assert 0.4 < elapsed < 2.5
    # The timed-out request was sent once and not retried anywhere.
    upstream = ussd if path.startswith("/api/clients") else sabong_upstream
    assert upstream.received_ids().count(answer.header("x-request-id")) == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (K2_PATH, k2(413, "Request body too large")),
        (SABONG_PATH, sabong("error", "Request body too large")),
    ],
)
def test_413_when_content_length_is_over_the_limit(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream], path: str, expected: dict
) -> None:
    """Refused from the declared length alone, before the body is read or forwarded."""
    gateway, ussd, sabong_upstream = shared_platform
    before = len(ussd.received_ids()) + len(sabong_upstream.received_ids())
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n".encode())
        raw = _read_until_closed(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    import json

    assert json.loads(body) == expected
    assert len(ussd.received_ids()) + len(sabong_upstream.received_ids()) == before


def test_413_when_a_chunked_body_streams_past_the_limit(platform_gateway: GatewayProcess) -> None:
    chunks = [b"x" * 16384] * 5  # 80 KiB, no Content-Length to check up front
    answer = platform_gateway.request("POST", SABONG_PATH, body=chunks, chunked=True)
    assert answer.status == 413
    assert answer.json() == sabong("error", "Request body too large")


def test_body_of_exactly_the_limit_passes(platform_gateway: GatewayProcess) -> None:
    body = b"y" * 65536
    answer = platform_gateway.request("POST", K2_PATH, body=body)
    assert answer.status == 200
    assert answer.json()["body_length"] == 65536


def test_body_limit_is_configurable(start_gateway, start_upstream) -> None:
    sabong_upstream = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_MAX_BODY_BYTES="10",
        GATEWAY_SABONG_UPSTREAMS=sabong_upstream.address,
    )
    assert gateway.request("POST", SABONG_PATH, body=b"0123456789").status == 200
    assert gateway.request("POST", SABONG_PATH, body=b"0123456789!").status == 413
    assert (
        gateway.request("POST", SABONG_PATH, body=[b"01234", b"56789!"], chunked=True).status == 413
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/auth/login", k2(429, "Too many requests")),
        ("/api/v1/generate-auth-token", sabong("error", "Too many requests")),
    ],
)
def test_429_with_retry_after_in_the_family_envelope(
    start_gateway, start_upstream, redis_url: str, path: str, expected: dict
) -> None:
    ussd, sabong_upstream = start_upstream("ussd"), start_upstream("sabong")
    gateway = start_gateway(
        REDIS_URL=redis_url,
        GATEWAY_RATE_LIMIT="3",
        GATEWAY_USSD_UPSTREAMS=ussd.address,
        GATEWAY_SABONG_UPSTREAMS=sabong_upstream.address,
    )
    statuses = [gateway.request("POST", path, body=b"{}").status for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = gateway.request("POST", path, body=b"{}")
    assert refused.status == 429
    assert refused.json() == expected
    retry_after = refused.header("retry-after")
    assert retry_after is not None and retry_after.isdigit()
    assert 1 <= int(retry_after) <= 20  # 3/min: the next slot frees in 20 s at most


def test_request_smuggling_with_both_content_length_and_chunked_is_refused(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway, ussd, sabong_upstream = shared_platform
    before = len(ussd.received_ids()) + len(sabong_upstream.received_ids())
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            f"POST {SABONG_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
        )
        raw = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert len(ussd.received_ids()) + len(sabong_upstream.received_ids()) == before


def _read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the peer sends until it closes (bounded by size and the socket timeout)."""
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
