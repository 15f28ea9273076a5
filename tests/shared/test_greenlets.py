"""shared.greenlets: one send on a gevent socket, and everything else left to sendall."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import gevent
import gevent.socket
import gevent.ssl
import pytest

from shared.greenlets import sent_at_once

# Far more than a Unix socket pair's send buffer (about 200 kB here).
OVER_THE_BUFFER = 4_000_000


@pytest.fixture
def gevent_pair() -> Iterator[tuple[gevent.socket.socket, gevent.socket.socket]]:
    ours, peer = gevent.socket.socketpair()
    with ours, peer:
        yield ours, peer


def received(peer: gevent.socket.socket, size: int) -> bytes:
    """`size` bytes from `peer` (gevent waits when the sender has not sent them yet)."""
    data = bytearray()
    while len(data) < size:
        chunk = peer.recv(size - len(data))
        assert chunk, "the sender closed early"
        data += chunk
    return bytes(data)


def test_a_short_message_goes_out_in_one_send(
    gevent_pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, peer = gevent_pair
    message = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert sent_at_once(ours, message) == len(message)
    assert received(peer, len(message)) == message


def test_what_the_buffer_cannot_take_is_left_to_sendall_and_arrives_once(
    gevent_pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, peer = gevent_pair
    data = bytes(range(251)) * (OVER_THE_BUFFER // 251)  # a prime period shows any shift
    sent = sent_at_once(ours, data)
    assert 0 < sent < len(data)
    reader = gevent.spawn(received, peer, len(data))
    ours.sendall(memoryview(data)[sent:])
    assert reader.get(timeout=10) == data


def test_a_standard_socket_is_left_to_its_own_sendall() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        assert sent_at_once(ours, b"hello") == 0
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(5)  # nothing was sent


def test_plaintext_never_goes_around_a_tls_socket() -> None:
    # gevent's TLS socket is a subclass of its plain one, over the same raw socket: a send
    # on that raw socket would put the bytes on the wire unencrypted.
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ours, peer = gevent.socket.socketpair()
    with ours, peer:
        tls = context.wrap_socket(ours, server_hostname="peer", do_handshake_on_connect=False)
        assert isinstance(tls, gevent.socket.socket)
        assert sent_at_once(tls, b"card number") == 0
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(64)


def test_a_broken_connection_is_left_for_sendall_to_report(
    gevent_pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, peer = gevent_pair
    peer.close()
    assert sent_at_once(ours, b"lost") == 0
    with pytest.raises(BrokenPipeError):
        ours.sendall(b"lost")
