"""Source progress, stored where MM2's dedicated driver stores it.

Herder <source>-><target> keeps the last replicated offset of each source partition in
`mm2-offsets.<source>.internal` on the target (docs/design.md, 'Progress records'), or in the topic the file's
`offset.storage.topic` names (FlowConfig.offsets_topic), so Java MM2 and this engine can take over
from each other. Never a consumer group on the source.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine.clients import settled_watermarks
from engine.offsets import wire

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 60.0


class ProgressError(RuntimeError):
    """Source progress could not be read or stored; the message names the topic and cluster.
    `pending`: the writes were not refused, only not acknowledged yet (the target is slow or away);
    they stay queued in order, so the next store can simply try again."""

    def __init__(self, message: str, pending: bool = False):
        super().__init__(message)
        self.pending = pending


class ProgressStore:
    def __init__(self, source_alias: str, target_alias: str, offsets_topic: str,
                 consumer_config: dict[str, object], producer_config: dict[str, object]):
        self.source_alias = source_alias
        self.target_alias = target_alias
        self.offsets_topic = offsets_topic
        self.offset_map_topic = wire.offset_map_topic(source_alias)
        self._consumer_config = consumer_config
        self._errors: list[str] = []
        self._producer = Producer({
            **producer_config,
            # Connect's offset writer: murmur2 over the key, as Java's default partitioner
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "on_delivery": self._delivered,
        })

    def load(self) -> dict[tuple[str, int], int]:
        """The last replicated offset per (topic, partition) of this source, read to the end."""
        consumer = Consumer({
            **self._consumer_config,
            "group.id": f"{self.offsets_topic}-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        })
        try:
            metadata = consumer.list_topics(self.offsets_topic, timeout=10)
            topic = metadata.topics.get(self.offsets_topic)
            if topic is None or topic.error is not None:
                raise ProgressError(
                    f"progress topic {self.offsets_topic} on cluster {self.target_alias} is not readable: "
                    f"{topic.error if topic else 'missing'}"
                )
            ends = {}
            for p in topic.partitions:
                low, high = self._watermarks(consumer, p)
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(self.offsets_topic, p, OFFSET_BEGINNING) for p in ends])
            stored: dict[tuple[str, int], int] = {}
            remaining = dict(ends)
            deadline = time.monotonic() + LOAD_TIMEOUT_S
            while remaining:
                if time.monotonic() > deadline:
                    raise ProgressError(
                        f"timed out reading progress topic {self.offsets_topic} on cluster {self.target_alias}"
                    )
                for message in consumer.consume(500, timeout=0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.pop(message.partition(), None)
                            continue
                        raise ProgressError(
                            f"reading {self.offsets_topic} on cluster {self.target_alias}: {error.str()}"
                        )
                    try:
                        decoded = wire.decode_source_offset(message.key(), message.value())
                    except ValueError as damaged:  # WireError, bad UTF-8 or JSON
                        # an older entry of that partition (or none) stays: records are copied
                        # again, never skipped
                        log.error("damaged progress record in %s[%d]@%d on cluster %s, ignored: %s; the "
                                  "partition resumes from the entry before it", self.offsets_topic,
                                  message.partition(), message.offset(), self.target_alias, damaged)
                        decoded = None
                    if decoded is not None and decoded[0].cluster == self.source_alias:
                        where, offset = decoded
                        if offset is None:
                            stored.pop((where.topic, where.partition), None)
                        else:
                            stored[(where.topic, where.partition)] = offset
                    if cast(int, message.offset()) + 1 >= remaining.get(message.partition(), -1):  # a record
                        remaining.pop(message.partition(), None)
            return stored
        finally:
            consumer.close()

    def _watermarks(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        """Retries what a just-created topic answers while its leaders settle."""
        try:
            return settled_watermarks(consumer, self.offsets_topic, partition, LOAD_TIMEOUT_S)
        except KafkaException as error:
            raise ProgressError(f"cannot read progress topic {self.offsets_topic} on cluster {self.target_alias}: "
                                f"{error.args[0].str()}") from None

    def run_records(self, runs: list[tuple[str, int, int, int, int, int]]) -> list[tuple[str, int, bytes, bytes]]:
        """(topic, partition, key, value) of offset-map entries: partition 0 of the map topic."""
        return [(self.offset_map_topic, 0, entry.key(), entry.value()) for entry in (wire.OffsetRun(*r) for r in runs)]

    def progress_records(self, progress: list[tuple[str, int, int]]) -> list[tuple[str, int, bytes, bytes]]:
        """(topic, partition, key, value) of progress entries; partition -1: murmur2 of the key."""
        return [(self.offsets_topic, -1, wire.source_offset_key(self.source_alias, topic, partition),
                 wire.source_offset_value(offset)) for topic, partition, offset in progress]

    def store_runs(self, runs: list[tuple[str, int, int, int, int, int]], timeout_s: float = 30.0) -> None:
        """Writes runs of copies to the offset map and waits for the acks.

        Called before the progress they cover is stored: a consumer translated through a map
        with a missing run would skip that run's records.
        """
        self._write(self.run_records(runs), timeout_s, self.offset_map_topic)

    def store(self, progress: list[tuple[str, int, int]], timeout_s: float = 30.0) -> None:
        """Writes (topic, partition, last replicated offset) entries and waits for the acks."""
        self._write(self.progress_records(progress), timeout_s, self.offsets_topic)

    def _write(self, records: list[tuple[str, int, bytes, bytes]], timeout_s: float, topic: str) -> None:
        for record_topic, partition, key, value in records:
            if partition < 0:
                self._producer.produce(record_topic, key=key, value=value)
            else:
                self._producer.produce(record_topic, key=key, value=value, partition=partition)
        self._wait(timeout_s, topic)

    def _wait(self, timeout_s: float, topic: str) -> None:
        remaining = self._producer.flush(timeout_s)
        if self._errors:
            errors, self._errors = self._errors, []
            raise ProgressError(f"writing {topic} on cluster {self.target_alias} failed: {errors[0]}")
        if remaining:
            raise ProgressError(
                f"writing {topic} on cluster {self.target_alias}: {remaining} writes unacknowledged after "
                f"{timeout_s:.0f}s", pending=True
            )

    def _delivered(self, err, _message) -> None:
        if err is not None:
            self._errors.append(err.str())

