"""The worker's two relay loops behind one interface, and the client settings they share.

    relay.assign([(topic, partition, start offset)])   what the source consumer reads
    relay.pump(timeout_ms) -> records consumed           consume one batch, produce it, serve acks
    relay.serve(timeout_ms) / relay.flush(timeout_s)     delivery reports only
    relay.positions([(topic, partition)]) / relay.high_watermark(topic, partition)
    relay.close()
plus Relay's ledgers, failure and take_offset_syncs / take_offset_runs.

`c` is engine._fastpath.NativeRelay on librdkafka's C API; `python` is PythonRelay below on
confluent-kafka's Python API, the benchmarks' baseline. Both get the same librdkafka settings.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from engine._fastpath import DeliveryFailed, NativeRelay, Relay, TransactionFailed
from engine.clients import client_config, role_connection

BATCH_SIZE = 2000


def consumer_settings(flow: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's defaults, the user's overrides (A.consumer.*, already in librdkafka's names and
    without the keys the engine decides), then what the engine must decide itself."""
    return {
        "isolation.level": "read_committed",
        # prefetch bound: the source's share of a worker's memory (librdkafka default 64 MiB)
        "queued.max.messages.kbytes": "32768",
        **(overrides or {}),
        # librdkafka wants a group id even for assign(); nothing is ever committed to it
        "group.id": f"mirror-engine-{flow}",
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        # a stored position outside the log is an error, never a silent jump (MM2 jumps to earliest)
        "auto.offset.reset": "error",
    }


def producer_settings(compression: str = "none", linger_ms: int = 5, transactional_id: str | None = None,
                      max_message_bytes: int | None = None, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """As consumer_settings: defaults, the user's overrides (B.producer.*), the engine's own."""
    settings = {
        "linger.ms": str(linger_ms),
        "compression.type": compression,
        # records in flight (librdkafka default 1 GiB): the target's share of a worker's memory;
        # on the C loop these bytes are the consumed records themselves, held until acked
        "queue.buffering.max.kbytes": "65536",
        **(overrides or {}),
        # records without a partition (progress in exactly-once mode) go where Connect puts them
        "partitioner": "murmur2_random",
        "acks": "all",
        # idempotence keeps each partition's delivery reports in produce order (see _fastpath)
        "enable.idempotence": "true",
    }
    if transactional_id:
        settings["transactional.id"] = transactional_id
    if max_message_bytes:
        # the remote topics' record limit: a larger record is refused alone at produce(), and no batch
        # of small records outgrows it (librdkafka defaults: 1,000,000 both)
        settings["message.max.bytes"] = str(max_message_bytes)
        settings["batch.size"] = str(min(max_message_bytes, int(settings.get("batch.size", 1_000_000))))
    return settings


class PythonRelay(Relay):
    """The relay loop on confluent-kafka's Python API: a Python object per record."""

    def __init__(self, consumer_config: dict[str, str], producer_config: dict[str, str],
                 consumer_id: str, producer_id: str, batch_size: int = BATCH_SIZE, source_alias: str = "source"):
        super().__init__()
        self.source_alias = source_alias
        self.batch_size = batch_size
        self.consumer = Consumer(client_config(consumer_config, consumer_id))
        self.producer = Producer(client_config(producer_config, producer_id, on_delivery=self.on_delivery))
        self.attach(self.producer)

    def assign(self, positions: list[tuple[str, int, int]]) -> None:
        self.consumer.assign([TopicPartition(t, p, o) for t, p, o in positions])

    def pump(self, timeout_ms: int) -> int:
        # one record waited for, then what is already fetched: a batch never waits to fill up
        batch = self.consumer.consume(1, timeout=timeout_ms / 1000)
        if batch:
            batch += self.consumer.consume(self.batch_size - 1, timeout=0)
        if batch:
            self.send(batch)
        self.producer.poll(0)
        return len(batch)

    def serve(self, timeout_ms: int) -> None:
        self.producer.poll(timeout_ms / 1000)

    def flush(self, timeout_s: float) -> int:
        return self.producer.flush(timeout_s)

    def positions(self, partitions: list[tuple[str, int]]) -> list[int]:
        return [p.offset for p in self.consumer.position([TopicPartition(t, p) for t, p in partitions])]

    def source_watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)

    def high_watermark(self, topic: str, partition: int) -> int:
        try:
            # cached: the high watermark from the last fetch response, no request
            end = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
        except KafkaException:
            return -1
        return end if end is not None and end >= 0 else -1

    def close(self) -> None:
        self.consumer.close()

    def produce_record(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                if partition < 0:
                    self.producer.produce(topic, value, key, on_delivery=self._control_delivered)
                else:
                    self.producer.produce(topic, value, key, partition, on_delivery=self._control_delivered)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _control_delivered(self, err, message) -> None:
        if err is not None and self.failure is None:
            self.failure = DeliveryFailed(f"writing {message.topic()} failed: {err.str()}")

    def init_transactions(self, timeout_s: float) -> None:
        self._transaction(lambda: self.producer.init_transactions(timeout_s), "initialise transactions")

    def begin_transaction(self) -> None:
        self._transaction(self.producer.begin_transaction, "begin a transaction")

    def commit_transaction(self, timeout_s: float) -> None:
        self._transaction(lambda: self.producer.commit_transaction(timeout_s), "commit a transaction")

    def abort_transaction(self, timeout_s: float) -> None:
        self._transaction(lambda: self.producer.abort_transaction(timeout_s), "abort a transaction")

    @staticmethod
    def _transaction(call, what: str) -> None:
        try:
            call()
        except KafkaException as error:
            raise TransactionFailed(f"cannot {what}: {error.args[0].str()}", error.args[0].fatal()) from None


def make_relay(loop: str, source: dict[str, str], target: dict[str, str], flow: str, role: str,
               source_alias: str, target_alias: str, compression: str = "none",
               transactional_id: str | None = None, max_message_bytes: int | None = None,
               consumer_overrides: dict[str, str] | None = None,
               producer_overrides: dict[str, str] | None = None) -> Relay:
    """A relay of the given loop kind, with client.ids in MM2's format."""
    consumer = {**role_connection(source, consumer_overrides or {}), **consumer_settings(flow, consumer_overrides)}
    producer = {**role_connection(target, producer_overrides or {}), **producer_settings(compression, transactional_id=transactional_id,
                                              max_message_bytes=max_message_bytes, overrides=producer_overrides)}
    consumer_id, producer_id = f"{role}|replication-consumer", f"{role}|replication-producer"
    # a user's client.id goes in front, as in MM2's [userClientId|]A->B|<connector>|<role>
    if "client.id" in consumer:
        consumer_id = f"{consumer.pop('client.id')}|{consumer_id}"
    if "client.id" in producer:
        producer_id = f"{producer.pop('client.id')}|{producer_id}"
    if loop == "python":
        return PythonRelay(consumer, producer, consumer_id, producer_id, source_alias=source_alias)
    return NativeRelay({**consumer, "client.id": consumer_id}, {**producer, "client.id": producer_id},
                       BATCH_SIZE, source_alias, target_alias)

