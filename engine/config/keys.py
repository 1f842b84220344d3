"""Every key of an mm2.properties the engine reads or knows, one row each: the single source of the
key names, where a key may be written, how its value is read, its default and MM2's, whether the
engine uses it, and one line of documentation.

The loader reads values by this table (engine.config.flows, engine.config.loading), unknown-key
detection takes the engine's keys from it (engine.config.unknown_keys), check-config prints its
defaults, and the reference table in docs/configuration.md is generated from it
(`make config-docs`; tests/unit/test_config_keys.py fails when they disagree). The Java client keys
come from Kafka's jars instead (engine.config.known_keys).

Scopes, as MM2 reads them:
    top      the top level only
    cluster  `<c>.<key>`
    worker   a Connect worker setting of MM2's herders into `<t>`: `<t>.<key>` or the top level
    flow     `<s>-><t>.<key>`, or the top level for every flow; the flow's key wins
    client   a client key: the top level for every cluster, or `<c>.`, which wins
"""

from __future__ import annotations

import msgspec

from engine.config.model import (
    AUDIT_INTERVAL_KEY,
    BANDWIDTH_KEY,
    COMPRESSION_TYPES,
    DEFAULT_CONFIG_PROPERTIES_EXCLUDE,
    DEFAULT_GROUP_SESSION_TIMEOUT_MS,
    DEFAULT_LOOP,
    DEFAULT_METRICS_LISTEN,
    DEFAULT_TOPICS,
    DEFAULT_TOPICS_EXCLUDE,
    GROUP_ID_KEY,
    GROUP_SESSION_TIMEOUT_KEY,
    HEARTBEAT_ALERT_KEY,
    LOOP_KEY,
    LOOPS,
    METRICS_LISTEN_KEY,
    PROVENANCE_KEY,
    RESUME_KEY,
    SECRETS_RELOAD_KEY,
    WORKER_TIMEOUT_KEY,
)
from engine.config.values import ConfigError, convert, parse_listen
from engine.offsets.policy import DEFAULT_POLICY_CLASS as DEFAULT_POLICY
from engine.offsets.policy import IDENTITY_POLICY_CLASS as IDENTITY_POLICY


class Key(msgspec.Struct, frozen=True):
    name: str
    scope: str
    # how the value is read: a kind of engine.config.values.convert, or "text", "choice", "regex-list",
    # "class", "listen", "list", "family" (open-ended keys below name)
    kind: str
    # the engine's default as a file would write it; None: required, computed or none (see shown)
    default: str | None
    # MM2's default; None where MM2 has no such key (the engine's own)
    mm2: str | None
    used: bool
    doc: str
    # the model field the key sets (engine.config.model: FlowConfig's, EngineConfig's for top-level keys,
    # HeartbeatConfig's for the heartbeat keys), where one does
    attr: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    # values printed as [hidden] everywhere (engine.security.secrets)
    secret: bool = False
    # the default in words, where it is computed or needs one
    shown: str = ""

    def value(self, name: str, text: str) -> object:
        """The value of this key as written under `name` in the file; ConfigError names `name`."""
        if self.kind == "choice":
            if text.strip() not in self.choices:
                expected = ", ".join(self.choices[:-1]) + " or " + self.choices[-1]
                raise ConfigError(name, f"expected {expected}, got {text!r}")
            return text.strip()
        if self.kind == "listen" and text.strip():
            parse_listen(name, text.strip())
        if self.kind in ("text", "regex-list", "class", "listen", "list", "family"):
            return text
        return convert(name, text, self.kind, self.minimum)

    def default_value(self) -> object:
        """The default as the model holds it."""
        assert self.default is not None, self.name
        return self.value(self.name, self.default)


ENGINE = None  # MM2 has no such key
GROUPS_EXCLUDE = "console-consumer-.*, connect-.*, __.*"
REGEX_NOTE = ("comma lists of full-match regexes, joined with `|` into one Java regex as in MM2; `\\p{Alpha}` and "
              "the other POSIX classes, `\\Q…\\E`, `(?<name>…)` and mid-pattern `(?i)` are translated, constructs "
              "Python lacks (`\\p{L}`, `&&`, `(?x)`) refused by name (`engine/java_regex.py`)")

KEYS: tuple[Key, ...] = (
    # the file's shape
    Key("clusters", "top", "list", None, "", True, "the cluster aliases; duplicates refused", shown="(required)"),
    Key("bootstrap.servers", "cluster", "text", None, "", True, "the cluster's brokers",
        shown="(required for clusters in use)"),
    Key("enabled", "flow", "bool", "false", "false", True, "`<s>-><t>.enabled = true` turns the flow on"),
    Key("config.providers", "top", "list", "", "", True,
        "Kafka's `EnvVarConfigProvider`, `FileConfigProvider`, `DirectoryConfigProvider`; `env`, `file` and "
        "`directory` also work undeclared", shown="`env`, `file`, `directory`"),
    Key("config.providers.", "top", "family", None, "", True,
        "`config.providers.<name>.class`, `config.providers.<name>.param.allowed.paths`", shown="—"),
    # security: Java client keys mapped onto librdkafka's (engine.security.client_keys)
    Key("security.protocol", "client", "text", "PLAINTEXT", "PLAINTEXT", True,
        "Java client keys mapped onto librdkafka's, see [security.md](security.md)"),
    Key("ssl.", "client", "family", None, "", True, "TLS settings, Java's names (keys, trust and key stores, PEM)",
        shown="—"),
    Key("sasl.", "client", "family", None, "", True, "SASL settings, Java's names (PLAIN, SCRAM, OAUTHBEARER, GSSAPI)",
        shown="—"),
    Key("ssl.key.password", "client", "text", None, "", True, "a secret: printed as `[hidden]`", secret=True,
        shown="—"),
    Key("ssl.keystore.password", "client", "text", None, "", True, "a secret: printed as `[hidden]`", secret=True,
        shown="—"),
    Key("ssl.truststore.password", "client", "text", None, "", True, "a secret: printed as `[hidden]`", secret=True,
        shown="—"),
    Key("ssl.keystore.key", "client", "text", None, "", True, "a secret (PEM key): printed as `[hidden]`",
        secret=True, shown="—"),
    Key("sasl.jaas.config", "client", "text", None, "", True,
        "a secret: printed as `[hidden]`; read as Java reads JAAS (either quote, comments)", secret=True, shown="—"),
    Key("sasl.oauthbearer.client.credentials.client.secret", "client", "text", None, "", True,
        "a secret: printed as `[hidden]`", secret=True, shown="—"),
    Key("consumer.", "client", "family", None, "", True,
        "any Java consumer key: client overrides with MM2's precedence (also "
        "`<s>-><t>.consumer.*`, `<s>-><t>.source.consumer.*`, `<s>-><t>.producer.override.*`, …), see "
        "[Client overrides](mm2-drop-in.md#client-overrides-the-file-you-already-have)", shown="—"),
    Key("producer.", "client", "family", None, "", True, "as `consumer.*`", shown="—"),
    Key("admin.", "client", "family", None, "", True, "as `consumer.*`", shown="—"),
    # which topics and groups
    Key("topics", "flow", "regex-list", DEFAULT_TOPICS, DEFAULT_TOPICS, True, REGEX_NOTE, attr="topics"),
    Key("topics.exclude", "flow", "regex-list", DEFAULT_TOPICS_EXCLUDE, DEFAULT_TOPICS_EXCLUDE, True, "as `topics`",
        attr="topics_exclude"),
    Key("groups", "flow", "regex-list", ".*", ".*", True, "as `topics`", attr="groups"),
    Key("groups.exclude", "flow", "regex-list", GROUPS_EXCLUDE, GROUPS_EXCLUDE, True, "as `topics`",
        attr="groups_exclude"),
    Key("tasks.max", "flow", "count", None, "1", True, "worker processes per flow", attr="tasks_max",
        shown="the CPUs this process may use (CPU affinity and cgroup quota, not the host's count)"),
    # remote topics
    Key("replication.factor", "flow", "rf", "2", "2", True, "of created remote topics; −1 = broker default",
        attr="replication_factor"),
    Key("replication.policy.class", "flow", "choice", DEFAULT_POLICY, DEFAULT_POLICY, True,
        "or `…IdentityReplicationPolicy`", attr="policy_class", choices=(DEFAULT_POLICY, IDENTITY_POLICY),
        shown="`…DefaultReplicationPolicy`"),
    Key("replication.policy.separator", "flow", "text", ".", ".", True,
        "may be empty, as in MM2 (`Aorders`; check-config says what that does to heartbeats and cycles)",
        attr="separator"),
    Key("replication.policy.internal.topic.separator.enabled", "flow", "bool", "true", "true", True, "",
        attr="internal_separator_enabled"),
    Key("refresh.topics.enabled", "flow", "bool", "true", "true", True, "", attr="refresh_topics_enabled"),
    Key("refresh.topics.interval.seconds", "flow", "seconds", "600", "600", True, "first refresh after one interval",
        attr="refresh_topics_interval_s"),
    Key("consumer.poll.timeout.ms", "flow", "count", "1000", "1000", True, "longest wait of one source poll",
        attr="consumer_poll_timeout_ms"),
    Key("producer.compression.type", "flow", "choice", "none", "none", True,
        "the target producer's compression (also `<t>.producer.compression.type`, "
        "`<s>-><t>.producer.override.compression.type`); `lz4` or `zstd` for WAN links",
        attr="producer_compression", choices=COMPRESSION_TYPES),
    # heartbeats
    Key("heartbeats.replication.enabled", "flow", "bool", "true", "true", True, "",
        attr="heartbeats_replication_enabled"),
    Key("emit.heartbeats.enabled", "flow", "bool", "true", "true", True,
        "one emitter per ordered pair of clusters, whether or not the flow is enabled"),
    Key("emit.heartbeats.interval.seconds", "flow", "seconds", "1", "1", True, "", attr="interval_s"),
    Key("heartbeats.topic.replication.factor", "flow", "rf", "3", "3", True, "", attr="replication_factor"),
    # progress (Connect worker settings of the herders into the target)
    Key("offset.storage.topic", "worker", "text", None, "mm2-offsets.<s>.internal", True,
        "where the progress of the flows into `<t>` is stored, on `<t>`; as in MM2 the top-level key beats `<t>.`",
        attr="offset_storage_topic", shown="`mm2-offsets.<s>.internal`"),
    Key("offset.storage.replication.factor", "worker", "rf", "3", "3", True,
        "of the progress topic on `<t>` (a top-level key beats `<t>.`, as in MM2)",
        attr="offset_storage_replication_factor"),
    Key("offset.storage.partitions", "worker", "count", "25", "25", True, "", attr="offset_storage_partitions"),
    Key("offset.flush.interval.ms", "worker", "count", "5000", "60000", True,
        "how often acknowledged progress is stored (or top level)", attr="offset_flush_interval_ms"),
    Key("exactly.once.source.support", "worker", "choice", "disabled", "disabled", True,
        "`enabled`: records and progress in one transaction, see "
        "[disaster-recovery.md](disaster-recovery.md#exactly-once-mode)",
        choices=("enabled", "disabled", "preparing")),
    # offset syncs and checkpoints
    Key("emit.offset-syncs.enabled", "flow", "bool", "true", "true", True, "", attr="emit_offset_syncs_enabled"),
    Key("offset.lag.max", "flow", "non-negative", "100", "100", True, "", attr="offset_lag_max"),
    Key("offset-syncs.topic.location", "flow", "choice", "source", "source", True, "",
        attr="offset_syncs_topic_location", choices=("source", "target")),
    Key("offset-syncs.topic.replication.factor", "flow", "rf", "3", "3", True, "",
        attr="offset_syncs_topic_replication_factor"),
    Key("emit.checkpoints.enabled", "flow", "bool", "true", "true", True, "", attr="emit_checkpoints_enabled"),
    Key("emit.checkpoints.interval.seconds", "flow", "seconds", "60", "60", True, "",
        attr="emit_checkpoints_interval_s"),
    Key("checkpoints.topic.replication.factor", "flow", "rf", "3", "3", True, "",
        attr="checkpoints_topic_replication_factor"),
    Key("sync.group.offsets.enabled", "flow", "bool", "false", "false", True,
        "idle target groups only, never backwards", attr="sync_group_offsets_enabled"),
    Key("sync.group.offsets.interval.seconds", "flow", "seconds", "60", "60", True, "",
        attr="sync_group_offsets_interval_s"),
    Key("offset.translation", "flow", "choice", "exact", ENGINE, True,
        "the engine's own: `exact` or `mm2` (MM2's rule: last offset sync plus one)", attr="offset_translation",
        choices=("exact", "mm2")),
    # topic configs and ACLs
    Key("sync.topic.configs.enabled", "flow", "bool", "true", "true", True, "configs are also copied at creation",
        attr="sync_topic_configs_enabled"),
    Key("sync.topic.configs.interval.seconds", "flow", "seconds", "600", "600", True, "",
        attr="sync_topic_configs_interval_s"),
    Key("config.properties.exclude", "flow", "regex-list", DEFAULT_CONFIG_PROPERTIES_EXCLUDE,
        DEFAULT_CONFIG_PROPERTIES_EXCLUDE, True,
        "never copied", attr="config_properties_exclude",
        shown="Kafka 4.3.1's list (throttled replicas, timestamp settings, `unclean.leader.election.enable`, "
              "`min.insync.replicas`)"),
    Key("use.defaults.from", "flow", "choice", "target", "target", True,
        "`target`: a source default DELETEs the target override; `source`: SETs the source default "
        "(rules and caveats: [config-sync.md](config-sync.md))", attr="use_defaults_from",
        choices=("source", "target")),
    Key("sync.topic.acls.enabled", "flow", "bool", "true", "true", True, "", attr="sync_topic_acls_enabled"),
    Key("sync.topic.acls.interval.seconds", "flow", "seconds", "600", "600", True, "",
        attr="sync_topic_acls_interval_s"),
    Key("target.topic.config.", "flow", "family", None, ENGINE, True,
        "the engine's own: `target.topic.config.<name>` is set on every remote topic of the flow, never reverted "
        "by config sync", shown="—"),
    # MM2's pluggable classes: only the built-ins
    Key("topic.filter.class", "flow", "class", "org.apache.kafka.connect.mirror.DefaultTopicFilter",
        "org.apache.kafka.connect.mirror.DefaultTopicFilter", True,
        "only the built-in; any other class is refused with its key", shown="MM2's built-in class"),
    Key("group.filter.class", "flow", "class", "org.apache.kafka.connect.mirror.DefaultGroupFilter",
        "org.apache.kafka.connect.mirror.DefaultGroupFilter", True,
        "only the built-in; any other class is refused with its key", shown="MM2's built-in class"),
    Key("config.property.filter.class", "flow", "class", "org.apache.kafka.connect.mirror.DefaultConfigPropertyFilter",
        "org.apache.kafka.connect.mirror.DefaultConfigPropertyFilter", True,
        "only the built-in; any other class is refused with its key", shown="MM2's built-in class"),
    Key("forwarding.admin.class", "flow", "class", "org.apache.kafka.clients.admin.ForwardingAdmin",
        "org.apache.kafka.clients.admin.ForwardingAdmin", True,
        "only the built-in; any other class is refused with its key", shown="MM2's built-in class"),
    # records
    Key("record.filter.", "flow", "family", None, ENGINE, True,
        "the engine's own, see [Record filters](#isolating-data-other-retention-only-the-records-that-belong-there)",
        shown="—"),
    Key("transforms", "flow", "list", None, "", True,
        "only `Filter` + `HasHeaderKey` (`transforms.<t>.*`, `predicates.<p>.*`), mapped onto "
        "`record.filter.header.*`; any other transform or predicate is refused with its key", shown="—"),
    Key("transforms.", "flow", "family", None, "", True, "a transform's settings, see `transforms`", shown="—"),
    Key("predicates.", "flow", "family", None, "", True, "a predicate's settings, see `transforms`", shown="—"),
    Key("replication.policy.", "flow", "family", None, "", False, "a custom replication policy's settings",
        shown="—"),
    Key("topic.creation.", "flow", "family", None, "", False, "Connect's topic creation groups", shown="—"),
    # the engine's own
    Key(PROVENANCE_KEY, "flow", "bool", "false", ENGINE, True,
        "the engine's own: a provenance header on every copy, see [design.md](design.md#provenance-header)",
        attr="provenance_header_enabled"),
    Key(RESUME_KEY, "flow", "bool", "true", ENGINE, True,
        "the engine's own: a restarted worker resumes after the copies the target already holds "
        "([restarts-without-duplicates.md](restarts-without-duplicates.md))", attr="resume_from_target_enabled"),
    Key(BANDWIDTH_KEY, "flow", "non-negative", "0", ENGINE, True,
        "the engine's own: keys + values per second for the whole flow, shared by its workers (0: none)",
        attr="bandwidth_limit_bytes_per_s"),
    Key(WORKER_TIMEOUT_KEY, "flow", "count", "120000", ENGINE, True,
        "the engine's own: a worker silent this long is replaced", attr="worker_timeout_ms"),
    Key(AUDIT_INTERVAL_KEY, "flow", "non-negative", "60", ENGINE, True,
        "the engine's own: the sampling audit's pass; 0 turns it off", attr="audit_interval_s"),
    Key(METRICS_LISTEN_KEY, "top", "listen", DEFAULT_METRICS_LISTEN, ENGINE, True,
        "the engine's own: the Prometheus endpoint; empty turns it off; `--metrics-listen` overrides",
        attr="metrics_listen"),
    Key(LOOP_KEY, "top", "choice", DEFAULT_LOOP, ENGINE, True,
        "the engine's own: `c` (librdkafka's C API), `python` (confluent-kafka's Python API, the benchmarks' "
        "baseline) or `batch` (record batches copied as bytes, in progress: docs/batch-relay.md); "
        "`run --loop` overrides", attr="loop", choices=LOOPS),
    Key(SECRETS_RELOAD_KEY, "top", "non-negative", "60", ENGINE, True,
        "the engine's own: how often a running engine reads the file and its providers again (0: on SIGHUP only)",
        attr="secrets_reload_interval_s"),
    Key(HEARTBEAT_ALERT_KEY, "top", "non-negative-seconds", "60", ENGINE, True,
        "the engine's own: a flow whose newest copied heartbeat is older is stale (`mirror_engine_heartbeat_stale`); "
        "0 turns the alert off", attr="heartbeat_alert_s"),
    Key(GROUP_ID_KEY, "top", "text", "", ENGINE, True,
        "the engine's own: instances with one file and this id share the partitions, see "
        "[scale-out.md](scale-out.md)", attr="group_id", shown="(none: alone)"),
    Key(GROUP_SESSION_TIMEOUT_KEY, "top", "integer", str(DEFAULT_GROUP_SESSION_TIMEOUT_MS), ENGINE, True,
        "the engine's own: the group's session timeout; a dead instance's partitions move after it",
        attr="group_session_timeout_ms", minimum=1000),
)

# settings of MM2's Connect workers and driver, which the engine does not run: accepted, top level or
# `<c>.`, and named in one remark; each name also stands for the keys that begin with it
CONNECT_WORKER_KEYS = (
    "key.converter", "value.converter", "header.converter", "config.storage.", "status.storage.",
    "offset.flush.timeout.ms", "task.shutdown.graceful.timeout.ms", "listeners", "rest.", "admin.listeners",
    "plugin.path", "plugin.discovery", "connector.client.config.override.policy",
    "dedicated.mode.enable.internal.rest", "worker.", "scheduled.rebalance.max.delay.ms", "connect.protocol",
    "heartbeat.interval.ms", "session.timeout.ms", "rebalance.timeout.ms", "metric.reporters", "metrics.",
    "config.action.reload", "topic.creation.enable", "refresh.groups.enabled", "refresh.groups.interval.seconds",
    "admin.timeout.ms", "metric.names.formats", "add.source.alias.to.metrics", "group.id", "client.id",
    "access.control.",
)
KEYS += tuple(Key(name, "worker", "family", None, "", False, "") for name in CONNECT_WORKER_KEYS)

BY_NAME = {key.name: key for key in KEYS}
# the keys of a pair's heartbeat emitter (HeartbeatConfig), not of its flow
HEARTBEAT_KEYS = ("emit.heartbeats.enabled", "emit.heartbeats.interval.seconds", "heartbeats.topic.replication.factor")


def key(name: str) -> Key:
    return BY_NAME[name]


def scoped(scope: str) -> tuple[Key, ...]:
    return tuple(k for k in KEYS if k.scope == scope)
