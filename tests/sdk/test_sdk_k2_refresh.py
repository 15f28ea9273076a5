"""K2Client token handling against a scripted K2 server, with an injected clock."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from partner_sdk import AuthenticationError, K2Client

from tests.live_services import Recorded, Reply, json_reply, scripted_server

T0 = 1_800_000_000.0
SERVICE_ID_TTL = 3600
LOGIN_TTL = 86_400


@dataclass
class FakeClock:
    """A settable clock shared by the client and the scripted server."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


def _jwt(claims: dict[str, object]) -> str:
    """An unsigned JWT-shaped token (the client never verifies; the server here compares)."""
    segment = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{segment}.c2ln"


@dataclass
class ScriptedK2:
    """Just enough of the K2 contract to observe when the client logs in and regenerates."""

    clock: FakeClock
    calls: Counter[str] = field(default_factory=Counter)
    logins: set[str] = field(default_factory=set)
    service_ids: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    login_ttl: int = LOGIN_TTL
    generate_gate: threading.Event | None = None

    def __call__(self, seen: Recorded) -> Reply:
        bearer = seen.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.calls[seen.path] += 1
        if seen.path == "/api/auth/login":
            return self._login(seen)
        if seen.path == "/api/clients/generate-service-id":
            return self._generate(bearer)
        if seen.path == "/api/clients/generate-api-key":
            return self._api_key(bearer, json.loads(seen.body)["service_id"])
        if seen.path == "/api/clients/revoke-service-id" and self._valid_sid(bearer):
            self.service_ids.pop(bearer)
            return json_reply(200, {"status": 200, "message": "Service ID revoked", "data": None})
        if seen.path == "/api/clients/me" and self._valid_sid(bearer):
            return json_reply(200, {"status": 200, "message": "OK", "data": {"sid": bearer}})
        return json_reply(401, {"status": 401, "message": "Invalid service ID", "data": None})

    def _login(self, seen: Recorded) -> Reply:
        if json.loads(seen.body) != {"username": "partner", "password": "pw"}:
            return json_reply(401, {"status": 401, "message": "Invalid username or password"})
        token = _jwt({"sub": str(uuid.uuid4()), "iat": self.clock.now, "exp": self.exp(True)})
        self.logins.add(token)
        user = {"id": "u-1", "username": "partner"}
        return json_reply(200, {"status": 200, "message": "Login successful",
                                "data": {"token": token, "user": user}})  # fmt: skip

    def _generate(self, bearer: str) -> Reply:
        if self.generate_gate is not None:
            self.generate_gate.wait(5)  # hold the first refresh so others pile up behind it
        if bearer not in self.logins:
            return json_reply(401, {"status": 401, "message": "Invalid JWT token", "data": None})
        sid = _jwt({"serviceId": str(uuid.uuid4()), "iat": self.clock.now, "exp": self.exp()})
        with self.lock:
            self.service_ids[sid] = self.exp()
        return json_reply(201, {"status": 201, "message": "Service created",
                                "data": {"SERVICE_ID": sid}})  # fmt: skip

    def _api_key(self, bearer: str, sid: str) -> Reply:
        if bearer not in self.logins:
            return json_reply(401, {"status": 401, "message": "Invalid JWT token", "data": None})
        if not self._valid_sid(sid):
            body = {"status": 403, "message": "Service ID expired or invalid", "data": None}
            return json_reply(403, body)
        return json_reply(201, {"status": 201, "message": "API Key created", "data": {"id": "k"}})

    def exp(self, login: bool = False) -> float:
        return self.clock.now + (self.login_ttl if login else SERVICE_ID_TTL)

    def _valid_sid(self, sid: str) -> bool:
        return self.service_ids.get(sid, 0) > self.clock.now


@pytest.fixture
def k2() -> Iterator[tuple[ScriptedK2, K2Client]]:
    clock = FakeClock()
    server = ScriptedK2(clock)
    with scripted_server(server) as running:
        yield server, K2Client(running.url, "partner", "pw", timeout=5, clock=clock)


def test_first_call_logs_in_and_generates_once(k2: tuple[ScriptedK2, K2Client]) -> None:
    server, client = k2
    first = client.me()["sid"]
    assert client.me()["sid"] == first
    assert server.calls["/api/auth/login"] == 1
    assert server.calls["/api/clients/generate-service-id"] == 1
    assert client.user == {"id": "u-1", "username": "partner"}


def test_service_id_is_regenerated_five_minutes_before_expiry(
    k2: tuple[ScriptedK2, K2Client],
) -> None:
    server, client = k2
    first = client.service_id()
    server.clock.now = T0 + SERVICE_ID_TTL - 301
    assert client.service_id() == first
    server.clock.now = T0 + SERVICE_ID_TTL - 299
    second = client.me()["sid"]
    assert second != first
    assert server.calls["/api/clients/generate-service-id"] == 2
    assert server.calls["/api/auth/login"] == 1  # the login JWT was still fresh


def test_expired_login_jwt_means_logging_in_again(k2: tuple[ScriptedK2, K2Client]) -> None:
    server, client = k2
    client.service_id()
    server.clock.now = T0 + LOGIN_TTL + 1
    client.me()
    assert server.calls["/api/auth/login"] == 2
    assert server.calls["/api/clients/generate-service-id"] == 2


def test_server_side_revocation_is_recovered_with_one_retry(
    k2: tuple[ScriptedK2, K2Client],
) -> None:
    server, client = k2
    first = client.service_id()
    server.service_ids.clear()  # revoked behind the client's back
    assert client.me()["sid"] != first
    assert server.calls["/api/clients/me"] == 2
    assert server.calls["/api/clients/generate-service-id"] == 2


def test_login_jwt_rejected_by_the_server_is_replaced(k2: tuple[ScriptedK2, K2Client]) -> None:
    server, client = k2
    client.service_id()
    server.logins.clear()  # e.g. the server's login key was rotated
    server.service_ids.clear()
    client.me()
    assert server.calls["/api/auth/login"] == 2


def test_a_persistent_rejection_is_raised_after_one_retry(
    k2: tuple[ScriptedK2, K2Client],
) -> None:
    server, client = k2
    with pytest.raises(AuthenticationError) as caught:
        client.request("GET", "/api/clients/nowhere")
    assert (caught.value.status, caught.value.message) == (401, "Invalid service ID")
    assert server.calls["/api/clients/nowhere"] == 2
    assert server.calls["/api/clients/generate-service-id"] == 2
    unchecked = client.request("GET", "/api/clients/nowhere", check=False)
    assert unchecked.status == 401


def test_api_key_with_a_revoked_service_id_regenerates_it(
    k2: tuple[ScriptedK2, K2Client],
) -> None:
    server, client = k2
    client.service_id()
    server.service_ids.clear()
    assert client.generate_api_key() == "k"
    assert server.calls["/api/clients/generate-service-id"] == 2


def test_revoke_forgets_the_service_id(k2: tuple[ScriptedK2, K2Client]) -> None:
    server, client = k2
    first = client.service_id()
    client.revoke_service_id()
    assert first not in server.service_ids
    assert client.service_id() != first
    client.revoke_service_id()
    client.revoke_service_id()  # nothing held: no request
    assert server.calls["/api/clients/revoke-service-id"] == 2


def test_threads_sharing_a_client_trigger_one_refresh(k2: tuple[ScriptedK2, K2Client]) -> None:
    server, client = k2
    client.service_id()
    server.service_ids.clear()
    server.generate_gate = threading.Event()
    start = threading.Barrier(20)
    seen: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(5)
            seen.append(client.me()["sid"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    threading.Timer(0.3, server.generate_gate.set).start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(seen) == 20
    assert len(set(seen)) == 1
    assert server.calls["/api/clients/generate-service-id"] == 2
    assert server.calls["/api/auth/login"] == 1


def test_short_lived_tokens_refresh_at_half_life() -> None:
    clock = FakeClock()
    server = ScriptedK2(clock, login_ttl=120)  # shorter than the 5-minute margin
    with scripted_server(server) as running:
        client = K2Client(running.url, "partner", "pw", clock=clock)
        client.login()
        clock.now = T0 + 59
        client.service_id()
        assert server.calls["/api/auth/login"] == 1
        clock.now = T0 + 61
        client.generate_service_id()
        assert server.calls["/api/auth/login"] == 2


def test_repr_never_shows_the_password() -> None:
    assert "hunter2" not in repr(K2Client("http://127.0.0.1:1", "partner", "hunter2"))


def test_client_clock_skew_does_not_cause_constant_regeneration() -> None:
    server_clock, client_clock = FakeClock(), FakeClock(T0 + 2000)  # client 2000 s ahead
    server = ScriptedK2(server_clock)
    with scripted_server(server) as running:
        client = K2Client(running.url, "partner", "pw", clock=client_clock)
        first = client.service_id()
        client_clock.now = T0 + 2000 + SERVICE_ID_TTL - 301
        assert client.service_id() == first
        client_clock.now = T0 + 2000 + SERVICE_ID_TTL - 299
        assert client.service_id() != first
        assert server.calls["/api/clients/generate-service-id"] == 2


def test_a_token_without_iat_is_scheduled_from_its_exp() -> None:
    from partner_sdk.k2 import _Token

    token = _Token(_jwt({"exp": T0 + 1000}), now=T0, margin=300)
    assert token.fresh(T0 + 699)
    assert not token.fresh(T0 + 701)
    assert _Token("opaque", now=T0, margin=300).fresh(T0 + 10**9)
