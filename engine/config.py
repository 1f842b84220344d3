"""mm2.properties → typed msgspec structs.

The file is a Java `.properties` file; keys and defaults follow MirrorMaker 2 (MM2-REFERENCE §7).
Precedence for a flow setting: `<source>-><target>.<key>` beats the top-level `<key>` beats the
default. Keys this engine does not know yet are kept in `raw` and ignored.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from engine import wire
from engine.config_values import ConfigError, boolean, convert, integer, non_negative_seconds, parse_listen
from engine.config_values import replication_factor
from engine.client_overrides import librdkafka_setting
from engine.filters import RECORD_FILTER_PREFIX, RecordFilterConfig, TopicFilter, compile_list, record_filter
from engine.policy import DEFAULT_POLICY_CLASS, IDENTITY_POLICY_CLASS, POLICY_CLASSES
from engine.properties import parse_properties
from engine.security.client_keys import cluster_security
from engine.security.secrets import hide, resolve_references, secret_values
from engine.unknown_keys import unknown_keys


# -- the MM2 model -----------------------------------------------------------------------------

# connection keys that a top-level entry applies to every cluster (MM2-REFERENCE §7.2)
_CONNECTION_PREFIXES = ("security.protocol", "ssl.", "sasl.")

DEFAULT_TOPICS = ".*"
# Kafka 4.3.1's DefaultConfigPropertyFilter default, read off the 4.3.1 jar (KAFKA-20163 is in)
DEFAULT_CONFIG_PROPERTIES_EXCLUDE = (
    "follower.replication.throttled.replicas, leader.replication.throttled.replicas, "
    "message.timestamp.difference.max.ms, log.message.timestamp.before.max.ms, "
    "log.message.timestamp.after.max.ms, message.timestamp.type, unclean.leader.election.enable, "
    "min.insync.replicas"
)
TARGET_TOPIC_CONFIG_PREFIX = "target.topic.config."
RECORD_FILTER_OPTIONS = ("header.present", "header.absent", "header.equals", "key.prefix", "partitions", "python")
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
LOOPS = ("c", "python")
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
    # Python API (the in-run baseline of the benchmarks)
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
    # keys neither MM2 nor the engine knows, each with the key it most likely meant (engine.unknown_keys)
    unknown_keys: list[tuple[str, str | None]] = []

    def cluster(self, alias: str) -> ClusterConfig:
        return self.clusters[alias]


def load(path: str | os.PathLike, quiet: bool = False) -> EngineConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(file), f"cannot read the config file: {error.strerror}") from None
    return from_properties(parse_properties(text), quiet)


class _ReadKeys(dict):
    """The properties, remembering which keys the engine looked at: the others are reported unused
    (a warning, never an error: real MM2 files carry Connect worker keys)."""

    def __init__(self, props: dict[str, str]):
        super().__init__(props)
        self.read: set[str] = set()
        self.remarks: list[tuple[int, str]] = []

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)

    def get(self, key: str, default=None):  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def unused(self) -> list[str]:
        return sorted(k for k in self if k not in self.read)


def from_properties(props: dict[str, str], quiet: bool = False) -> EngineConfig:
    resolved, provided = resolve_references(props)
    props = _ReadKeys(resolved)
    props.read.update(k for k in props if k.startswith("config.providers"))
    config = _from_properties(props)
    secrets = provided | secret_values(resolved)
    for cluster in config.clusters.values():
        secrets |= secret_values(cluster.client)
    for flow in config.flows:  # a client role's own login (`B.admin.sasl.jaas.config`)
        for role in (flow.source_consumer, flow.target_producer, flow.source_admin, flow.target_admin):
            secrets |= secret_values(role)
    hide(secrets)  # from here on, no log line or error of this process prints them
    config = msgspec.structs.replace(config, secrets=frozenset(secrets))
    unused = props.unused()
    worker_keys = [k for k in unused if _is_connect_worker_key(k, config.clusters)]
    if worker_keys:
        _remark(props, logging.INFO, f"{len(worker_keys)} keys of MM2's Connect workers and driver are accepted and not "
                                f"used: {', '.join(worker_keys)}")
    unused = [k for k in unused if k not in worker_keys]
    unknown = unknown_keys(unused, [a.strip() for a in props.get("clusters", "").split(",") if a.strip()])
    unused = [k for k in unused if k not in dict(unknown)]
    if unused:
        _remark(props, logging.WARNING, f"{len(unused)} keys of the configuration are not used by mirror-engine "
                                        f"(ignored): {', '.join(unused)}")
    for key, meant in unknown:  # MM2 ignores them, and so does run; check-config refuses them
        _remark(props, logging.WARNING, unknown_key_message(key, meant) + " (ignored, as MM2 ignores it)")
    config = msgspec.structs.replace(config, unknown_keys=unknown)
    if not quiet:
        for level, message in props.remarks:
            logging.getLogger("engine.config").log(level, "%s", message)
    return msgspec.structs.replace(config, remarks=[message for _, message in props.remarks])


def _from_properties(props: "_ReadKeys") -> EngineConfig:
    if "clusters" not in props:
        raise ConfigError("clusters", "missing: list the cluster aliases, e.g. clusters = A, B")
    aliases = [a.strip() for a in props["clusters"].split(",") if a.strip()]
    if not aliases:
        raise ConfigError("clusters", "is empty")
    if len(set(aliases)) != len(aliases):
        raise ConfigError("clusters", f"lists an alias twice: {props['clusters']!r}")

    flows = []
    for key, value in props.items():
        match = re.fullmatch(r"([^.]+?)->([^.]+)\.enabled", key)  # not A->B.emit.*.enabled
        if match:
            props.read.add(key)
        if not match or not boolean(key, value):
            continue
        source, target = match.groups()
        for alias in (source, target):
            if alias not in aliases:
                raise ConfigError(key, f"cluster {alias!r} is not listed in clusters = {props['clusters']}")
        if source == target:
            raise ConfigError(key, "a flow needs two different clusters")
        flows.append(_flow(props, source, target))

    clusters = {}
    for alias in aliases:
        servers = props.get(f"{alias}.bootstrap.servers", "").strip()
        if not servers:
            if any(alias in (f.source, f.target) for f in flows):
                raise ConfigError(f"{alias}.bootstrap.servers", f"missing for cluster {alias}, used by an enabled flow")
            continue
        clusters[alias] = ClusterConfig(alias=alias, bootstrap_servers=servers, client=_client(props, alias))
    metrics_listen = props.get(METRICS_LISTEN_KEY, DEFAULT_METRICS_LISTEN).strip()
    if metrics_listen:
        parse_listen(METRICS_LISTEN_KEY, metrics_listen)
    loop = props.get(LOOP_KEY, DEFAULT_LOOP).strip()
    if loop not in LOOPS:
        raise ConfigError(LOOP_KEY, f"{loop!r}: expected one of {', '.join(LOOPS)}")
    reload_interval = integer(SECRETS_RELOAD_KEY, props[SECRETS_RELOAD_KEY], minimum=0) \
        if SECRETS_RELOAD_KEY in props else 60
    heartbeat_alert = non_negative_seconds(HEARTBEAT_ALERT_KEY, props[HEARTBEAT_ALERT_KEY]) \
        if HEARTBEAT_ALERT_KEY in props else 60.0
    group_id = props.get(GROUP_ID_KEY, "").strip()
    session_timeout_ms = integer(GROUP_SESSION_TIMEOUT_KEY, props[GROUP_SESSION_TIMEOUT_KEY], minimum=1000) \
        if GROUP_SESSION_TIMEOUT_KEY in props else DEFAULT_GROUP_SESSION_TIMEOUT_MS
    return EngineConfig(clusters=clusters, flows=flows, all_flows=flows, raw=dict(props),
                        heartbeats=_heartbeats(props, aliases, clusters), metrics_listen=metrics_listen,
                        loop=loop, secrets_reload_interval_s=float(reload_interval), heartbeat_alert_s=heartbeat_alert,
                        group_id=group_id, group_session_timeout_ms=session_timeout_ms)


def unknown_key_message(key: str, meant: str | None) -> str:
    return f"{key} is not a key MM2 or mirror-engine knows" + (f"; did you mean `{meant}`?" if meant else "")


def for_targets(config: EngineConfig, targets: list[str]) -> EngineConfig:
    """Only the flows and heartbeats into these clusters, as MM2's driver serves `--clusters B C`."""
    unknown = [t for t in targets if t not in config.clusters]
    if unknown:
        raise ConfigError("--clusters", f"{', '.join(unknown)} not among the configured clusters "
                                        f"({', '.join(config.clusters)})")
    return msgspec.structs.replace(config, flows=[f for f in config.flows if f.target in targets],
                                   heartbeats=[h for h in config.heartbeats if h.target in targets])


def _heartbeats(props: dict[str, str], aliases: list[str], clusters: dict[str, ClusterConfig]) -> list[HeartbeatConfig]:
    """One heartbeat emitter per ordered pair of configured clusters, as MM2's herders do.

    MM2 runs a herder, and so a heartbeat connector, for every pair unless
    `emit.heartbeats.enabled = false` (top level or per pair); the flow's `enabled` does not matter.
    """
    pairs = []
    for source in aliases:
        for target in aliases:
            if source == target or source not in clusters or target not in clusters:
                continue
            prefix = f"{source}->{target}."

            def get(key: str) -> tuple[str, str | None]:
                if prefix + key in props:
                    return prefix + key, props[prefix + key]
                return key, props.get(key)

            name, enabled = get("emit.heartbeats.enabled")
            if enabled is not None and not boolean(name, enabled):
                continue
            settings: dict[str, object] = {"source": source, "target": target}
            name, interval = get("emit.heartbeats.interval.seconds")
            if interval is not None:
                settings["interval_s"] = float(integer(name, interval, minimum=1))
            name, rf = get("heartbeats.topic.replication.factor")
            if rf is not None:
                settings["replication_factor"] = replication_factor(name, rf)
            pairs.append(HeartbeatConfig(**settings))  # type: ignore[arg-type]
    return pairs


def _security_keys(props: dict[str, str], alias: str) -> dict[str, tuple[str, str]]:
    """The cluster's security keys (top level, then `<alias>.`, which wins): Java key -> (the key as
    written, value)."""
    keys: dict[str, tuple[str, str]] = {}
    for scope in ("", f"{alias}."):
        for key, value in props.items():
            if key.startswith(scope) and key[len(scope):].startswith(_CONNECTION_PREFIXES):
                keys[key[len(scope):]] = (key, value)
                _mark_read(props, key)
    return keys


def _client(props: dict[str, str], alias: str) -> dict[str, str]:
    """The cluster's security keys in librdkafka's names."""
    security = cluster_security(alias, _security_keys(props, alias))
    for note in security.notes:
        _remark(props, logging.INFO, note)
    return security.settings


def _flow(props: dict[str, str], source: str, target: str) -> FlowConfig:
    prefix = f"{source}->{target}."

    def get(key: str, default: str | None = None) -> tuple[str, str | None]:
        if prefix + key in props:
            return prefix + key, props[prefix + key]
        return key, props.get(key, default)

    settings: dict[str, object] = {"source": source, "target": target}
    for attr, key in (("topics", "topics"), ("topics_exclude", "topics.exclude"), ("groups", "groups"),
                      ("groups_exclude", "groups.exclude")):
        name, value = get(key)
        if value is not None:
            settings[attr] = value
            compile_list(value, name)  # fail now, naming the key
    for attr, key, kind in (
        ("sync_topic_configs_enabled", "sync.topic.configs.enabled", "bool"),
        ("sync_topic_configs_interval_s", "sync.topic.configs.interval.seconds", "seconds"),
        ("sync_topic_acls_enabled", "sync.topic.acls.enabled", "bool"),
        ("sync_topic_acls_interval_s", "sync.topic.acls.interval.seconds", "seconds"),
        ("tasks_max", "tasks.max", "count"),
        ("emit_offset_syncs_enabled", "emit.offset-syncs.enabled", "bool"),
        ("emit_checkpoints_enabled", "emit.checkpoints.enabled", "bool"),
        ("sync_group_offsets_enabled", "sync.group.offsets.enabled", "bool"),
        ("sync_group_offsets_interval_s", "sync.group.offsets.interval.seconds", "seconds"),
        ("emit_checkpoints_interval_s", "emit.checkpoints.interval.seconds", "seconds"),
        ("checkpoints_topic_replication_factor", "checkpoints.topic.replication.factor", "rf"),
        ("offset_lag_max", "offset.lag.max", "non-negative"),
        ("offset_syncs_topic_replication_factor", "offset-syncs.topic.replication.factor", "rf"),
        ("replication_factor", "replication.factor", "rf"),
        ("refresh_topics_enabled", "refresh.topics.enabled", "bool"),
        ("refresh_topics_interval_s", "refresh.topics.interval.seconds", "seconds"),
        ("consumer_poll_timeout_ms", "consumer.poll.timeout.ms", "count"),
        ("provenance_header_enabled", PROVENANCE_KEY, "bool"),
        ("resume_from_target_enabled", RESUME_KEY, "bool"),
        ("bandwidth_limit_bytes_per_s", BANDWIDTH_KEY, "non-negative"),
        ("worker_timeout_ms", WORKER_TIMEOUT_KEY, "count"),
        ("audit_interval_s", AUDIT_INTERVAL_KEY, "non-negative"),
    ):
        name, value = get(key)
        if value is not None:
            settings[attr] = convert(name, value, kind)
    # Connect worker settings of the herder source->target come from the target cluster's keys
    for attr, key, kind in (
        ("offset_storage_replication_factor", "offset.storage.replication.factor", "rf"),
        ("offset_storage_partitions", "offset.storage.partitions", "count"),
        ("offset_flush_interval_ms", "offset.flush.interval.ms", "count"),
    ):
        name = worker_key(props, target, key)
        if name is not None:
            settings[attr] = convert(name, props[name], kind)
    settings.update(_offset_storage_topic(props, source, target))
    # a Connect worker setting of the herder source->target: the target cluster's key, as MM2 reads it
    for name in (f"{target}.exactly.once.source.support", "exactly.once.source.support"):
        if name in props:
            mode = props[name].strip().lower()
            if mode not in ("enabled", "disabled", "preparing"):
                raise ConfigError(name, f"expected enabled, disabled or preparing, got {props[name]!r}")
            settings["exactly_once"] = mode == "enabled"
            break
    for name in (f"{prefix}producer.override.compression.type", f"{prefix}producer.compression.type",
                 f"{target}.producer.compression.type", "producer.compression.type"):
        if name in props:
            if props[name].strip() not in COMPRESSION_TYPES:
                raise ConfigError(name, f"expected one of {', '.join(COMPRESSION_TYPES)}, got {props[name]!r}")
            settings["producer_compression"] = props[name].strip()
            break
    name, separator = get("replication.policy.separator")
    if separator is not None:
        settings["separator"] = separator
    name, internal_sep = get("replication.policy.internal.topic.separator.enabled")
    if internal_sep is not None:
        settings["internal_separator_enabled"] = boolean(name, internal_sep)
    name, policy = get("replication.policy.class")
    if policy is not None:
        if policy.strip() not in POLICY_CLASSES:
            raise ConfigError(name, f"replication policy {policy!r} is not supported; use one of "
                                    + ", ".join(POLICY_CLASSES))
        settings["policy_class"] = policy.strip()
    name, value = get("offset.translation")
    if value is not None:
        if value.strip() not in ("exact", "mm2"):
            raise ConfigError(name, f"expected exact or mm2, got {value!r}")
        if value.strip() == "mm2" and settings.get("emit_offset_syncs_enabled") is False:
            raise ConfigError(name, "mm2 translation reads offset syncs, but emit.offset-syncs.enabled is false")
        settings["offset_translation"] = value.strip()
    name, value = get("offset-syncs.topic.location")
    if value is not None:
        if value.strip() not in ("source", "target"):
            raise ConfigError(name, f"expected source or target, got {value!r}")
        settings["offset_syncs_topic_location"] = value.strip()
    name, value = get("config.properties.exclude")
    if value is not None:
        compile_list(value, name)
        settings["config_properties_exclude"] = value
    name, value = get("use.defaults.from")
    if value is not None:
        if value.strip() not in ("source", "target"):
            raise ConfigError(name, f"expected source or target, got {value!r}")
        settings["use_defaults_from"] = value.strip()
    overrides = {}
    for scope in (TARGET_TOPIC_CONFIG_PREFIX, prefix + TARGET_TOPIC_CONFIG_PREFIX):
        for key, value in props.items():
            if key.startswith(scope) and len(key) > len(scope):
                overrides[key[len(scope):]] = value.strip()
                _mark_read(props, key)
    settings["target_topic_overrides"] = overrides
    for key in props:
        for scope in (RECORD_FILTER_PREFIX, prefix + RECORD_FILTER_PREFIX):
            option = key[len(scope):] if key.startswith(scope) else None
            if option is not None and option not in RECORD_FILTER_OPTIONS:
                raise ConfigError(key, f"unknown record filter; use one of {', '.join(RECORD_FILTER_OPTIONS)}")
    settings["record_filter"] = record_filter(get, prefix)
    name, value = get("heartbeats.replication.enabled")
    if value is not None:
        settings["heartbeats_replication_enabled"] = boolean(name, value)
    if settings.get("tasks_max", 0) == 0 and get("tasks.max")[1] is not None:
        raise ConfigError(get("tasks.max")[0], "must be at least 1")
    settings.update(_client_overrides(props, source, target))
    for key, built_in in BUILT_IN_CLASSES.items():
        name, value = get(key)
        if value is not None and value.strip() not in built_in:
            raise ConfigError(name, f"{value.strip()} is a Java class the engine cannot run; the built-in "
                                    f"{built_in[0].rsplit('.', 1)[1]} is supported (leave the key out for it)")
    flow = FlowConfig(**settings)  # type: ignore[arg-type]
    if flow.separator == "":
        _remark(props, logging.WARNING, _empty_separator_remark(get("replication.policy.separator")[0], flow))
    return flow


def _empty_separator_remark(key: str, flow: FlowConfig) -> str:
    """What an empty separator does, as MM2's policies do it (engine.policy._java_split): accepted,
    but seldom what the file's author meant."""
    source, target = flow.source, flow.target
    identity = flow.policy_class == IDENTITY_POLICY_CLASS
    internal = "" if flow.internal_separator_enabled else "."
    syncs = wire.offset_syncs_topic(target if flow.offset_syncs_topic_location == "source" else source, internal)
    names = (f"keeps topic names but names heartbeats {source}heartbeats" if identity else
             f"names remote topics {source}<topic> (e.g. {source}orders)")
    remark = (f"{key} is empty, as MM2 allows: {flow.name} {names}, its offset syncs {syncs} and its checkpoints "
              f"{wire.checkpoints_topic(source, internal)}; as in MM2, a name is then read back one character at "
              "a time, so no topic counts as a heartbeats topic")
    if len(target) == 1 and not identity:
        remark += (f", and a topic with the letter {target} before its last character counts as coming from "
                   f"{target} and is not copied there (a cycle)")
    return remark


# Top-level keys MM2's dedicated driver copies into every herder's worker config over the target
# cluster's `<target>.` keys (MirrorMakerConfig.workerConfig: `<target>.*` first, then these top-level
# prefixes, then the defaults such as `mm2-offsets.<source>.internal`)
WORKER_TOP_LEVEL_PREFIXES = ("offset.storage", "config.storage", "status.storage")


def worker_key(props: Mapping[str, str], target: str, key: str) -> str | None:
    """The key of the file that sets Connect worker setting `key` of the herders into `target`, as
    MM2 reads it; None when the file sets none.

    For the prefixes MM2 copies from the top level (`offset.storage.*`, …) the top-level key wins over
    `<target>.<key>`; other worker settings are MM2's from `<target>.` only, and the engine also takes
    the top-level key when `<target>.` does not set one.
    """
    top_level_wins = key.startswith(WORKER_TOP_LEVEL_PREFIXES)
    for name in ((key, f"{target}.{key}") if top_level_wins else (f"{target}.{key}", key)):
        if name in props:
            return name
    return None


# Kafka's topic name rule (org.apache.kafka.common.internals.Topic.validate)
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _offset_storage_topic(props: dict[str, str], source: str, target: str) -> dict[str, str]:
    """`offset.storage.topic` of herder source->target: where MM2 stores this flow's progress.

    A switch from MM2 must find MM2's progress, so the engine reads and writes the same topic. Keys
    MM2 would not read for this flow are named in a remark.
    """
    flow_key = f"{source}->{target}.offset.storage.topic"
    name = worker_key(props, target, "offset.storage.topic")
    topic = props[name].strip() if name is not None else wire.connect_offsets_topic(source)
    if name is not None and (not _TOPIC_NAME.fullmatch(topic) or topic in (".", "..")):
        raise ConfigError(name, f"{props[name]!r} is not a topic name: 1 to 249 characters of a-z, A-Z, 0-9, "
                                f"'.', '_' and '-'")
    shadowed = f"{target}.offset.storage.topic"
    if name == "offset.storage.topic" and shadowed in props:
        _mark_read(props, shadowed)
        _remark_once(props, logging.WARNING, f"{shadowed} = {props[shadowed].strip()} is overridden by the top-level "
                                            f"offset.storage.topic = {topic}, as in MM2: the progress of flows into "
                                            f"{target} is in {topic}")
    if flow_key in props:
        _mark_read(props, flow_key)
        _remark_once(props, logging.WARNING, f"{flow_key} is not read, as in MM2 (a Connect worker setting comes "
                                             f"from {target}.offset.storage.topic or the top level, never from a "
                                             f"flow): the progress of {source}->{target} is in {topic}")
    return {"offset_storage_topic": topic} if name is not None else {}


# MM2's pluggable classes: only their built-in defaults, whose behaviour the engine implements
BUILT_IN_CLASSES = {
    "topic.filter.class": ("org.apache.kafka.connect.mirror.DefaultTopicFilter",),
    "group.filter.class": ("org.apache.kafka.connect.mirror.DefaultGroupFilter",),
    "config.property.filter.class": ("org.apache.kafka.connect.mirror.DefaultConfigPropertyFilter",),
    "forwarding.admin.class": ("org.apache.kafka.clients.admin.ForwardingAdmin",),
}
# Connect worker settings of MM2's herders: the engine has no Connect worker, so they are accepted and
# not used (prefixes, top level or per cluster)
CONNECT_WORKER_PREFIXES = (
    "key.converter", "value.converter", "header.converter", "offset.storage.topic", "config.storage.",
    "status.storage.", "offset.flush.timeout.ms", "task.shutdown.graceful.timeout.ms", "listeners",
    "rest.", "admin.listeners", "plugin.path", "plugin.discovery", "connector.client.config.override.policy",
    "dedicated.mode.enable.internal.rest", "worker.", "scheduled.rebalance.max.delay.ms",
    "connect.protocol", "heartbeat.interval.ms", "session.timeout.ms", "rebalance.timeout.ms",
    "metric.reporters", "metrics.", "config.action.reload", "topic.creation.enable", "exactly.once.source.support",
    "refresh.groups.enabled", "refresh.groups.interval.seconds", "admin.timeout.ms", "metric.names.formats",
    "add.source.alias.to.metrics", "group.id", "client.id", "access.control.",
)


# (flow attribute, cluster, role, keys from lowest to highest precedence) as MM2's dedicated driver
# builds them (MM2-REFERENCE §7.2-7.3): a cluster's `A.consumer.x` beats the flow's `A->B.consumer.x`,
# and `A->B.source.consumer.x` beats both; the data producer is Connect's, `B.producer.*` then
# `A->B.producer.override.*`
def _override_scopes(source: str, target: str) -> list[tuple[str, str, str, list[str]]]:
    flow = f"{source}->{target}."
    return [
        ("source_consumer", source, "consumer", [f"{flow}consumer.", f"{source}.consumer.", f"{flow}source.consumer."]),
        ("target_producer", target, "producer", [f"{target}.producer.", f"{flow}producer.override."]),
        ("source_admin", source, "admin", [f"{flow}admin.", f"{source}.admin.", f"{flow}source.admin."]),
        ("target_admin", target, "admin", [f"{flow}admin.", f"{target}.admin.", f"{flow}target.admin."]),
    ]


# keys of these scopes that are engine settings of their own, not client overrides
_NOT_CLIENT_KEYS = ("compression.type", "poll.timeout.ms")


def _client_overrides(props: dict[str, str], source: str, target: str) -> dict[str, dict[str, str]]:
    """Each client role's overrides in librdkafka's names. Connection and security keys may be
    overridden too, as in MM2 (`B.admin.bootstrap.servers`, `A.consumer.sasl.jaas.config`): a role's
    security keys go over the cluster's, key by key, and the result is mapped as a whole, so the
    role's settings then hold a complete security set (with its security.protocol) that replaces the
    cluster's for that role's clients (engine.clients.role_connection)."""
    resolved: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for attribute, alias, role, scopes in _override_scopes(source, target):
        settings: dict[str, str] = {}
        connection: dict[str, tuple[str, str]] = {}
        for scope in scopes:
            for key, value in props.items():
                if not key.startswith(scope) or key[len(scope):] in _NOT_CLIENT_KEYS:
                    continue
                _mark_read(props, key)
                java_key = key[len(scope):]
                if java_key == "bootstrap.servers" or java_key.startswith(_CONNECTION_PREFIXES):
                    connection[java_key] = (key, value)
                    continue
                setting = librdkafka_setting(key, java_key, value, notes)
                if setting is not None:
                    settings[setting[0]] = setting[1]
        if "bootstrap.servers" in connection:
            written, servers = connection.pop("bootstrap.servers")
            if not servers.strip():
                raise ConfigError(written, "is empty; give host:port pairs, or leave the key out for "
                                           f"{alias}.bootstrap.servers")
            settings["bootstrap.servers"] = servers.strip()
        if connection:
            security = cluster_security(f"{alias} ({role} clients)", {**_security_keys(props, alias), **connection},
                                        missing=f"{alias}.{role}.")
            settings.update(security.settings)
            notes += [n for n in security.notes if n not in notes]
        resolved[attribute] = settings
    for note in notes:
        _remark_once(props, logging.INFO, note)
    return resolved


def _is_connect_worker_key(key: str, clusters: dict[str, "ClusterConfig"]) -> bool:
    alias, _, rest = key.partition(".")
    return key.startswith(CONNECT_WORKER_PREFIXES) or (alias in clusters and rest.startswith(CONNECT_WORKER_PREFIXES))


def _remark(props: dict[str, str], level: int, message: str) -> None:
    """A remark on the file: logged when it is loaded (unless quietly, as a reload does) and kept in
    EngineConfig.remarks for check-config."""
    if isinstance(props, _ReadKeys):
        props.remarks.append((level, message))


def _remark_once(props: dict[str, str], level: int, message: str) -> None:
    """A remark that several flows would make alike (flows into one target) is made once."""
    if isinstance(props, _ReadKeys) and (level, message) not in props.remarks:
        props.remarks.append((level, message))


def _mark_read(props: dict[str, str], key: str) -> None:
    if isinstance(props, _ReadKeys):
        props.read.add(key)
