"""`mirror-engine failover`: move a consumer group from the source cluster to its replica.

Reads the group's newest checkpoints in `<source>.checkpoints.internal` on the target (exact
translations, see engine.offsets.translation), refuses while the group has active members on
the target (their commits would race ours), prints a before/after table per partition and,
unless --dry-run, commits the translated offsets to the group on the target.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from engine import wire
from engine.clients import client_config
from engine.config import ConfigError, EngineConfig


class FailoverError(RuntimeError):
    """Failover refused or impossible; names the group and the cluster."""


@dataclass(frozen=True)
class Move:
    topic: str  # on the target
    partition: int
    source_position: int
    current: int | None  # the group's committed offset on the target now
    new: int
    metadata: str


def read_checkpoints(config: EngineConfig, source: str, target: str, group: str) -> dict[tuple[str, int], wire.Checkpoint]:
    """Newest checkpoint per (remote topic, partition) of the group, read to the topic's end."""
    topic = wire.checkpoints_topic(source)
    cluster = config.cluster(target)
    consumer = Consumer(client_config(cluster, f"{source}->{target}|failover|checkpoints-consumer", **{
        "group.id": f"mirror-engine-failover-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True}))
    try:
        _low, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        latest: dict[tuple[str, int], wire.Checkpoint] = {}
        position = 0
        while position < end:
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        position = end
                        continue
                    raise FailoverError(f"reading {topic} on cluster {target}: {m.error().str()}")
                position = m.offset() + 1
                if m.value() is None:
                    continue
                try:
                    checkpoint = wire.Checkpoint.decode(m.key(), m.value())
                except wire.WireError:
                    continue  # as MM2's readers: skip what does not decode
                if checkpoint.group == group:
                    latest[(checkpoint.topic, checkpoint.partition)] = checkpoint
        return latest
    finally:
        consumer.close()


def plan(config: EngineConfig, group: str, source: str, target: str) -> list[Move]:
    for alias in (source, target):
        if alias not in config.clusters:
            raise ConfigError("clusters", f"cluster {alias!r} is not configured (no {alias}.bootstrap.servers)")
    checkpoints = read_checkpoints(config, source, target, group)
    if not checkpoints:
        raise FailoverError(f"no checkpoint for group {group!r} in {wire.checkpoints_topic(source)} on cluster "
                            f"{target}: is the {source}->{target} flow running with emit.checkpoints.enabled, and "
                            f"has the group committed offsets on replicated topics?")
    admin = AdminClient(client_config(config.cluster(target), f"{source}->{target}|failover|admin"))
    description = admin.describe_consumer_groups([group], request_timeout=30)[group].result()
    if description.members:
        raise FailoverError(f"group {group!r} has {len(description.members)} active members on cluster {target}; "
                            "stop its consumers there first (their commits would overwrite the failover)")
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                  request_timeout=30)[group].result()
    current = {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions if tp.offset >= 0}
    return [
        Move(topic, partition, cp.upstream_offset, current.get((topic, partition)), cp.downstream_offset, cp.metadata)
        for (topic, partition), cp in sorted(checkpoints.items())
    ]


def apply(config: EngineConfig, group: str, target: str, moves: list[Move]) -> None:
    admin = AdminClient(client_config(config.cluster(target), f"failover|{target}|admin"))
    partitions = []
    for m in moves:
        # the source commit's metadata travels with the offset, as MM2's checkpoints carry it
        partitions.append(TopicPartition(m.topic, m.partition, m.new, metadata=m.metadata) if m.metadata
                          else TopicPartition(m.topic, m.partition, m.new))
    request = ConsumerGroupTopicPartitions(group, partitions)
    admin.alter_consumer_group_offsets([request], request_timeout=30)[group].result()


def table(group: str, source: str, target: str, moves: list[Move]) -> str:
    lines = [f"group {group}: {source} -> {target}",
             f"{'topic on ' + target:<40} {'partition':>9} {'position on ' + source:>16} "
             f"{'now on ' + target:>12} {'new on ' + target:>12}"]
    for m in moves:
        now = "-" if m.current is None else str(m.current)
        lines.append(f"{m.topic:<40} {m.partition:>9} {m.source_position:>16} {now:>12} {m.new:>12}")
    return "\n".join(lines)
