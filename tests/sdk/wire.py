"""Raw-socket HTTP/1.1 servers for transport tests: they count TCP connections and can
reset, drop or stall a request - things a framework server hides or cannot do."""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

RESET: Literal["reset"] = "reset"  # abort the connection with a TCP RST, no answer
DROP: Literal["drop"] = "drop"  # close the connection cleanly, no answer
STALL: Literal["stall"] = "stall"  # never answer (until the server stops)

Reply = tuple[int, dict[str, str], bytes]
Action = Reply | Literal["reset", "drop", "stall"]


@dataclass(frozen=True)
class Seen:
    """One request as received, with the number of the TCP connection that carried it."""

    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


Handler = Callable[[Seen], Action]


def ok(body: bytes = b'{"status":200,"message":"OK","data":{}}', **headers: str) -> Reply:
    """A 200 JSON answer."""
    return 200, {"Content-Type": "application/json", **headers}, body


def read_head(stream: BinaryIO) -> tuple[str, dict[str, str]] | None:
    """The request (or status) line and lower-cased headers; None at end of stream."""
    line = stream.readline()
    if not line.strip():
        return None
    headers: dict[str, str] = {}
    while (raw := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return line.decode("latin-1").strip(), headers


@dataclass
class WireServer:
    """Serves `handler` on a loopback port; keep-alive unless the reply says close."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, listener: socket.socket) -> None:
        """Accept connections until stopped, one thread each."""
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._connection, args=(conn, number), daemon=True).start()

    def _connection(self, conn: socket.socket, number: int) -> None:
        """Answer requests on one connection until either side closes it."""
        with contextlib.suppress(OSError), contextlib.closing(conn):
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            stream = conn.makefile("rb")
            while (head := read_head(stream)) is not None:
                (method, target, _), headers = head[0].split(" ", 2), head[1]
                body = stream.read(int(headers.get("content-length") or 0))
                seen = Seen(number, method, target, headers, body)
                with self.lock:
                    self.seen.append(seen)
                if not self._answer(conn, self.handler(seen)):
                    return

    def _answer(self, conn: socket.socket, action: Action) -> bool:
        """Carry out `action`; False when the connection must end."""
        if action == RESET:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if action == DROP:
            return False
        if action == STALL:
            self.stopping.wait(30)
            return False
        status, headers, body = action
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if "X-Reset-After" in headers:  # answered, then the connection is aborted
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if "X-Close-After" in headers:
            # A FIN after the answer, as an idle keep-alive timeout sends; reading goes on,
            # so a client that still sends here is seen, and then gets no answer.
            conn.shutdown(socket.SHUT_WR)
        return headers.get("Connection", "").lower() != "close"


@contextlib.contextmanager
def wire_server(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[WireServer]:
    """A running WireServer; stopped (and its stalled requests released) on exit."""
    server = WireServer(handler, tls)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        scheme = "https" if tls else "http"
        server.url = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
        thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.stopping.set()
            listener.shutdown(socket.SHUT_RDWR)
    thread.join(5)


@dataclass
class ForwardProxy:
    """A forward proxy: CONNECT tunnels, and absolute-form HTTP passed through as bytes."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def handle(self, client: socket.socket) -> None:
        """Open the upstream the first request names, then pipe bytes both ways."""
        with contextlib.suppress(OSError), contextlib.closing(client):
            head = _head_unbuffered(client)
            if head is None:
                return
            self.requests.append(head)
            method, target, version = head[0].split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=5)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urllib.parse.urlsplit(target)
                upstream = socket.create_connection((parts.hostname, parts.port), timeout=5)
                fields = "".join(f"{k}: {v}\r\n" for k, v in head[1].items())
                upstream.sendall(f"{method} {target} {version}\r\n{fields}\r\n".encode())
            with contextlib.closing(upstream):
                _pipe(client, upstream)


def _head_unbuffered(sock: socket.socket) -> tuple[str, dict[str, str]] | None:
    """Read exactly the head from a socket (byte by byte: what follows stays unread)."""
    raw = b""
    while not raw.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            return None
        raw += byte
    return read_head(io.BytesIO(raw))


def _pipe(left: socket.socket, right: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""

    def copy(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                target.sendall(chunk)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=copy, args=(right, left), daemon=True)
    other.start()
    copy(left, right)
    other.join(10)


@contextlib.contextmanager
def forward_proxy() -> Iterator[ForwardProxy]:
    """A running ForwardProxy on a loopback port."""
    proxy = ForwardProxy()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        proxy.url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    client, _ = listener.accept()
                    threading.Thread(target=proxy.handle, args=(client,), daemon=True).start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            listener.shutdown(socket.SHUT_RDWR)
    thread.join(5)


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll `predicate` until true or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def lossy_relay(upstream: str, lose: int) -> Handler:
    """A WireServer handler that forwards each request to `upstream` and, for the first
    `lose` of them, resets the connection instead of answering: applied, answer lost."""
    parts = urllib.parse.urlsplit(upstream)
    lock = threading.Lock()
    remaining = [lose]
    passed = ("content-type", "idempotent-replayed", "x-auth-error", "retry-after")

    def handler(seen: Seen) -> Action:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        headers = {k: v for k, v in seen.headers.items() if k not in ("host", "connection")}
        try:
            connection.request(seen.method, seen.target, seen.body or None, headers)
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        with lock:
            if remaining[0] > 0:
                remaining[0] -= 1
                return RESET
        kept = {name: value for name, value in answer.getheaders() if name.lower() in passed}
        return answer.status, kept, body

    return handler
