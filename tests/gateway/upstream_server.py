"""A tiny HTTP/1.1 keep-alive upstream for the gateway tests, run as a real process.

Echoes what it received as JSON: its own name, method, raw target, headers (in order,
duplicates kept) and body. Query flags: `sleep=<seconds>` answers late, `hop=1` adds
hop-by-hop response headers, `status=<code>` picks the status, `size=<n>` answers n
bytes of a known pattern instead (`chunked=1`: in chunked encoding), `html=1` answers
an HTML error page like a server refusing the request before its app, `location=<url>`
answers 308 with that Location, where `{host}` stands for the Host header received (or,
without one, this server's own address, as Werkzeug builds it) and `{self}` for this
server's own address. Every request id is
appended to `--log` the moment the request is read, so a test can tell which requests
reached this process before it was killed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def make_handler(name: str, log_fd: int | None, idle: float) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to this server's name and request log."""

    class EchoHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn behind the gateway
        timeout = idle  # idle keep-alive connections are closed after this many seconds

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads the request log instead

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except ConnectionError:
                self.close_connection = True

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if log_fd is not None:
                os.write(log_fd, (self.headers.get("X-Request-ID", "-") + "\n").encode())
            query = parse_qs(urlsplit(self.path).query)
            if "sleep" in query:
                time.sleep(float(query["sleep"][0]))
            status = int(query.get("status", ["200"])[0])
            if urlsplit(self.path).path == "/readyz":
                status = 200
            if "size" in query:
                self._send_large(int(query["size"][0]), "chunked" in query)
                return
            if "html" in query:
                self._send_html(status)
                return
            if "location" in query:
                self._send_redirect(query["location"][0])
                return
            payload = json.dumps(
                {
                    "server": name,
                    "method": self.command,
                    "target": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("utf-8", "replace"),
                    "body_length": len(body),
                    "peer_port": self.client_address[1],
                }
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Upstream", name)
            if "hop" in query:
                self.send_header("Connection", "keep-alive, X-Upstream-Secret")
                self.send_header("X-Upstream-Secret", "internal")
                self.send_header("Keep-Alive", "timeout=30")
                self.send_header("Proxy-Authenticate", "Basic realm=internal")
                self.send_header("Trailer", "X-Checksum")
                self.send_header("Upgrade", "h2c")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _send_html(self, status: int) -> None:
            page = b"<html><head><title>Error</title></head><body>refused</body></html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def _send_redirect(self, template: str) -> None:
            host, port = self.server.server_address[:2]
            own = f"{host}:{port}"
            location = template.replace("{host}", self.headers.get("Host") or own)
            self.send_response(308)
            self.send_header("Location", location.replace("{self}", own))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send_large(self, size: int, chunked: bool) -> None:
            """`size` bytes of a repeating pattern, framed by length or in chunks."""
            pattern = bytes(range(256)) * (size // 256 + 1)
            payload = pattern[:size]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, size, 50_000):
                    piece = payload[start : start + 50_000]
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    return EchoHandler


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections under a burst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--log")
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    log_fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if args.log else None
    server = UpstreamServer(("127.0.0.1", args.port), make_handler(args.name, log_fd, args.idle))
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
