"""The upstream client in-process, against real sockets: reuse checks and balancing."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from gateway.balancing import Service
from gateway.pool import Replica
from gateway.upstream import ReplicaUnreachable, Target, Timeouts


def _one_shot_server() -> tuple[socket.socket, threading.Event, threading.Thread]:
    """A listening socket whose single accepted connection closes when told to."""
    listener = socket.create_server(("127.0.0.1", 0))
    close_now = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        close_now.wait(5)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, close_now, thread


def test_pooled_connection_closed_by_the_replica_is_never_reused() -> None:
    """The replica closes an idle pooled connection and the event loop has not yet run
    to notice: the poll(2) check before reuse must still refuse it (a POST written
    there would be lost without reaching the replica)."""
    listener, close_now, thread = _one_shot_server()
    port = listener.getsockname()[1]

    async def scenario() -> tuple[bool, bool]:
        service = Service("svc", (Target("127.0.0.1", port),), Timeouts(idle=30.0))
        replica = service.replicas[0]
        conn = await replica.connect()
        conn.idle_since = time.monotonic()
        fresh = conn.usable(time.monotonic())
        close_now.set()
        thread.join(5)
        time.sleep(0.2)  # blocking on purpose: the loop must not process the FIN first
        after = conn.usable(time.monotonic())
        conn.close()
        return fresh, after

    try:
        fresh, after_close = asyncio.run(scenario())
    finally:
        listener.close()
    assert fresh is True
    assert after_close is False


def test_pick_prefers_fewest_in_flight_and_skips_down_replicas() -> None:
    timeouts = Timeouts()
    targets = tuple(Target("127.0.0.1", port) for port in (1001, 1002, 1003))
    service = Service("svc", targets, timeouts)
    a, b, c = service.replicas
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    now = time.monotonic()
    assert [service.pick(now, []) for _ in range(3)] == [b, b, b]
    b.down_until = now + 10
    assert service.pick(now, []) is c
    assert service.pick(now, [c]) is a
    assert service.pick(now, [a, c]) is b  # a down replica is the last resort
    assert service.pick(now, [a, b, c]) is None


def test_equal_replicas_take_turns() -> None:
    targets = tuple(Target("127.0.0.1", port) for port in (1001, 1002))
    service = Service("svc", targets, Timeouts())
    now = time.monotonic()
    picks = [service.pick(now, []) for _ in range(10)]
    assert picks.count(service.replicas[0]) == 5
    assert picks.count(service.replicas[1]) == 5


def test_refused_connect_marks_the_replica_down_for_the_retry_interval() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused

        async def scenario() -> Replica:
            service = Service("svc", (Target("127.0.0.1", port),), Timeouts(replica_retry=5.0))
            replica = service.replicas[0]
            with pytest.raises(ReplicaUnreachable):
                await replica.connect()
            return replica

        replica = asyncio.run(scenario())
    assert replica.is_down(time.monotonic())
    assert not replica.is_down(time.monotonic() + 6)
