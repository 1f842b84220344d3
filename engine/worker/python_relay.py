"""The relay loop on confluent-kafka's Python API (`mirror.engine.loop = python`): plain Python.

The benchmarks' baseline and the oracle of the C loop (engine._fastpath.NativeRelay): both satisfy
engine.worker.relays.RelayLoop and account through the same compiled Bookkeeper, so what differs
between them is only how records are read and written. A Python object per record, by design.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine._fastpath import (
    Bookkeeper,
    DeliveryFailed,
    SourceReadFailed,
    TransactionFailed,
    produce_failed,
    source_error,
    wall_clock_ms,
)
from engine.clients import client_config
from engine.offsets import wire

# a partition just added to the remote topic: how long produce() waits for the producer to see it
UNKNOWN_PARTITION_WAIT_S = 60.0


class PythonRelay:
    """Relays batches of confluent-kafka messages through one producer; the bookkeeper accounts."""

    def __init__(self, consumer: Any, producer: Any, bookkeeper: Bookkeeper, batch_size: int = 2000,
                 source_alias: str = "source"):
        self.consumer = consumer
        self.producer = producer  # reports to delivery_reporter(bookkeeper): see open_python_relay
        self.bookkeeper = bookkeeper
        self.on_delivery = delivery_reporter(bookkeeper)
        self.batch_size = batch_size
        self.source_alias = source_alias

    # -- partitions --------------------------------------------------------------------------------

    def add_partition(self, source_topic: str, remote_topic: str, partition: int, last_committed_offset: int = -1,
                      apply_filter: bool = True):
        return self.bookkeeper.add_partition(source_topic, remote_topic, partition, last_committed_offset, apply_filter)

    def remove_partition(self, remote_topic: str, partition: int):
        return self.bookkeeper.remove_partition(remote_topic, partition)

    def assign(self, positions: list[tuple[str, int, int]]) -> None:
        self.consumer.assign([TopicPartition(t, p, o) for t, p, o in positions])

    def positions(self, partitions: list[tuple[str, int]]) -> list[int]:
        return [p.offset for p in self.consumer.position([TopicPartition(t, p) for t, p in partitions])]

    def source_watermarks(self, topic: str, partition: int, timeout_s: float = 10.0) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)

    def high_watermark(self, topic: str, partition: int) -> int:
        try:
            # cached: the high watermark from the last fetch response, no request
            end = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
        except KafkaException:
            return -1
        return end if end is not None and end >= 0 else -1

    # -- the loop ----------------------------------------------------------------------------------

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

    def send(self, messages: list) -> int:
        """Produces every record of the batch; returns how many were handed to the producer."""
        bookkeeper, produce = self.bookkeeper, self.producer.produce
        admit, sent_one = bookkeeper.admit, bookkeeper.sent
        now_ms = wall_clock_ms()  # one clock reading per batch, as the C loop
        sent = 0
        for message in messages:
            err = message.error()
            if err is not None:
                self._source_error(message, err)
                continue  # the end of a partition
            source_ts = message.timestamp()[1]
            ledger = admit(message, source_ts, now_ms)
            if ledger is None:
                continue  # filtered, a cycle, or not (any more) ours
            offset = message.offset()
            headers = message.headers()
            if ledger.provenance_prefix is not None:
                headers = (headers or []) + [(wire.PROVENANCE_HEADER, wire.provenance_value(ledger.provenance_prefix,
                                                                                            offset))]
            key, value = message.key(), message.value()
            # librdkafka: timestamp 0 means "now", as MM2 replaces -1 with the producer's clock
            timestamp = source_ts if source_ts > 0 else 0
            try:
                produce(ledger.remote_topic, value, key, ledger.partition, timestamp=timestamp, headers=headers)
            except (BufferError, KafkaException) as error:
                if not self._produce_again(error, message, ledger.remote_topic, key, value, timestamp, headers):
                    break  # a delivery failed while the queue was full: the worker raises it
            sent_one(ledger, offset, source_ts, len(message) + (len(key) if key is not None else 0))
            sent += 1
        bookkeeper.records_sent += sent
        return sent

    def _produce_again(self, error: Exception, message, remote: str, key, value, timestamp: int, headers) -> bool:
        """Retries a record produce() refused: False when a failure stops the batch first."""
        partition = message.partition()
        unknown_since = 0.0
        while True:
            if isinstance(error, BufferError):
                # the local queue is full: serve delivery reports, then retry this record
                self.producer.poll(0.05)
                if self.bookkeeper.failure is not None:
                    return False
            else:
                code = error.args[0].code()
                if code != KafkaError._UNKNOWN_PARTITION or monotonic() - (unknown_since or monotonic()) \
                        >= UNKNOWN_PARTITION_WAIT_S:
                    raise produce_failed(self.bookkeeper.flow_name, message.topic(), partition, message.offset(),
                                         remote, "", code, error.args[0].str()) from None
                # a partition just added to the remote topic: wait for the producer's metadata to
                # show it (MM2's producer blocks until it appears)
                unknown_since = unknown_since or monotonic()
                self.producer.list_topics(remote, timeout=1)
                self.producer.poll(0.1)
            try:
                self.producer.produce(remote, value, key, partition, timestamp=timestamp, headers=headers)
                return True
            except (BufferError, KafkaException) as again:
                error = again

    def _source_error(self, message, err) -> None:
        """Raises the consumer's error, unless it only marks the end of a partition."""
        if err.code() == KafkaError._PARTITION_EOF:
            return
        topic, partition = message.topic(), message.partition()
        if topic is None:
            raise SourceReadFailed(f"source cluster: {err.str()}")
        raise source_error(self.bookkeeper.flow_name, self.source_alias, topic, partition, err.code(), err.str(),
                           message.offset() if message.offset() is not None else -1,
                           lambda: self.source_watermarks(topic, partition))

    # -- the engine's own records and exactly-once mode -----------------------------------------------

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
        if err is not None and self.bookkeeper.failure is None:
            self.bookkeeper.failure = DeliveryFailed(f"writing {message.topic()} failed: {err.str()}")

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

    def close(self) -> None:
        self.consumer.close()


def delivery_reporter(bookkeeper: Bookkeeper) -> Callable[[Any, Any], None]:
    """The producer's on_delivery for a bookkeeper: one report, in produce order per partition."""
    delivered = bookkeeper.delivered

    def on_delivery(err, message) -> None:
        if err is None:
            delivered(message.topic(), message.partition(), message.offset(), len(message), None, 0)
        else:  # a failed report has no target offset
            delivered(message.topic(), message.partition(), -1, len(message), err.str(), err.code())

    return on_delivery


def open_python_relay(consumer_config: dict[str, str], producer_config: dict[str, str], consumer_id: str,
                      producer_id: str, batch_size: int = 2000, source_alias: str = "source") -> PythonRelay:
    """A PythonRelay on its own consumer and producer; the producer reports to its bookkeeper."""
    bookkeeper = Bookkeeper()
    consumer = Consumer(client_config(consumer_config, consumer_id))
    producer = Producer(client_config(producer_config, producer_id,
                                      on_delivery=delivery_reporter(bookkeeper)))
    return PythonRelay(consumer, producer, bookkeeper, batch_size, source_alias)
