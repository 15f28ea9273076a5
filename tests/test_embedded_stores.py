"""devtools' embedded Redis and PostgreSQL: where their Unix sockets go, and when they have
none; the ports they are given."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import embedded
from devtools.embedded import (
    EmbeddedRedis,
    can_bind,
    first_ephemeral_port,
    fits_socket_path,
    free_port,
)
from devtools.postgres import EmbeddedPostgres


def test_the_stores_name_their_unix_sockets_for_local_clients(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", port=6390, unix_socket=True)
    postgres = EmbeddedPostgres(tmp_path / "pg", port=6391, unix_socket=True)
    socket = tmp_path.resolve() / "redis" / "redis.sock"
    assert redis.local_url == f"unix://{socket}?db=0"
    assert redis.url == "redis://127.0.0.1:6390/0"  # tools keep TCP
    assert ["--unixsocket", str(socket), "--unixsocketperm", "700"] == redis.command()[-4:]
    directory = tmp_path.resolve() / "pg"
    assert postgres.local_url == f"postgresql://postgres@/postgres?host={directory}&port=6391"
    assert f"unix_socket_directories={directory}" in postgres.command()
    assert "unix_socket_permissions=0700" in postgres.command()


@pytest.mark.parametrize(
    "name", ["x" * 120, "with space", "with,comma", 'with"quote', "with'quote"]
)
def test_a_directory_no_socket_can_be_named_in_gets_tcp_only(tmp_path: Path, name: str) -> None:
    assert not fits_socket_path(tmp_path / name / "redis.sock")
    redis = EmbeddedRedis(tmp_path / name, port=6390, unix_socket=True)
    postgres = EmbeddedPostgres(tmp_path / name, port=6391, unix_socket=True)
    assert redis.local_url == redis.url
    assert "--unixsocket" not in redis.command()
    assert postgres.local_url == postgres.url
    assert "unix_socket_directories=" in postgres.command()  # none: TCP only


def test_without_unix_socket_the_stores_stay_on_tcp(tmp_path: Path) -> None:
    assert EmbeddedRedis(tmp_path, port=6390).local_url == "redis://127.0.0.1:6390/0"
    postgres = EmbeddedPostgres(tmp_path, port=6391)
    assert postgres.local_url == "postgresql://postgres@127.0.0.1:6391/postgres"


def test_free_ports_lie_below_the_ephemeral_range_where_no_client_connection_takes_them() -> None:
    ephemeral_low = first_ephemeral_port()
    if ephemeral_low is None:
        pytest.skip("the kernel does not say its ephemeral range here")
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200  # never one port twice
    assert all(embedded.LOWEST_PICKED_PORT <= port < ephemeral_low for port in ports)
    assert all(can_bind("127.0.0.1", port) for port in ports)


def test_a_port_something_holds_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    if first_ephemeral_port() is None:
        pytest.skip("the kernel does not say its ephemeral range here")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        held = holder.getsockname()[1]
        other = free_port()
        embedded._picked_ports.discard(other)
        offers: Iterator[int] = iter([held, other])
        monkeypatch.setattr(embedded.random, "randrange", lambda low, high: next(offers))
        assert not can_bind("127.0.0.1", held)
        assert free_port() == other
