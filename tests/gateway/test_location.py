"""No answer leaves the gateway with a `Location` built from the request's Host or naming
an internal address (issue 12, item 4, the gateway's half): a real upstream answers
with such Locations, the gateway makes them relative or drops them."""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest

from gateway.location import LocationGuard

from .conftest import GatewayProcess, Upstream


def redirect_through(
    gateway: GatewayProcess, template: str, host: str | None = "gateway.example", path: str = ""
) -> dict[str, str]:
    """Ask the upstream (via the gateway) for a 308 to `template`; the answer's headers.

    `{host}` in the template is the Host the upstream received ({self}: its own address).
    Without `host`, the request is HTTP/1.0 with no Host header at all.
    """
    target = (path or "/login/abc") + "?location=" + quote(template, safe="")
    if host is None:
        raw = f"GET {target} HTTP/1.0\r\n\r\n"
    else:
        raw = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(raw.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert head[0].startswith("HTTP/1.1 308"), head
    fields = (line.partition(":") for line in head[1:])
    return {name.strip().lower(): value.strip() for name, _, value in fields}


@pytest.fixture
def gateway(shared_platform: tuple[GatewayProcess, Upstream, Upstream]) -> GatewayProcess:
    return shared_platform[0]


def test_location_built_from_an_attackers_host_header_is_made_relative(
    gateway: GatewayProcess,
) -> None:
    """`GET /login//abc` with `Host: evil.example` got a 308 to http://evil.example/..."""
    answer = redirect_through(gateway, "http://{host}/login/abc?x=1", host="evil.example")
    assert answer["location"] == "/login/abc?x=1"


def test_location_naming_the_upstream_address_is_made_relative(gateway: GatewayProcess) -> None:
    answer = redirect_through(gateway, "http://{self}/api/v1/me#top", path="/api/v1/x")
    assert answer["location"] == "/api/v1/me#top"


def test_request_without_host_cannot_leak_the_upstream_address(gateway: GatewayProcess) -> None:
    """HTTP/1.0 without Host: Werkzeug builds the Location from its own bind address."""
    answer = redirect_through(gateway, "http://{host}/login/abc", host=None)
    assert answer["location"] == "/login/abc"


def test_location_with_double_slash_path_cannot_become_another_host(
    gateway: GatewayProcess,
) -> None:
    """`//evil.example/x` as a path would send a browser to evil.example."""
    answer = redirect_through(gateway, "http://{host}//evil.example/x", host="gateway.example")
    assert answer["location"] == "/evil.example/x"


def test_location_hiding_an_internal_host_behind_userinfo_is_dropped(
    gateway: GatewayProcess,
) -> None:
    answer = redirect_through(gateway, "http://evil.example\\@{self}/x")
    assert "location" not in answer


def test_location_to_another_site_passes_unchanged(gateway: GatewayProcess) -> None:
    answer = redirect_through(gateway, "https://partner.example/welcome?a=1")
    assert answer["location"] == "https://partner.example/welcome?a=1"


def test_relative_location_passes_unchanged(gateway: GatewayProcess) -> None:
    assert redirect_through(gateway, "/me?signed_out=1")["location"] == "/me?signed_out=1"


# -- the rule, value by value ------------------------------------------------------------

GUARD = LocationGuard(lambda: [("sabong", 8082), ("10.9.8.7", 8082), ("127.0.0.1", 80)])
REWRITES = {
    "the request's Host, its port": (b"http://gw.example:9999/a", b"gw.example:9999", b"/a"),
    "the request's Host, no port in it": (b"http://gw.example:9999/a", b"gw.example", b"/a"),
    "the request's Host, upper case": (b"HTTPS://GW.EXAMPLE./a?b", b"gw.example:443", b"/a?b"),
    "a configured upstream name": (b"http://sabong:8082/login/x", None, b"/login/x"),
    "a replica address": (b"http://10.9.8.7:8082/x", None, b"/x"),
    "an upstream on the scheme's port": (b"http://127.0.0.1/x", None, b"/x"),
    "an unspecified address": (b"http://0.0.0.0:8082/x", None, b"/x"),
    "an unspecified IPv6 address": (b"http://[::]:8082/x", None, b"/x"),
    "scheme-relative, an upstream": (b"//sabong:8082/x", None, b"/x"),
    "a backslash path": (b"/\\evil.example/x", None, b"/evil.example/x"),
    "no path": (b"http://sabong:8082", None, b"/"),
}
UNCHANGED = {
    "another site": (b"https://partner.example/x", b"gw.example"),
    "the request's host on another port": (b"http://gw.example:8443/a", b"gw.example:9999"),
    "an app on localhost in development": (b"http://localhost:5173/lobby", b"gw.example"),
    "an upstream's host on another port": (b"http://10.9.8.7:3000/x", None),
    "relative": (b"/me?signed_out=1", b"gw.example"),
}
DROPS = {
    "userinfo": b"http://user@gw.example/x",
    "backslash in the authority": b"http://127.0.0.1\\@partner.example/x",
    "http without a host": b"http:/\\evil.example/x",
    "unparsable": b"http://[::1/x",
    "an upstream under another scheme": b"ftp://10.9.8.7:8082/x",
}


@pytest.mark.parametrize("case", REWRITES, ids=list(REWRITES))
def test_location_rule_rewrites(case: str) -> None:
    value, host, expected = REWRITES[case]
    assert GUARD.safe(value, host) == expected


@pytest.mark.parametrize("case", UNCHANGED, ids=list(UNCHANGED))
def test_location_rule_leaves_other_addresses_alone(case: str) -> None:
    value, host = UNCHANGED[case]
    assert GUARD.safe(value, host) == value


@pytest.mark.parametrize("case", DROPS, ids=list(DROPS))
def test_location_that_cannot_be_made_safe_is_dropped(case: str) -> None:
    assert GUARD.safe(DROPS[case], b"gw.example") is None
