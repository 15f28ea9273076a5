"""Redis helpers: bounded failure when Redis is down, recovery when it is back."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis as redis_py

from devtools.embedded import EmbeddedRedis
from shared import redis as shared_redis
from shared.exceptions import StoreUnavailable
from tests.conftest import CLUSTER_MODE
from tests.gevent_worker import run_patched


@shared_redis.translate_errors
def _incr(client: redis_py.Redis) -> int:
    return int(client.incr("counter"))


@shared_redis.translate_errors
def _direct_incr(client: redis_py.Redis) -> int:
    return int(shared_redis.command(client, "INCR", "counter"))


@pytest.mark.parametrize("incr", [_incr, _direct_incr], ids=["redis-py", "lean path"])
def test_redis_down_is_store_unavailable_quickly_then_recovers(
    own_redis: EmbeddedRedis, incr: Callable[[redis_py.Redis], int]
) -> None:
    client = shared_redis.connect(own_redis.url)
    assert incr(client) == 1
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        incr(client)
    assert time.monotonic() - started < 3.0
    assert shared_redis.ping(client) is False
    own_redis.start()
    # AOF kept the counter; the connection that died with the server is replaced by itself.
    assert incr(client) == 2


def test_the_lean_path_survives_redis_closing_its_connection(own_redis: EmbeddedRedis) -> None:
    client = shared_redis.connect(own_redis.url)
    assert shared_redis.command(client, "CLIENT", "SETNAME", "lean") == "OK"
    assert _direct_incr(client) == 1
    admin = redis_py.Redis.from_url(own_redis.url)
    assert admin.client_kill_filter(_type=None, skipme=True, client_id=None) >= 1
    assert _direct_incr(client) == 2  # one retry on a fresh connection, no error


def test_the_lean_path_reuses_connections_and_never_shares_one(redis_url: str) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client takes the usual path")
    client = shared_redis.connect(redis_url)
    admin = redis_py.Redis.from_url(redis_url, decode_responses=True)
    first = int(shared_redis.command(client, "CLIENT", "ID"))
    assert int(shared_redis.command(client, "CLIENT", "ID")) == first  # kept, not new

    def waiting() -> None:
        shared_redis.command(client, "BLPOP", "never-pushed", "0.5")

    workers = [threading.Thread(target=waiting) for _ in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 2
    blocked: list[dict[str, Any]] = []
    while len(blocked) < 4 and time.monotonic() < deadline:
        blocked = [c for c in admin.client_list() if c["cmd"] == "blpop"]
    for worker in workers:
        worker.join()
    # Four requests at once, four connections: a shared one would have queued them.
    assert len(blocked) == 4
    assert first in {int(c["id"]) for c in blocked}  # the idle one was taken again
    assert len(shared_redis._idle_connections(client.connection_pool)) == 4


def test_the_lean_path_replies_raw(redis_url: str) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client applies redis-py's reply callbacks")
    client = shared_redis.connect(redis_url)
    assert shared_redis.command(client, "SET", "guard", "1", "NX", "EX", 60) == "OK"
    assert shared_redis.command(client, "SET", "guard", "1", "NX", "EX", 60) is None


LEAN_COMMANDS: list[tuple[str | int, ...]] = [
    ("SET", "guard:caf\u00e9", "\u00e9t\u00e9 \u2713", "NX", "EX", 60),
    ("EVAL", "return {ARGV[1], ARGV[2], #KEYS}", 1, "k", -7, "spaces in one argument"),
    ("INCRBY", "counter", 12345678901234),
    ("SET", "empty", ""),
]


@pytest.mark.parametrize("args", LEAN_COMMANDS)
def test_the_lean_path_sends_the_bytes_redis_py_sends(args: tuple[str | int, ...]) -> None:
    connection = redis_py.Connection()  # type: ignore[no-untyped-call]
    packed = connection.pack_command(*args)  # type: ignore[no-untyped-call]
    assert b"".join(packed) == hiredis.pack_command(args)  # type: ignore[arg-type]


def test_the_lean_path_answers_as_redis_py_does(redis_url: str) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client goes redis-py's way")
    lean, usual = (
        shared_redis.connect(redis_url),
        redis_py.Redis.from_url(redis_url, decode_responses=True),
    )
    connection = usual.connection_pool.get_connection()  # raw replies, as the lean path's
    for args in LEAN_COMMANDS:
        usual.delete("guard:caf\u00e9", "counter", "empty")
        connection.send_command(*args)  # type: ignore[no-untyped-call]
        expected = connection.read_response()
        usual.delete("guard:caf\u00e9", "counter", "empty")
        assert shared_redis.command(lean, *args) == expected
    usual.delete("guard:caf\u00e9")
    shared_redis.command(lean, *LEAN_COMMANDS[0])
    assert usual.get("guard:caf\u00e9") == "\u00e9t\u00e9 \u2713"  # UTF-8 both ways


# In a gevent worker: a command goes out in one send, or, when the socket's buffer cannot
# take it whole, the rest through redis-py's sendall. Prints what each send took and the
# replies, read back through the same lean path.
GEVENT_SENDS = """
import functools, os
from shared import redis as shared_redis
taken = []
def recording(sock, data):
    sent = sent_at_once(sock, data)
    taken.append((sent, len(data)))
    return sent
sent_at_once, shared_redis.sent_at_once = shared_redis.sent_at_once, recording
client = shared_redis.connect(os.environ["REDIS_URL"])
# A new connection: redis-py's send connects it. Its id shows that it stays the one used
# (a garbled command would make Redis drop it, and the lean path's retry reconnect).
connection_id = shared_redis.command(client, "CLIENT", "ID")
taken.clear()
big = "0123456789" * 1_000_000
run = functools.partial(shared_redis.command, client)
print(run("SET", "small", "v"), run("SET", "big", big))
print(run("GET", "small"), run("GET", "big") == big)
print(*(f"{sent}/{size}" for sent, size in taken))
print(shared_redis.command(client, "CLIENT", "ID") == connection_id)
"""


def test_gevent_sends_a_command_whole_or_finishes_it_with_sendall(redis_url: str) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client goes redis-py's way")
    printed = run_patched(GEVENT_SENDS, REDIS_URL=redis_url).splitlines()
    assert printed[:2] == ["OK OK", "v True"]
    small_set, big_set, small_get, big_get = (
        tuple(map(int, taken.split("/"))) for taken in printed[2].split()
    )
    for sent, size in (small_set, small_get, big_get):
        assert sent == size  # one send took it whole
    assert 0 < big_set[0] < big_set[1]  # 10 MB: redis-py's sendall sent the rest
    assert printed[3] == "True"  # on the one connection: nothing was sent twice


def test_an_argument_redis_cannot_take_is_a_data_error_and_costs_no_connection(
    redis_url: str,
) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client goes redis-py's way")
    client = shared_redis.connect(redis_url)
    with pytest.raises(redis_py.DataError):
        redis_py.Redis.from_url(redis_url).execute_command("SET", "k", None)  # type: ignore[no-untyped-call]
    for _ in range(3):
        with pytest.raises(redis_py.DataError):
            shared_redis.command(client, "SET", "k", None)  # type: ignore[arg-type]
    assert shared_redis.command(client, "SET", "k", "v") == "OK"
    assert len(client.connection_pool.__dict__["_partner_auth_idle"][1]) == 1


def test_a_pending_reply_keeps_its_connection_until_read(redis_url: str) -> None:
    if CLUSTER_MODE:
        pytest.skip("a cluster client runs the command at once")
    client = shared_redis.connect(redis_url)
    first = shared_redis.send(client, "ECHO", "one")
    # Sent while the first reply is unread: it must go out on another connection, or it
    # would read the first command's reply as its own.
    second = shared_redis.send(client, "ECHO", "two")
    assert (second.reply(), first.reply()) == ("two", "one")
    # Read, each connection is free again and kept.
    assert len(shared_redis._idle_connections(client.connection_pool)) == 2


def test_a_pending_reply_survives_redis_closing_its_connection(own_redis: EmbeddedRedis) -> None:
    client = shared_redis.connect(own_redis.url)
    assert shared_redis.command(client, "INCR", "counter") == 1
    admin = redis_py.Redis.from_url(own_redis.url)
    assert admin.client_kill_filter(_type=None, skipme=True, client_id=None) >= 1
    pending = shared_redis.send(client, "INCR", "counter")
    assert pending.reply() == 2  # one retry on a fresh connection, no error


def test_a_pending_reply_to_a_stopped_redis_raises_when_read(own_redis: EmbeddedRedis) -> None:
    client = shared_redis.connect(own_redis.url)
    assert shared_redis.command(client, "PING") in ("PONG", True)
    own_redis.stop()
    pending = shared_redis.send(client, "INCR", "counter")
    with pytest.raises(redis_py.ConnectionError):
        pending.reply()
    own_redis.start()
    assert shared_redis.command(client, "INCR", "counter") == 1  # the same connection, renewed


@pytest.fixture
def unix_socket_redis() -> Iterator[str]:
    """A Redis listening on a Unix socket too (a short path: the limit is 107 bytes); its
    `unix://` URL."""
    directory = Path(tempfile.mkdtemp(prefix="redis-unix-"))
    socket_path = directory / "redis.sock"
    extra = ("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    with EmbeddedRedis(directory, appendonly=False, extra_args=extra):
        yield f"unix://{socket_path}"
    shutil.rmtree(directory, ignore_errors=True)


def test_a_unix_socket_url_serves_both_paths(unix_socket_redis: str) -> None:
    # A regression: the TCP keepalive option made every command over a unix:// URL a
    # TypeError (a 500 on every request), though the URL form is documented.
    client = shared_redis.connect(unix_socket_redis)
    assert shared_redis.ping(client) is True
    assert _incr(client) == 1
    assert _direct_incr(client) == 2
    assert shared_redis.send(client, "GET", "counter").reply() == "2"


def test_a_unix_socket_url_serves_the_asyncio_client(unix_socket_redis: str) -> None:
    async def incr_twice() -> list[int]:
        client = shared_redis.connect_async(unix_socket_redis)
        try:
            return [int(await client.incr("counter")) for _ in range(2)]
        finally:
            await client.aclose()

    assert asyncio.run(incr_twice()) == [1, 2]
