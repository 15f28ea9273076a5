"""Mixed partner traffic through the gateway, closed-loop or paced, from client threads.

The load generator is Python (http.client, one keep-alive connection per thread) on the
same 2-core machine as the platform, so it is usually the bottleneck: rates here are
"what this client can drive", measured in the same run, never absolute targets.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .platform import Platform, dump
from .wire import Answer, Client, signed_headers

GENERATE_AUTH_TOKEN = "/api/v1/generate-auth-token"
TOKEN_MINUTES = 10  # long enough that no token issued during a test expires before it is used


@dataclass
class Partner:
    """Credentials every traffic thread shares."""

    port: int
    sabong_secret: str
    login_jwt: str
    service_id: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class Result:
    """One request of the traffic: which operation, the answer, and whether it succeeded."""

    operation: str
    answer: Answer
    ok: bool


@dataclass
class WorkerState:
    """What one traffic thread remembers between requests."""

    index: int
    tokens: list[str] = field(default_factory=list)


Operation = Callable[[Client, Partner, WorkerState], Result]
_COUNTER = itertools.count()  # next() on itertools.count is atomic under the GIL


def issue_token(new_user: bool = False, users: int = 50) -> Operation:
    """POST generate-auth-token, signed; `new_user` makes every call create a user."""

    def operation(client: Client, partner: Partner, state: WorkerState) -> Result:
        n = next(_COUNTER)
        client_id = f"REL-{partner.run_id}-{n if new_user else n % users}"
        # The counter in username makes every body, so every signature, unique (no replay).
        body = dump(
            {
                "clientId": client_id,
                "username": f"user{n}",
                "displayName": f"Reliability {n}",
                "ipAddress": "192.0.2.10",
                "expiration": TOKEN_MINUTES,
            }
        )
        headers = signed_headers(partner.sabong_secret, "POST", GENERATE_AUTH_TOKEN, body)
        answer = client.send("POST", GENERATE_AUTH_TOKEN, body, headers)
        ok = answer.status == 200
        if ok:
            state.tokens.append(answer.json()["data"]["token"])
        return Result("generate-auth-token", answer, ok)

    return operation


def generate_service_id(client: Client, partner: Partner, state: WorkerState) -> Result:
    """POST generate-service-id with the login JWT."""
    headers = {"Authorization": f"Bearer {partner.login_jwt}"}
    answer = client.send("POST", "/api/clients/generate-service-id", b"", headers)
    return Result("generate-service-id", answer, answer.status == 201)


def client_me(client: Client, partner: Partner, state: WorkerState) -> Result:
    """GET /api/clients/me with the Service ID."""
    headers = {"Authorization": f"Bearer {partner.service_id}"}
    answer = client.send("GET", "/api/clients/me", None, headers)
    return Result("clients-me", answer, answer.status == 200)


def login_page(client: Client, partner: Partner, state: WorkerState) -> Result:
    """GET the login link of this thread's latest token (consumes nothing)."""
    if not state.tokens:
        return issue_token()(client, partner, state)
    answer = client.send("GET", f"/login/{state.tokens[-1]}")
    ok = answer.status == 200 and answer.headers.get("content-type", "").startswith("text/html")
    return Result("login-page", answer, ok)


STANDARD_MIX: tuple[Operation, ...] = (issue_token(), generate_service_id, client_me, login_page)


class Traffic:
    """`threads` client threads cycling through `mix`; paced to `rate` requests/s if given."""

    def __init__(
        self,
        partner: Partner,
        mix: Sequence[Operation] = STANDARD_MIX,
        threads: int = 8,
        rate: float | None = None,
    ) -> None:
        self.partner = partner
        self.mix = tuple(mix)
        self.threads = threads
        self.rate = rate
        self.states = [WorkerState(i) for i in range(threads)]
        self._results: list[list[Result]] = [[] for _ in range(threads)]
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.started = 0.0
        self.stopped = 0.0

    def start(self) -> Traffic:
        self.started = time.monotonic()
        for state in self.states:
            worker = threading.Thread(target=self._work, args=(state,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Result]:
        """Stop every thread after its current request; return all results by start time."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        self.stopped = time.monotonic()
        alive = [w for w in self._workers if w.is_alive()]
        if alive:
            raise RuntimeError(f"{len(alive)} traffic threads still running after 30 s")
        return self.results()

    def run_for(self, seconds: float) -> list[Result]:
        self.start()
        self._stop.wait(seconds)
        return self.stop()

    def results(self) -> list[Result]:
        merged = [r for per_thread in self._results for r in per_thread]
        return sorted(merged, key=lambda r: r.answer.started)

    @property
    def tokens(self) -> list[str]:
        return [token for state in self.states for token in state.tokens]

    def _work(self, state: WorkerState) -> None:
        client = Client(self.partner.port)
        results = self._results[state.index]
        interval = self.threads / self.rate if self.rate else 0.0
        # Threads start spread over one interval, so paced requests do not come in bursts.
        next_at = time.monotonic() + interval * state.index / self.threads
        try:
            for step in itertools.count(state.index):
                if self._stop.is_set():
                    return
                if interval:
                    delay = next_at - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    next_at += interval
                operation = self.mix[step % len(self.mix)]
                results.append(operation(client, self.partner, state))
        finally:
            client.close()


@dataclass
class Summary:
    """Figures of a list of results."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"requests={self.requests} errors={self.errors} rps={self.rps:.0f} "
            f"p50={self.p50_ms:.1f}ms p99={self.p99_ms:.1f}ms max={self.max_ms:.1f}ms"
        )


def summarize(results: Sequence[Result], seconds: float) -> Summary:
    latencies = sorted(r.answer.elapsed * 1000 for r in results) or [0.0]
    p99_index = min(len(latencies) - 1, int(len(latencies) * 0.99))
    return Summary(
        requests=len(results),
        errors=sum(1 for r in results if not r.ok),
        seconds=seconds,
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[p99_index],
        max_ms=latencies[-1],
    )


def sign_in_partner(platform: Platform, username: str, password: str) -> Partner:
    """Create a K2 account, log in and get a Service ID through the gateway."""
    platform.create_k2_account(username, password)
    client = Client(platform.port)
    try:
        login = client.send(
            "POST",
            "/api/auth/login",
            dump({"username": username, "password": password}),
            {"Content-Type": "application/json"},
        )
        assert login.status == 200, login.brief()
        login_jwt = login.json()["data"]["token"]
        issued = client.send(
            "POST",
            "/api/clients/generate-service-id",
            b"",
            {"Authorization": f"Bearer {login_jwt}"},
        )
        assert issued.status == 201, issued.brief()
        service_id = issued.json()["data"]["SERVICE_ID"]
    finally:
        client.close()
    return Partner(platform.port, platform.sabong_secret, login_jwt, service_id)
