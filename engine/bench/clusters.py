"""The source and target clusters of a benchmark, and the admin reads every phase polls."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType

from engine.bench import security
from engine.bench.mm2 import bench_properties
from engine.bench.settings import BenchError
from engine.sandbox import KafkaCluster
from engine.sandbox.distribution import cache_root


class Clusters:
    """The source and target: two sandbox clusters started here, or existing ones.

    On existing clusters the benchmark only touches names carrying its random token: topics under
    `mebench-<token>.`, cluster aliases `mebench-<token>-src<n>/-tgt` (so MM2's and the engine's
    internal topics and Connect groups carry it too), no heartbeats topic; `close()` deletes them all.
    Each replicator run copies under a source alias of its own (new_source_alias()). Sandbox clusters
    serve every security mode of `security_modes` (engine/bench/security.py); the benchmark's own
    clients use their PLAINTEXT listener (source_servers, target_servers), the replicators
    client(side, mode).
    """

    def __init__(self, source_bootstrap: str | None = None, target_bootstrap: str | None = None,
                 base_dir: Path | None = None, say: Callable[[str], None] = print,
                 security_modes: list[str] | None = None):
        self.token = secrets.token_hex(4)
        self.prefix = f"mebench-{self.token}."
        self.external = bool(source_bootstrap)
        self.say = say
        self.sandboxes: list[KafkaCluster] = []
        self.aliases_made = 0
        self.security_modes = security_modes or [security.PLAINTEXT]
        self.clients: dict[tuple[str, str], security.ClientSecurity] = {}
        if source_bootstrap:  # self.external
            if not target_bootstrap:
                raise BenchError("--source-bootstrap needs --target-bootstrap too")
            if self.security_modes != [security.PLAINTEXT]:
                raise BenchError("--security runs on the benchmark's own sandbox clusters, not with --source-bootstrap")
            self.source_alias, self.target_alias = f"mebench-{self.token}-src", f"mebench-{self.token}-tgt"
            self.source_servers, self.target_servers = source_bootstrap, target_bootstrap
        else:
            self.source_alias, self.target_alias = "A", "B"
            self.base_dir = base_dir or cache_root() / "bench"
            self.source_servers = self.target_servers = ""

    @property
    def heartbeats(self) -> bool:
        return not self.external

    def start(self) -> Clusters:
        if not self.external:
            # named by this process: two benchmark runs (or a run and the tests) never share clusters
            for name in (f"bench{os.getpid()}A", f"bench{os.getpid()}B"):
                self.say(f"starting sandbox cluster {name} ...")
                self.sandboxes.append(KafkaCluster(name, nodes=1, base_dir=self.base_dir,
                                                   **security.sandbox_options(self.security_modes)).start())
            self.source_servers = self.sandboxes[0].bootstrap_servers
            self.target_servers = self.sandboxes[1].bootstrap_servers
            for side, cluster in zip(("source", "target"), self.sandboxes, strict=True):
                for mode in self.security_modes:
                    self.clients[(side, mode)] = security.client_security(cluster, mode)
        return self

    def client(self, side: str, mode: str = security.PLAINTEXT) -> security.ClientSecurity:
        """How a replicator reaches the source or the target in a security mode."""
        if mode == security.PLAINTEXT and (side, mode) not in self.clients:  # existing clusters
            return security.ClientSecurity(self.source_servers if side == "source" else self.target_servers, {}, {})
        return self.clients[(side, mode)]

    def close(self) -> None:
        if self.external:
            for servers in (self.source_servers, self.target_servers):
                try:
                    self._delete_owned(servers)
                except KafkaException as error:  # cleaning up must not hide the results
                    self.say(f"could not delete the benchmark's topics on {servers}: {error}")
        for cluster in self.sandboxes:
            cluster.stop()
        self.sandboxes.clear()

    def _delete_owned(self, servers: str) -> None:
        admin = admin_client(servers)
        owned = [t for t in admin.list_topics(timeout=30).topics if self.token in t]
        if owned:
            for future in admin.delete_topics(owned, operation_timeout=30).values():
                future.result()
        groups = [g.group_id for g in admin.list_consumer_groups().result().valid if self.token in g.group_id]
        if groups:
            for future in admin.delete_consumer_groups(groups).values():
                try:
                    future.result()
                except KafkaException:
                    pass
        self.say(f"deleted {len(owned)} topics and {len(groups)} groups of this benchmark on {servers}")

    def new_source_alias(self) -> str:
        """A source alias no run used before: its remote topic and stored progress start empty."""
        self.aliases_made += 1
        return f"{self.source_alias}{self.aliases_made}"

    @staticmethod
    def remote_topic(topic: str, source_alias: str) -> str:
        """The replicated topic's name under the default replication policy."""
        return f"{source_alias}.{topic}"

    def create_topic(self, servers: str, topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
        admin = admin_client(servers)
        admin.create_topics([NewTopic(topic, partitions, 1 if not self.external else -1,
                                      config=config or {})])[topic].result(timeout=60)
        deadline = time.monotonic() + 30
        while end_offsets(admin, topic, partitions) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"topic {topic} on {servers} has no leaders after 30s")
            time.sleep(0.1)

    def delete_topics(self, servers: str, topics: list[str]) -> None:
        admin = admin_client(servers)
        existing = set(admin.list_topics(timeout=30).topics)
        doomed = [t for t in topics if t in existing]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                try:
                    future.result()
                except KafkaException:
                    pass

    def properties(self, topics: list[str], tasks_max: int, compression: str, source_alias: str,
                   tuning: str = "harness", mode: str = security.PLAINTEXT) -> dict[str, str]:
        """A run's mm2.properties: bench_properties over the replicators' listeners of `mode`, and
        the mode's client settings for each cluster (which MM2 and the engine apply to every client
        of that cluster)."""
        source, target = self.client("source", mode), self.client("target", mode)
        props = bench_properties(source_alias, self.target_alias, source.servers, target.servers,
                                 topics, tasks_max, compression, heartbeats=self.heartbeats, tuning=tuning)
        for alias, client in ((source_alias, source), (self.target_alias, target)):
            props.update({f"{alias}.{key}": value for key, value in client.properties.items()})
        return props

    def target_broker_pids(self) -> list[int]:
        """The target cluster's broker processes (sandbox only): the ceiling reports their CPU."""
        if not self.sandboxes:
            return []
        return [pid for node in self.sandboxes[-1].members if (pid := node.pid()) is not None]

    def max_message_bytes(self, servers: str, topic: str) -> int | None:
        """The topic's max.message.bytes, which the engine's producer takes as its record limit."""
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            entries = admin_client(servers).describe_configs([resource])[resource].result(timeout=30)
        except (KafkaException, TimeoutError):  # then the producer keeps librdkafka's record limit
            return None
        entry = entries.get("max.message.bytes")
        return int(entry.value) if entry is not None and entry.value else None


def admin_client(servers: str) -> AdminClient:
    # log_level 3: a broker closing an idle connection is not news on the benchmark's console
    return AdminClient({"bootstrap.servers": servers, "log_level": 3})


def end_offsets(admin: AdminClient, topic: str, partitions: int) -> dict[int, int] | None:
    """High watermark per partition, or None while the topic or a leader is missing."""
    try:
        futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)},
                                     request_timeout=5)
        return {tp.partition: f.result().offset for tp, f in futures.items()}
    except KafkaException:
        return None
