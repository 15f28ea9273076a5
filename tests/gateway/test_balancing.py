"""Several replicas per service: balancing, failover, recovery, DNS names, slow upstreams."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import Response, request

SABONG_PATH = "/api/v1/generate-auth-token"


def test_requests_are_balanced_across_replicas(start_gateway, start_upstream) -> None:
    first, second = start_upstream("sabong-a"), start_upstream("sabong-b")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=f"{first.address},{second.address}"
    )
    served = Counter(gateway.request("GET", SABONG_PATH).json()["server"] for _ in range(40))
    assert set(served) == {"sabong-a", "sabong-b"}
    assert min(served.values()) >= 10, served


def test_concurrent_requests_spread_over_replicas(start_gateway, start_upstream) -> None:
    first, second = start_upstream("sabong-a"), start_upstream("sabong-b")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=f"{first.address},{second.address}"
    )
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: gateway.request("GET", SABONG_PATH), range(80)))
    served = Counter(a.json()["server"] for a in answers)
    assert min(served.values()) >= 15, served


def test_failover_loses_no_request_that_never_reached_the_killed_replica(
    start_gateway, start_upstream
) -> None:
    """One of two replicas is SIGKILLed mid-run under GET and POST traffic.

    A request may fail only if it was already on its way to the doomed replica when it
    died (started just before the kill finished: at most one per client); every request
    started after that succeeds on the survivor, none is lost on a dead pooled connection.
    """
    doomed, survivor = start_upstream("doomed"), start_upstream("survivor")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=f"{doomed.address},{survivor.address}"
    )
    results: list[tuple[str, Response | Exception, float]] = []
    lock = threading.Lock()
    kill_window: list[float] = []
    deadline = time.monotonic() + 20

    def client(worker: int) -> None:
        method = "POST" if worker % 2 else "GET"
        for i in range(60):
            if time.monotonic() > deadline:
                return
            request_id = f"{method}-{worker}-{i}"
            started = time.monotonic()
            try:
                answer: Response | Exception = request(
                    gateway.port,
                    method,
                    SABONG_PATH,
                    headers=[("X-Request-ID", request_id)],
                    body=b"{}",
                )
            except OSError as exc:
                answer = exc
            with lock:
                results.append((request_id, answer, started))
            if worker == 0 and i == 20:
                kill_window.append(time.monotonic())
                doomed.kill()  # returns once the process is reaped: its sockets are closed
                kill_window.append(time.monotonic())

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(kill_window) == 2, "the kill never happened"
    assert len(results) == 240
    killed = kill_window[1]
    reached_doomed = set(doomed.received_ids())
    assert len(reached_doomed) >= 20  # the doomed replica did take part before the kill

    def ok(answer: Response | Exception) -> bool:
        return not isinstance(answer, Exception) and answer.status == 200

    failed = [(rid, started) for rid, answer, started in results if not ok(answer)]
    in_flight = [rid for rid, started in failed if kill_window[0] - 1.0 <= started < killed]
    assert [rid for rid, _ in failed] == in_flight
    assert len(failed) <= 4
    after = [a for _, a, started in results if started >= killed]
    assert len(after) >= 100
    assert all(not isinstance(a, Exception) and a.json()["server"] == "survivor" for a in after)
    assert "upstream replica down" in gateway.log()


def test_dead_replica_rejoins_after_it_comes_back(start_gateway, start_upstream) -> None:
    first, second = start_upstream("sabong-a"), start_upstream("sabong-b")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_REPLICA_RETRY_SECONDS="0.3",
        GATEWAY_SABONG_UPSTREAMS=f"{first.address},{second.address}",
    )
    first.kill()
    during = Counter(gateway.request("GET", SABONG_PATH).json()["server"] for _ in range(10))
    assert during == {"sabong-b": 10}
    start_upstream("sabong-a", port=first.port)
    deadline = time.monotonic() + 5
    served: Counter[str] = Counter()
    while time.monotonic() < deadline and served["sabong-a"] < 3:
        served[gateway.request("GET", SABONG_PATH).json()["server"]] += 1
        time.sleep(0.05)
    assert served["sabong-a"] >= 3, served


def test_post_is_not_retried_after_it_was_sent(start_gateway, start_upstream) -> None:
    """An upstream that times out after reading a POST saw it once: no second replica does."""
    first, second = start_upstream("sabong-a"), start_upstream("sabong-b")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_READ_TIMEOUT="0.3",
        GATEWAY_SABONG_UPSTREAMS=f"{first.address},{second.address}",
    )
    for i in range(4):
        answer = gateway.request(
            "POST", SABONG_PATH + "?sleep=1", body=b"{}", headers=[("X-Request-ID", f"p{i}")]
        )
        assert answer.status == 504
    seen = first.received_ids() + second.received_ids()
    assert sorted(seen) == ["p0", "p1", "p2", "p3"]


def test_post_after_upstream_closed_the_idle_connection_is_not_lost(
    start_gateway, start_upstream
) -> None:
    """The upstream drops idle keep-alive connections after 0.3 s while the gateway
    would keep them 10 s: the dead pooled connection is never written to, so a POST
    (which may not be retried once sent) goes out on a fresh one and succeeds."""
    upstream = start_upstream("sabong", idle=0.3)
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_UPSTREAM_IDLE_SECONDS="10",
        GATEWAY_SABONG_UPSTREAMS=upstream.address,
    )
    for i in range(3):
        first = gateway.request("POST", SABONG_PATH, body=b"{}")
        assert first.status == 200
        time.sleep(0.6)  # the upstream closes the pooled connection meanwhile
        again = gateway.request(
            "POST", SABONG_PATH, body=b"{}", headers=[("X-Request-ID", f"r{i}")]
        )
        assert again.status == 200, again.body
        assert again.json()["peer_port"] != first.json()["peer_port"]


def test_dns_name_upstream_is_resolved(start_gateway, start_upstream) -> None:
    """A host name (here `localhost`) is resolved; every address it has is a replica."""
    upstream = start_upstream("sabong")
    gateway = start_gateway(
        GATEWAY_RATE_LIMIT="0",
        GATEWAY_DNS_REFRESH_SECONDS="0.5",
        GATEWAY_SABONG_UPSTREAMS=f"localhost:{upstream.port}",
    )
    answers = [gateway.request("GET", SABONG_PATH) for _ in range(6)]
    assert [a.status for a in answers] == [200] * 6
    assert {a.json()["server"] for a in answers} == {"sabong"}


def test_slow_upstream_does_not_block_other_requests(start_gateway, start_upstream) -> None:
    upstream = start_upstream("sabong")
    gateway = start_gateway(GATEWAY_RATE_LIMIT="0", GATEWAY_SABONG_UPSTREAMS=upstream.address)
    slow: list[Response] = []
    slow_thread = threading.Thread(
        target=lambda: slow.append(gateway.request("GET", SABONG_PATH + "?sleep=5"))
    )
    slow_thread.start()
    # The slow request is in flight once the upstream has read it (it logs on arrival).
    deadline = time.monotonic() + 10
    while not upstream.received_ids():
        assert time.monotonic() < deadline, "the slow request never reached the upstream"
        time.sleep(0.01)
    fast = [gateway.request("GET", SABONG_PATH) for _ in range(20)]
    # All 20 were answered while the slow one was still waiting for its upstream: an
    # ordering, not a stopwatch (5 s is far more than 20 requests take on a busy machine).
    fast_done_first = not slow
    slow_thread.join(15)
    assert [a.status for a in fast] == [200] * 20
    assert fast_done_first
    assert slow and slow[0].status == 200 and slow[0].elapsed >= 4.9
