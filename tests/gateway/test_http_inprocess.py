"""The HTTP layer in-process: raw bytes in, the gateway's bytes out, no socket or process.

The limits gunicorn would refuse with an HTML page (431, 414, 413), unreadable requests,
connection management (pipelining, HTTP/1.0, Connection: close, Upgrade, timeouts), the
local routes, and how an upstream answer is framed back (buffered, streamed, chunked,
HEAD, HTML error pages, failures). The subprocess tests in test_hardening.py,
test_server.py and test_errors.py check the headline cases against real processes; the
RFC 9112 request framing rules are in test_rfc9112.py.
"""

from __future__ import annotations

import pytest

from gateway import headers as hdr
from gateway.http import (
    GUNICORN_LIMIT_REQUEST_LINE,
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADER_FIELDS,
    MAX_PENDING,
)
from gateway.upstream import UpstreamBroken, UpstreamTimeout

from .inprocess import Answer, UpstreamAnswer, Wire, parse_answers

SABONG = b"/api/v1/me"
K2 = b"/api/clients/me"


def k2(status: int, message: str) -> dict[str, object]:
    return {"status": status, "message": message, "data": None}


def sabong_error(message: str, word: str = "error") -> dict[str, object]:
    return {"status": word, "message": message, "data": None}


def raw_request(
    target: bytes,
    fields: list[tuple[bytes, bytes]] | None = None,
    method: bytes = b"GET",
    version: bytes = b"HTTP/1.1",
    body: bytes = b"",
) -> bytes:
    lines = [method + b" " + target + b" " + version, b"Host: gateway"]
    lines += [name + b": " + value for name, value in fields or []]
    return b"\r\n".join([*lines, b"", b""]) + body


def refused(wire: Wire, status: int, expected: dict[str, object]) -> Answer:
    """One answer: `status` with `expected` as its JSON body; nothing forwarded; closing."""
    answer = wire.only_answer()
    assert (answer.status, answer.json()) == (status, expected)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-request-id"]
    assert wire.forwarded == []
    assert wire.closing
    return answer


# -- what gunicorn would refuse with an HTML page: refused here, in the envelope ------------

OVER_THE_LIMITS = {
    "one 16 KiB header on a K2 path": (
        K2,
        [(b"X-Big", b"a" * 16384)],
        431,
        k2(431, "Request header fields too large"),
    ),
    "a 40 KiB head on a Sabong path": (
        SABONG,
        [(b"X-Big", b"a" * 40000)],
        431,
        sabong_error("Request header fields too large"),
    ),
    "150 headers on a Sabong path": (
        SABONG,
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
    "X-Forwarded-For values that join past a field": (
        b"/api/auth/login",
        [(b"X-Forwarded-For", b"1" * 5000), (b"X-Forwarded-For", b"2" * 5000)],
        431,
        k2(431, "Request header fields too large"),
    ),
}


@pytest.mark.parametrize("case", OVER_THE_LIMITS, ids=list(OVER_THE_LIMITS))
def test_request_over_a_limit_is_refused_in_the_family_envelope(wire: Wire, case: str) -> None:
    target, fields, status, expected = OVER_THE_LIMITS[case]
    wire.send(raw_request(target, fields))
    refused(wire, status, expected)


def test_head_over_the_limit_is_refused_before_it_ends(wire: Wire) -> None:
    """No end of headers after max_head bytes: refused without waiting for the rest."""
    wire.send(b"GET /api/v1/me HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * 40000)
    refused(wire, 431, sabong_error("Request header fields too large"))


def test_requests_just_inside_the_limits_are_forwarded(wire: Wire) -> None:
    longest_field = [(b"X-Big", b"a" * (MAX_HEADER_FIELD_BYTES - len(b"x-big")))]
    most_fields = [(b"X-H%d" % i, b"v") for i in range(MAX_HEADER_FIELDS - 2)]
    longest_target = b"/api/v1/" + b"a" * (GUNICORN_LIMIT_REQUEST_LINE - 10 - 3 - 8)
    closing = [(b"Connection", b"keep-alive")]
    wire.send(raw_request(SABONG, longest_field))
    wire.send(raw_request(SABONG, most_fields + closing))
    wire.send(raw_request(longest_target))
    assert [a.status for a in wire.answers()] == [200, 200, 200]
    assert [r.target for r in wire.forwarded] == [SABONG, SABONG, longest_target]
    assert not wire.closing


@pytest.mark.parametrize(
    ("path", "expected"),
    [(K2, k2(413, "Request body too large")), (SABONG, sabong_error("Request body too large"))],
    ids=["k2", "sabong"],
)
def test_declared_body_over_the_limit_is_refused_before_it_is_read(
    wire: Wire, path: bytes, expected: dict[str, object]
) -> None:
    wire.send(raw_request(path, [(b"Content-Length", b"65537")], b"POST"))
    refused(wire, 413, expected)


def test_chunked_body_streaming_past_the_limit_is_refused(wire: Wire) -> None:
    wire.send(raw_request(SABONG, [(b"Transfer-Encoding", b"chunked")], b"POST"))
    for _ in range(5):  # 80 KiB, no Content-Length to check up front
        wire.send(b"4000\r\n" + b"x" * 16384 + b"\r\n")
    refused(wire, 413, sabong_error("Request body too large"))


def test_body_of_exactly_the_limit_is_forwarded_whole(wire: Wire) -> None:
    body = b"y" * 65536
    wire.send(raw_request(K2, [(b"Content-Length", b"65536")], b"POST", body=body))
    (forwarded,) = wire.forwarded
    assert b"".join(forwarded.body) == body
    assert wire.only_answer().status == 200


def test_body_limit_follows_the_configuration() -> None:
    small = Wire(max_body=10)
    try:
        small.send(raw_request(SABONG, [(b"Content-Length", b"10")], b"POST", body=b"0123456789"))
        small.send(raw_request(SABONG, [(b"Content-Length", b"11")], b"POST", body=b"0123456789!"))
        assert [a.status for a in small.answers()] == [200, 413]
    finally:
        small.close()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/api/v1/me\xff\xfe", sabong_error("Bad request")),
        (b"/api/auth/\xff", k2(400, "Bad request")),
    ],
    ids=["sabong", "k2"],
)
def test_unparsable_target_is_refused_in_its_family_envelope(
    wire: Wire, target: bytes, expected: dict[str, object]
) -> None:
    wire.send(raw_request(target))
    refused(wire, 400, expected)


@pytest.mark.parametrize(
    "raw", [b"\x00\x01\x02 nonsense\r\n\r\n", b"HELLO\x00 THERE\r\n\r\n"], ids=["binary", "NUL"]
)
def test_unreadable_request_gets_the_neutral_envelope(wire: Wire, raw: bytes) -> None:
    wire.send(raw)
    refused(wire, 400, k2(400, "Bad request"))


def test_request_smuggled_behind_a_content_length_and_chunked_post_is_never_read(
    wire: Wire,
) -> None:
    wire.send(
        raw_request(
            SABONG,
            [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
            b"POST",
            body=b"0\r\n\r\n" + raw_request(K2),
        )
    )
    refused(wire, 400, sabong_error("Bad request"))


# -- connections --------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(held_wire: Wire) -> None:
    held_wire.send(
        b"".join(
            raw_request(b"/api/v1/p%d" % i, [(b"X-Request-ID", b"pipe%d" % i)]) for i in range(5)
        )
    )
    assert len(held_wire.forwarded) == 1  # the next waits for this one's answer
    for _ in range(5):
        held_wire.answer_held()
    answers = held_wire.answers()
    assert [a.headers["x-request-id"] for a in answers] == [f"pipe{i}" for i in range(5)]
    assert [a.json()["target"] for a in answers] == [f"/api/v1/p{i}" for i in range(5)]
    assert not held_wire.closing


def test_connection_close_ends_the_connection_after_its_answer(wire: Wire) -> None:
    wire.send(raw_request(SABONG, [(b"Connection", b"close")]) + raw_request(K2))
    answer = wire.only_answer()
    assert answer.headers["connection"] == "close"
    assert [r.target for r in wire.forwarded] == [SABONG]
    assert wire.transport.closed


def test_deep_pipelining_pauses_reading_until_the_answers_catch_up(held_wire: Wire) -> None:
    held_wire.send(b"".join(raw_request(SABONG) for _ in range(MAX_PENDING + 1)))
    assert not held_wire.transport.reading
    held_wire.answer_held()
    assert held_wire.transport.reading


def test_http_1_0_client_gets_an_answer_and_a_close(wire: Wire) -> None:
    wire.send(b"GET /api/v1/me HTTP/1.0\r\n\r\n")
    answer = wire.only_answer()
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert wire.transport.closed


def test_http_1_0_keep_alive_keeps_the_connection(wire: Wire) -> None:
    keep_alive = b"GET /api/v1/me HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    wire.send(keep_alive)
    wire.send(keep_alive)
    answers = wire.answers()
    assert [a.status for a in answers] == [200, 200]
    assert all("connection" not in a.headers for a in answers)
    assert not wire.closing


def test_websocket_upgrade_is_answered_as_plain_http_and_closed(wire: Wire) -> None:
    upgrade = [
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Version", b"13"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ]
    wire.send(raw_request(SABONG, upgrade) + b"\x81\x05hello")
    assert wire.only_answer().status == 200
    (forwarded,) = wire.forwarded
    head = hdr.build_request_head(
        forwarded.method, forwarded.target, forwarded.headers, "127.0.0.1", "http", 0, b"rid"
    ).lower()
    assert b"upgrade" not in head
    wire.send(raw_request(K2))  # the socket now carries another protocol: nothing is read
    assert len(wire.forwarded) == 1


def test_idle_keep_alive_connection_is_closed(wire: Wire) -> None:
    wire.send(raw_request(SABONG))
    wire.later(1.0)
    assert not wire.transport.closed
    wire.later(wire.gateway.limits.keepalive + 0.1)
    assert wire.transport.closed


def test_slowloris_request_is_cut_off(wire: Wire) -> None:
    wire.send(b"GET /api/v1/me HTTP/1.1\r\nHost: gateway\r\n")
    for _ in range(3):
        wire.send(b"X-Slow: 1\r\n")
    wire.later(wire.gateway.limits.request_timeout - 1)
    assert not wire.transport.closed
    wire.later(wire.gateway.limits.request_timeout + 0.1)
    assert wire.transport.closed


def test_request_waiting_for_its_upstream_is_never_timed_out(held_wire: Wire) -> None:
    held_wire.send(raw_request(SABONG))
    held_wire.later(held_wire.gateway.limits.request_timeout + 60)
    assert not held_wire.transport.closed


def test_request_id_is_kept_or_made(wire: Wire) -> None:
    wire.send(raw_request(SABONG, [(b"X-Request-ID", b"abc-123")]))
    wire.send(raw_request(SABONG, [(b"X-Request-ID", b"bad id")]))
    wire.send(raw_request(SABONG))
    first, second, third = (a.headers["x-request-id"] for a in wire.answers())
    assert first == "abc-123"
    assert second != "bad id" and len(second) >= 16
    assert third and third not in (first, second)
    assert [r.request_id.decode() for r in wire.forwarded] == [first, second, third]


# -- the gateway's own paths -----------------------------------------------------------------


def test_healthz_is_answered_locally(wire: Wire) -> None:
    wire.send(raw_request(b"/healthz"))
    answer = wire.only_answer()
    assert (answer.status, answer.json()) == (200, k2(200, "OK"))
    assert wire.forwarded == []


def test_local_path_allows_get_and_head_only(wire: Wire) -> None:
    wire.send(raw_request(b"/healthz", [(b"Content-Length", b"0")], b"POST"))
    answer = wire.only_answer()
    assert (answer.status, answer.json()) == (405, k2(405, "Method not allowed"))
    assert answer.headers["allow"] == "GET, HEAD"


def test_head_of_a_local_path_has_the_length_and_no_body(wire: Wire) -> None:
    wire.send(raw_request(b"/healthz", method=b"HEAD"))
    (answer,) = parse_answers(bytes(wire.transport.written), head_only=True)
    assert answer.status == 200
    ok = b'{"status":200,"message":"OK","data":null}'
    assert int(answer.headers["content-length"]) == len(ok)
    assert bytes(wire.transport.written).endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "target", [b"/nowhere", b"/api/v1/../../etc/passwd", b"/api/v1/./me", b"/metricsx"]
)
def test_unrouted_path_is_404_in_the_neutral_envelope(wire: Wire, target: bytes) -> None:
    wire.send(raw_request(target))
    answer = wire.only_answer()
    assert (answer.status, answer.json()) == (404, k2(404, "Not found"))
    assert wire.forwarded == []
    assert not wire.closing


def test_each_prefix_goes_to_its_route(wire: Wire) -> None:
    for target in (b"/api/auth/login", b"/api/clients/x", b"/api/v1/x", b"/login/t", b"/me"):
        wire.send(raw_request(target))
    routes = [route.service for _, _, route in wire.gateway.routed]
    assert routes == ["ussd-login", "ussd", "sabong", "sabong", "sabong"]


# -- the upstream's answer, framed back -----------------------------------------------------


def test_small_answer_is_relayed_in_one_piece_without_hop_by_hop_headers(
    held_wire: Wire,
) -> None:
    held_wire.send(raw_request(SABONG))
    upstream_headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"2"),
        (b"Connection", b"keep-alive, X-Upstream-Secret"),
        (b"X-Upstream-Secret", b"s"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-Upstream", b"sabong"),
    ]
    held_wire.relay(UpstreamAnswer(200, upstream_headers, [b"{}"]))
    answer = held_wire.only_answer()
    assert (answer.status, answer.body) == (200, b"{}")
    assert answer.headers["x-upstream"] == "sabong"
    for name in ("x-upstream-secret", "keep-alive", "connection"):
        assert name not in answer.headers, name


def test_large_answer_with_a_length_is_streamed_intact(held_wire: Wire) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: past the 64 KiB buffer
    held_wire.send(raw_request(SABONG))
    chunks = [body[i : i + 16384] for i in range(0, len(body), 16384)]
    held_wire.relay(UpstreamAnswer(200, [(b"Content-Length", b"%d" % len(body))], chunks))
    answer = held_wire.only_answer()
    assert answer.headers["content-length"] == str(len(body))
    assert answer.body == body
    assert not held_wire.closing


def test_large_answer_without_a_length_is_reframed_as_chunked(held_wire: Wire) -> None:
    body = b"z" * 70000
    held_wire.send(raw_request(SABONG))
    held_wire.relay(UpstreamAnswer(200, [], [body[:40000], body[40000:]]))
    answer = held_wire.only_answer()
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.body == body


def test_large_answer_without_a_length_ends_with_the_close_for_http_1_0(held_wire: Wire) -> None:
    body = b"z" * 70000
    held_wire.send(b"GET /api/v1/me HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    held_wire.relay(UpstreamAnswer(200, [], [body]))
    answer = held_wire.only_answer()
    assert "transfer-encoding" not in answer.headers
    assert answer.headers["connection"] == "close"
    assert answer.body == body
    assert held_wire.transport.closed


def test_head_answer_keeps_the_upstream_length_and_has_no_body(held_wire: Wire) -> None:
    held_wire.send(raw_request(SABONG, method=b"HEAD"))
    held_wire.relay(UpstreamAnswer(200, [(b"Content-Length", b"1234")]))
    written = bytes(held_wire.transport.written)
    (answer,) = parse_answers(written, head_only=True)
    assert answer.headers["content-length"] == "1234"
    assert written.endswith(b"\r\n\r\n")


def test_slow_client_pauses_the_upstream_until_it_drains(held_wire: Wire) -> None:
    held_wire.send(raw_request(SABONG))
    held_wire.transport.buffered = 1 << 20
    held_wire.relay(UpstreamAnswer(200, [], [b"a" * 70000, b"b" * 1000], complete=False))
    assert held_wire.gateway.upstream.paused
    held_wire.transport.buffered = 0
    held_wire.connection.resume_writing()
    assert not held_wire.gateway.upstream.paused


@pytest.mark.parametrize(
    ("target", "status", "expected"),
    [
        (b"/api/v1/x", 431, sabong_error("Request header fields too large")),
        (b"/api/clients/x", 414, k2(414, "Request target too long")),
        (b"/api/auth/x", 503, k2(503, "Service Unavailable")),
    ],
)
def test_html_error_page_on_a_json_path_becomes_the_envelope(
    held_wire: Wire, target: bytes, status: int, expected: dict[str, object]
) -> None:
    held_wire.send(raw_request(target))
    page = UpstreamAnswer(status, [(b"Content-Type", b"text/html")], [b"<html>no</html>"])
    held_wire.relay(page)
    answer = held_wire.only_answer()
    assert (answer.status, answer.json()) == (status, expected)
    assert answer.headers["content-type"] == "application/json"


def test_html_page_of_the_login_link_is_relayed(held_wire: Wire) -> None:
    held_wire.send(raw_request(b"/login/tok"))
    held_wire.relay(UpstreamAnswer(410, [(b"Content-Type", b"text/html")], [b"<html>gone"]))
    answer = held_wire.only_answer()
    assert (answer.status, answer.body) == (410, b"<html>gone")


@pytest.mark.parametrize(
    ("failure", "status", "expected"),
    [
        (UpstreamBroken("reset"), 502, sabong_error("Bad gateway", "failed")),
        (UpstreamTimeout("slow"), 504, sabong_error("Gateway timeout", "failed")),
    ],
    ids=["502", "504"],
)
def test_upstream_failure_is_the_family_envelope(
    held_wire: Wire, failure: Exception, status: int, expected: dict[str, object]
) -> None:
    held_wire.send(raw_request(SABONG))
    held_wire.relay(UpstreamAnswer(0, failure=failure))  # type: ignore[arg-type]
    answer = held_wire.only_answer()
    assert (answer.status, answer.json()) == (status, expected)
    assert not held_wire.closing


def test_upstream_failure_mid_stream_closes_the_connection(held_wire: Wire) -> None:
    held_wire.send(raw_request(SABONG))
    held_wire.relay(UpstreamAnswer(200, [], [b"a" * 70000], failure=UpstreamBroken("reset")))
    assert held_wire.transport.closed
    assert bytes(held_wire.transport.written).startswith(b"HTTP/1.1 200 OK\r\n")
