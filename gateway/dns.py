"""Upstream names re-resolved: every A/AAAA record of a name is a replica.

So `docker compose --scale sabong=3` needs no configuration: the gateway finds the new
replicas within `Timeouts.dns_refresh` seconds. A name that stops resolving keeps its
last known replicas (a DNS hiccup must not take a whole service out of rotation).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable

from .upstream import Target

log = logging.getLogger("gateway.upstream")

Address = tuple[str, int]


async def resolve(
    service: str, targets: Iterable[Target], known: Iterable[Address]
) -> list[Address]:
    """The replica addresses of `targets`: IP literals as they are, names by every record
    they resolve to, or by the `known` addresses of their port when they do not resolve."""
    loop = asyncio.get_running_loop()
    addresses: list[Address] = []
    for target in targets:
        if target.is_literal:
            addresses.append((target.host, target.port))
            continue
        try:
            infos = await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except OSError as exc:
            log.warning(
                "upstream name did not resolve; keeping the last known replicas",
                extra={"service": service, "host": target.host, "error": str(exc)},
            )
            addresses.extend(a for a in known if a[1] == target.port)
            continue
        addresses.extend((str(info[4][0]), target.port) for info in infos)
    return addresses
