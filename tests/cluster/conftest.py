"""Real Redis Cluster and Sentinel deployments for the scale-out tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from devtools.cluster import LocalRedisCluster, LocalRedisSentinel, redis_cli_binary
from devtools.embedded import EmbeddedRedis, redis_server_binary
from shared import redis as shared_redis
from shared.exceptions import ConfigError


def _require_cluster_binaries() -> None:
    """Skip (with the reason) when there is no redis-server / redis-cli to build a cluster."""
    try:
        redis_server_binary()
        redis_cli_binary()
    except ConfigError as exc:
        pytest.skip(f"Redis Cluster tests need redis-server and redis-cli: {exc}")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """One real 3-master, 3-replica Redis Cluster for the whole run (do not kill nodes)."""
    _require_cluster_binaries()
    with LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def single_redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of one plain Redis server, emptied first, even when TEST_REDIS=cluster."""
    client = redis_py.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def cluster_url(redis_cluster: LocalRedisCluster) -> str:
    """URL of the session cluster, emptied before each test."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture
def cluster_client(cluster_url: str) -> Iterator[redis_py.Redis]:
    """The platform's own client (`shared.redis.connect`) on the emptied session cluster."""
    client = shared_redis.connect(cluster_url)
    yield client
    client.close()


@pytest.fixture
def own_redis_cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """A cluster of this test's own, whose masters the test may kill."""
    _require_cluster_binaries()
    with LocalRedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[LocalRedisSentinel]:
    """A master, a replica and three Sentinels (quorum 2) of this test's own."""
    _require_cluster_binaries()
    with LocalRedisSentinel(tmp_path / "sentinel") as deployment:
        yield deployment
