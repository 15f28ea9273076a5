"""Regressions found by the reliability suite: upstream resets, gunicorn's limits and HTML
pages, the envelope of the gateway's own refusals, and who may read /metrics."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devtools.embedded import free_port
from gateway.http import (
    GUNICORN_LIMIT_REQUEST_FIELD_SIZE,
    GUNICORN_LIMIT_REQUEST_FIELDS,
    GUNICORN_LIMIT_REQUEST_LINE,
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADER_FIELDS,
)

from .conftest import GatewayProcess, Upstream, stop_process, wait_for_port

RESETTING_SCRIPT = Path(__file__).with_name("resetting_upstream.py")
SABONG_PATH = "/api/v1/generate-auth-token"
READ_TIMEOUT = 1.0
BAD_GATEWAY_SABONG = {"status": "failed", "message": "Bad gateway", "data": None}


def k2(status: int, message: str) -> dict[str, object]:
    return {"status": status, "message": message, "data": None}


def sabong_error(message: str) -> dict[str, object]:
    return {"status": "error", "message": message, "data": None}


@pytest.fixture
def resetting_upstream() -> Iterator[str]:
    """The address of an upstream process that accepts and resets every connection."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(RESETTING_SCRIPT), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, 15.0)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process, kill=True)


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        )
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def raw_request(target: bytes, headers: list[tuple[bytes, bytes]], host: bool = True) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1"]
    lines += [b"Host: gateway"] if host else []
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def post_all(port: int, count: int) -> list[tuple[int, bytes, float]]:
    """`count` concurrent POSTs to the Sabong token path: status, body, seconds each."""

    def one(_: int) -> tuple[int, bytes, float]:
        started = time.monotonic()
        raw = (
            f"POST {SABONG_PATH} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            "Content-Length: 16\r\nConnection: close\r\n\r\n"
        ).encode() + b'{"clientId":"C"}'
        status, _, body = exchange(port, raw, timeout=READ_TIMEOUT * 5)
        return status, body, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


# -- an upstream that resets new connections ---------------------------------------------


def test_upstream_reset_after_connect_is_retried_not_hung(
    start_gateway, resetting_upstream: str
) -> None:
    """Every request gets a prompt 502 in the envelope; none waits for the read timeout,
    and no task exception or traceback reaches the log."""
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_SABONG_UPSTREAMS=resetting_upstream,
        GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT),
    )
    answers = [a for _ in range(5) for a in post_all(gateway.port, 40)]
    hung = [a for a in answers if a[2] >= READ_TIMEOUT]
    wrong = [a for a in answers if a[0] != 502 or json.loads(a[1]) != BAD_GATEWAY_SABONG]
    assert not hung, hung[:3]
    assert not wrong, wrong[:3]
    time.sleep(0.3)  # let the log catch up
    log = gateway.log()
    assert "Traceback" not in log
    assert "never retrieved" not in log


def test_upstream_reset_after_connect_moves_on_to_a_healthy_replica(
    start_gateway, start_upstream, resetting_upstream: str
) -> None:
    """A request whose new connection was reset before it was written goes elsewhere;
    one reset after the write is a prompt 502 (a POST may have been processed)."""
    alive = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_SABONG_UPSTREAMS=f"{resetting_upstream},{alive.address}",
        GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT),
    )
    answers = [a for _ in range(5) for a in post_all(gateway.port, 20)]
    assert all(a[2] < READ_TIMEOUT for a in answers), [a for a in answers if a[2] >= 1][:3]
    assert {a[0] for a in answers} <= {200, 502}
    assert sum(a[0] == 200 for a in answers) >= len(answers) // 2
    assert "Traceback" not in gateway.log()


# -- requests gunicorn would refuse with an HTML page ------------------------------------


def test_gateway_limits_sit_at_or_below_gunicorn_defaults() -> None:
    import gunicorn.config

    defaults = gunicorn.config.Config()
    assert defaults.limit_request_line == GUNICORN_LIMIT_REQUEST_LINE
    assert defaults.limit_request_fields == GUNICORN_LIMIT_REQUEST_FIELDS
    assert defaults.limit_request_field_size == GUNICORN_LIMIT_REQUEST_FIELD_SIZE


GUNICORN_WOULD_REFUSE = {
    "one 16 KiB header on a K2 path": (
        b"/api/clients/me",
        [(b"X-Big", b"a" * 16384)],
        431,
        k2(431, "Request header fields too large"),
    ),
    "150 headers on a Sabong path": (
        b"/api/v1/me",
        [(b"X-H%d" % i, b"v") for i in range(150)],
        431,
        sabong_error("Request header fields too large"),
    ),
    "a 5000-byte path": (
        b"/api/clients/" + b"a" * 5000,
        [],
        414,
        k2(414, "Request target too long"),
    ),
    "two Host headers": (
        b"/api/v1/me",
        [(b"Host", b"b")],
        400,
        sabong_error("Bad request"),
    ),
    "X-Forwarded-For values that join past a field": (
        b"/api/auth/login",
        [(b"X-Forwarded-For", b"1" * 5000), (b"X-Forwarded-For", b"2" * 5000)],
        431,
        k2(431, "Request header fields too large"),
    ),
}


@pytest.mark.parametrize("case", GUNICORN_WOULD_REFUSE, ids=list(GUNICORN_WOULD_REFUSE))
def test_oversized_header_gets_family_envelope_not_html(
    shared_platform: tuple[GatewayProcess, Upstream, Upstream], case: str
) -> None:
    """Refused by the gateway itself, in JSON: never forwarded to meet gunicorn's HTML."""
    gateway, ussd, sabong = shared_platform
    target, headers, status, expected = GUNICORN_WOULD_REFUSE[case]
    seen_before = len(ussd.received_ids()) + len(sabong.received_ids())
    answered, head, body = exchange(gateway.port, raw_request(target, headers))
    assert answered == status
    assert head["content-type"] == "application/json"
    assert json.loads(body) == expected
    assert len(ussd.received_ids()) + len(sabong.received_ids()) == seen_before


def test_requests_just_inside_the_limits_are_forwarded(platform_gateway: GatewayProcess) -> None:
    longest_field = [(b"X-Big", b"a" * (MAX_HEADER_FIELD_BYTES - len(b"x-big")))]
    most_fields = [(b"X-H%d" % i, b"v") for i in range(MAX_HEADER_FIELDS - 2)]  # + Host, Conn
    longest_target = b"/api/v1/" + b"a" * (GUNICORN_LIMIT_REQUEST_LINE - 10 - 3 - 8)
    for target, headers in (
        (b"/api/v1/me", longest_field),
        (b"/api/v1/me", most_fields),
        (longest_target, []),
    ):
        status, head, _ = exchange(platform_gateway.port, raw_request(target, headers))
        assert (status, head.get("x-upstream")) == (200, "sabong")


def test_html_error_page_from_upstream_becomes_the_family_envelope(
    platform_gateway: GatewayProcess,
) -> None:
    """Second line of defence: a JSON API path never relays an HTML error page."""
    answers = {
        "/api/v1/x?status=431&html=1": (431, sabong_error("Request header fields too large")),
        "/api/clients/x?status=414&html=1": (414, k2(414, "Request target too long")),
        "/api/auth/x?status=503&html=1": (503, k2(503, "Service Unavailable")),
    }
    for target, (status, expected) in answers.items():
        answer = platform_gateway.request("GET", target)
        assert answer.status == status
        assert answer.header("content-type") == "application/json"
        assert answer.json() == expected


def test_html_pages_of_the_login_link_are_relayed(platform_gateway: GatewayProcess) -> None:
    """/login/<token> answers HTML by contract (its 410 page): left alone."""
    answer = platform_gateway.request("GET", "/login/tok?status=410&html=1")
    assert answer.status == 410
    assert answer.header("content-type") == "text/html"
    assert answer.body.startswith(b"<html>")


# -- the envelope of the gateway's own refusals ------------------------------------------

REFUSED_BY_THE_PARSER = {
    "a 40 KiB header": [(b"X-Big", b"a" * 40000)],
    "a control character in a header value": [(b"X-A", b"a\x01b")],
}


@pytest.mark.parametrize("case", REFUSED_BY_THE_PARSER, ids=list(REFUSED_BY_THE_PARSER))
def test_refusal_on_sabong_path_uses_sabong_envelope_not_k2(
    platform_gateway: GatewayProcess, case: str
) -> None:
    raw = raw_request(b"/api/v1/me", REFUSED_BY_THE_PARSER[case])
    status, _, body = exchange(platform_gateway.port, raw)
    assert status in (400, 431)
    assert json.loads(body)["status"] == "error"


def test_bad_request_target_on_sabong_path_uses_sabong_envelope(
    platform_gateway: GatewayProcess,
) -> None:
    status, _, body = exchange(platform_gateway.port, raw_request(b"/api/v1/me\xff\xfe", []))
    assert (status, json.loads(body)) == (400, sabong_error("Bad request"))


def test_bad_request_target_on_k2_path_uses_k2_envelope(platform_gateway: GatewayProcess) -> None:
    status, _, body = exchange(platform_gateway.port, raw_request(b"/api/auth/\xff", []))
    assert (status, json.loads(body)) == (400, k2(400, "Bad request"))


def test_unreadable_request_gets_the_neutral_envelope(platform_gateway: GatewayProcess) -> None:
    status, _, body = exchange(platform_gateway.port, b"\x00\x01\x02 nonsense\r\n\r\n")
    assert (status, json.loads(body)) == (400, k2(400, "Bad request"))


# -- /metrics ----------------------------------------------------------------------------


def test_metrics_served_to_loopback_by_default(start_gateway) -> None:
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0")
    # Served as in production (multiprocess metrics), a family shows once it has a sample:
    # one request to the unreachable default upstream records a gateway_ upstream error.
    assert gateway.request("POST", SABONG_PATH, body=b"{}").status == 502
    answer = gateway.request("GET", "/metrics")
    assert answer.status == 200
    assert b"gateway_" in answer.body


def test_metrics_hidden_from_peer_outside_allow_list_even_with_forged_forwarded_for(
    start_gateway,
) -> None:
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0", GATEWAY_METRICS_ALLOW="10.0.0.0/8")
    for headers in ([], [("X-Forwarded-For", "10.1.2.3")], [("X-Real-IP", "10.1.2.3")]):
        answer = gateway.request("GET", "/metrics", headers=headers)
        assert answer.status == 404
        assert answer.json() == k2(404, "Not found")
