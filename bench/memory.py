"""Redis memory per live login token and per live Service ID (INFO used_memory deltas).

Each figure is measured on a fresh Redis of its own. The services' own stores build every
command (bench/recorder.py), so the keys are exactly the ones production writes; only
the sending is batched, so that 2 x 100k calls take seconds. Two servers where both
exist: the bundled one `make run` starts, and a `redis-server` on PATH (Redis 7 with
jemalloc on Debian, like docker-compose's `redis:7`): the allocator changes the figure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis as redis_py

from devtools.embedded import EmbeddedRedis, redis_server_binary
from services.sabong.runtime import REPLAY_TTL_SECONDS
from services.sabong.store import SabongStore, client_replay_key
from services.ussd.runtime import SERVICE_ID_LIFETIME
from services.ussd.store import UssdStore, tagged_uuid
from shared.config import Settings
from shared.redis import connect

from . import fixtures
from .recorder import CommandRecorder, replay

DEFAULT_COUNT = 100_000
# Real calls before the measured ones: the script is cached and allocator pools are warm.
SABONG_WARMUP = 2000
MEMORY_CLIENT = "memory-partner"
# Every measured token names the same one pool user (users live in PostgreSQL).
MEMORY_USERS = 1


@dataclass(frozen=True)
class MemoryFigure:
    """Bytes of Redis memory per live item, and how it was measured."""

    item: str
    server: str
    count: int
    bytes_per_item: float
    seconds: float


class RedisFrom(EmbeddedRedis):
    """An EmbeddedRedis that runs a given redis-server binary."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        super().__init__(data_dir, appendonly=False)
        self.binary = binary

    def command(self) -> list[str]:
        return [self.binary, *super().command()[1:]]


def servers() -> list[str]:
    """The bundled redis-server, then a different one on PATH if there is one."""
    found = [redis_server_binary()]
    on_path = shutil.which("redis-server")
    if on_path and os.path.realpath(on_path) != os.path.realpath(found[0]):
        found.append(on_path)
    return found


def describe(binary: str) -> str:
    """`redis 7.0.15 jemalloc-5.3.0`, from `redis-server --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    fields = dict(part.split("=", 1) for part in out.stdout.split() if "=" in part)
    return f"redis {fields.get('v', '?')} {fields.get('malloc', '?')}"


def used_memory(client: redis_py.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def drop_replay_guards(client: redis_py.Redis) -> None:
    """Replay guards belong to requests (about 11 minutes), not to tokens: remove them."""
    # `{` and `}` are plain characters in a SCAN pattern; only `*` matches here.
    keys = list(client.scan_iter(client_replay_key("BENCH-*", "*"), count=10_000))
    for start in range(0, len(keys), 10_000):
        client.unlink(*keys[start : start + 10_000])


def _record_tokens(url: str, count: int) -> CommandRecorder:
    """`count` login-token issuances for the one memory user, built by the Sabong store."""
    recorder = CommandRecorder(reply=1)  # a fresh signature: the token is stored
    store = SabongStore(cast(redis_py.Redis, recorder), REPLAY_TTL_SECONDS)
    fixtures.issue_login_tokens(store, MEMORY_USERS, count, minutes=1440)
    return recorder


def _record_service_ids(client_uuid: str, count: int) -> CommandRecorder:
    """`count` Service ID issuances for the memory client, built by the USSD store."""
    recorder = CommandRecorder(reply=1)
    store = UssdStore(cast(redis_py.Redis, recorder))
    for _ in range(count):
        store.issue_service_id(client_uuid, 1, tagged_uuid(client_uuid), SERVICE_ID_LIFETIME)
    return recorder


def check_added(client: redis_py.Redis, keys_before: int, count: int) -> None:
    """Every item became one live key, or the figure would be per nothing."""
    added = int(client.dbsize()) - keys_before
    if added != count:
        raise RuntimeError(f"expected {count} new keys, found {added}")


def login_tokens(url: str, count: int, server: str) -> MemoryFigure:
    """Issue `count` live login tokens for one user; bytes per token."""
    client = redis_py.Redis.from_url(url)
    try:
        # Real calls first: the script is cached on the server and Redis has settled.
        # Every token belongs to one user (users live in PostgreSQL, not counted here).
        store = fixtures.sabong_store(Settings({"REDIS_URL": url}))
        fixtures.issue_login_tokens(store, MEMORY_USERS, SABONG_WARMUP, minutes=1440)
        drop_replay_guards(client)
        keys_before, before = client.dbsize(), used_memory(client)
        started = time.monotonic()
        replay(client, _record_tokens(url, count))
        elapsed = time.monotonic() - started
        drop_replay_guards(client)
        after = used_memory(client)
        check_added(client, keys_before, count)
    finally:
        client.close()
    return MemoryFigure("login token", server, count, (after - before) / count, elapsed)


def service_ids(url: str, count: int, server: str) -> MemoryFigure:
    """Record `count` live Service IDs for one K2 client; bytes per Service ID."""
    client = redis_py.Redis.from_url(url)
    store = UssdStore(connect(url))
    # The account itself lives in PostgreSQL; the Service ID check reads only the client's
    # cached record, so a cached record is all this needs (written before `before`).
    client_uuid = str(uuid.uuid4())
    store.replace_client_cache({"id": client_uuid, "username": MEMORY_CLIENT, "is_active": "1",
                                "gen": "1"})  # fmt: skip
    try:
        # One real call: the path the recorded ones take works on this server.
        if not store.issue_service_id(client_uuid, 1, tagged_uuid(client_uuid), 60):
            raise RuntimeError("the memory client cannot be issued Service IDs")
        keys_before, before = client.dbsize(), used_memory(client)
        started = time.monotonic()
        replay(client, _record_service_ids(client_uuid, count))
        elapsed = time.monotonic() - started
        after = used_memory(client)
        check_added(client, keys_before, count)
    finally:
        client.close()
        store.redis.close()
    return MemoryFigure("Service ID", server, count, (after - before) / count, elapsed)


def measure(workdir: Path, count: int) -> list[MemoryFigure]:
    """Both figures on every available server, each on a fresh Redis."""
    figures = []
    for number, binary in enumerate(servers()):
        server = describe(binary)
        with RedisFrom(binary, workdir / f"memory-redis-{number}-tokens") as redis:
            figures.append(login_tokens(redis.url, count, server))
        with RedisFrom(binary, workdir / f"memory-redis-{number}-ids") as redis:
            figures.append(service_ids(redis.url, count, server))
    return figures
