"""An in-process harness for the gateway's HTTP layer: raw client bytes in, the bytes the
gateway wrote back out, and the requests it would have forwarded, with no socket and no
subprocess.

The handler is the real `Gateway` (routing, envelopes, local routes); only its last stage,
sending a request to a replica, is replaced by a record of the request, answered with
200 at once or held until the test answers it (to pipeline behind a slow answer), or
answered through the gateway's own Relay with what the test says the upstream sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.forward import Relay
from gateway.http import ClientConnection, Request
from gateway.routing import Route
from gateway.upstream import Target, Timeouts, UpstreamError


class RecordingTransport:
    """The asyncio transport of one client socket, writing into a buffer."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.eof_written = False
        self.reading = True
        self.buffered = 0  # what get_write_buffer_size() answers: a slow client when high

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeUpstreamConnection:
    """What a Relay pauses, resumes or closes for backpressure."""

    def __init__(self) -> None:
        self.paused = False
        self.closed = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True


class RecordingGateway(Gateway):
    """The real Gateway, except that forwarding records the request instead."""

    def __init__(self, answer_at_once: bool, max_body: int = 65536) -> None:
        unreachable = (Target("127.0.0.1", 9),)  # never contacted
        config = GatewayConfig(
            upstreams={"ussd": unreachable, "sabong": unreachable},
            timeouts=Timeouts(),
            max_body_bytes=max_body,
            rate_limit=0,
            route_limits=(),
            max_idle_per_replica=1,
            access_log=False,
            redis_url=None,
        )
        super().__init__(config, forwarder=self.forward)
        self.answer_at_once = answer_at_once
        self.forwarded: list[Request] = []
        self.held: list[tuple[Request, ClientConnection, Route]] = []
        self.upstream = FakeUpstreamConnection()
        self.routed: list[tuple[Request, ClientConnection, Route]] = []

    def forward(self, request: Request, client: ClientConnection, route: Route) -> None:
        self.forwarded.append(request)
        self.routed.append((request, client, route))
        self.held.append((request, client, route))
        if self.answer_at_once:
            self.answer_held()

    def answer_held(self) -> None:
        """Answer the oldest held request: 200 with the request's target as body."""
        request, client, _ = self.held.pop(0)
        body = json.dumps({"target": request.target.decode("latin-1")}).encode()
        client.respond(request, 200, b"content-type: application/json\r\n", body)

    def relay_held(self, upstream: UpstreamAnswer) -> Relay:
        """Answer the oldest held request through the gateway's Relay, as `upstream` says
        the replica answered (its failure, if it has one, after the chunks)."""
        request, client, route = self.held.pop(0)
        relay = Relay(request, client, route.family, route.json_only)
        if upstream.status:
            relay.upstream_head(upstream.status, upstream.headers, self.upstream)  # type: ignore[arg-type]
        for chunk in upstream.chunks:
            relay.upstream_body(chunk)
        if upstream.failure is not None:
            relay.upstream_failed(upstream.failure)
        elif upstream.complete:
            relay.upstream_end()
        return relay


@dataclass
class UpstreamAnswer:
    """What a replica sent back: status 0 when it failed before a head."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    failure: UpstreamError | None = None
    complete: bool = True


@dataclass
class Answer:
    """One response the gateway wrote (interim 1xx ones included)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Wire:
    """One client connection to an in-process gateway."""

    answer_at_once: bool = True
    max_body: int = 65536
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def __post_init__(self) -> None:
        self.gateway = RecordingGateway(self.answer_at_once, self.max_body)
        self.transport = RecordingTransport()
        self.connection = ClientConnection(self.gateway.state)
        self.connection.connection_made(self.transport)

    @property
    def forwarded(self) -> list[Request]:
        return self.gateway.forwarded

    def send(self, data: bytes) -> Wire:
        """Feed client bytes to the connection, as one read."""
        self._in_loop(lambda: self.connection.data_received(data))
        return self

    def answer_held(self) -> None:
        """Let the oldest held upstream answer arrive."""
        self._in_loop(self.gateway.answer_held)

    def relay(self, upstream: UpstreamAnswer) -> Relay:
        """Let the oldest held request's upstream answer arrive through a Relay."""
        relays: list[Relay] = []
        self._in_loop(lambda: relays.append(self.gateway.relay_held(upstream)))
        return relays[0]

    def later(self, seconds: float) -> None:
        """The server's once-a-second housekeeping, run as if `seconds` had passed."""
        now = time.monotonic() + seconds
        self._in_loop(lambda: self.connection.check_timeouts(now))

    def answers(self) -> list[Answer]:
        """Every response written so far, in order."""
        return parse_answers(bytes(self.transport.written))

    def only_answer(self) -> Answer:
        answers = self.answers()
        assert len(answers) == 1, answers
        return answers[0]

    @property
    def closing(self) -> bool:
        """The gateway closed, or half-closed to close shortly (after a refusal)."""
        return self.transport.closed or self.transport.eof_written

    def close(self) -> None:
        self.loop.close()  # drops a refused connection's pending linger timer

    def _in_loop(self, action: Any) -> None:
        async def run() -> None:
            action()

        self.loop.run_until_complete(run())


def parse_answers(data: bytes, head_only: bool = False) -> list[Answer]:
    """Split the bytes a gateway wrote into responses: Content-Length framed, chunked,
    bodiless (1xx; `head_only` for answers to HEAD), or delimited by the close."""
    answers = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status < 200:
            body, data = b"", rest
        elif headers.get("transfer-encoding") == "chunked":
            body, data = _dechunk(rest)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body, data = rest[:length], rest[length:]
        else:
            body, data = rest, b""
        answers.append(Answer(status, headers, body))
    return answers


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    """A chunked body and the bytes after it."""
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(body), data[2:]  # the empty trailer section's CRLF
        body += data[:size]
        assert data[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        data = data[size + 2 :]
