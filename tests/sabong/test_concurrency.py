"""Races against a real gunicorn (gthread) server: atomic upsert and single-use tokens."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import redis as redis_py
from psycopg import Connection

from services.sabong import store
from shared import signing

from .conftest import PATH, HttpAnswer, LiveSabong, compact, valid_fields

T = TypeVar("T")


def all_at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(i)` for i < count in as many threads, released together by a barrier."""
    barrier = threading.Barrier(count, timeout=30)

    def run(index: int) -> T:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_first_calls_create_exactly_one_user(
    live_sabong: LiveSabong, redis_client: redis_py.Redis, db: Connection
) -> None:
    def first_call(index: int) -> HttpAnswer:
        # Distinct requests (an ignored field differs) so none is a replay of another.
        return live_sabong.post_signed(valid_fields(clientId="RACE", username=f"racer{index}"))

    answers = all_at_once(50, first_call)
    assert [a.status for a in answers] == [200] * 50, [a.body[:200] for a in answers]
    data = [a.json()["data"] for a in answers]
    assert sum(d["isNewUser"] for d in data) == 1
    (user_id,) = {d["user"]["id"] for d in data}
    assert len({d["token"] for d in data}) == 50
    # One user and one wallet; a lost race may waste a sequence number, never a user.
    assert db.execute("SELECT client_id, id FROM sabong_users").fetchall() == [("RACE", user_id)]
    wallets = db.execute("SELECT client_id, user_id, balance::text FROM sabong_wallets")
    assert wallets.fetchall() == [("RACE", user_id, "0.00")]
    audited = db.execute("SELECT count(*), min(user_id), max(user_id) FROM sabong_issuance_audit")
    assert audited.fetchone() == (50, user_id, user_id)
    tokens = [store.token_key(d["token"]) for d in data]
    assert all(redis_client.get(key) == ":RACE" for key in tokens)


def test_concurrent_first_calls_for_many_clients(live_sabong: LiveSabong, db: Connection) -> None:
    # 40 threads over 8 new clientIds: each clientId ends with one user and one winner.
    answers = all_at_once(
        40, lambda i: live_sabong.post_signed(valid_fields(clientId=f"MANY-{i % 8}"))
    )
    assert [a.status for a in answers] == [200] * 40
    winners = Counter(a.json()["data"]["user"]["displayId"] for a in answers
                      if a.json()["data"]["isNewUser"])  # fmt: skip
    assert winners == Counter({f"MANY-{n}": 1 for n in range(8)})
    rows = db.execute("SELECT count(*), count(DISTINCT id) FROM sabong_users").fetchone()
    assert rows == (8, 8)
    assert db.execute("SELECT count(*) FROM sabong_wallets").fetchone() == (8,)


def test_token_consumed_once_under_concurrent_posts(
    live_sabong: LiveSabong, redis_client: redis_py.Redis
) -> None:
    issued = live_sabong.post_signed(valid_fields(clientId="ONCE"))
    assert issued.status == 200
    path = "/login/" + issued.json()["data"]["token"]
    answers = all_at_once(25, lambda _: live_sabong.request("POST", path))
    assert Counter(a.status for a in answers) == Counter({303: 1, 410: 24})
    winner = next(a for a in answers if a.status == 303)
    assert "sabong_session=" in winner.headers["Set-Cookie"]


def test_replay_race_accepts_a_signature_once(live_sabong: LiveSabong) -> None:
    body = compact(valid_fields(clientId="REPLAY-RACE"))
    stamp = str(int(time.time()))
    headers = {
        "x-signature": signing.sign(live_sabong.secret, "POST", PATH, stamp, body),
        "x-timestamp": stamp,
    }
    answers = all_at_once(10, lambda _: live_sabong.request("POST", PATH, body, headers))
    assert Counter(a.status for a in answers) == Counter({200: 1, 401: 9})
    assert all(a.headers.get("X-Auth-Error") == "replayed" for a in answers if a.status == 401)
