"""The SDK transport against real local servers: keep-alive, retries, proxies, timeouts."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from partner_sdk import (
    NO_RETRY,
    K2Client,
    RequestTimeout,
    Retry,
    SabongClient,
    ServerError,
    Timeout,
    TransportError,
    connections,
)
from partner_sdk.transport import Transport

from shared.signing import verify
from tests.sdk.wire import DROP, RESET, STALL, Action, Seen, forward_proxy, ok, wire_server

FAST = Retry(total=2, backoff=0.01, max_delay=1.0)
SECRET = "partner-secret"
UNAVAILABLE: Action = (503, {"Content-Type": "application/json"}, b'{"status":503}')


def _then(first: list[Action], rest: Action) -> object:
    """A handler answering with `first` in order, then `rest` for ever."""
    queue = list(first)
    lock = threading.Lock()

    def handler(seen: Seen) -> Action:
        with lock:
            return queue.pop(0) if queue else rest

    return handler


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test machine's own proxy settings must not leak into these tests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- keep-alive ---------------------------------------------------------------------------


def test_one_connection_serves_many_calls() -> None:
    with wire_server(lambda seen: ok()) as server:
        transport = Transport(server.url, retry=NO_RETRY)
        for number in range(20):
            method = "GET" if number % 2 else "POST"
            assert transport.send(method, f"/call/{number}", b"{}").status == 200
    assert len(server.seen) == 20
    assert server.connections == 1


def test_signed_calls_share_one_connection() -> None:
    with wire_server(lambda seen: ok()) as server, SabongClient(server.url, SECRET) as client:
        for number in range(5):
            client.credit("CLIENT_001", 1, reference=f"r-{number}")
            client.get_balance("CLIENT_001")
    assert len(server.seen) == 10
    assert server.connections == 1


def test_threads_share_the_pool_without_mixing_answers() -> None:
    def echo(seen: Seen) -> Action:
        return ok(json.dumps({"data": seen.target}).encode())

    failures: list[str] = []
    with wire_server(echo) as server:
        transport = Transport(server.url, retry=NO_RETRY)

        def work(worker: int) -> None:
            for call in range(15):
                target = f"/w{worker}/c{call}"
                if transport.send("GET", target).data != target:
                    failures.append(target)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert len(server.seen) == 90
    assert server.connections <= 6


def test_a_connection_the_server_closed_is_not_reused() -> None:
    # The first answer says Connection: close; the second call must open a new connection,
    # even for a POST that is never retried.
    handler = _then([ok(Connection="close")], ok())
    with wire_server(handler) as server:  # type: ignore[arg-type]
        transport = Transport(server.url, retry=NO_RETRY)
        assert transport.send("GET", "/a").status == 200
        assert transport.send("POST", "/b", b"{}").status == 200
    assert server.connections == 2


def test_an_idle_connection_dropped_by_the_server_is_replaced() -> None:
    # The server answers, then closes the idle connection without saying so (an idle
    # keep-alive timeout): the client notices before sending and uses a fresh one, so even
    # a never-retried POST goes through.
    with wire_server(_then([ok(**{"X-Close-After": "1"})], ok())) as server:  # type: ignore[arg-type]
        transport = Transport(server.url, retry=NO_RETRY)
        assert transport.send("GET", "/a").status == 200
        time.sleep(0.2)  # let the FIN arrive
        assert transport.send("POST", "/b", b"{}").status == 200
    assert [seen.path for seen in server.seen] == ["/a", "/b"]
    assert server.connections == 2


def test_a_reused_connection_that_fails_while_sending_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The abort lands just after the pre-send check; the request could not be written,
    # so the server never had it whole and a fresh connection may carry it, even a POST.
    monkeypatch.setattr(connections, "_dropped", lambda connection: False)
    with wire_server(_then([ok(**{"X-Reset-After": "1"})], ok())) as server:  # type: ignore[arg-type]
        transport = Transport(server.url, retry=NO_RETRY)
        assert transport.send("GET", "/a").status == 200
        time.sleep(0.2)  # let the RST arrive
        assert transport.send("POST", "/b", b"{}").status == 200
    assert [seen.path for seen in server.seen] == ["/a", "/b"]
    assert server.connections == 2


def test_close_releases_idle_connections() -> None:
    with wire_server(lambda seen: ok()) as server:
        client = K2Client(server.url, "u", "p", retry=NO_RETRY)
        client._transport.send("GET", "/x")
        assert len(client._transport.pool._idle) == 1
        client.close()
        assert client._transport.pool._idle == []


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [UNAVAILABLE, RESET, DROP], ids=["503", "reset", "drop"])
def test_get_is_retried(failure: Action) -> None:
    with wire_server(_then([failure], ok())) as server:  # type: ignore[arg-type]
        response = Transport(server.url, retry=FAST).send("GET", "/api/clients/me")
    assert response.status == 200
    assert len(server.seen) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_gives_up_after_the_configured_retries(status: int) -> None:
    with wire_server(lambda seen: (status, {}, b"")) as server:
        response = Transport(server.url, retry=FAST).send("GET", "/x")
    assert response.status == status
    assert len(server.seen) == 3


def test_other_errors_are_not_retried() -> None:
    with wire_server(lambda seen: (500, {}, b"")) as server:
        assert Transport(server.url, retry=FAST).send("GET", "/x").status == 500
    assert len(server.seen) == 1


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for() -> None:
    limited: Action = (429, {"Retry-After": "1"}, b"")
    with wire_server(_then([limited], ok())) as server:  # type: ignore[arg-type]
        started = time.monotonic()
        assert Transport(server.url, retry=FAST).send("GET", "/x").status == 200
        assert time.monotonic() - started >= 0.9
    too_long: Action = (429, {"Retry-After": "60"}, b"")
    with wire_server(lambda seen: too_long) as server:
        assert Transport(server.url, retry=FAST).send("GET", "/x").status == 429
    assert len(server.seen) == 1


def test_backoff_grows_and_stays_under_the_ceiling() -> None:
    policy = Retry(total=5, backoff=1.0, max_delay=4.0)
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0, 4.0]):
        delays = [policy.backoff_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1  # jitter


def _signed(seen: Seen) -> str:
    """The signature of a request, verified the way the server does (raises if invalid)."""
    return verify(
        [SECRET], seen.method, seen.path, seen.headers.get("x-timestamp"),
        seen.headers.get("x-signature"), seen.body, now=time.time(),
    )  # fmt: skip


@pytest.mark.parametrize("failure", [UNAVAILABLE, RESET], ids=["503", "reset"])
@pytest.mark.parametrize("kind", ["credit", "debit"])
def test_money_call_with_a_reference_is_retried_and_re_signed(failure: Action, kind: str) -> None:
    with wire_server(_then([failure], ok())) as server:  # type: ignore[arg-type]
        client = SabongClient(server.url, SECRET, retry=FAST)
        getattr(client, kind)("CLIENT_001", "5.00", reference="deposit-1")
    first, second = server.seen
    assert first.body == second.body
    # A repeat of an accepted signature is refused as a replay: each attempt is new.
    assert _signed(first) != _signed(second)


def test_signed_get_is_retried_and_re_signed() -> None:
    with wire_server(_then([UNAVAILABLE], ok())) as server:  # type: ignore[arg-type]
        SabongClient(server.url, SECRET, retry=FAST).get_balance("CLIENT_001")
    first, second = server.seen
    assert first.headers["x-signature"] != second.headers["x-signature"]


@pytest.mark.parametrize("failure", [UNAVAILABLE, RESET], ids=["503", "reset"])
def test_money_call_without_a_reference_is_not_retried(failure: Action) -> None:
    with wire_server(_then([failure, failure], ok())) as server:  # type: ignore[arg-type]
        client = SabongClient(server.url, SECRET, retry=FAST)
        with pytest.raises((ServerError, TransportError)):
            client.credit("CLIENT_001", "5.00")
        with pytest.raises((ServerError, TransportError)):
            client.debit("CLIENT_001", "5.00", reference="  ")  # blank: no reference
    assert len(server.seen) == 2


@pytest.mark.parametrize("failure", [UNAVAILABLE, RESET], ids=["503", "reset"])
def test_generate_auth_token_is_never_retried(failure: Action) -> None:
    with wire_server(_then([failure, failure], ok())) as server:  # type: ignore[arg-type]
        client = SabongClient(server.url, SECRET, retry=FAST)
        with pytest.raises((ServerError, TransportError)):
            client.generate_auth_token("CLIENT_001", "u", "U", "192.0.2.1")
        with pytest.raises((ServerError, TransportError)):
            # A reference does not make generate-auth-token idempotent.
            client.request("POST", "/api/v1/generate-auth-token", json={"reference": "x"})
    assert len(server.seen) == 2


@pytest.mark.parametrize("failure", [UNAVAILABLE, RESET], ids=["503", "reset"])
def test_k2_posts_are_never_retried(failure: Action) -> None:
    with wire_server(_then([failure], ok())) as server:  # type: ignore[arg-type]
        client = K2Client(server.url, "partner", "pw", retry=FAST)
        with pytest.raises((ServerError, TransportError)):
            client.login()
    assert [seen.path for seen in server.seen] == ["/api/auth/login"]


# -- proxies ------------------------------------------------------------------------------


def test_http_proxy_carries_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with wire_server(lambda seen: ok()) as server, forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://agent:s%40cret@"))
        transport = Transport(server.url, retry=NO_RETRY)
        assert transport.send("GET", "/api/clients/me").status == 200
        assert transport.send("GET", "/api/clients/me").status == 200
    ((line, headers),) = proxy.requests  # one connection to the proxy, kept alive
    assert line == f"GET {server.url}/api/clients/me HTTP/1.1"
    assert headers["proxy-authorization"] == "Basic YWdlbnQ6c0BjcmV0"  # agent:s@cret
    assert len(server.seen) == 2


def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with wire_server(lambda seen: ok()) as server, forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")
        assert Transport(server.url, retry=NO_RETRY).send("GET", "/x").status == 200
    assert proxy.requests == []
    assert len(server.seen) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl could not make a certificate: {exc}")
    return cert, key


def test_https_goes_through_a_connect_tunnel(
    monkeypatch: pytest.MonkeyPatch, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    with wire_server(lambda seen: ok(), tls=server_tls) as server, forward_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://agent:pw@"))
        monkeypatch.setenv("NO_PROXY", "example.org")
        client = SabongClient(server.url, SECRET, retry=NO_RETRY, ssl_context=trust)
        client.get_balance("CLIENT_001")
        client.get_balance("CLIENT_001")
    ((line, headers),) = proxy.requests
    # http.client sends CONNECT as HTTP/1.0 before Python 3.12
    assert line.startswith(f"CONNECT {server.url.removeprefix('https://')} HTTP/1.")
    assert headers["proxy-authorization"] == "Basic YWdlbnQ6cHc="
    assert [seen.path for seen in server.seen] == ["/api/v1/get-balance"] * 2
    assert server.connections == 1


def test_an_untrusted_certificate_is_not_retried(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with (
        wire_server(lambda seen: ok(), tls=server_tls) as server,
        pytest.raises(TransportError) as caught,
    ):
        Transport(server.url, retry=FAST).send("GET", "/x")
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert server.connections == 1


# -- timeouts -----------------------------------------------------------------------------


def test_read_timeout() -> None:
    with wire_server(lambda seen: STALL) as server:
        transport = Transport(server.url, Timeout(connect=2, read=0.3), retry=NO_RETRY)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            transport.send("POST", "/api/auth/login", b"{}")
        assert time.monotonic() - started < 2
    assert len(server.seen) == 1


def test_timed_out_get_is_retried() -> None:
    with wire_server(_then([STALL], ok())) as server:  # type: ignore[arg-type]
        transport = Transport(server.url, Timeout(connect=2, read=0.3), retry=FAST)
        assert transport.send("GET", "/x").status == 200
    assert len(server.seen) == 2


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: a new connection attempt hangs in SYN."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        yield port
        for filler in fillers:
            filler.close()


def test_connect_timeout(unanswered_port: int) -> None:
    transport = Transport(
        f"http://127.0.0.1:{unanswered_port}", Timeout(connect=0.3, read=30), retry=NO_RETRY
    )
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        transport.send("GET", "/x")
    assert time.monotonic() - started < 5


def test_one_number_sets_both_timeouts() -> None:
    assert Transport("http://127.0.0.1:1", 7).timeout == Timeout(connect=7.0, read=7.0)
