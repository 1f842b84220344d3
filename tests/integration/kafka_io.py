"""Producing and reading whole topics in tests, record by record, field by field."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

# Explicit record timestamps an hour in the past: recent enough that the brokers' time-based
# retention (7 days) never deletes test data in the middle of a run, as a fixed 2023 date would.
BASE_TIMESTAMP_MS = int(time.time() * 1000) - 3_600_000


@dataclass(frozen=True)
class Record:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


def produce(servers: str, topic: str, records: list[Record]) -> None:
    errors: list = []
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5,
                         "on_delivery": lambda err, _m: err is not None and errors.append(err)})
    for r in records:
        while True:
            try:
                producer.produce(topic, value=r.value, key=r.key, partition=r.partition,
                                 headers=list(r.headers), timestamp=r.timestamp)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0, f"records to {topic} not acknowledged"
    assert not errors, f"producing to {topic} failed: {errors[:3]}"


def end_offsets(servers: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "probe-" + uuid.uuid4().hex})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        return {p: _high_watermark(consumer, topic, p) for p in metadata.partitions}
    finally:
        consumer.close()


def _high_watermark(consumer: Consumer, topic: str, partition: int) -> int:
    """Retries while a just-created partition, or one whose broker restarts or wakes from a freeze,
    has no leader (or the client's metadata does not know it yet: _UNKNOWN_PARTITION)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        except KafkaException as error:
            if error.args[0].code() not in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                            KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def read_all(servers: str, topic: str, timeout_s: float = 60,
             isolation: str = "read_uncommitted") -> dict[int, list[Record]]:
    """Every record of every partition, from the beginning to the end offsets seen at the start."""
    ends = end_offsets(servers, topic)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "reader-" + uuid.uuid4().hex,
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": isolation})
    result: dict[int, list[Record]] = {p: [] for p in ends}
    last_offset: dict[int, int] = {}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"reading {topic}: partitions {pending} not read to the end"
            for m in consumer.consume(1000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        # the position: past transaction markers too, unlike the last record read
                        if max(last_offset.get(m.partition(), -1) + 1, m.offset()) >= ends[m.partition()]:
                            pending.discard(m.partition())
                        continue
                    raise AssertionError(f"reading {topic}: {m.error()}")
                if m.offset() >= ends[m.partition()]:
                    pending.discard(m.partition())
                    continue
                last_offset[m.partition()] = m.offset()
                result[m.partition()].append(
                    Record(m.partition(), m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()[1])
                )
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
        return result
    finally:
        consumer.close()


def keys_by_offset(servers: str, topic: str) -> dict[int, dict[int, bytes | None]]:
    """partition -> offset -> key, for checking offset mappings record by record."""
    result: dict[int, dict[int, bytes | None]] = {}
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "offsets-" + uuid.uuid4().hex,
                         "enable.auto.commit": False, "enable.partition.eof": True})
    ends = end_offsets(servers, topic)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        seen = {p: 0 for p in ends}
        deadline = time.monotonic() + 60
        while any(seen[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"reading {topic}: not read to the end"
            for m in consumer.consume(1000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        # the end may be a transaction marker, which no consumer ever sees
                        seen[m.partition()] = ends[m.partition()]
                    continue
                result.setdefault(m.partition(), {})[m.offset()] = m.key()
                seen[m.partition()] = m.offset() + 1
        return result
    finally:
        consumer.close()


def raw_records(servers: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of a topic, partition by partition."""
    return [(r.key, r.value) for records in read_all(servers, topic).values() for r in records]


def mm2_properties(source, target, extra: dict[str, str] | None = None) -> str:
    """A minimal mm2.properties for flow A->B on the test clusters (single node: RF 1)."""
    lines = {
        "clusters": "A, B",
        "A.bootstrap.servers": source.bootstrap_servers,
        "B.bootstrap.servers": target.bootstrap_servers,
        "A->B.enabled": "true",
        "replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "B.offset.flush.interval.ms": "1000",
        "refresh.topics.interval.seconds": "5",
        "mirror.engine.metrics.listen": "127.0.0.1:0",
        "heartbeats.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
    }
    lines.update(extra or {})
    return "".join(f"{k} = {v}\n" for k, v in lines.items())


def stored_progress(servers: str, offsets_topic: str) -> dict[bytes, dict]:
    """The newest JSON value per key in a Connect offsets topic."""
    latest: dict[bytes, dict] = {}
    for key, value in raw_records(servers, offsets_topic):
        if key is not None:
            latest[key] = json.loads(value) if value is not None else None
    return latest


class SteadyProducer:
    """Writes batches of records to a topic in the background until the `with` block ends;
    `written` holds every record acknowledged, in order. `make(first_index)` makes a batch."""

    def __init__(self, servers: str, topic: str, make):
        import threading

        self.servers, self.topic, self.make = servers, topic, make
        self.written: list[Record] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.make(len(self.written))
            produce(self.servers, self.topic, batch)
            self.written.extend(batch)
            self._stop.wait(0.05)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
