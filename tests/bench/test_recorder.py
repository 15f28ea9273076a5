"""bench.recorder: store calls recorded, then replayed in pipelines, write the real keys."""

from __future__ import annotations

from typing import cast

import pytest
import redis as redis_py

from bench import fixtures
from bench.memory import drop_replay_guards
from bench.recorder import CommandRecorder, replay
from services.sabong.runtime import REPLAY_TTL_SECONDS
from services.sabong.store import SabongStore, token_key
from services.ussd.store import UssdStore, service_id_key
from shared.config import Settings

pytestmark = pytest.mark.single_redis("pipelines of multi-key scripts need one server")


def test_recorded_login_tokens_become_live_tokens(
    redis_url: str, redis_client: redis_py.Redis
) -> None:
    real = fixtures.sabong_store(Settings({"REDIS_URL": redis_url}))
    fixtures.issue_login_tokens(real, 1, 1)  # the script is cached
    recorder = CommandRecorder(reply=1)
    recorded = SabongStore(cast(redis_py.Redis, recorder), REPLAY_TTL_SECONDS)
    tokens = fixtures.issue_login_tokens(recorded, 1, 50)
    assert redis_client.dbsize() < 50
    replay(redis_client, recorder)
    owner = f":{fixtures.pool_client_id(0, 1)}"
    assert all(redis_client.get(token_key(token)) == owner for token in tokens)
    taken = real.consume_token(tokens[0])
    assert taken is not None and (taken.user_id, taken.client_id) == (None, owner[1:])
    drop_replay_guards(redis_client)
    assert not list(redis_client.scan_iter("*:r:*"))


def test_recorded_service_ids_are_loaded_and_written(redis_client: redis_py.Redis) -> None:
    client_uuid = "0123abcd-0000-4000-8000-000000000000"
    real = UssdStore(redis_client)
    real.replace_client_cache({"id": client_uuid, "is_active": "1", "gen": "1"})
    # The store runs its scripts by hash (shared.redis.StoreScript): one real call caches
    # the script on the server, as bench/memory.py does before recording.
    assert real.issue_service_id(client_uuid, 1, f"{client_uuid[:8]}-2222-4222-8222-{0:012d}", 3600)
    recorder = CommandRecorder(reply=1)
    store = UssdStore(cast(redis_py.Redis, recorder))
    ids = [f"{client_uuid[:8]}-1111-4111-8111-{n:012d}" for n in range(20)]
    for service_id in ids:
        assert store.issue_service_id(client_uuid, 1, service_id, 3600)
    replay(redis_client, recorder)
    assert all(redis_client.get(service_id_key(s)) == "1" for s in ids)
    assert 3590 < redis_client.ttl(service_id_key(ids[0])) <= 3600
