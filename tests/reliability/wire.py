"""HTTP on the wire for the reliability tests: keep-alive clients, raw bytes, envelope checks."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.signing import sign

HOST = "127.0.0.1"
K2_PREFIXES = ("/api/auth/", "/api/clients/")
SABONG_API_PREFIX = "/api/v1/"
BROWSER_ROUTES = ("/login/", "/me", "/logout")
SABONG_STATUS_WORDS = ("success", "failed", "error")


@dataclass
class Answer:
    """One request's outcome: status 0 and `error` set when no HTTP answer came back."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    started: float
    finished: float
    error: str = ""

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    def json(self) -> Any:
        return json.loads(self.body)

    def brief(self) -> str:
        """The request and a short view of the answer, for assertion messages."""
        shown = self.error or self.body[:300].decode("utf-8", "replace")
        return f"{self.method} {self.path[:80]} -> {self.status} in {self.elapsed:.3f}s: {shown}"


class Client:
    """One keep-alive connection to the gateway, as one partner thread would hold it.

    Failures are never retried: a transport error is an `Answer` with status 0.
    """

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        started = time.monotonic()
        try:
            self.conn.request(method, path, body=body, headers=dict(headers or {}))
            response = self.conn.getresponse()
            payload = response.read()
            received = {k.lower(): v for k, v in response.getheaders()}
            return Answer(
                method, path, response.status, received, payload, started, time.monotonic()
            )
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            return Answer(method, path, 0, {}, b"", started, time.monotonic(), repr(exc))

    def close(self) -> None:
        self.conn.close()


def signed_headers(secret: str, method: str, path: str, payload: bytes) -> dict[str, str]:
    """x-timestamp and x-signature over exactly `payload` (the body, or the GET query)."""
    stamp = str(int(time.time()))
    return {
        "x-timestamp": stamp,
        "x-signature": sign(secret, method, path, stamp, payload),
        "Content-Type": "application/json",
    }


def send_raw(port: int, data: bytes, timeout: float = 10.0) -> Answer:
    """Write `data` as-is on a fresh connection and read one HTTP answer.

    For what http.client refuses to send: non-ASCII request lines, bytes that are not
    UTF-8, header names with odd characters.
    """
    request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = request_line.partition(" ")
    path = rest.rsplit(" ", 1)[0]
    started = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(data)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            payload = response.read()
            received = {k.lower(): v for k, v in response.getheaders()}
            return Answer(
                method, path, response.status, received, payload, started, time.monotonic()
            )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(method, path, 0, {}, b"", started, time.monotonic(), repr(exc))


def raw_request(
    method: str,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
) -> bytes:
    """The bytes of one HTTP/1.1 request with Content-Length and Connection: close
    (and `Host: 127.0.0.1` unless `headers` name a Host)."""
    headers = list(headers)
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    if not any(name.lower() == b"host" for name, _ in headers):
        lines.append(b"Host: 127.0.0.1")
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def family(path: str) -> str:
    """The API family of a path, as the gateway routes it: k2, sabong, browser or neutral."""
    if path.startswith(K2_PREFIXES):
        return "k2"
    if path.startswith(SABONG_API_PREFIX):
        return "sabong"
    for route in BROWSER_ROUTES:
        if (
            path.startswith(route)
            if route.endswith("/")
            else (path == route or path.startswith(route + "/"))
        ):
            return "browser"
    return "neutral"


def envelope_problems(answer: Answer, allow_5xx: Iterable[int] = ()) -> list[str]:
    """Why `answer` breaks the contract for its path (empty list: it does not).

    No 5xx (unless allowed), no stack trace, JSON in the envelope of the path's family,
    HTML only on the browser paths.
    """
    problems = []
    path = answer.path.split("?", 1)[0]
    kind = family(path)
    if answer.status == 0:
        return [f"no answer: {answer.error}"]
    if answer.status >= 500 and answer.status not in set(allow_5xx):
        problems.append(f"server error {answer.status}")
    if b"Traceback" in answer.body or b'File "' in answer.body:
        problems.append("stack trace in the body")
    if not answer.body and answer.method in ("HEAD", "OPTIONS"):
        # Nothing to judge: HEAD has no body by definition, and the frameworks' automatic
        # OPTIONS answer is an empty 200 with an Allow header.
        return problems
    content_type = answer.headers.get("content-type", "")
    if content_type.startswith("text/html"):
        if kind != "browser":
            problems.append(f"HTML on a {kind} path")
        return problems
    if not answer.body and answer.status in (204, 303, 304):
        return problems
    if not content_type.startswith("application/json"):
        problems.append(f"content type {content_type!r}")
        return problems
    try:
        body = answer.json()
    except ValueError:
        return [*problems, "body is not JSON"]
    problems += _envelope_shape(kind, answer.status, body)
    return problems


def _envelope_shape(kind: str, status: int, body: Any) -> list[str]:
    if not isinstance(body, dict) or set(body) != {"status", "message", "data"}:
        return [f"not an envelope: {str(body)[:200]}"]
    if not isinstance(body["message"], str):
        return ["message is not a string"]
    if kind in ("sabong", "browser"):
        if body["status"] not in SABONG_STATUS_WORDS:
            return [f"Sabong envelope with status {body['status']!r}"]
        return []
    if type(body["status"]) is not int or body["status"] != status:
        return [f"K2 envelope status {body['status']!r} on HTTP {status}"]
    return []
