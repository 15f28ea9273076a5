"""The real Sabong service (gunicorn) on a Redis Cluster whose master dies under traffic.

Prints one line of figures (`.venv/bin/pytest tests/cluster -m slow -s` to see it) that
docs/scaling.md quotes. What is checked, and why:

- every answer is a 200 or the contract's 500 "Database connection failed" envelope, and
  no request takes long (the store's Redis calls are bounded): a failover is an outage
  of part of the data, never a hang, a stack trace or an undocumented answer;
- the service recovers by itself (no restart) within RECOVERY_BOUND_SECONDS;
- every user whose creation was acknowledged still exists in PostgreSQL with the id the
  partner was given (users are durable records there; the Redis failover may only lose
  replay guards and login tokens written in the master's last moments), and no user id
  was handed out twice.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from devtools.cluster import LocalRedisCluster
from services.sabong import store
from shared import redis as shared_redis
from shared import signing
from tests.live_services import SABONG_TEST_SECRET, service, service_env

PATH = "/api/v1/generate-auth-token"
STORE_FAILURE = {
    "status": "failed",
    "message": "Failed to generate auth token",
    "data": {"error": "Database connection failed"},
}
THREADS = 4
REQUEST_TIMEOUT_SECONDS = 10.0
# A request makes at most 2 Redis calls, each bounded (shared.redis); against a killed
# node they fail at once, so a request slower than this is a hang.
SLOWEST_ALLOWED_SECONDS = 5.0
RECOVERY_BOUND_SECONDS = 15.0
WARM_UP_SECONDS = 2.0
STEADY_SECONDS = 1.5  # errors-free traffic after the failover before the run stops
NEW_USER_EVERY = 3  # one request in three creates a user; the others update one


@dataclass(frozen=True)
class Answer:
    """One request: when it ran, for which clientId, and what came back."""

    started: float
    ended: float
    client_id: str
    status: int
    body: dict[str, object] | None
    error: str | None = None  # a transport failure (timeout, reset): never expected

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class SignedTraffic:
    """Threads posting signed generate-auth-token requests until stopped."""

    base_url: str
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SignedTraffic:
        for index in range(THREADS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_SECONDS + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a request hung"

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def _run(self, index: int) -> None:
        sent = 0
        while not self._stop.is_set():
            client_id = f"FO-{index}-{sent // NEW_USER_EVERY}"
            answer = self._post(client_id)
            with self._lock:
                self.answers.append(answer)
            sent += 1
            if not answer.ok:
                time.sleep(0.01)  # as a partner would back off; spares the CPU too

    def _post(self, client_id: str) -> Answer:
        body = json.dumps(
            {
                "clientId": client_id,
                "username": f"user-{client_id}",
                "displayName": "Failover",
                "ipAddress": "10.1.2.3",
                "requestId": uuid.uuid4().hex,  # ignored by the API; no two bodies alike
            }
        ).encode()
        stamp = str(int(time.time()))
        headers = {
            "x-signature": signing.sign(SABONG_TEST_SECRET, "POST", PATH, stamp, body),
            "x-timestamp": stamp,
            "Content-Type": "application/json",
        }
        host, port = self.base_url.removeprefix("http://").split(":")
        started = time.monotonic()
        connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.request("POST", PATH, body=body, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except OSError as exc:
            return Answer(started, time.monotonic(), client_id, 0, None, repr(exc))
        finally:
            connection.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"unparsable": raw[:200].decode(errors="replace")}
        return Answer(started, time.monotonic(), client_id, status, parsed)


def _steady_since(answers: list[Answer], since: float) -> float | None:
    """End of the last failure after `since`, once STEADY_SECONDS of successes follow it."""
    after = [a for a in answers if a.started >= since]
    failures = [a.ended for a in after if not a.ok]
    last_failure = max(failures, default=since)
    later = [a for a in after if a.started > last_failure]
    if later and all(a.ok for a in later) and later[-1].ended - last_failure >= STEADY_SECONDS:
        return last_failure
    return None


@pytest.mark.slow
def test_sabong_service_survives_a_master_failover(
    own_redis_cluster: LocalRedisCluster, tmp_path: Path, database_url: str
) -> None:
    cluster = own_redis_cluster
    env = service_env(cluster.url, tmp_path / "sabong.env", DATABASE_URL=database_url)
    # A third of the guards and tokens live on any one master: its loss shows at once.
    slot = shared_redis.hash_slot(store.client_replay_key("FO-0-0", "x"))
    with service("sabong", env, tmp_path) as base_url:
        traffic = SignedTraffic(base_url).start()
        try:
            time.sleep(WARM_UP_SECONDS)
            victim = cluster.kill_master(slot=slot)
            killed_at = time.monotonic()
            deadline = killed_at + RECOVERY_BOUND_SECONDS + STEADY_SECONDS + 5
            recovered_at = None
            while recovered_at is None and time.monotonic() < deadline:
                time.sleep(0.1)
                recovered_at = _steady_since(traffic.snapshot(), killed_at)
        finally:
            traffic.stop()
    promoted = cluster.wait_failover(slot, victim)
    answers = traffic.answers

    created = [a for a in answers if a.ok and a.body and _data(a)["isNewUser"]]
    stored = _stored_user_ids(database_url)
    missing = [a.client_id for a in created if stored.get(a.client_id) != _user_id(a)]
    ids = [_user_id(a) for a in created]

    failures = [a for a in answers if not a.ok]
    after_kill = [a for a in answers if a.started >= killed_at]
    recovery = None if recovered_at is None else recovered_at - killed_at
    longest = max(a.ended - a.started for a in answers)
    print(
        f"\nsabong gunicorn, cluster master SIGKILL {victim.port} -> {promoted.port}: "
        f"requests={len(answers)} (after kill {len(after_kill)}) errors={len(failures)} "
        f"statuses={sorted({a.status for a in answers})} "
        f"recovery={'never' if recovery is None else f'{recovery:.2f}s'} "
        f"longest_request={longest:.3f}s users_created={len(created)} "
        f"missing={len(missing)} duplicate_user_ids={len(ids) - len(set(ids))}"
    )
    assert len(answers) > 100 and any(a.ended < killed_at for a in answers if a.ok)
    assert all(a.error is None for a in answers), {a.error for a in answers}
    assert all(a.status == 500 and a.body == STORE_FAILURE for a in failures), {
        (a.status, json.dumps(a.body)) for a in failures
    }
    assert failures, "the kill never reached the traffic"
    assert longest < SLOWEST_ALLOWED_SECONDS
    assert recovery is not None and recovery < RECOVERY_BOUND_SECONDS
    assert any(a.ended < killed_at for a in created) and any(a.started > killed_at for a in created)
    assert not missing
    assert len(ids) == len(set(ids))


def _data(answer: Answer) -> dict[str, object]:
    assert answer.body is not None
    data = answer.body["data"]
    assert isinstance(data, dict)
    return data


def _user_id(answer: Answer) -> int:
    user = _data(answer)["user"]
    assert isinstance(user, dict)
    return int(user["id"])


def _stored_user_ids(database_url: str) -> dict[str, int]:
    """clientId -> user id of every user in the database."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT client_id, id FROM sabong_users").fetchall()
    return {client_id: int(user_id) for client_id, user_id in rows}
