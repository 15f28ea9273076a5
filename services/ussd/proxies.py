"""Which source address a request came from: X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from shared.netaccess import Network

# The gateway reaches the services over loopback (`make run`) or a private network
# (docker-compose); a public peer is never a proxy of ours.
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
PEERS_REMEMBERED = 256


class TrustedProxyFix:
    """Take the client address from X-Forwarded-For only when the TCP peer is a proxy we
    trust, believing exactly `hops` entries from the end (the ones our proxies appended).

    Anything a client wrote before them is ignored, and a client that reaches the service
    directly (a peer outside `trusted`) has its X-Forwarded-For dropped: either way the
    per-address login limits count an address the client cannot choose.
    """

    def __init__(self, app: Any, hops: int, trusted: Iterable[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)
        self.behind_proxy = ProxyFix(app, x_for=hops)
        # A service sees few distinct peers (its proxies, or a few partners): parsing the
        # address on every request cost more than the rest of this middleware.
        self._trusted = functools.lru_cache(maxsize=PEERS_REMEMBERED)(self._is_trusted_peer)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            return self.behind_proxy(environ, start_response)
        environ.pop("HTTP_X_FORWARDED_FOR", None)
        return self.app(environ, start_response)

    def _is_trusted_peer(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)
