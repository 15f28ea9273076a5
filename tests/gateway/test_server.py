"""The gateway's own HTTP/1.1 server: framing, streaming, limits, timeouts, workers, logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

from .conftest import GatewayProcess, Upstream, request

SABONG_PATH = "/api/v1/generate-auth-token"


def _exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the gateway closes (bounded by size and time)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < 4 << 20 and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return data


def _pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def test_pipelined_requests_are_answered_in_order(platform_gateway: GatewayProcess) -> None:
    raw = b"".join(
        f"GET /api/v1/p{i} HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipe{i}\r\n"
        f"{'Connection: close' if i == 4 else 'X-N: 1'}\r\n\r\n".encode()
        for i in range(5)
    )
    answer = _exchange(platform_gateway.port, raw)
    assert answer.count(b"HTTP/1.1 200 OK") == 5
    positions = [answer.index(f"x-request-id: pipe{i}".encode()) for i in range(5)]
    assert positions == sorted(positions)


def test_large_response_is_streamed_intact(platform_gateway: GatewayProcess) -> None:
    size = 3 * 1024 * 1024 + 17
    answer = platform_gateway.request("GET", f"/api/v1/blob?size={size}")
    assert answer.status == 200
    assert answer.header("content-length") == str(size)
    assert answer.body == _pattern(size)


def test_chunked_upstream_response_is_reframed(platform_gateway: GatewayProcess) -> None:
    small = platform_gateway.request("GET", "/api/v1/blob?size=70000&chunked=1")
    assert small.body == _pattern(70000)
    large = platform_gateway.request("GET", "/api/v1/blob?size=600000&chunked=1")
    assert large.body == _pattern(600000)
    assert large.header("transfer-encoding") == "chunked"


def test_http_1_0_client_gets_an_answer_and_a_close(platform_gateway: GatewayProcess) -> None:
    answer = _exchange(platform_gateway.port, b"GET /api/v1/me HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["server"] == "sabong"


def test_oversized_request_head_is_refused_with_431(platform_gateway: GatewayProcess) -> None:
    raw = b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    answer = _exchange(platform_gateway.port, raw)
    assert answer.startswith(b"HTTP/1.1 431 ")
    # /api/v1/ is a Sabong path: the gateway's refusal uses the Sabong envelope.
    assert answer.endswith(
        b'{"status":"error","message":"Request header fields too large","data":null}'
    )


def test_garbage_is_refused_with_400(platform_gateway: GatewayProcess) -> None:
    answer = _exchange(platform_gateway.port, b"HELLO\x00 THERE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.rstrip().endswith(b'{"status":400,"message":"Bad request","data":null}')


def test_websocket_upgrade_is_answered_as_plain_http_and_closed(
    platform_gateway: GatewayProcess,
) -> None:
    raw = (
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        b"\x81\x05hello"
    )
    answer = _exchange(platform_gateway.port, raw)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"101" not in answer.split(b"\r\n", 1)[0]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    received = {name.lower() for name, _ in body["headers"]}
    assert "upgrade" not in received


def test_slowloris_request_is_cut_off(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_CLIENT_TIMEOUT="1",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(40):  # one header line every 0.1 s, never the blank line
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.1)
    assert closed
    assert time.monotonic() - started < 3.5


def test_idle_keep_alive_connection_is_closed(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_CLIENT_KEEPALIVE_SECONDS="1",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        rest = b""
        while time.monotonic() - started < 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        assert 0.9 < time.monotonic() - started < 3.5


def test_sigterm_lets_the_request_in_flight_finish(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=upstream.address)
    answers: list[object] = []
    slow = threading.Thread(
        target=lambda: answers.append(gateway.request("GET", SABONG_PATH + "?sleep=1"))
    )
    slow.start()
    # SIGTERM only once the request is in flight: the upstream has read it.
    deadline = time.monotonic() + 10
    while not upstream.received_ids():
        assert time.monotonic() < deadline, "the request never reached the upstream"
        time.sleep(0.01)
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGTERM)
    slow.join(10)
    assert gateway.process.wait(10) == 0
    assert len(answers) == 1 and getattr(answers[0], "status", None) == 200


def test_several_workers_serve_and_a_dead_one_is_replaced(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        workers=2, GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=upstream.address
    )
    assert gateway.process is not None
    children = _wait_for_children(gateway.process.pid, 2)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline and len(set(_children(gateway.process.pid)) - {children[0]}) < 2
    ):
        time.sleep(0.05)
    replaced = _children(gateway.process.pid)
    assert len(replaced) == 2 and children[0] not in replaced
    assert [gateway.request("GET", SABONG_PATH).status for _ in range(10)] == [200] * 10
    gateway.process.send_signal(signal.SIGTERM)
    assert gateway.process.wait(15) == 0
    assert _children(gateway.process.pid) == []


def test_login_token_and_secrets_never_reach_the_log(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway, _, _ = shared_platform
    token = "T0KEN" + "x" * 59
    gateway.request("GET", f"/login/{token}?next=/me", headers=[("X-Request-ID", "logcheck1")])
    gateway.request(
        "POST",
        "/api/clients/generate-service-id?secret=q1",
        headers=[("Authorization", "Bearer SECRETJWT"), ("X-Request-ID", "logcheck2")],
        body=b'{"password":"hunter2"}',
    )
    gateway.request("GET", f"/logn/{token}", headers=[("X-Request-ID", "logcheck3")])
    entries: list[dict[str, object]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        entries = [
            e for e in gateway.log_entries() if str(e.get("request_id", "")).startswith("logcheck")
        ]
        if len(entries) == 3:
            break
        time.sleep(0.1)
    assert {e["request_id"]: e["path"] for e in entries} == {
        "logcheck1": "/login/",
        "logcheck2": "/api/clients/generate-service-id",
        "logcheck3": "/logn/...",
    }
    text = gateway.log()
    for secret in (token, "SECRETJWT", "hunter2", "secret=q1", "next="):
        assert secret not in text


def test_access_log_lines_are_json_with_request_id(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream],
) -> None:
    gateway, _, _ = shared_platform
    gateway.request("POST", SABONG_PATH, headers=[("X-Request-ID", "acc-1")], body=b"{}")
    deadline = time.monotonic() + 3
    found: list[dict[str, object]] = []
    while time.monotonic() < deadline and not found:
        found = [e for e in gateway.log_entries() if e.get("request_id") == "acc-1"]
        time.sleep(0.05)
    assert len(found) == 1
    entry = found[0]
    assert entry["method"] == "POST" and entry["status"] == 200
    assert entry["logger"] == "gateway.access" and entry["client"] == "127.0.0.1"
    assert isinstance(entry["duration_ms"], float)
    assert (entry["service"], entry["route"]) == ("gateway", "/api/v1/")


def _wait_for_children(pid: int, count: int, timeout: float = 5.0) -> list[int]:
    """The children of `pid` once there are `count` of them (or what there is at timeout)."""
    deadline = time.monotonic() + timeout
    found = _children(pid)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        found = _children(pid)
    return found


def _children(pid: int) -> list[int]:
    """Live child pids of `pid`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def test_keep_alive_upstream_connections_are_reused(start_gateway, start_upstream) -> None:
    """Twenty sequential requests share one pooled upstream connection, not twenty."""
    upstream = start_upstream("sabong")
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=upstream.address)
    ports = set()
    for _ in range(20):
        answer = request(gateway.port, "GET", SABONG_PATH)
        assert answer.status == 200
        ports.add(answer.json()["peer_port"])
    assert len(ports) == 1, ports
