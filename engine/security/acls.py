"""The ACLs the engine's principal needs on each cluster, derived from mm2.properties.

Every entry comes from a call the engine makes (tested on an authorizer-enabled sandbox,
tests/integration/test_least_privilege.py) and names the feature that makes it:

  source   READ + DESCRIBE_CONFIGS on the replicated topics (records; configs copied at creation
           and by config sync); DESCRIBE on the workers' consumer group `mirror-engine-<flow>`
           (librdkafka looks up the coordinator of a consumer's group.id even for assign(), and
           fails the consumer without it; nothing is ever committed); DESCRIBE on the `groups` for
           checkpoints; DESCRIBE on the cluster for ACL sync (DescribeAcls)
  target   CREATE, WRITE, ALTER (grow), DESCRIBE_CONFIGS (the remote topics' max.message.bytes) on
           the remote topics; ALTER_CONFIGS for config sync; READ for the sampling audit and
           sync.group.offsets; CREATE + WRITE + READ on the internal topics; ALTER on the cluster
           for ACL sync (CreateAcls); WRITE on transactional ids in exactly-once mode
  every cluster heartbeats are emitted into: CREATE + WRITE on `heartbeats`

Kafka's implications keep the list minimal (org.apache.kafka.common.acl.AclOperation): READ, WRITE,
DELETE and ALTER imply DESCRIBE on the same resource; ALTER_CONFIGS implies DESCRIBE_CONFIGS; an
idempotent producer needs no IDEMPOTENT_WRITE on the cluster when it may WRITE to a topic
(KIP-679, Kafka 3.0).

Topic and group regexes become ACL patterns: a literal name (`orders`, `eu\\.orders`) a LITERAL
ACL, `<literal>.*` a PREFIXED one, anything else the PREFIXED literal start of the regex (or `*`):
always enough, never less. An unescaped `.` is a regex wildcard, so `eu.orders` gives PREFIXED `eu`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

import msgspec

from engine.config.model import EngineConfig, FlowConfig
from engine.config.values import split_list
from engine.offsets import wire
from engine.offsets.policy import HEARTBEATS_TOPIC, DefaultReplicationPolicy, make_policy

CLUSTER_RESOURCE = "kafka-cluster"
WILDCARD = "*"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"
# group ids of the engine's consumers that only assign() partitions and never commit
# (engine.offsets.follow.TopicFollower: mirror-engine-<uuid>; engine.audit: mirror-engine-audit-<uuid>)
FOLLOWER_GROUP_PREFIX = "mirror-engine-"
AUDIT_GROUP_PREFIX = "mirror-engine-audit-"
DEFAULT_PRINCIPAL = "User:mirror-engine"

# operation -> the operations it implies on the same resource (Kafka's AclOperation rules)
_IMPLIED = {"READ": {"DESCRIBE"}, "WRITE": {"DESCRIBE"}, "DELETE": {"DESCRIBE"}, "ALTER": {"DESCRIBE"},
            "ALTER_CONFIGS": {"DESCRIBE_CONFIGS"}}
_TYPE_ORDER = {TOPIC: 0, GROUP: 1, TRANSACTIONAL_ID: 2, CLUSTER: 3}
# kafka-acls.sh's names
_CLI_RESOURCE = {TOPIC: "--topic", GROUP: "--group", TRANSACTIONAL_ID: "--transactional-id", CLUSTER: "--cluster"}
_CLI_OPERATION = {"READ": "Read", "WRITE": "Write", "CREATE": "Create", "DELETE": "Delete", "ALTER": "Alter",
                  "DESCRIBE": "Describe", "DESCRIBE_CONFIGS": "DescribeConfigs", "ALTER_CONFIGS": "AlterConfigs",
                  "IDEMPOTENT_WRITE": "IdempotentWrite"}


class RequiredAcl(msgspec.Struct, frozen=True):
    """One ALLOW ACL the engine's principal needs; `why` names the features that need it."""

    cluster: str  # the cluster alias of mm2.properties
    resource_type: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str  # "*" is Kafka's wildcard; CLUSTER's name is always kafka-cluster
    pattern_type: str  # LITERAL or PREFIXED
    operation: str  # Kafka's AclOperation name: READ, WRITE, CREATE, ...
    why: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.cluster, self.resource_type, self.name, self.pattern_type, self.operation

    def covers(self, other: RequiredAcl) -> bool:
        """Whether granting this ACL grants `other` too (a wider pattern, an implying operation)."""
        if other.operation != self.operation and other.operation not in _IMPLIED.get(self.operation, ()):
            return False
        if other.cluster != self.cluster or other.resource_type != self.resource_type:
            return False
        if self.pattern_type == LITERAL and self.name == WILDCARD:
            return True
        if other.pattern_type == LITERAL and other.name == WILDCARD:
            return False
        if self.pattern_type == PREFIXED:
            return other.name.startswith(self.name)
        return other.pattern_type == LITERAL and other.name == self.name

    def binding(self, principal: str, host: str = "*"):
        """The confluent_kafka AclBinding that grants it to `principal` (e.g. User:mirror)."""
        from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        resource_type = {TRANSACTIONAL_ID: "TRANSACTIONAL_ID", CLUSTER: "BROKER"}.get(self.resource_type,
                                                                                       self.resource_type)
        return AclBinding(ResourceType[resource_type], self.name, ResourcePatternType[self.pattern_type], principal,
                          host, AclOperation[self.operation], AclPermissionType.ALLOW)


def regex_patterns(regexes: str) -> list[tuple[str, str]]:
    """(name, pattern type) ACL patterns that cover every name a `topics` or `groups` list matches."""
    patterns = []
    for entry in split_list(regexes):
        for regex in _alternatives(entry):
            literal, rest = _literal_start(regex)
            if not rest:
                patterns.append((literal, LITERAL))
            elif literal:
                patterns.append((literal, PREFIXED))  # exact for `<literal>.*`, wider otherwise
            else:
                patterns.append((WILDCARD, LITERAL))
    return patterns


_SPECIAL = set(".^$*+?{}[]|()\\")


def _alternatives(regex: str) -> list[str]:
    """The top-level alternatives of a regex: `a|b(c|d)` -> `a`, `b(c|d)`."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(regex[start:i])
            start = i + 1
        i += 1
    return parts + [regex[start:]]


def _literal_start(regex: str) -> tuple[str, str]:
    """The start every full match of `regex` begins with, and the rest of the regex."""
    out, i = [], 0
    while i < len(regex):
        if regex[i] == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            char, step = regex[i + 1], 2  # an escaped special character: itself
        elif regex[i] not in _SPECIAL:
            char, step = regex[i], 1
        else:
            break
        if regex[i + step:i + step + 1] in ("*", "?", "{"):
            break  # a character that may be absent is not part of every match
        out.append(char)
        i += step
    return "".join(out), regex[i:]


class _Acls:
    """Collects ACLs, merging the reasons of one ACL given for several features."""

    def __init__(self) -> None:
        self.reasons: dict[tuple[str, str, str, str, str], list[str]] = {}

    def add(self, cluster: str, resource_type: str, name: str, pattern_type: str, operations: Iterable[str],
            why: str) -> None:
        if resource_type == CLUSTER:
            name, pattern_type = CLUSTER_RESOURCE, LITERAL
        for operation in operations:
            reasons = self.reasons.setdefault((cluster, resource_type, name, pattern_type, operation), [])
            if why not in reasons:
                reasons.append(why)

    def topics(self, cluster: str, patterns: Iterable[tuple[str, str]], operations: Iterable[str], why: str) -> None:
        operations = list(operations)
        for name, pattern_type in patterns:
            self.add(cluster, TOPIC, name, pattern_type, operations, why)

    def result(self) -> list[RequiredAcl]:
        """The ACLs, without those a wider pattern or an implying operation grants already; the
        reasons of a dropped ACL go to the ACLs that grant it."""
        acls = [RequiredAcl(*key, why="; ".join(reasons)) for key, reasons in self.reasons.items()]
        kept = [acl for acl in acls if not any(other is not acl and other.covers(acl) for other in acls)]
        merged = []
        for acl in kept:
            reasons = acl.why.split("; ")
            for other in acls:
                if other not in kept and acl.covers(other):
                    reasons += [r for r in other.why.split("; ") if r not in reasons]
            merged.append(msgspec.structs.replace(acl, why="; ".join(reasons)))
        return sorted(merged, key=_rank)


def _rank(acl: RequiredAcl) -> tuple:
    return acl.cluster, _TYPE_ORDER[acl.resource_type], acl.name, acl.pattern_type, acl.operation


def _policy(flow: FlowConfig) -> DefaultReplicationPolicy:
    return make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)


def heartbeats_topics(config: EngineConfig) -> dict[str, set[str]]:
    """The heartbeats topics on each cluster by this configuration: `heartbeats` where heartbeats
    are emitted, and the remote copies the flows make of them (`A.heartbeats`, `B.A.heartbeats`)."""
    found: dict[str, set[str]] = {alias: set() for alias in config.clusters}
    for pair in config.heartbeats:
        found.setdefault(pair.target, set()).add(HEARTBEATS_TOPIC)
    changed = True
    while changed:
        changed = False
        for flow in config.flows:
            if not flow.heartbeats_replication_enabled:
                continue
            policy = _policy(flow)
            for topic in sorted(found.get(flow.source, ())):
                if policy.is_internal_topic(topic) or policy.is_cycle(topic, flow.target):
                    continue
                remote = policy.format_remote_topic(flow.source, topic)
                if remote not in found.setdefault(flow.target, set()):
                    found[flow.target].add(remote)
                    changed = True
    return found


def _replicated(config: EngineConfig, flow: FlowConfig, heartbeats: dict[str, set[str]],
                with_heartbeats: bool = True) -> list[tuple[str, str]]:
    """Patterns of the source topics the flow replicates: its `topics` and the heartbeats topics."""
    patterns = regex_patterns(flow.topics)
    if with_heartbeats and flow.heartbeats_replication_enabled:
        patterns += [(topic, LITERAL) for topic in sorted(heartbeats.get(flow.source, ()))]
    return patterns


def _remote(flow: FlowConfig, patterns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same patterns for the remote topics, through the flow's replication policy."""
    policy = _policy(flow)
    remote = []
    for name, pattern_type in patterns:
        if name == WILDCARD:
            prefix = policy.format_remote_topic(flow.source, "")
            remote.append((prefix, PREFIXED) if prefix else (WILDCARD, LITERAL))
        else:
            remote.append((policy.format_remote_topic(flow.source, name), pattern_type))
    return remote


def required_acls(config: EngineConfig) -> list[RequiredAcl]:
    """Every ALLOW ACL `mirror-engine run` needs with this configuration, per cluster."""
    acls = _Acls()
    heartbeats = heartbeats_topics(config)
    for flow in config.flows:
        _flow_acls(acls, config, flow, heartbeats)
    for target in sorted({pair.target for pair in config.heartbeats}):
        acls.add(target, TOPIC, HEARTBEATS_TOPIC, LITERAL, ("CREATE", "WRITE"),
                 "heartbeats: create the topic and emit heartbeats into it")
    return acls.result()


def _flow_acls(acls: _Acls, config: EngineConfig, flow: FlowConfig, heartbeats: dict[str, set[str]]) -> None:
    from engine.worker.relays import consumer_settings  # the workers' consumer settings (loads the fast path)

    name, source, target = flow.name, flow.source, flow.target
    policy = _policy(flow)
    replicated = _replicated(config, flow, heartbeats)
    remote = _remote(flow, replicated)

    # replication: discover, read, copy configs at creation; the workers' consumer group
    acls.topics(source, replicated, ("READ",), f"{name} replication: read the source records")
    acls.topics(source, replicated, ("DESCRIBE_CONFIGS",),
                f"{name} remote topics: copy the source topic's configs at creation")
    acls.add(source, GROUP, consumer_settings(name)["group.id"], LITERAL, ("DESCRIBE",),
             f"{name} replication: the source consumer's group.id (coordinator lookup; never committed)")
    acls.topics(target, remote, ("CREATE",), f"{name} remote topics: create them")
    acls.topics(target, remote, ("WRITE",), f"{name} replication: write the copies")
    acls.topics(target, remote, ("ALTER",), f"{name} remote topics: add partitions when the source grows")
    acls.topics(target, remote, ("DESCRIBE_CONFIGS",),
                f"{name} replication: read the remote topics' max.message.bytes")
    if config.group_id:
        # the remote topics' DESCRIBE, which the subscription needs, comes with their WRITE
        acls.add(target, GROUP, config.group_id, LITERAL, ("READ",),
                 f"scale-out: join the instances' group {config.group_id} (membership; never committed)")

    # progress and the offset map on the target
    offsets = flow.offsets_topic
    acls.add(target, TOPIC, offsets, LITERAL, ("CREATE", "WRITE", "READ"),
             f"{name} progress: create, store and load {offsets}")
    # engine.worker.progress.ProgressStore.load's consumer
    acls.add(target, GROUP, f"{offsets}-reader", LITERAL, ("DESCRIBE",),
             f"{name} progress: the progress reader's group.id (coordinator lookup; never committed)")
    offset_map = wire.offset_map_topic(source)
    acls.add(target, TOPIC, offset_map, LITERAL, ("CREATE", "WRITE"), f"{name} offset map: create and write it")
    acls.add(target, TOPIC, offset_map, LITERAL, ("READ",),
             f"{name} offset map: read it (checkpoints, sampling audit, a recreated source topic)")
    acls.add(target, GROUP, FOLLOWER_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
             f"{name} offset map: its readers' group.id mirror-engine-<uuid> (coordinator lookup; never committed)")

    if flow.sync_topic_configs_enabled or flow.target_topic_overrides:
        acls.topics(target, remote, ("ALTER_CONFIGS",), f"{name} topic config sync: alter the remote topics")
        acls.topics(source, replicated, ("DESCRIBE_CONFIGS",), f"{name} topic config sync: read the source configs")
    if flow.sync_topic_acls_enabled:
        acls.add(source, CLUSTER, CLUSTER_RESOURCE, LITERAL, ("DESCRIBE",), f"{name} ACL sync: list the topic ACLs")
        acls.add(target, CLUSTER, CLUSTER_RESOURCE, LITERAL, ("ALTER",),
                 f"{name} ACL sync: create the remote topics' ACLs")

    if flow.emit_offset_syncs_enabled:
        # named after the cluster it does not live on (docs/design.md, 'Which topics, where'), as
        # engine.coordinator.internal_topics does
        at_source = flow.offset_syncs_topic_location == "source"
        syncs_cluster = source if at_source else target
        syncs_topic = wire.offset_syncs_topic(target if at_source else source, policy.internal_separator)
        acls.add(syncs_cluster, TOPIC, syncs_topic, LITERAL, ("CREATE", "WRITE"),
                 f"{name} offset syncs: create and write {syncs_topic}")
        if flow.emit_checkpoints_enabled:
            checkpoints = wire.checkpoints_topic(source, policy.internal_separator)
            acls.add(target, TOPIC, checkpoints, LITERAL, ("CREATE", "WRITE"),
                     f"{name} checkpoints: create and write {checkpoints}")
            for group, pattern_type in regex_patterns(flow.groups):
                acls.add(source, GROUP, group, pattern_type, ("DESCRIBE",),
                         f"{name} checkpoints: list the groups and read their offsets")
            if flow.offset_translation == "mm2":
                acls.add(syncs_cluster, TOPIC, syncs_topic, LITERAL, ("READ",),
                         f"{name} checkpoints (offset.translation = mm2): read {syncs_topic}")
                acls.add(syncs_cluster, GROUP, FOLLOWER_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
                         f"{name} checkpoints (offset.translation = mm2): the offset-sync reader's group.id")
            if flow.sync_group_offsets_enabled:
                acls.topics(target, remote, ("READ",),
                            f"{name} sync.group.offsets: commit the groups' offsets on the remote topics")
                for group, pattern_type in regex_patterns(flow.groups):
                    acls.add(target, GROUP, group, pattern_type, ("READ",),
                             f"{name} sync.group.offsets: describe the groups and commit their offsets")

    if flow.audit_interval_s > 0:
        acls.topics(target, remote, ("READ",), f"{name} sampling audit: read the newest copies")
        acls.add(source, GROUP, AUDIT_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
                 f"{name} sampling audit: its readers' group.id mirror-engine-audit-<uuid>")
        acls.add(target, GROUP, AUDIT_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
                 f"{name} sampling audit: its readers' group.id mirror-engine-audit-<uuid>")

    if flow.exactly_once:
        # engine.coordinator.assignments.transactional_id: mirror-engine-<flow>-<worker index>
        acls.add(target, TRANSACTIONAL_ID, f"mirror-engine-{name}-", PREFIXED, ("WRITE",),
                 f"{name} exactly-once: the workers' transactional.id mirror-engine-{name}-<worker>")


def audit_acls(config: EngineConfig, flow_name: str | None = None) -> list[RequiredAcl]:
    """Every ALLOW ACL `mirror-engine audit` needs (it only reads: both sides and the offset map)."""
    acls = _Acls()
    for flow in config.flows:
        if flow_name not in (None, flow.name):
            continue
        name, source, target = flow.name, flow.source, flow.target
        # engine.audit.flow.audit_flow audits the topics its `topics` select (heartbeats only if they match)
        replicated = _replicated(config, flow, {}, with_heartbeats=False)
        acls.topics(source, replicated, ("READ",), f"audit {name}: read the source records")
        acls.topics(target, _remote(flow, replicated), ("READ",), f"audit {name}: read the copies")
        acls.add(target, TOPIC, wire.offset_map_topic(source), LITERAL, ("READ",), f"audit {name}: read the offset map")
        acls.add(target, GROUP, FOLLOWER_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
                 f"audit {name}: its readers' group.id mirror-engine-<uuid> / mirror-engine-audit-<uuid>")
        acls.add(source, GROUP, AUDIT_GROUP_PREFIX, PREFIXED, ("DESCRIBE",),
                 f"audit {name}: its readers' group.id mirror-engine-audit-<uuid>")
    return acls.result()


# -- presentation ---------------------------------------------------------------------------------


def principal_of(config: EngineConfig, alias: str) -> str:
    """The engine's principal on a cluster: User:<sasl.username> when it logs in with one."""
    username = config.clusters[alias].client.get("sasl.username") if alias in config.clusters else None
    return f"User:{username}" if username else DEFAULT_PRINCIPAL


def table(acls: list[RequiredAcl]) -> str:
    header = ("cluster", "resource", "name", "pattern", "operation", "why")
    rows = [header] + [(a.cluster, a.resource_type, a.name, a.pattern_type, a.operation, a.why) for a in acls]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
                     for row in rows)


def kafka_acls_commands(config: EngineConfig, acls: list[RequiredAcl], principal: str | None = None) -> str:
    """kafka-acls.sh commands that grant the ACLs, per cluster; one command per resource pattern."""
    lines = []
    for alias in sorted({a.cluster for a in acls}):
        servers = config.clusters[alias].bootstrap_servers if alias in config.clusters else "<bootstrap servers>"
        who = principal or principal_of(config, alias)
        lines.append(f"# cluster {alias} (principal {who}; add --command-config <file> for an authenticated admin)")
        by_resource: dict[tuple[str, str, str], list[str]] = {}
        for acl in acls:
            if acl.cluster == alias:
                by_resource.setdefault((acl.resource_type, acl.name, acl.pattern_type), []).append(acl.operation)
        for (resource_type, name, pattern_type), operations in by_resource.items():
            command = ["kafka-acls.sh", "--bootstrap-server", servers, "--add", "--allow-principal", who]
            for operation in operations:
                command += ["--operation", _CLI_OPERATION[operation]]
            command += [_CLI_RESOURCE[resource_type]] + ([] if resource_type == CLUSTER else [name])
            if pattern_type == PREFIXED:
                command += ["--resource-pattern-type", "prefixed"]
            lines.append(" ".join(shlex.quote(part) for part in command))
    return "\n".join(lines)
