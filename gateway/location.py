"""The rule for `Location` and `Content-Location` on answers leaving the gateway.

A service behind the gateway knows only the Host header it was passed and its own bind
address, so an absolute URL it builds names what the client typed (`Host: evil.example`
turns a redirect into one to evil.example) or an internal address (127.0.0.1:8082, a
container name). Neither may leave the gateway:

- an absolute or scheme-relative URL whose host is the request's Host, an upstream
  (configured name or replica address), `localhost`, or an IP address that is not
  globally routable, becomes the relative reference of its path, query and fragment;
- any other absolute URL (another site, on purpose) passes unchanged;
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


class LocationGuard:
    """Decides what becomes of one Location value (see the module's rule)."""

    def __init__(self, internal_hosts: Callable[[], Iterable[str]]) -> None:
        # Called only for an absolute URL not naming the request's Host: the replica
        # addresses change as DNS names are re-resolved.
        self.internal_hosts = internal_hosts

    def safe(self, value: bytes, request_host: bytes | None) -> bytes | None:
        """`value` as it may leave the gateway, or None to drop the header."""
        text = value.decode("latin-1").strip()
        try:
            parts = urlsplit(text)
            host = parts.hostname
        except ValueError:
            return None
        if not parts.netloc:
            if parts.scheme.lower() in ("http", "https"):
                return None  # "http:/\\evil.example": browsers find a host in there
            return _single_leading_slash(text).encode("latin-1") if not parts.scheme else value
        if "@" in parts.netloc or "\\" in parts.netloc or host is None:
            return None  # browsers and urllib disagree on which host these name
        host = host.rstrip(".")
        if not (_same_host(host, request_host) or self._internal(host)):
            return value
        if parts.scheme.lower() not in _WEB_SCHEMES:
            return None  # an internal address under another scheme: nothing to keep
        return _relative(parts).encode("latin-1")

    def _internal(self, host: str) -> bool:
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in {name.lower() for name in self.internal_hosts()}
        return not address.is_global


def _same_host(host: str, request_host: bytes | None) -> bool:
    """True when `host` (lower-case, no port) is the host of the request's Host header."""
    if not request_host:
        return False
    try:
        named = urlsplit("//" + request_host.decode("latin-1").strip()).hostname
    except ValueError:
        return False
    return named is not None and named.rstrip(".") == host


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
