"""Upstreams that hang or break: the gateway answers in time and keeps serving the rest."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import Figures, StartPlatform
from .traffic import Traffic, client_me, issue_token, login_page, sign_in_partner
from .wire import Answer, Client, envelope_problems

READ_TIMEOUT = 1.0
SLACK = 1.0  # the gateway checks deadlines every 0.1 s; the rest is a busy 2-core machine
HANGING_AT_ONCE = 64
WAVES = 3
K2_BOUND_SECONDS = 1.0
GATEWAY_TIMEOUT = {"status": "failed", "message": "Gateway timeout", "data": None}
BAD_GATEWAY = {"status": "failed", "message": "Bad gateway", "data": None}
SABONG_REQUESTS = (
    ("POST", "/api/v1/generate-auth-token", b'{"clientId":"C"}'),
    ("GET", "/login/" + "a" * 64, None),
    ("GET", "/api/v1/me", None),
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class SilentUpstream:
    """Accepts TCP connections and never answers (reads nothing, closes nothing)."""

    def __init__(self, reset: bool = False) -> None:
        self.reset = reset
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.count = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            self.count += 1
            if self.reset:
                # SO_LINGER 0: close() sends RST, like a replica that dies mid-handshake.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                self.accepted.append(conn)

    @contextlib.contextmanager
    def running(self) -> Iterator[SilentUpstream]:
        self._thread.start()
        try:
            yield self
        finally:
            self.sock.close()
            self._thread.join(timeout=5)
            for conn in self.accepted:
                conn.close()


def _send_many(port: int, count: int, timeout: float = 10.0) -> list[Answer]:
    """`count` Sabong requests at once, each on a connection of its own."""

    def one(index: int) -> Answer:
        method, path, body = SABONG_REQUESTS[index % len(SABONG_REQUESTS)]
        client = Client(port, timeout=timeout)
        try:
            return client.send(method, path, body, {"Content-Type": "application/json"})
        finally:
            client.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_hanging_upstream(start_platform: StartPlatform, figures: Figures) -> None:
    with SilentUpstream().running() as silent:
        platform = start_platform(
            sabong_replicas=0,
            extra_sabong_upstreams=[silent.address],
            wait_ready=False,
            GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT),
        )
        partner = sign_in_partner(platform, "hang_partner", secrets.token_urlsafe(16))
        k2 = Traffic(partner, (client_me,), threads=2).start()
        try:
            hanging = [a for _ in range(WAVES) for a in _send_many(platform.port, HANGING_AT_ONCE)]
        finally:
            k2_results = k2.stop()
        healthz = Client(platform.port).send("GET", "/healthz")
        reached = silent.count

    wrong = [a.brief() for a in hanging if a.status != 504 or a.json() != GATEWAY_TIMEOUT]
    early = [a.brief() for a in hanging if a.elapsed < READ_TIMEOUT - 0.05]
    late = [a.brief() for a in hanging if a.elapsed > READ_TIMEOUT + SLACK]
    k2_failed = [r.answer.brief() for r in k2_results if not r.ok]
    k2_slowest = max(r.answer.elapsed for r in k2_results)
    figures(
        f"[hang] {len(hanging)} Sabong requests to a silent upstream ({WAVES} waves of "
        f"{HANGING_AT_ONCE} at once, read timeout {READ_TIMEOUT}s): "
        f"504={len(hanging) - len(wrong)} "
        f"fastest={min(a.elapsed for a in hanging):.2f}s "
        f"slowest={max(a.elapsed for a in hanging):.2f}s; connections the upstream accepted="
        f"{reached}; K2 meanwhile: requests={len(k2_results)} errors={len(k2_failed)} "
        f"slowest={k2_slowest * 1000:.0f}ms"
    )
    assert not wrong, wrong[:5]
    assert not early and not late, (early + late)[:5]
    assert reached >= HANGING_AT_ONCE, "the requests never reached the silent upstream"
    assert not k2_failed, k2_failed[:5]
    assert len(k2_results) >= 20, "too little K2 traffic to judge"
    assert k2_slowest < K2_BOUND_SECONDS, f"K2 slowed down to {k2_slowest:.2f}s"
    assert healthz.status == 200


def test_stopped_replica_times_out_and_recovers(
    start_platform: StartPlatform, figures: Figures
) -> None:
    """SIGSTOP one of two Sabong replicas (a hung service: its kernel still accepts)."""
    platform = start_platform(sabong_replicas=2, GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT))
    stopped, survivor = platform.sabong
    partner = sign_in_partner(platform, "stop_partner", secrets.token_urlsafe(16))
    traffic = Traffic(partner, (issue_token(), login_page), threads=8).start()
    try:
        time.sleep(2.0)
        stop_sent = time.monotonic()
        stopped.signal_group(signal.SIGSTOP)
        time.sleep(3.0)
        cont_sent = time.monotonic()
        stopped.signal_group(signal.SIGCONT)
        time.sleep(3.0)
    finally:
        results = traffic.stop()

    failed = [r.answer for r in results if not r.ok]
    not_timeouts = [a.brief() for a in failed if a.status != 504 or a.json() != GATEWAY_TIMEOUT]
    late = [a.brief() for a in failed if a.elapsed > READ_TIMEOUT + SLACK]
    served_while_stopped = [
        r
        for r in results
        if r.ok and stop_sent < r.answer.started and r.answer.finished < cont_sent
    ]
    settled = cont_sent + READ_TIMEOUT + SLACK
    failed_after = [a.brief() for a in failed if a.started > settled]
    figures(
        f"[sigstop] requests={len(results)} failed={len(failed)} (all 504 in "
        f"{READ_TIMEOUT}s+{SLACK}s: {not not_timeouts and not late}); served by the other "
        f"replica while one was stopped for {cont_sent - stop_sent:.1f}s: "
        f"{len(served_while_stopped)}; failed after SIGCONT settled: {len(failed_after)}"
    )
    assert not not_timeouts, not_timeouts[:5]
    assert not late, late[:5]
    assert len(served_while_stopped) > 50, "the other replica did not keep serving"
    assert not failed_after, failed_after[:5]
    assert survivor.process is not None and survivor.process.poll() is None


def test_upstream_resetting_connections_gets_prompt_502(
    start_platform: StartPlatform, figures: Figures
) -> None:
    """An upstream that accepts and resets at once: every answer a prompt 502, never a hang."""
    with SilentUpstream(reset=True).running() as resetting:
        platform = start_platform(
            sabong_replicas=0,
            extra_sabong_upstreams=[resetting.address],
            wait_ready=False,
            GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT),
        )
        answers = [a for _ in range(10) for a in _send_many(platform.port, 40)]
        log = platform.gateway.log_tail(10_000_000)
    hung = [a for a in answers if a.elapsed >= READ_TIMEOUT]
    bad = [a.brief() for a in answers if a.status != 502 or a.json() != BAD_GATEWAY]
    tracebacks = log.count("Traceback")
    figures(
        f"[reset-upstream] requests={len(answers)} prompt 502={len(answers) - len(bad)} "
        f"hung until the read timeout={len(hung)} tracebacks in the gateway log={tracebacks}"
    )
    malformed = [a.brief() for a in answers if envelope_problems(a, allow_5xx=(502, 504))]
    assert not malformed, malformed[:3]
    assert not bad and not hung and tracebacks == 0, bad[:3]
