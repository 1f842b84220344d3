"""The MM2 model of an mm2.properties as typed msgspec structs: clusters, flows, heartbeats, the engine.

Defaults are MirrorMaker 2's (docs/configuration.md lists every key); engine.config.loading builds these from
the file.
"""

from __future__ import annotations

import msgspec

from engine.filters import RecordFilterConfig, TopicFilter, compile_list
from engine.offsets import wire
from engine.offsets.policy import DEFAULT_POLICY_CLASS

DEFAULT_TOPICS = ".*"
# Kafka 4.3.1's DefaultConfigPropertyFilter default, read off the 4.3.1 jar (KAFKA-20163 is in)
DEFAULT_CONFIG_PROPERTIES_EXCLUDE = (
    "follower.replication.throttled.replicas, leader.replication.throttled.replicas, "
    "message.timestamp.difference.max.ms, log.message.timestamp.before.max.ms, "
    "log.message.timestamp.after.max.ms, message.timestamp.type, unclean.leader.election.enable, "
    "min.insync.replicas"
)
TARGET_TOPIC_CONFIG_PREFIX = "target.topic.config."
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
METRICS_LISTEN_KEY = "mirror.engine.metrics.listen"
LOOP_KEY = "mirror.engine.loop"
PROVENANCE_KEY = "mirror.engine.provenance.header.enabled"
RESUME_KEY = "mirror.engine.resume.from.target.enabled"
BANDWIDTH_KEY = "mirror.engine.bandwidth.limit.bytes.per.second"
WORKER_TIMEOUT_KEY = "mirror.engine.worker.timeout.ms"
AUDIT_INTERVAL_KEY = "mirror.engine.audit.interval.seconds"
SECRETS_RELOAD_KEY = "mirror.engine.secrets.reload.interval.seconds"
HEARTBEAT_ALERT_KEY = "mirror.engine.heartbeat.alert.seconds"
# scale-out: instances with one file and this group id share the partitions (engine.coordinator.membership)
GROUP_ID_KEY = "mirror.engine.group.id"
GROUP_SESSION_TIMEOUT_KEY = "mirror.engine.group.session.timeout.ms"
DEFAULT_GROUP_SESSION_TIMEOUT_MS = 10000  # as Kafka Connect's workers
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
LOOPS = ("c", "python", "batch")
DEFAULT_LOOP = "c"
DEFAULT_TOPICS_EXCLUDE = r"mm2.*\.internal, .*\.replica, __.*"


class ClusterConfig(msgspec.Struct, frozen=True):
    alias: str
    bootstrap_servers: str
    # client settings common to every client of this cluster (librdkafka names)
    client: dict[str, str] = {}


class FlowConfig(msgspec.Struct, frozen=True):
    source: str
    target: str
    topics: str = DEFAULT_TOPICS
    topics_exclude: str = DEFAULT_TOPICS_EXCLUDE
    tasks_max: int = 0  # 0: one worker per CPU (MM2's default is 1, see README)
    replication_factor: int = 2
    offset_storage_replication_factor: int = 3
    offset_storage_partitions: int = 25
    # MM2's `offset.storage.topic` of herder source->target ("": its default); see offsets_topic
    offset_storage_topic: str = ""
    refresh_topics_enabled: bool = True
    refresh_topics_interval_s: float = 600.0
    offset_flush_interval_ms: int = 5000
    consumer_poll_timeout_ms: int = 1000
    separator: str = "."
    internal_separator_enabled: bool = True
    policy_class: str = DEFAULT_POLICY_CLASS
    heartbeats_replication_enabled: bool = True
    sync_topic_configs_enabled: bool = True
    sync_topic_configs_interval_s: float = 600.0
    sync_topic_acls_enabled: bool = True
    sync_topic_acls_interval_s: float = 600.0
    config_properties_exclude: str = DEFAULT_CONFIG_PROPERTIES_EXCLUDE
    use_defaults_from: str = "target"
    # target topic configs set on every remote topic of the flow, never reverted by config sync
    target_topic_overrides: dict[str, str] = {}
    record_filter: RecordFilterConfig | None = None
    emit_offset_syncs_enabled: bool = True
    emit_checkpoints_enabled: bool = True
    offset_translation: str = "exact"  # or "mm2": MM2's own (last sync + 1)
    sync_group_offsets_enabled: bool = False
    sync_group_offsets_interval_s: float = 60.0
    emit_checkpoints_interval_s: float = 60.0
    checkpoints_topic_replication_factor: int = 3
    groups: str = ".*"
    groups_exclude: str = "console-consumer-.*, connect-.*, __.*"
    offset_lag_max: int = 100
    offset_syncs_topic_location: str = "source"
    offset_syncs_topic_replication_factor: int = 3
    # the target producer's compression.type (MM2 default: none; lz4 or zstd for WAN links)
    producer_compression: str = "none"
    # mirror-engine's own: a provenance header on every copy; a byte budget per second (0: none)
    provenance_header_enabled: bool = False
    bandwidth_limit_bytes_per_s: int = 0
    # at-least-once: a worker resumes after the copies the target already holds, not at its stored
    # progress, so a crash copies nothing twice (engine/worker/resume.py)
    resume_from_target_enabled: bool = True
    # exactly.once.source.support = enabled on the target: records and progress in one transaction
    exactly_once: bool = False
    # a worker silent this long is replaced (its transactional id fenced in exactly-once mode)
    worker_timeout_ms: int = 120_000
    # client overrides in librdkafka's names (engine/client_overrides.py); a `client.id` among them
    # is put in front of the engine's client ids, as MM2 does
    source_consumer: dict[str, str] = {}
    target_producer: dict[str, str] = {}
    source_admin: dict[str, str] = {}
    target_admin: dict[str, str] = {}
    # the continuous sampling audit: one pass this often (0: off)
    audit_interval_s: float = 60.0

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def offsets_topic(self) -> str:
        """The topic on the target that holds this flow's source progress: where MM2's herder
        source->target keeps it, so a switch either way resumes from the other's stored offsets."""
        return self.offset_storage_topic or wire.connect_offsets_topic(self.source)

    def topic_filter(self) -> TopicFilter:
        return TopicFilter(
            include=compile_list(self.topics, f"{self.name}.topics"),
            exclude=compile_list(self.topics_exclude, f"{self.name}.topics.exclude"),
        )


class HeartbeatConfig(msgspec.Struct, frozen=True):
    """MM2's heartbeat connector of herder source->target: beats into the target's `heartbeats`."""

    source: str
    target: str
    interval_s: float = 1.0
    replication_factor: int = 3


class EngineConfig(msgspec.Struct, frozen=True):
    clusters: dict[str, ClusterConfig]
    flows: list[FlowConfig]
    raw: dict[str, str]
    heartbeats: list[HeartbeatConfig] = []
    # where the Prometheus endpoint listens; "" turns it off
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    # the workers' relay loop: "c" runs on librdkafka's C API, "python" on confluent-kafka's
    # Python API (the in-run baseline of the benchmarks), "batch" copies record batches as bytes
    loop: str = DEFAULT_LOOP
    # every secret value of the file (provider results, passwords, key material), for redaction
    secrets: frozenset[str] = frozenset()
    # the running engine reads the file and its providers again this often (0: on SIGHUP only)
    secrets_reload_interval_s: float = 60.0
    # what loading said of the file: keys noted, dropped or not used
    remarks: list[str] = []
    # a flow whose newest copied heartbeat is older than this is stale (an alert; 0: off)
    heartbeat_alert_s: float = 60.0
    # scale-out: the consumer group, on each target cluster, of the instances sharing the work ("": alone)
    group_id: str = ""
    group_session_timeout_ms: int = DEFAULT_GROUP_SESSION_TIMEOUT_MS
    # every enabled flow of the file, also those `run --clusters` leaves to another instance: a
    # cycle of flows is judged on all of them (engine.coordinator.topology)
    all_flows: list[FlowConfig] = []
    # keys neither MM2 nor the engine knows, each with the key it most likely meant (engine.config.unknown_keys)
    unknown_keys: list[tuple[str, str | None]] = []

    def cluster(self, alias: str) -> ClusterConfig:
        return self.clusters[alias]

