"""`mirror-engine audit`: every partition of a flow read on both clusters and compared."""

from __future__ import annotations

import time
import uuid
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.audit.comparison import PartitionAudit, audit_partition
from engine.clients import client_config, settled_watermarks
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.offsets import wire
from engine.offsets.checkpoints import read_offset_map
from engine.offsets.policy import make_policy
from engine.progress import Progress
from engine.security.acls import LITERAL, WILDCARD, regex_patterns
from engine.worker.kept_records import build_record_filter, record_keeper

READ_TIMEOUT_S = 300.0
DENIED_ERRORS = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)


class AuditRefused(RuntimeError):
    """The principal may not read what the audit must read; the message names it."""


def read_partition(cluster: ClusterConfig, topic: str, partition: int) -> tuple[int, dict[int, tuple]]:
    """(log start, {offset: (key, value, headers, timestamp)}) from the log start to the current end."""
    consumer = Consumer(client_config(cluster, f"audit|{cluster.alias}", **{
        "group.id": f"mirror-engine-audit-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed"}))
    try:
        low, end = settled_watermarks(consumer, topic, partition)  # right after a leader change too
        records: dict[int, tuple] = {}
        if end <= low:
            return low, records
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        done = False
        while not done:
            if time.monotonic() > deadline:
                raise RuntimeError(f"audit: {topic}[{partition}] on cluster {cluster.alias} not read in time")
            for m in consumer.consume(5000, timeout=0.5):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise RuntimeError(f"audit: reading {topic}[{partition}] on {cluster.alias}: {error.str()}")
                offset = cast(int, m.offset())  # a record, not an event: it has an offset
                if offset >= end:
                    done = True
                    continue
                records[offset] = (m.key(), m.value(), m.headers(), m.timestamp()[1])
                if offset + 1 >= end:
                    done = True
        return low, records
    finally:
        consumer.close()


def audit_flow(config: EngineConfig, flow: FlowConfig, topics: list[str] | None = None,
               progress: Progress | None = None) -> list[PartitionAudit]:
    """Audits every partition of the flow's replicated topics (or of `topics`); `progress` counts the
    partitions read (on a terminal)."""


    source, target = config.cluster(flow.source), config.cluster(flow.target)
    policy = make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)
    admin = AdminClient(client_config(source, f"audit|{flow.name}|admin"))
    metadata = admin.list_topics(timeout=15).topics
    topic_filter = flow.topic_filter()
    chosen = topics if topics is not None else sorted(
        t for t in metadata if topic_filter.matches(t) and not policy.is_internal_topic(t)
        and not policy.is_cycle(t, flow.target))
    # a topic the principal may not describe looks absent, without an error: the audit would pass
    # with nothing verified, or call every copy foreign without the offset map
    named = [name for name, kind in regex_patterns(flow.topics) if kind == LITERAL and name != WILDCARD]
    refuse_unreadable(admin, source, [t for t in (topics if topics is not None else named) if t not in metadata])
    target_admin = AdminClient(client_config(target, f"audit|{flow.name}|target-admin"))
    refuse_unreadable(target_admin, target, [wire.offset_map_topic(flow.source)]
                      + [policy.format_remote_topic(flow.source, t) for t in chosen])
    offset_map = read_offset_map(target, flow.source, f"{flow.name}|audit|offset-map-consumer")
    record_filter = build_record_filter(flow.record_filter)
    work = [(topic, partition) for topic in chosen for partition in sorted(metadata[topic].partitions)
            if not (flow.record_filter and flow.record_filter.partitions is not None
                    and partition not in flow.record_filter.partitions and not policy.is_heartbeats_topic(topic))]
    if progress is not None:
        progress.total = len(work)
    results = []
    for done, (topic, partition) in enumerate(work):
        if progress is not None:
            progress.update(done, f"partitions, reading {topic}[{partition}]", force=True)
        keep = record_keeper(None if policy.is_heartbeats_topic(topic) else record_filter,
                             flow.target if flow.provenance_header_enabled else None)
        remote = policy.format_remote_topic(flow.source, topic)
        source_low, source_records = read_partition(source, topic, partition)
        _target_low, target_records = read_partition(target, remote, partition)
        results.append(audit_partition(topic, partition, source_low, source_records, target_records,
                                       offset_map.partitions.get((topic, partition)), keep,
                                       flow.source if flow.provenance_header_enabled else None))
    return results


def refuse_unreadable(admin, cluster: ClusterConfig, topics: list[str]) -> None:
    """Raises, naming them, when the principal may not describe some of these topics."""
    if not topics:
        return
    denied = []
    for name, future in admin.describe_topics(TopicCollection(topics), request_timeout=30).items():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                denied.append(name)
    if denied:
        raise AuditRefused(f"audit: not authorised to read {', '.join(sorted(denied))} on cluster {cluster.alias}: "
                           f"the principal needs an ALLOW READ ACL on each (see `mirror-engine acls --for audit`)")
