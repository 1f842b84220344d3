"""The engine's continuous audit: the newest copied record of each partition compared at every pass."""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from engine.audit.comparison import _without_provenance, record_digest
from engine.audit.flow import DENIED_ERRORS, AuditRefused
from engine.clients import client_config
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.offsets import wire
from engine.offsets.checkpoints import OffsetMapReader


class SamplingAuditor:
    """The engine's continuous audit: at every pass, the newest copied record of each partition is
    read on both clusters and compared, as the full audit compares them. The offset verified last
    is exported per partition (mirror_engine_audit_verified_offset); a mismatch is logged with its
    offsets and counted."""

    def __init__(self, config: EngineConfig, flow: FlowConfig):
        self.flow = flow
        self.source, self.target = config.cluster(flow.source), config.cluster(flow.target)
        self.map_reader = OffsetMapReader(self.target, flow.source, f"{flow.name}|audit-sampler|offset-map-consumer")
        self.verified: dict[tuple[str, int], int] = {}
        self.mismatches = 0

    def sample(self, partitions: list[tuple[str, int, str]]) -> None:
        """One pass over (source topic, partition, remote topic); blocking, run it in a thread."""
        offset_map = self.map_reader.read_to_end()
        for topic, partition, remote in partitions:
            partition_map = offset_map.partitions.get((topic, partition))
            if partition_map is None or not partition_map.runs:
                continue
            upstream = partition_map.last_upstream
            if upstream <= self.verified.get((topic, partition), -1):
                continue
            downstream = partition_map.translate(upstream)
            original = read_record(self.source, topic, partition, upstream)
            if original is None or downstream is None:
                continue  # gone from the source (retention): nothing to compare
            copy = read_record(self.target, remote, partition, downstream)
            if copy is not None and self.flow.provenance_header_enabled:
                copy = _without_provenance(copy, wire.Provenance(self.flow.source, topic, partition, upstream))
            if copy is not None and record_digest(*copy) == record_digest(*original):
                self.verified[(topic, partition)] = upstream
                continue
            self.mismatches += 1
            logging.getLogger(__name__).error(
                "%s: audit sample: %s[%d]@%d on cluster %s does not match its copy %s[%d]@%d on cluster %s",
                self.flow.name, topic, partition, upstream, self.source.alias, remote, partition, downstream,
                self.target.alias)

    def close(self) -> None:
        self.map_reader.close()


def read_record(cluster: ClusterConfig, topic: str, partition: int, offset: int) -> tuple | None:
    """(key, value, headers, timestamp) of one record, None when the offset holds none."""
    consumer = Consumer(client_config(cluster, f"audit|{cluster.alias}", **{
        "group.id": f"mirror-engine-audit-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed", "auto.offset.reset": "error"}))
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for m in consumer.consume(1, timeout=0.5):
                error = m.error()
                if error is not None:
                    if error.code() in DENIED_ERRORS:  # not "no record": the audit cannot look
                        raise AuditRefused(f"audit: reading {topic}[{partition}] on cluster {cluster.alias}: "
                                           f"not authorised: {error.str()}")
                    return None  # the end of the partition, or the offset is gone
                if m.offset() != offset:
                    return None  # compacted away, or a transaction marker
                return m.key(), m.value(), m.headers(), m.timestamp()[1]
        return None
    finally:
        consumer.close()
