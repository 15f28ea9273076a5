"""One keep-alive HTTP/1.1 connection to one upstream replica, parsed by httptools.

It carries one request at a time: `send` writes it, the parsed answer goes to the
exchange's sink as it arrives, and every way the exchange can end (complete, timed out,
closed, garbage) ends in exactly one call to the sink or the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from typing import TYPE_CHECKING, Any

import httptools

from .upstream import (
    NeverSent,
    Sink,
    StaleConnection,
    UpstreamBroken,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from .exchange import Exchange
    from .pool import Replica

log = logging.getLogger("gateway.upstream")

_POLLER = select.poll()
_HANGUP_EVENTS = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to one replica, carrying one request at a time."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.transport: Any = None
        self.fd = -1
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.sink: Sink | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received = 0
        self.uses = 0
        self.idle_since = 0.0
        self.deadline = 0.0
        self.alive = True
        self.head_request = False
        self.read_timeout = replica.timeouts.read
        self.busy = replica.service.busy

    # asyncio protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self.sink is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self.received += len(data)
        self.deadline = time.monotonic() + self.read_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            log.exception("relaying an upstream answer failed")
            self._fail(UpstreamBroken("internal error while relaying the answer"))
        except httptools.HttpParserError:
            self._fail(UpstreamBroken("malformed response from upstream"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.replica.forget(self)
        if self.sink is not None:
            if self.received == 0 and self.uses > 1:
                self._fail(StaleConnection("reused upstream connection closed"))
            else:
                self._fail(UpstreamBroken("upstream closed the connection"))

    # httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.headers = []  # interim answer (100, 103): the real one follows
            return
        self.status = status
        sink = self.sink
        if sink is None:
            return
        sink.upstream_head(status, self.headers, self)
        if self.head_request:
            # httptools cannot be told a HEAD answer has no body: finish here and
            # retire the connection rather than guess where the next answer starts.
            self._complete(reusable=False)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self.status and self.sink is not None:
            self._complete(self.parser.should_keep_alive())

    # client side ------------------------------------------------------------------
    def usable(self, now: float) -> bool:
        """True when this pooled connection may carry another request."""
        return (
            self.alive
            and not self.transport.is_closing()
            and now - self.idle_since < self.replica.timeouts.idle
            and not self._peer_hung_up()
        )

    def _peer_hung_up(self) -> bool:
        """True when the kernel holds a FIN/RST (or stray bytes) for this idle connection
        that the event loop has not processed yet: a replica that just died or closed
        it. One poll(2) per reuse closes most of the stale-write race for POST."""
        if self.fd < 0:
            return False
        _POLLER.register(self.fd, _HANGUP_EVENTS)
        try:
            return bool(_POLLER.poll(0))
        except OSError:
            return True
        finally:
            _POLLER.unregister(self.fd)

    def writable(self) -> bool:
        """False once the connection closed or is closing: writing would fail."""
        return self.alive and not self.transport.is_closing()

    def send(self, payload: bytes, exchange: Exchange) -> None:
        """Write one complete request; the answer (or failure) goes to `exchange`."""
        self.uses += 1
        self.exchange = exchange
        self.sink = exchange.sink
        self.status = 0
        self.headers = []
        self.received = 0
        self.head_request = exchange.method == "HEAD"
        self.deadline = time.monotonic() + self.read_timeout
        self.busy.add(self)
        try:
            self.transport.write(payload)
        except RuntimeError:  # uvloop: "the handler is closed"; nothing went out
            self._fail(NeverSent("upstream connection closed before the request was sent"))

    def time_out(self) -> None:
        """The read timeout passed without a complete answer."""
        self._fail(UpstreamTimeout("upstream read timeout"))

    def pause(self) -> None:
        if self.alive:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.alive:
            self.transport.resume_reading()

    def _complete(self, reusable: bool) -> None:
        sink = self.sink
        assert sink is not None
        self.sink = self.exchange = None
        self.busy.discard(self)
        self.replica.release(self, reusable)
        sink.upstream_end()

    def _fail(self, error: UpstreamError) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.sink = self.exchange = None
        self.busy.discard(self)
        self.close()
        self.replica.release(self, False)
        exchange.upstream_failed(error)

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        self.alive = False
        if self.transport is not None:
            self.transport.close()
