"""The USSD store on a real Redis Cluster: what one Service ID costs on its master."""

from __future__ import annotations

import uuid

import redis as redis_py

from devtools.cluster import LocalRedisCluster
from services.ussd import store
from shared import redis as shared_redis

# Redis 6.2 indexes every key of a cluster node by slot (about 130 bytes a key, see
# test_sabong_store.py), on top of the single-server budget (SPEC: 200 bytes).
SLOT_INDEX_BYTES_PER_KEY = 130


def test_memory_per_live_service_id_in_a_cluster(
    cluster_client: redis_py.Redis, redis_cluster: LocalRedisCluster
) -> None:
    ussd = store.UssdStore(cluster_client)
    client_uuid = str(uuid.uuid4())
    ussd.replace_client_cache({"id": client_uuid, "is_active": "1", "gen": "1"})
    # Every Service ID of a client shares its slot, so one master holds them all.
    slot = shared_redis.hash_slot(store.client_cache_key(client_uuid))
    owner = redis_cluster.master_for_slot(slot)
    server = redis_py.Redis(host=owner.host, port=owner.port)
    count = 5000
    try:
        before = int(server.info("memory")["used_memory"])
        for _ in range(count):
            assert ussd.issue_service_id(client_uuid, 1, store.tagged_uuid(client_uuid), 3600)
        per_id = (int(server.info("memory")["used_memory"]) - before) / count
    finally:
        server.close()
    print(f"\nRedis Cluster memory per live Service ID: {per_id:.1f} bytes ({count} ids)")
    assert 0 < per_id <= 200 + SLOT_INDEX_BYTES_PER_KEY
