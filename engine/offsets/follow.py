"""Reading partition 0 of an internal topic to the end it has now, then following it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from engine.clients import client_config, track, untrack
from engine.config.model import ClusterConfig

_NOT_YET = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC,
            KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION)


class TopicFollower:
    """Calls on_record(key, value) for each record of partition 0, in order, up to the current end."""

    def __init__(self, cluster: ClusterConfig, topic: str, client_id: str,
                 on_record: Callable[[bytes | None, bytes | None], None]):
        self.cluster = cluster
        self.topic = topic
        self.on_record = on_record
        self.position = 0
        self.consumer = track(cluster.alias, Consumer(client_config(cluster, client_id, **{
            "group.id": f"mirror-engine-{uuid.uuid4().hex}", "enable.auto.commit": False,
            "enable.partition.eof": True})))
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def read_to_end(self, timeout_s: float = 30.0) -> None:
        """Never less than the end seen at the call: a reader that stops early translates wrongly."""
        try:
            end = self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=10)[1]
        except KafkaException as error:
            if error.args[0].code() in _NOT_YET:
                return  # not created yet, or its leader is settling: nothing to read so far
            raise
        deadline = time.monotonic() + timeout_s
        while self.position < end:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.topic} on cluster {self.cluster.alias} not read to its end "
                                   f"({self.position} of {end}) within {timeout_s:.0f}s")
            for m in self.consumer.consume(1000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        # the end may be a transaction marker, or compaction removed the tail
                        self.position = max(self.position, m.offset())
                        continue
                    raise RuntimeError(f"reading {self.topic} on cluster {self.cluster.alias}: {m.error().str()}")
                self.position = m.offset() + 1
                self.on_record(m.key(), m.value())

    def close(self) -> None:
        untrack(self.consumer)
        self.consumer.close()
