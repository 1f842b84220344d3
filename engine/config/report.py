"""`mirror-engine check-config`: the file as the engine resolved it, secrets hidden, and where the
engine's behaviour differs from MM2's defaults."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from engine.batch.choice import flow_loop
from engine.config.keys import BY_NAME as MM2
from engine.config.model import RESUME_KEY, EngineConfig, FlowConfig
from engine.config.precedence import worker_key
from engine.coordinator.topology import cycle_remarks
from engine.offsets.policy import IDENTITY_POLICY_CLASS
from engine.security.secrets import masked, redact


class Deviation(msgspec.Struct, frozen=True):
    setting: str
    # MM2's behaviour: a key's MM2 default from the key table, or words for what has no key
    mm2: str | None
    engine: Callable[[EngineConfig, FlowConfig], str]
    why: str
    # the keys whose presence in the file means the user chose the value
    keys: tuple[str, ...] = ()


def _given(config: EngineConfig, flow: FlowConfig, keys: tuple[str, ...]) -> str | None:
    """The key as written in the file, per flow, per cluster or at the top level."""
    for key in keys:
        for name in (f"{flow.name}.{key}", f"{flow.source}.{key}", f"{flow.target}.{key}", key):
            if name in config.raw:
                return name
    return None


DEVIATIONS = (
    Deviation("tasks.max", MM2["tasks.max"].mm2, lambda c, f: str(f.tasks_max or "the CPUs this process may use"),
              "one worker process per partition group; MM2's 1 wastes the machine", ("tasks.max",)),
    Deviation("source isolation.level", "read_uncommitted (aborted transactions are copied)",
              lambda c, f: f.source_consumer.get("isolation.level", "read_committed"),
              "aborted records are not data", ("consumer.isolation.level", "source.consumer.isolation.level")),
    Deviation("offset.flush.interval.ms", MM2["offset.flush.interval.ms"].mm2,
              lambda c, f: str(f.offset_flush_interval_ms),
              "a crash copies at most a few seconds of records again", ("offset.flush.interval.ms",)),
    Deviation("data producer", "enable.idempotence=false, one request in flight",
              lambda c, f: "enable.idempotence=true, acks=all, pipelined",
              "ordered acks per partition with pipelining; no duplicates from retries"),
    Deviation("restart after a crash", "copies again what the target acknowledged after the last stored offsets",
              lambda c, f: _restart(f), "records acknowledged before the crash are not written twice",
              (RESUME_KEY,)),
    Deviation("source position outside the log", "auto.offset.reset=earliest (a silent jump)",
              lambda c, f: "the partition stops, naming the lost offsets",
              "records lost to retention are reported, never skipped quietly"),
    Deviation("checkpoint translation", "last offset sync at or before the group, plus one",
              lambda c, f: "the exact next record" if f.offset_translation == "exact" else "MM2's rule",
              "no re-reads after failover, at any lag", ("offset.translation",)),
    Deviation("consumer groups", "discovered every refresh.groups.interval.seconds (600)",
              lambda c, f: "listed at every checkpoint round", "new groups are checkpointed within one interval"),
    Deviation("heartbeats topics and record filters", "SMTs apply to every record",
              lambda c, f: "heartbeats are never filtered", "a filter must not hide the topology"),
    Deviation("cycles of flows", "aliases are trusted",
              lambda c, f: "a topic an identity-policy cycle would copy all the way round is copied by none of its "
                           "flows; two aliases of one cluster are refused",
              "MM2 copies such records round and round"),
    Deviation("Connect status and config topics",
              "mm2-status.<source>.internal, mm2-configs.<source>.internal on the target (or status.storage.topic, "
              "config.storage.topic)",
              lambda c, f: _connect_topics(c, f),
              "the engine runs no Connect worker or connectors; MM2's topics are left alone"),
)


def _restart(flow: FlowConfig) -> str:
    if flow.exactly_once:
        return "as MM2 in exactly-once mode: nothing uncommitted is visible"
    if not flow.resume_from_target_enabled:
        return "as MM2"
    if flow.policy_class == IDENTITY_POLICY_CLASS:
        return "as MM2: with the identity policy others may write to the remote topics"
    return "resumes after the copies the target already holds"


def _connect_topics(config: EngineConfig, flow: FlowConfig) -> str:
    """None kept, and the file's keys for them, as MM2's herder into the flow's target reads them."""
    given = []
    for key in ("status.storage.topic", "config.storage.topic"):
        name = worker_key(config.raw, flow.target, key)
        if name is not None:
            given.append(f"{name} = {config.raw[name].strip()}")
    return "none kept" + (f"; {', '.join(given)} noted, not used" if given else "")


def report(config: EngineConfig) -> str:
    lines = ["clusters:"]
    for alias, cluster in sorted(config.clusters.items()):
        lines.append(f"  {alias}: bootstrap.servers = {cluster.bootstrap_servers}")
        lines += _settings(cluster.client, "    ")
    lines.append("flows:")
    for flow in config.flows:
        lines.append(f"  {flow.name}:")
        lines.append(f"    topics = {flow.topics}; topics.exclude = {flow.topics_exclude}")
        lines.append(f"    groups = {flow.groups}; groups.exclude = {flow.groups_exclude}")
        progress_key = worker_key(config.raw, flow.target, "offset.storage.topic")
        lines.append(f"    progress = {flow.offsets_topic} on {flow.target} "
                     f"({f'set by {progress_key}' if progress_key else 'the default'}; where MM2 keeps it too)")
        if flow.record_filter is not None:
            given = [f"{name} = {_shown(value)}" for name, value in msgspec.structs.asdict(flow.record_filter).items()
                     if value not in (None, (), [])]
            lines.append(f"    record filter: {'; '.join(given)}")
        lines.append(f"    policy = {flow.policy_class.rsplit('.', 1)[1]}; exactly-once = "
                     f"{'enabled' if flow.exactly_once else 'disabled'}; compression = {flow.producer_compression}")
        loop, why = flow_loop(config.loop, flow, config.cluster(flow.source), config.cluster(flow.target))
        lines.append(f"    loop = {loop} ({why})")
        lines += [f"    {line}" for line in _review(config, flow)]
        for role in ("source_consumer", "target_producer", "source_admin", "target_admin"):
            overrides = getattr(flow, role)
            if overrides:
                lines.append(f"    {role.replace('_', ' ')} overrides (librdkafka):")
                lines += _settings(overrides, "      ")
    targets = sorted({flow.target for flow in config.flows})
    lines.append(f"scale-out: the instances of group {config.group_id} share the partitions (groups on cluster "
                 f"{', '.join(targets)}; session timeout {config.group_session_timeout_ms} ms)"
                 if config.group_id else "scale-out: off (mirror.engine.group.id not set): this instance copies every "
                                         "partition")
    cycles = cycle_remarks(config.all_flows or config.flows)  # what `run` logs at start, word for word
    if config.remarks or cycles:
        lines.append("remarks:")
        lines += [f"  {remark}" for remark in [*config.remarks, *cycles]]
    lines.append("")
    lines.append("where mirror-engine differs from MM2's defaults:")
    lines.append("| flow | setting | MM2 | mirror-engine | why |")
    lines.append("|---|---|---|---|---|")
    # one row per setting and value: a file of 12 flows that agree gets one row, not 12
    for deviation in DEVIATIONS:
        by_value: dict[str, list[str]] = {}
        for flow in config.flows:
            value = deviation.engine(config, flow)
            set_by = _given(config, flow, deviation.keys)
            by_value.setdefault(value + (f" (set by {set_by})" if set_by else ""), []).append(flow.name)
        for value, names in by_value.items():
            flows = "every flow" if len(names) == len(config.flows) > 1 else ", ".join(names)
            lines.append(f"| {flows} | {deviation.setting} | {deviation.mm2} | {value} | {deviation.why} |")
    return redact("\n".join(lines))


def _switch(enabled: bool, interval_s: float | None = None) -> str:
    if not enabled:
        return "off"
    return "on" if interval_s is None else f"every {interval_s:g} s"


def _review(config: EngineConfig, flow: FlowConfig) -> list[str]:
    """The settings a reviewer of a replication file checks first: replication factors, what is emitted
    and synced and how often, heartbeats, how often topics are looked for and progress is stored."""
    beats = [h for h in config.heartbeats if (h.source, h.target) == (flow.source, flow.target)]
    return [
        f"replication factors: remote topics {flow.replication_factor}, progress "
        f"{flow.offset_storage_replication_factor}, offset syncs {flow.offset_syncs_topic_replication_factor}, "
        f"checkpoints {flow.checkpoints_topic_replication_factor}"
        + (f", heartbeats {beats[0].replication_factor}" if beats else ""),
        f"heartbeats: {f'every {beats[0].interval_s:g} s into {flow.target}' if beats else 'none emitted'}; "
        f"heartbeats topics copied: {_switch(flow.heartbeats_replication_enabled)}",
        f"offset syncs: {_switch(flow.emit_offset_syncs_enabled)}; checkpoints: "
        f"{_switch(flow.emit_checkpoints_enabled, flow.emit_checkpoints_interval_s)}; group offsets synced: "
        f"{_switch(flow.sync_group_offsets_enabled, flow.sync_group_offsets_interval_s)}",
        f"topic configs synced: {_switch(flow.sync_topic_configs_enabled, flow.sync_topic_configs_interval_s)}; "
        f"topic ACLs synced: {_switch(flow.sync_topic_acls_enabled, flow.sync_topic_acls_interval_s)}; "
        f"new topics looked for: {_switch(flow.refresh_topics_enabled, flow.refresh_topics_interval_s)}; "
        f"progress stored every {flow.offset_flush_interval_ms} ms",
    ]


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _settings(settings: dict[str, str], indent: str) -> list[str]:
    lines = []
    for key, value in sorted(masked(settings).items()):
        shown = f"(PEM, {value.count('-----BEGIN')} blocks)" if value.startswith("-----BEGIN") else value
        lines.append(f"{indent}{key} = {shown}")
    return lines
