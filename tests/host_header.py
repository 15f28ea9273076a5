"""Helpers for the Host-header tests of both services: no response may carry a Location
built from the request's Host or naming the service's own (internal) address."""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Mapping

EVIL_HOST = "evil.example"

# Paths Werkzeug used to "fix" with a redirect: doubled slashes (merge_slashes) and a
# missing or extra trailing slash (strict_slashes).
SLASH_TRICKS = (
    "/login//abc",
    "//login/abc",
    "/login/abc/",
    "/login",
    "//login/",
    "/me/",
    "//me",
    "/logout/",
    "/logout//all",
    "/api//v1/me",
    "/api/v1//generate-auth-token",
    "/api/auth//login",
    "//api/auth/login",
    "/api/auth/login/",
    "/api/clients//me",
    "/api/clients/me/",
    "/healthz/",
    "//healthz",
    "/metrics/",
)


def raw_request(base_url: str, method: str, path: str, host: str | None) -> tuple[int, bytes]:
    """One request as the bytes an attacker writes: HTTP/1.0 without Host when `host` is
    None (gunicorn then fills in its own address), else HTTP/1.1 with that Host."""
    parts = urllib.parse.urlsplit(base_url)
    if host is None:
        head = f"{method} {path} HTTP/1.0\r\nContent-Length: 2\r\n\r\n{{}}"
    else:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("ascii"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, _ = received.partition(b"\r\n")
    return int(status_line.split()[1]), received.partition(b"\r\n\r\n")[0]


def assert_no_location_from_host(status: int, head: str, own_address: str) -> None:
    """No 3xx redirect to another host, and nothing echoes the Host or our own address."""
    assert EVIL_HOST not in head, head
    assert own_address not in head, head
    assert not 300 <= status < 400 or "location: /" in head.lower(), head


def location_is_relative(headers: Mapping[str, str]) -> bool:
    """A Location (if any) is a path on this site: no scheme, no `//host`."""
    location = headers.get("Location")
    return location is None or (location.startswith("/") and not location.startswith("//"))
