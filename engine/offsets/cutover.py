"""`mirror-engine cutover`: the last step of a migration from one cluster to another.

With producers stopped on the old cluster and the flow still running, waits until the copy has
read every replicated partition to its end (lag 0), translates every selected consumer group
exactly and commits the offsets on the new cluster, then says what producers and consumers must
switch. Meant for IdentityReplicationPolicy, where topic names stay the same.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.clients import client_config
from engine.config.model import EngineConfig
from engine.config.values import ConfigError
from engine.filters import compile_list
from engine.offsets.checkpoints import OffsetMapReader
from engine.offsets.failover import FailoverError, Move, _committed, _flow
from engine.offsets.policy import make_policy
from engine.progress import Progress


def _end_offsets(config: EngineConfig, alias: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(client_config(config.cluster(alias), f"cutover|{alias}|end-offsets", **{
        "group.id": f"mirror-engine-cutover-{uuid.uuid4().hex}"}))
    try:
        ends = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=15).topics[topic]
            for partition in metadata.partitions:
                ends[(topic, partition)] = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                                         timeout=15)[1]
        return ends
    finally:
        consumer.close()


def run_cutover(config: EngineConfig, source: str, target: str, groups_pattern: str | None,
                timeout_s: float, say=print) -> int:
    flow = _flow(config, source, target)
    if flow is None:
        raise ConfigError(f"{source}->{target}.enabled", "cut-over needs this flow configured (and running)")
    policy = make_policy(flow.policy_class, source, flow.separator, flow.internal_separator_enabled)
    source_admin = AdminClient(client_config(config.cluster(source), f"cutover|{source}|admin"))
    target_admin = AdminClient(client_config(config.cluster(target), f"cutover|{target}|admin"))
    topic_filter = flow.topic_filter()
    topics = sorted(t for t in source_admin.list_topics(timeout=15).topics
                    if topic_filter.matches(t) and not policy.is_internal_topic(t)
                    and not policy.is_cycle(t, target))
    if not topics:
        raise FailoverError(f"the {flow.name} flow selects no topic on cluster {source}")

    # 1. lag 0: the copy has read every partition to the end the source has now
    ends = _end_offsets(config, source, topics)
    reader = OffsetMapReader(config.cluster(target), source, f"{flow.name}|cutover|offset-map-consumer")
    deadline = time.monotonic() + timeout_s
    progress = Progress(f"cutover {flow.name}: lag 0 on", len(ends))
    try:
        while True:
            offset_map = reader.read_to_end()
            behind = {key: end for key, end in ends.items()
                      if end > 0 and offset_map.translate(key[0], key[1], end) is None}
            if not behind:
                break
            if time.monotonic() > deadline:
                shown = ", ".join(f"{t}[{p}]" for t, p in sorted(behind)[:10])
                raise FailoverError(f"the copy is still behind on {len(behind)} partitions after {timeout_s:.0f}s "
                                    f"({shown}); are producers on {source} stopped and the engine running?")
            progress.update(len(ends) - len(behind), "partitions; waiting for the copy")
            time.sleep(1)
        progress.close()

        # 2. every selected group, translated exactly and committed on the target
        pattern = compile_list(groups_pattern or flow.groups, "--groups" if groups_pattern else "groups")
        exclude = compile_list(flow.groups_exclude, "groups.exclude")
        listing = source_admin.list_consumer_groups(request_timeout=30).result()
        groups = sorted(g.group_id for g in listing.valid
                        if pattern is not None and pattern.fullmatch(g.group_id)
                        and not (exclude is not None and exclude.fullmatch(g.group_id)))
        moved = []
        progress = Progress(f"cutover {flow.name}: groups", len(groups))
        for done, group in enumerate(groups):
            progress.update(done, group)
            committed = _committed(source_admin, group)
            moves = []
            for (topic, partition), (offset, metadata) in sorted(committed.items()):
                if topic not in topics:
                    continue
                new = offset_map.translate(topic, partition, offset)
                if new is None:
                    raise FailoverError(f"group {group!r}: {topic}[{partition}]@{offset} cannot be translated")
                moves.append(Move(policy.format_remote_topic(source, topic), partition, offset, None, new, metadata))
            if not moves:
                continue
            description = target_admin.describe_consumer_groups([group], request_timeout=30)[group].result()
            if description.members:
                raise FailoverError(f"group {group!r} already has {len(description.members)} active members on "
                                    f"cluster {target}; nothing more was changed")
            request = ConsumerGroupTopicPartitions(group, [
                TopicPartition(m.topic, m.partition, m.new, metadata=m.metadata) if m.metadata
                else TopicPartition(m.topic, m.partition, m.new) for m in moves])
            target_admin.alter_consumer_group_offsets([request], request_timeout=30)[group].result()
            moved.append((group, moves))
    finally:
        progress.close()
        reader.close()

    say(f"lag 0 on all {len(ends)} partitions of {len(topics)} topics")
    say("audit: not run (the audit command does not exist yet)")
    for group, moves in moved:
        say(f"group {group}: {len(moves)} offsets committed on {target}")
    servers = config.cluster(target).bootstrap_servers
    say(f"switch producers of {', '.join(policy.format_remote_topic(source, t) for t in topics)} to {target} "
        f"({servers}), then stop the {flow.name} flow")
    if moved:
        say(f"switch consumers of groups {', '.join(g for g, _ in moved)} to {target} ({servers})")
    return 0
