"""K2 login limits through the real gateway and service, from real source addresses.

Every 127.0.0.0/8 address reaches the loopback interface, so a client socket bound to
127.0.0.N is a distinct source address as the gateway sees it: an attacker with many
addresses and an owner with a clean one, on one machine.
"""

from __future__ import annotations

import http.client
import json
import secrets
from typing import Any

from .conftest import StartPlatform
from .platform import Platform

GUESSES_PER_ADDRESS = 5  # below the per-(username, address) limit of 10
ATTACKER_ADDRESSES = 4  # 20 wrong passwords in all: twice the old per-username lockout


def login_from(
    platform: Platform, source: str, username: str, password: str, forged_for: str = ""
) -> tuple[int, dict[str, Any]]:
    """POST /api/auth/login through the gateway from the local address `source`."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", platform.port, timeout=30, source_address=(source, 0)
    )
    headers = {"Content-Type": "application/json"}
    if forged_for:
        headers["X-Forwarded-For"] = forged_for
    try:
        body = json.dumps({"username": username, "password": password})
        connection.request("POST", "/api/auth/login", body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_wrong_passwords_from_elsewhere_cannot_lock_the_owner_out(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform()
    username, password = f"owner_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    platform.create_k2_account(username, password)
    for host in range(ATTACKER_ADDRESSES):
        for guess in range(GUESSES_PER_ADDRESS):
            status, _ = login_from(platform, f"127.0.0.{10 + host}", username, f"guess{guess}")
            assert status == 401
    status, body = login_from(platform, "127.0.0.99", username, password)
    assert status == 200, body
    assert body["data"]["user"]["username"] == username


def test_forged_forwarded_for_cannot_give_a_guesser_fresh_addresses(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform()
    username, password = f"victim_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    platform.create_k2_account(username, password)
    # Each guess claims another address; the gateway appends the real one, which counts.
    for guess in range(10):
        forged = f"198.51.100.{guess}"
        status, _ = login_from(platform, "127.0.0.20", username, f"guess{guess}", forged)
        assert status == 401
    status, body = login_from(platform, "127.0.0.20", username, password, "203.0.113.1")
    assert (status, body["message"]) == (429, "Too many login attempts")
    # The owner, from an address of their own, is not affected.
    assert login_from(platform, "127.0.0.21", username, password)[0] == 200
