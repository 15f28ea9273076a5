"""The services' gunicorn worker (scripts/gunicorn_worker.py): strict request heads, the
idle timeout and quiet logs, on the header reader itself and on a live USSD service."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gevent.pywsgi import OldMessage, WSGIHandler, format_date_time

from devtools.embedded import free_port
from devtools.processes import running, served
from scripts.gunicorn_worker import (
    BAD_REQUEST,
    ONE_SEND_MAX_BODY,
    RefusedRequest,
    RequestHeaders,
    ServiceHandler,
    UnmetExpectation,
    http_date,
    read_header_block,
)
from tests.e2e.worker_app import BIG_BODY_BYTES, OVER_SOCKET_BUFFER_BYTES, body_of
from tests.live_services import service, service_env

MAX_FIELDS = 100
MAX_FIELD_SIZE = 8190
KEEP_ALIVE_SECONDS = 2
# gunicorn's worker loop looks at its stop flag once a second.
SHUTDOWN_NOTICED_SECONDS = 2.0


def read_block(raw: bytes) -> list[tuple[str, str]]:
    return list(read_header_block(io.BytesIO(raw), MAX_FIELDS, MAX_FIELD_SIZE).items())


def test_a_header_block_is_read_in_order_with_values_trimmed() -> None:
    raw = b"Host: a\r\nX-Signature:  abc \r\ncontent-length: 12\r\nX-Empty:\r\n\r\nbody"
    assert read_block(raw) == [
        ("Host", "a"),
        ("X-Signature", "abc"),
        ("content-length", "12"),
        ("X-Empty", ""),
    ]


def test_the_reader_stops_at_the_blank_line() -> None:
    stream = io.BytesIO(b"Host: a\n\nGET /next HTTP/1.1\r\n")
    read_header_block(stream, MAX_FIELDS, MAX_FIELD_SIZE)
    assert stream.read() == b"GET /next HTTP/1.1\r\n"


REFUSED_HEADS = {
    "smuggling: Content-Length beside chunked": (
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
    ),
    "smuggling: two Content-Lengths": b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "smuggling: a signed Content-Length": b"Content-Length: +5\r\n\r\n",
    "smuggling: an underscored Content-Length": b"Content-Length: 1_0\r\n\r\n",
    "smuggling: a coding before chunked": b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    "smuggling: two Transfer-Encodings": (
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "smuggling: whitespace before the colon": b"Content-Length : 5\r\n\r\n",
    "smuggling: an obsolete folded line": b"X-A: a\r\n Content-Length: 5\r\n\r\n",
    "host confusion: two Host headers": b"Host: a\r\nHost: b\r\n\r\n",
    "two Content-Type headers": b"Content-Type: a/b\r\nContent-Type: c/d\r\n\r\n",
    "injection: NUL in a value": b"X-A: a\x00b\r\n\r\n",
    "injection: a bare CR in a value": b"X-A: a\rb\r\n\r\n",
    "injection: a name that is no token": b"X(A): a\r\n\r\n",
    "a line without a colon": b"Host a\r\n\r\n",
    "a block cut off before its blank line": b"Host: a\r\n",
    "memory exhaustion: a field over the size limit": b"X-A: "
    + b"a" * MAX_FIELD_SIZE
    + b"\r\n\r\n",
    "memory exhaustion: too many fields": b"".join(
        b"X-%d: v\r\n" % i for i in range(MAX_FIELDS + 1)
    )
    + b"\r\n",
}


@pytest.mark.parametrize("case", REFUSED_HEADS, ids=list(REFUSED_HEADS))
def test_request_smuggling_and_malformed_heads_are_refused(case: str) -> None:
    with pytest.raises(RefusedRequest):
        read_block(REFUSED_HEADS[case])


def test_an_unknown_expectation_is_refused_with_417() -> None:
    with pytest.raises(UnmetExpectation) as refused:
        read_block(b"Expect: 200-ok\r\n\r\n")
    assert refused.value.response.startswith(b"HTTP/1.1 417 ")
    assert read_block(b"Expect: 100-Continue\r\n\r\n") == [("Expect", "100-Continue")]


def test_the_limits_themselves_are_accepted() -> None:
    longest = b"X-A: " + b"a" * (MAX_FIELD_SIZE - 5) + b"\r\n"
    most = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_FIELDS - 1))
    assert len(read_block(longest + most + b"\r\n")) == MAX_FIELDS


HEADER_BLOCKS = [
    b"Host: a\r\n\r\n",
    b"Host: svc\r\nContent-Type: application/json\r\ncontent-length: 12\r\n"
    b"X-Timestamp: 1\r\nx-signature: ab\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
    b"Cookie: a=1\r\nX-A: one\r\ncookie: b=2\r\nX-a: two\r\nX_Under: hidden\r\n\r\n",
    b"X-Latin: caf\xe9\xa0\r\nX-Empty:\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
]
LOOKED_UP = [
    "host", "HOST", "Content-Type", "content-length", "x-timestamp", "X-SIGNATURE", "cookie",
    "x-a", "x_under", "x-latin", "x-empty", "connection", "transfer-encoding", "expect",
    "missing", "x-new", "X-Added", "x-raw",
]  # fmt: skip


def answers(headers: OldMessage) -> list[Any]:
    """Everything gevent and gunicorn read from request headers, for every name above."""
    found: list[Any] = [headers.typeheader, list(headers.headers), headers.items(), len(headers)]
    for name in LOOKED_UP:
        found += [
            headers.get(name), headers.get(name, "default"), headers.get_all(name),
            headers.get_all(name, ()), name in headers, headers.getheader(name), headers[name],
        ]  # fmt: skip
    return found


def message_like(fields: list[tuple[str, str]]) -> OldMessage:
    message = OldMessage()
    for name, value in fields:
        message[name] = value
    return message


@pytest.mark.parametrize("raw", HEADER_BLOCKS)
def test_header_look_ups_answer_as_gevents_own_message_does(raw: bytes) -> None:
    ours = read_header_block(io.BytesIO(raw), MAX_FIELDS, MAX_FIELD_SIZE)
    assert isinstance(ours, RequestHeaders)
    theirs = message_like(ours.items())
    assert answers(ours) == answers(theirs)
    edits = [
        lambda h: h.__delitem__("content-length"),  # what gevent does beside chunked
        lambda h: h.__setitem__("X-New", "v"),
        lambda h: h.__setitem__("x-a", "three"),
        lambda h: h.replace_header("HOST", "b") if "host" in h else None,
        lambda h: h.add_header("X-Added", "w", name="x"),
        lambda h: h.set_raw("X-Raw", "r"),
        lambda h: h.__delitem__("X-A"),
    ]
    for edit in edits:
        edit(ours)
        edit(theirs)
        assert answers(ours) == answers(theirs)


@pytest.mark.parametrize("raw", HEADER_BLOCKS)
def test_the_environ_fields_are_the_ones_gevent_makes(raw: bytes) -> None:
    request = SimpleNamespace(
        headers=read_header_block(io.BytesIO(raw), MAX_FIELDS, MAX_FIELD_SIZE)
    )
    assert list(ServiceHandler._headers(request)) == list(WSGIHandler._headers(request))


# -- a live service ---------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    port: int
    log: Path


@pytest.fixture(scope="module")
def live_ussd(session_redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The USSD service as `scripts.serve` starts it, with a short keep-alive."""
    log_dir = tmp_path_factory.mktemp("worker")
    env = service_env(
        session_redis_url, log_dir / "test.env", GUNICORN_KEEP_ALIVE=str(KEEP_ALIVE_SECONDS)
    )
    with service("ussd", env, log_dir) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        yield Live(port, log_dir / f"ussd-{port}.log")


def connect(live: Live) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=10)


def read_head(sock: socket.socket) -> bytes:
    """A response's head, up to and including its blank line."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connection closed mid-head: {head!r}"
        head += chunk
    return head


def header_values(head: bytes, name: bytes) -> list[bytes]:
    """The values of every `name` field of a response head (`name` in lower case)."""
    fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line]
    return [value.strip() for field, value in fields if field.lower() == name]


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response (its head, its body) read by its Content-Length."""
    head = read_head(sock)
    length = int(header_values(head, b"content-length")[0])
    body = bytearray()
    while len(body) < length:
        body += sock.recv(min(length - len(body), 1 << 20))
    return head, bytes(body)


def read_until_closed(sock: socket.socket) -> bytes:
    """Whatever the server still sends before it closes the connection (the socket's own
    timeout fails the test if it never does)."""
    received = b""
    try:
        while chunk := sock.recv(1024):
            received += chunk
    except ConnectionResetError:
        pass
    return received


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: ussd\r\n\r\n"


def test_keep_alive_serves_requests_one_after_another(live_ussd: Live) -> None:
    with connect(live_ussd) as sock:
        for _ in range(3):
            sock.sendall(HEALTHZ)
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"connection: close" not in head.lower()
            assert b'"status":' in body


def test_an_idle_connection_is_closed_after_the_keep_alive_time(live_ussd: Live) -> None:
    with connect(live_ussd) as sock:
        sock.sendall(HEALTHZ)
        read_response(sock)
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        waited = time.monotonic() - started
    assert KEEP_ALIVE_SECONDS - 0.5 <= waited <= KEEP_ALIVE_SECONDS + 5


def test_slowloris_a_trickled_head_is_cut_off(live_ussd: Live) -> None:
    """Bytes that stop coming end the request (400) and the connection, however little
    was sent."""
    with connect(live_ussd) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: us")
        started = time.monotonic()
        answer = read_until_closed(sock)
        assert time.monotonic() - started <= KEEP_ALIVE_SECONDS + 5
    assert answer in (b"", BAD_REQUEST)


def test_an_unknown_expectation_on_the_wire_gets_417(live_ussd: Live) -> None:
    with connect(live_ussd) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ussd\r\nExpect: 200-ok\r\n\r\n")
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 417 Expectation Failed\r\n")
        assert read_until_closed(sock) == b""


def test_request_smuggling_on_the_wire_gets_400_and_a_closed_connection(live_ussd: Live) -> None:
    smuggled = (
        b"POST /healthz HTTP/1.1\r\nHost: ussd\r\nContent-Length: 30\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"
    )
    with connect(live_ussd) as sock:
        sock.sendall(smuggled)
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert read_until_closed(sock) == b""  # nothing smuggled was answered


def post_of_size(sock: socket.socket, size: int) -> bytes:
    """POST a JSON login body padded to exactly `size` bytes; the response's head."""
    body = b'{"username": "nobody", "password": "wrong"}'
    body += b" " * (size - len(body))
    sock.sendall(
        b"POST /api/auth/login HTTP/1.1\r\nHost: ussd\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (size, body)
    )
    head, _ = read_response(sock)
    return head


def test_a_body_of_exactly_the_size_limit_is_read_and_one_byte_more_is_413(
    live_ussd: Live,
) -> None:
    # Read from the server's own input (shared.web.ServiceRequest.get_data); the limit,
    # USSD_MAX_BODY_BYTES (64 KiB by default), is inclusive.
    with connect(live_ussd) as sock:
        assert post_of_size(sock, 64 * 1024).startswith(b"HTTP/1.1 401 ")  # read, and refused
        assert post_of_size(sock, 64 * 1024 + 1).startswith(b"HTTP/1.1 413 ")


REFUSED_REQUEST_LINES = {
    "over gunicorn's 4094 bytes": b"GET /" + b"a" * 5000 + b" HTTP/1.1",
    "two spaces": b"GET  /healthz HTTP/1.1",
    "a tab in the target": b"GET /heal\tthz HTTP/1.1",
    "a fourth part": b"GET /healthz HTTP/1.1 extra",
    "no version (HTTP/0.9)": b"GET /healthz",
    "HTTP/2.0 over HTTP/1": b"GET /healthz HTTP/2.0",
    "a method that is no token": b"G(T /healthz HTTP/1.1",
    "a lower-case method": b"get /healthz HTTP/1.1",
}


@pytest.mark.parametrize("case", REFUSED_REQUEST_LINES, ids=list(REFUSED_REQUEST_LINES))
def test_request_lines_gunicorn_would_refuse_are_refused(live_ussd: Live, case: str) -> None:
    with connect(live_ussd) as sock:
        sock.sendall(REFUSED_REQUEST_LINES[case] + b"\r\nHost: ussd\r\n\r\n")
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert read_until_closed(sock) == b""


def test_a_refused_request_is_logged_without_its_contents(live_ussd: Live) -> None:
    """gevent's own messages quote the request line, which may carry a login token."""
    secret = "tok" + "e" * 40 + "n"
    refused = (
        f"GET /login/{secret} HTTP/1.1 extra\r\nHost: ussd\r\n\r\n",  # gevent refuses it
        f"GET /login/{secret} HTTP/1.1\r\nHost : {secret}\r\n\r\n",  # read_header_block does
    )
    for request in refused:
        with connect(live_ussd) as sock:
            sock.sendall(request.encode())
            head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    deadline = time.monotonic() + 5
    while live_ussd.log.read_text().count("refused a malformed request") < len(refused):
        assert time.monotonic() < deadline, "the refusals were not logged"
        time.sleep(0.05)
    assert secret not in live_ussd.log.read_text()


def test_a_worker_shutting_down_ends_each_connection_after_its_request(
    session_redis_url: str, tmp_path: Path
) -> None:
    """During a graceful stop a kept-alive connection is still served, and its response
    says `Connection: close`, so the gateway's pool stops sending on it."""
    port = free_port()
    env = {
        **service_env(session_redis_url, tmp_path / "test.env"),
        "BIND_HOST": "127.0.0.1",
        "USSD_PORT": str(port),
        "METRICS_DIR": str(tmp_path / "metrics"),
        "GUNICORN_GRACEFUL_TIMEOUT": "10",
    }
    base_url = f"http://127.0.0.1:{port}"
    with served("ussd", env, tmp_path / "ussd.log", base_url) as server:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(HEALTHZ)
            head, _ = read_response(sock)
            assert b"connection: close" not in head.lower()
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGTERM)
            time.sleep(SHUTDOWN_NOTICED_SECONDS)  # the worker checks once a second
            sock.sendall(HEALTHZ)
            head, _ = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"connection: close" in head.lower()
            assert read_until_closed(sock) == b""


def test_the_date_header_is_formatted_once_a_second() -> None:
    for moment in (0.0, 1_700_000_000.25, 1_700_000_000.75, 4_102_444_799.9):
        assert http_date(moment) == format_date_time(int(moment))
    # The same second gives the very same bytes object: nothing was formatted again.
    assert http_date(1_800_000_000.1) is http_date(1_800_000_000.9)
    assert http_date(1_800_000_001.0) == b"Fri, 15 Jan 2027 08:00:01 GMT"


@pytest.fixture(scope="module")
def live_responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The worker serving tests/e2e/worker_app.py (bodies of any size, framed or not)."""
    log_dir = tmp_path_factory.mktemp("worker-responses")
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "--worker-class", "scripts.gunicorn_worker.ServiceWorker",
        "--workers", "1", "--bind", f"127.0.0.1:{port}", "--keep-alive", str(KEEP_ALIVE_SECONDS),
        "--no-control-socket", "tests.e2e.worker_app:app",
    ]  # fmt: skip
    log = log_dir / "worker-app.log"
    with running("worker-app", argv, dict(os.environ), log, f"http://127.0.0.1:{port}/size/1"):
        yield Live(port, log)


def request_for(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: worker\r\n\r\n".encode("ascii")


@pytest.mark.parametrize("size", [0, 1, ONE_SEND_MAX_BODY, ONE_SEND_MAX_BODY + 1, BIG_BODY_BYTES])
def test_a_body_of_any_size_arrives_whole_after_its_head(live_responses: Live, size: int) -> None:
    # Up to ONE_SEND_MAX_BODY the head and body go out in one send, beyond it one after
    # the other; either way, two requests on one connection get exactly their bytes.
    with connect(live_responses) as sock:
        for _ in range(2):
            sock.sendall(request_for(f"/size/{size}"))
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert body == body_of(size)


def test_a_body_the_socket_buffer_cannot_hold_reaches_a_slow_reader_whole(
    live_responses: Live,
) -> None:
    # The first send takes what fits in the buffer, gevent's sendall the rest once the
    # reader drains it: nothing sent twice, nothing lost (the next response parses).
    with connect(live_responses) as sock:
        sock.sendall(request_for(f"/size/{OVER_SOCKET_BUFFER_BYTES}") + request_for("/size/9"))
        time.sleep(0.5)  # the server fills the buffer and waits for the reader
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body == body_of(OVER_SOCKET_BUFFER_BYTES)
        assert read_response(sock)[1] == body_of(9)


def test_a_body_without_a_length_is_sent_chunked(live_responses: Live) -> None:
    with connect(live_responses) as sock:
        sock.sendall(request_for("/stream/3000"))
        head = read_head(sock)
        assert b"transfer-encoding: chunked" in head.lower()
        assert read_chunked(sock) == body_of(3000)
        sock.sendall(request_for("/size/5"))  # and the connection carries on
        assert read_response(sock)[1] == body_of(5)


def test_every_response_has_one_date_header(live_responses: Live) -> None:
    with connect(live_responses) as sock:
        sock.sendall(request_for("/size/3"))
        dates = header_values(read_response(sock)[0], b"date")
        sock.sendall(request_for("/dated"))
        own = header_values(read_response(sock)[0], b"date")
    assert len(dates) == 1
    assert parsedate_to_datetime(dates[0].decode("ascii")).timestamp() == pytest.approx(
        time.time(), abs=5
    )
    assert own == [b"Thu, 01 Jan 1970 00:00:00 GMT"]  # the application's own, alone


def test_a_head_request_gets_the_head_only(live_responses: Live) -> None:
    with connect(live_responses) as sock:
        sock.sendall(request_for("/size/100", "HEAD") + request_for("/size/7"))
        head = read_head(sock)
        assert header_values(head, b"content-length") == [b"100"]
        # The next bytes are the second response: nothing of the first one's body.
        assert read_response(sock)[1] == body_of(7)


def read_chunked(sock: socket.socket) -> bytes:
    """A chunked body, up to its last chunk (RFC 9112 7.1)."""
    stream = sock.makefile("rb")
    body = b""
    while size := int(stream.readline().strip(), 16):
        body += stream.read(size)
        assert stream.read(2) == b"\r\n"
    assert stream.readline() == b"\r\n"
    return body
