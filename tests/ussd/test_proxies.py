"""TrustedProxyFix: X-Forwarded-For believed from our proxies only, request after request."""

from __future__ import annotations

from typing import Any

from services.ussd.proxies import DEFAULT_TRUSTED_PROXIES, TrustedProxyFix
from shared.netaccess import parse_networks


def test_a_spoofed_x_forwarded_for_from_a_public_peer_is_dropped_on_every_request() -> None:
    """The trust decision is remembered per peer: a public peer never borrows the answer
    given to a proxy before it, nor the other way round."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["REMOTE_ADDR"])
        return []

    fix = TrustedProxyFix(app, 1, parse_networks("TEST", DEFAULT_TRUSTED_PROXIES))

    def address_seen(peer: str, forwarded_for: str) -> str:
        fix({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded_for}, lambda *_: None)
        return seen[-1]

    for _ in range(3):
        assert address_seen("127.0.0.1", "198.51.100.7") == "198.51.100.7"
        assert address_seen("203.0.113.50", "198.51.100.7") == "203.0.113.50"
        assert address_seen("10.1.2.3", "198.51.100.8") == "198.51.100.8"
        assert address_seen("not an address", "198.51.100.9") == "not an address"
