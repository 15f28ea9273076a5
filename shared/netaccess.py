"""Who may read `/metrics`: one allow-list of networks, used by the gateway and both services.

`METRICS_ALLOW` (CIDRs, comma-separated) is the one setting; the gateway still honours its
older name `GATEWAY_METRICS_ALLOW` when that is set. The check is on the TCP peer, never
on a header such as X-Forwarded-For, which the client writes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigError

if TYPE_CHECKING:  # shared.config imports this module (through shared.settings)
    from .config import Settings

# Loopback and private ranges: a scraper on the same host or network.
DEFAULT_METRICS_ALLOW = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
METRICS_ALLOW_SETTING = "METRICS_ALLOW"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(name: str, raw: str) -> tuple[Network, ...]:
    """`10.0.0.0/8,::1/128` (a bare address is a /32 or /128) into networks."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an address or CIDR range") from None
    return tuple(networks)


def metrics_allow(settings: Settings, override: str | None = None) -> tuple[Network, ...]:
    """The networks allowed to read `/metrics`: `override` (a setting name) if set, else
    `METRICS_ALLOW` (shared.settings.CommonSettings: loopback and private ranges)."""
    if override and settings.get(override):
        return parse_networks(override, settings.get(override))
    return settings.common.metrics_allow


def peer_allowed(peer: str | None, networks: tuple[Any, ...]) -> bool:
    """Whether the TCP peer address `peer` lies in one of `networks`."""
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return any(address in network for network in networks)


def wsgi_peer(environ: Mapping[str, Any]) -> str | None:
    """The TCP peer of a WSGI request, even behind werkzeug's ProxyFix (which rewrites
    REMOTE_ADDR from X-Forwarded-For but keeps the original)."""
    original = environ.get("werkzeug.proxy_fix.orig")
    if isinstance(original, Mapping) and "REMOTE_ADDR" in original:
        value = original["REMOTE_ADDR"]
    else:
        value = environ.get("REMOTE_ADDR")
    return value if isinstance(value, str) else None
