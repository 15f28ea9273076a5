"""Hash slots: the helpers agree with Redis Cluster's own CLUSTER KEYSLOT."""

from __future__ import annotations

import pytest
import redis as redis_py

from devtools.cluster import LocalRedisCluster
from shared.redis import hash_slot, same_slot


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        ("foo", 12182),  # values from the Redis Cluster specification's examples
        ("bar", 5061),
        ("123456789", 12739),  # the CRC16-XMODEM check value 0x31C3, mod 16384
        (b"foo", 12182),
    ],
)
def test_hash_slot_matches_known_values(key: str | bytes, slot: int) -> None:
    assert hash_slot(key) == slot


def test_hash_tag_decides_the_slot() -> None:
    assert hash_slot("{client:42}:profile") == hash_slot("client:42")
    assert same_slot("{client:42}:profile", "{client:42}:services", "{client:42}")
    assert not same_slot("client:42:profile", "client:42:services")
    # Only the first {...} counts, and an empty {} is no tag: the whole key is hashed.
    assert hash_slot("{a}{b}") == hash_slot("a")
    assert hash_slot("{}x") != hash_slot("x")
    assert same_slot() and same_slot("lonely")


def test_hash_slot_agrees_with_the_cluster(redis_cluster: LocalRedisCluster) -> None:
    node = redis_cluster.nodes[0]
    server = redis_py.Redis(host=node.host, port=node.port, decode_responses=True)
    keys = [
        "foo",
        "{user:7}:tokens",
        "sabong:token:{abc}",
        "x{}y",
        "{{nested}}",
        "é-unicode",
        *(f"key:{n}" for n in range(50)),
    ]
    try:
        for key in keys:
            assert hash_slot(key) == server.cluster("KEYSLOT", key), key
    finally:
        server.close()
