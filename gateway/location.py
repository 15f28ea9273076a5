"""The rule for `Location` and `Content-Location` on answers leaving the gateway.

A service behind the gateway knows only the Host header it was passed and its own bind
address, so an absolute URL it builds names what the client typed (`Host: evil.example`
turns a redirect into one to evil.example) or an internal address (127.0.0.1:8082, a
container name). Neither may leave the gateway:

- an absolute or scheme-relative URL naming the request's Host (its host, and its port
  when both give one), an upstream's host:port (a configured name or a replica
  address; the scheme's default port when none is given), or an unspecified address
  (`0.0.0.0`, `::`: what a service bound to all interfaces calls itself) becomes the
  relative reference of its path, query and fragment;
- any other absolute URL (another site, on purpose: `SABONG_APP_URL` may name one, even
  `localhost` in development) passes unchanged;
- a path starting with `//` or `/\\` (which a browser reads as another host) is cut to
  one `/`;
- a value that cannot be read safely (unparsable, userinfo or a backslash in the
  authority, an http(s) URL without a host) is dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

LOCATION_FIELDS = frozenset({b"location", b"content-location"})
_WEB_SCHEMES = ("http", "https", "")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class LocationGuard:
    """Decides what becomes of one Location value (see the module's rule)."""

    def __init__(self, upstream_addresses: Callable[[], Iterable[tuple[str, int]]]) -> None:
        # Called only for an absolute URL not naming the request's Host: the replica
        # addresses change as DNS names are re-resolved.
        self.upstream_addresses = upstream_addresses

    def safe(self, value: bytes, request_host: bytes | None) -> bytes | None:
        """`value` as it may leave the gateway, or None to drop the header."""
        text = value.decode("latin-1").strip()
        try:
            parts = urlsplit(text)
            host = parts.hostname
            port = parts.port
        except ValueError:
            return None
        if not parts.netloc:
            if parts.scheme.lower() in ("http", "https"):
                return None  # "http:/\\evil.example": browsers find a host in there
            return _single_leading_slash(text).encode("latin-1") if not parts.scheme else value
        if "@" in parts.netloc or "\\" in parts.netloc or host is None:
            return None  # browsers and urllib disagree on which host these name
        host = host.rstrip(".")
        if not (_names_request_host(host, port, request_host) or self._internal(host, port, parts)):
            return value
        if parts.scheme.lower() not in _WEB_SCHEMES:
            return None  # an internal address under another scheme: nothing to keep
        return _relative(parts).encode("latin-1")

    def _internal(self, host: str, port: int | None, parts: SplitResult) -> bool:
        """An upstream's own address, or the one a service bound to all interfaces has."""
        if _is_unspecified(host):
            return True
        port = port or _DEFAULT_PORTS.get(parts.scheme.lower())
        return any(
            (name.lower(), number) == (host, port) for name, number in self.upstream_addresses()
        )


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _names_request_host(host: str, port: int | None, request_host: bytes | None) -> bool:
    """True when `host` (lower-case) and `port` are those of the request's Host header
    (ports compared only when both are given)."""
    if not request_host:
        return False
    try:
        named = urlsplit("//" + request_host.decode("latin-1").strip())
        named_host, named_port = named.hostname, named.port
    except ValueError:
        return False
    if named_host is None or named_host.rstrip(".") != host:
        return False
    return port is None or named_port is None or port == named_port


def _relative(parts: SplitResult) -> str:
    """Path, query and fragment of an absolute URL, as a reference to this site."""
    reference = _single_leading_slash(parts.path or "/")
    if parts.query:
        reference += "?" + parts.query
    if parts.fragment:
        reference += "#" + parts.fragment
    return reference


def _single_leading_slash(path: str) -> str:
    """`//evil.example/x` and `/\\evil.example/x` are other hosts to a browser."""
    if path.startswith(("//", "/\\", "\\")):
        return "/" + path.lstrip("/\\")
    return path
