"""The SDK against the REAL services (gunicorn subprocesses, a real Redis)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from partner_sdk import (
    AuthenticationError,
    ConflictError,
    InsufficientBalanceError,
    K2Client,
    NotFoundError,
    Retry,
    SabongClient,
    TransportError,
    ValidationError,
)
from partner_sdk.jwt_payload import token_expiry, unverified_claims
from partner_sdk.transport import Transport

from devtools.embedded import EmbeddedRedis
from tests.live_services import (
    Platform,
    create_k2_client,
    live_platform,
    real_gateway,
)
from tests.sabong.conftest import reconcile_exit, seed_user
from tests.sdk.wire import lossy_relay, wire_server

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def platform(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """Both services for this module, on the session Redis (emptied first)."""
    redis_py.Redis.from_url(redis_server.url).flushall()
    with live_platform(redis_server.url, tmp_path_factory.mktemp("live-sdk")) as running:
        yield running


@pytest.fixture
def credentials(platform: Platform) -> tuple[str, str]:
    """A fresh K2 partner account, made with the admin CLI."""
    username, password = f"partner_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    created = create_k2_client(platform.env, username, password)
    assert created["username"] == username
    return username, password


class OffsetClock:
    """Real time plus an adjustable offset, to move the client into the refresh window."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _service_uuid(service_id: str) -> str:
    claims = unverified_claims(service_id)
    assert claims is not None
    return str(claims["serviceId"])


def test_k2_login_service_id_and_me(platform: Platform, credentials: tuple[str, str]) -> None:
    client = K2Client(platform.ussd_url, *credentials, timeout=10)
    me = client.me()
    service_id = client.service_id()
    assert me["serviceId"] == _service_uuid(service_id)
    claims = unverified_claims(service_id)
    assert claims is not None and claims["exp"] - claims["iat"] == 3600
    assert client.user is not None and client.user["username"] == credentials[0]
    assert uuid.UUID(client.generate_api_key())


def test_k2_regenerates_five_minutes_before_expiry(
    platform: Platform, credentials: tuple[str, str]
) -> None:
    clock = OffsetClock()
    client = K2Client(platform.ussd_url, *credentials, timeout=10, clock=clock)
    first = client.service_id()
    expiry = token_expiry(first)
    assert expiry is not None
    clock.offset = (expiry - 301) - time.time()
    assert client.service_id() == first
    clock.offset = (expiry - 299) - time.time()
    me = client.me()
    assert me["serviceId"] != _service_uuid(first)
    assert me["serviceId"] == _service_uuid(client.service_id())


def test_k2_recovers_after_a_server_side_revoke(
    platform: Platform, credentials: tuple[str, str]
) -> None:
    client = K2Client(platform.ussd_url, *credentials, timeout=10)
    first = client.service_id()
    # Another process revokes it: the client only learns from the server's 401.
    Transport(platform.ussd_url).send(
        "POST", "/api/clients/revoke-service-id", None, {"Authorization": f"Bearer {first}"}
    ).raise_for_status()
    assert client.me()["serviceId"] != _service_uuid(first)


def test_k2_revoke_then_next_call_gets_a_new_id(
    platform: Platform, credentials: tuple[str, str]
) -> None:
    client = K2Client(platform.ussd_url, *credentials, timeout=10)
    first = client.service_id()
    client.revoke_service_id()
    rejected = Transport(platform.ussd_url).send(
        "GET", "/api/clients/me", None, {"Authorization": f"Bearer {first}"}
    )
    assert (rejected.status, rejected.message) == (401, "Invalid service ID")
    assert client.me()["serviceId"] != _service_uuid(first)


def test_k2_twenty_threads_share_one_client(
    platform: Platform, credentials: tuple[str, str]
) -> None:
    client = K2Client(platform.ussd_url, *credentials, timeout=20)
    before = client.service_id()
    Transport(platform.ussd_url).send(
        "POST", "/api/clients/revoke-service-id", None, {"Authorization": f"Bearer {before}"}
    ).raise_for_status()
    start = threading.Barrier(20)
    seen: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(10)
            for _ in range(3):
                seen.append(client.me()["serviceId"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(seen) == 60
    # One regeneration for all twenty threads: every answer names the same new ID.
    assert set(seen) == {_service_uuid(client.service_id())}
    assert _service_uuid(before) not in seen


def test_k2_wrong_password_is_an_authentication_error(
    platform: Platform, credentials: tuple[str, str]
) -> None:
    client = K2Client(platform.ussd_url, credentials[0], "wrong-password", timeout=10)
    with pytest.raises(AuthenticationError) as caught:
        client.me()
    assert (caught.value.status, caught.value.message) == (401, "Invalid username or password")


def test_sabong_generates_tokens(platform: Platform) -> None:
    client = SabongClient(platform.sabong_url, platform.sabong_secret, timeout=10)
    client_id = f"CLIENT_{uuid.uuid4().hex[:8]}"
    first = client.generate_auth_token(client_id, "user1", "José Ñ", "192.168.1.100", expiration=5)
    assert len(first["token"]) == 64 and first["token"].isalnum()
    assert first["expiresIn"] == 300
    assert first["loginLink"].endswith("/login/" + first["token"])
    assert first["user"]["displayId"] == client_id
    assert first["user"]["displayName"] == "José Ñ"
    assert first["isNewUser"] is True
    # Same request again in the same second: the client must not trip replay protection.
    again = client.generate_auth_token(client_id, "user1", "José Ñ", "192.168.1.100", expiration=5)
    assert again["isNewUser"] is False
    assert again["token"] != first["token"]


def test_sabong_wrong_secret_gets_the_server_message(platform: Platform) -> None:
    client = SabongClient(platform.sabong_url, "not-the-configured-secret", timeout=10)
    with pytest.raises(AuthenticationError) as caught:
        client.generate_auth_token("CLIENT_X", "user", "Name", "10.0.0.1")
    error = caught.value
    assert (error.status, error.message) == (401, "Invalid signature")
    assert error.reason == "signature_mismatch"
    assert error.data is None


def test_sabong_validation_errors_are_typed(platform: Platform) -> None:
    client = SabongClient(platform.sabong_url, platform.sabong_secret, timeout=10)
    with pytest.raises(ValidationError) as caught:
        client.generate_auth_token("CLIENT_Y", "user", "Name", "not-an-ip", expiration=0)
    assert caught.value.errors == {
        "ipAddress": ["The ipAddress must be a valid IP address."],
        "expiration": ["The expiration must be at least 1."],
    }


def test_both_clients_work_through_the_real_gateway(
    platform: Platform, credentials: tuple[str, str], tmp_path: Path
) -> None:
    env = {
        **platform.env,
        "GATEWAY_USSD_UPSTREAMS": platform.ussd_url.removeprefix("http://"),
        "GATEWAY_SABONG_UPSTREAMS": platform.sabong_url.removeprefix("http://"),
        "GATEWAY_RATE_LIMIT": "0",
    }
    with real_gateway(env, tmp_path) as gateway_url:
        k2 = K2Client(gateway_url, *credentials, timeout=10)
        assert k2.me()["serviceId"] == _service_uuid(k2.service_id())
        sabong = SabongClient(gateway_url, platform.sabong_secret, timeout=10)
        issued = sabong.generate_auth_token("CLIENT_GW", "gwuser", "Via Gateway", "10.1.2.3")
        assert len(issued["token"]) == 64
        with pytest.raises(AuthenticationError) as caught:
            SabongClient(gateway_url, "wrong", timeout=10).generate_auth_token(
                "CLIENT_GW", "gwuser", "Via Gateway", "10.1.2.3"
            )
        assert caught.value.message == "Invalid signature"


def test_sabong_wallet_credit_debit_balance_and_every_transaction(
    platform: Platform, db: Any, database_url: str
) -> None:
    seed_user(db, "SDK_WALLET")
    client = SabongClient(platform.sabong_url, platform.sabong_secret, timeout=10)
    assert client.get_balance("SDK_WALLET")["balance"] == Decimal("0.00")
    for index in range(7):
        client.credit("SDK_WALLET", Decimal("10.10"), reference=f"dep-{index}")
    debit = client.debit("SDK_WALLET", "0.70", description="bet")
    assert debit["balance"] == Decimal("70.00") and debit["type"] == "debit"
    # A retry with the same reference is answered with the original transaction.
    again = client.credit("SDK_WALLET", "10.10", reference="dep-3")
    assert again["balance"] == Decimal("40.40")
    with pytest.raises(ConflictError) as conflict:
        client.credit("SDK_WALLET", 5, reference="dep-3")
    assert conflict.value.data == {"transactionId": again["transactionId"]}
    with pytest.raises(InsufficientBalanceError) as refused:
        client.debit("SDK_WALLET", "70.01")
    assert refused.value.data == {"balance": Decimal("70.00"), "amount": Decimal("70.01")}
    every = list(client.transactions("SDK_WALLET", page_size=3))
    assert [t["amount"] for t in every] == ["10.10"] * 7 + ["0.70"]
    assert [t["id"] for t in every] == sorted(t["id"] for t in every)
    assert every[-1]["balanceAfter"] == "70.00"
    debits = list(client.transactions("SDK_WALLET", transaction_type="debit"))
    assert [t["description"] for t in debits] == ["bet"]
    with pytest.raises(NotFoundError):
        client.get_balance("NOBODY")
    assert reconcile_exit(database_url) == (0, "")


def test_a_money_call_whose_answer_is_lost(platform: Platform, db: Any, database_url: str) -> None:
    """Applied on the server, answer lost on the way back: with a reference the SDK retries,
    re-signed, and the server applies it once; without one it must not retry."""
    seed_user(db, "SDK_LOST")
    fast = Retry(total=2, backoff=0.05)
    with wire_server(lossy_relay(platform.sabong_url, lose=1)) as relay:
        client = SabongClient(relay.url, platform.sabong_secret, timeout=10, retry=fast)
        posted = client.credit("SDK_LOST", "12.34", reference="lost-answer-1")
    assert posted["balance"] == Decimal("12.34")
    first, second = relay.seen
    assert first.body == second.body
    assert first.headers["x-signature"] != second.headers["x-signature"]
    with wire_server(lossy_relay(platform.sabong_url, lose=1)) as relay:
        client = SabongClient(relay.url, platform.sabong_secret, timeout=10, retry=fast)
        with pytest.raises(TransportError):
            client.credit("SDK_LOST", "1.00")
    assert len(relay.seen) == 1
    direct = SabongClient(platform.sabong_url, platform.sabong_secret, timeout=10)
    history = list(direct.transactions("SDK_LOST"))
    # The lost unreferenced credit WAS applied: why a retry of it would have been wrong.
    assert [(t["amount"], t["referenceId"]) for t in history] == [
        ("12.34", "lost-answer-1"),
        ("1.00", None),
    ]
    assert reconcile_exit(database_url) == (0, "")
