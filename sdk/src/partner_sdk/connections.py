"""Keep-alive HTTP(S) connections to one origin, directly or through an HTTP proxy."""

from __future__ import annotations

import base64
import http.client
import select
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}
# Idle connections kept per client; more concurrent callers open extra ones, closed after use.
MAX_IDLE_CONNECTIONS = 10


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait: `connect` for TCP, proxy CONNECT and TLS; `read` for each answer."""

    connect: float = 5.0
    read: float = 10.0

    @classmethod
    def of(cls, value: float | Timeout) -> Timeout:
        """A Timeout from a Timeout, or from one number used for both."""
        return value if isinstance(value, Timeout) else cls(float(value), float(value))


@dataclass(frozen=True)
class Proxy:
    """An HTTP forward proxy (`http://[user:password@]host:port`)."""

    host: str
    port: int
    authorization: str | None = None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Parse a proxy URL as found in HTTPS_PROXY/HTTP_PROXY (scheme optional)."""
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// proxies are supported, got {parts.scheme!r}")
        authorization = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            authorization = f"Basic {token}"
        return cls(parts.hostname, parts.port or 80, authorization)


def proxy_from_environment(scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY names for this origin; None if unset or NO_PROXY matches."""
    url = urllib.request.getproxies().get(scheme)
    if not url or urllib.request.proxy_bypass(f"{host}:{port}"):
        return None
    return Proxy.parse(url)


class _HTTPConnection(http.client.HTTPConnection):
    """A connection whose socket switches from the connect to the read timeout once open."""

    read_timeout: float = 10.0

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    """As _HTTPConnection, for TLS (the handshake still runs under the connect timeout)."""

    read_timeout: float = 10.0

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class ConnectionPool:
    """Idle keep-alive connections to one origin; each is used by one thread at a time."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        timeout: Timeout,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port or DEFAULT_PORTS[scheme]
        self.timeout = timeout
        # Made once: loading the system CAs for every new connection costs milliseconds.
        self.ssl_context = ssl_context
        if scheme == "https" and ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        self.proxy = proxy
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        """`scheme://host:port` (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def request_target(self, target: str) -> str:
        """The request line's target: absolute-form for plain HTTP through a proxy."""
        if self.proxy is not None and self.scheme == "http":
            return self.origin + target
        return target

    def proxy_headers(self) -> dict[str, str]:
        """Headers a plain-HTTP proxy needs on every request (CONNECT carries its own)."""
        if self.proxy is None or self.scheme != "http" or self.proxy.authorization is None:
            return {}
        return {"Proxy-Authorization": self.proxy.authorization}

    def acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection still open (True: reused), else a new unopened one (False)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self.new_connection(), False
            if not _dropped(connection):
                return connection, True
            connection.close()

    def release(self, connection: http.client.HTTPConnection, reusable: bool) -> None:
        """Return a connection whose answer was read completely; close it otherwise."""
        if reusable and connection.sock is not None:
            with self._lock:
                if len(self._idle) < MAX_IDLE_CONNECTIONS:
                    self._idle.append(connection)
                    return
        connection.close()

    def close(self) -> None:
        """Close every idle connection (connections in use close when released)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def new_connection(self) -> http.client.HTTPConnection:
        """A connection to the origin, or to the proxy (tunnelling with CONNECT for https)."""
        host, port = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        connection: _HTTPConnection | _HTTPSConnection
        if self.scheme == "https":
            connection = _HTTPSConnection(
                host, port, timeout=self.timeout.connect, context=self.ssl_context
            )
            if self.proxy is not None:
                auth = self.proxy.authorization
                headers = {"Proxy-Authorization": auth} if auth else None
                connection.set_tunnel(self.host, self.port, headers=headers)
        else:
            connection = _HTTPConnection(host, port, timeout=self.timeout.connect)
        connection.read_timeout = self.timeout.read
        return connection


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when an idle connection's peer closed it (or sent something unasked)."""
    sock: socket.socket | None = connection.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
