"""`mirror-engine check-config`: the file as the engine resolved it, secrets hidden, and where the
engine's behaviour differs from MM2's defaults."""

from __future__ import annotations

from typing import Callable

import msgspec

from engine.config import EngineConfig, FlowConfig, worker_key
from engine.coordinator.topology import cycle_remarks
from engine.security.secrets import masked, redact


class Deviation(msgspec.Struct, frozen=True):
    setting: str
    mm2: str
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
    Deviation("tasks.max", "1", lambda c, f: str(f.tasks_max or "the CPUs this process may use"),
              "one worker process per partition group; MM2's 1 wastes the machine", ("tasks.max",)),
    Deviation("source isolation.level", "read_uncommitted (aborted transactions are copied)",
              lambda c, f: f.source_consumer.get("isolation.level", "read_committed"),
              "aborted records are not data", ("consumer.isolation.level", "source.consumer.isolation.level")),
    Deviation("offset.flush.interval.ms", "60000", lambda c, f: str(f.offset_flush_interval_ms),
              "a crash copies at most a few seconds of records again", ("offset.flush.interval.ms",)),
    Deviation("data producer", "enable.idempotence=false, one request in flight",
              lambda c, f: "enable.idempotence=true, acks=all, pipelined",
              "ordered acks per partition with pipelining; no duplicates from retries"),
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
    for flow in config.flows:
        for deviation in DEVIATIONS:
            value = deviation.engine(config, flow)
            given = _given(config, flow, deviation.keys)
            if given:
                value += f" (set by {given})"
            lines.append(f"| {flow.name} | {deviation.setting} | {deviation.mm2} | {value} | {deviation.why} |")
    return redact("\n".join(lines))


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
