"""The worker's two relay loops behind one interface (RelayLoop), and the client settings they share.

`c` is engine._fastpath.NativeRelay on librdkafka's C API; `python` is engine.worker.python_relay's
PythonRelay on confluent-kafka's Python API, the benchmarks' baseline and the C loop's oracle. Both
get the same librdkafka settings and account through a Bookkeeper of their own (ledgers, failure,
offset syncs, offset-map runs).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from engine._fastpath import Bookkeeper, NativeRelay, PartitionLedger
from engine.clients import role_connection
from engine.worker.batch_loop import open_batch_loop
from engine.worker.python_relay import open_python_relay

BATCH_SIZE = 2000


@runtime_checkable
class RelayLoop(Protocol):
    """What the worker drives; both loops satisfy it (tests/unit/test_relay_loops.py checks)."""

    bookkeeper: Bookkeeper  # ledgers, record filter, provenance, failure, offset syncs and runs

    def add_partition(self, source_topic: str, remote_topic: str, partition: int, last_committed_offset: int = ...,
                      apply_filter: bool = ...) -> PartitionLedger: ...
    def remove_partition(self, remote_topic: str, partition: int) -> PartitionLedger: ...
    def assign(self, positions: list[tuple[str, int, int]]) -> None:
        """[(topic, partition, start offset)]: what the source consumer reads; -2 = earliest."""
    def pump(self, timeout_ms: int) -> int:
        """Consumes one batch, produces it, serves delivery reports; the records consumed."""
    def serve(self, timeout_ms: int) -> None: ...
    def flush(self, timeout_s: float) -> int: ...
    def positions(self, partitions: list[tuple[str, int]]) -> list[int]: ...
    def source_watermarks(self, topic: str, partition: int, timeout_s: float = ...) -> tuple[int, int]: ...
    def high_watermark(self, topic: str, partition: int) -> int: ...
    def produce_record(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None: ...
    def init_transactions(self, timeout_s: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def commit_transaction(self, timeout_s: float) -> None: ...
    def abort_transaction(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


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


def make_relay(loop: str, source: dict[str, str], target: dict[str, str], flow: str, role: str,
               source_alias: str, target_alias: str, compression: str = "none",
               transactional_id: str | None = None, max_message_bytes: int | None = None,
               consumer_overrides: dict[str, str] | None = None,
               producer_overrides: dict[str, str] | None = None) -> RelayLoop:
    """A relay of the given loop kind, with client.ids in MM2's format."""
    consumer = {**role_connection(source, consumer_overrides or {}), **consumer_settings(flow, consumer_overrides)}
    producer = {**role_connection(target, producer_overrides or {}),
                **producer_settings(compression, transactional_id=transactional_id,
                                    max_message_bytes=max_message_bytes, overrides=producer_overrides)}
    consumer_id, producer_id = f"{role}|replication-consumer", f"{role}|replication-producer"
    # a user's client.id goes in front, as in MM2's [userClientId|]A->B|<connector>|<role>
    if "client.id" in consumer:
        consumer_id = f"{consumer.pop('client.id')}|{consumer_id}"
    if "client.id" in producer:
        producer_id = f"{producer.pop('client.id')}|{producer_id}"
    if loop == "batch":
        return open_batch_loop(consumer, producer, consumer_id, producer_id, max_message_bytes, source_alias,
                               target_alias)
    if loop == "python":
        return open_python_relay(consumer, producer, consumer_id, producer_id, BATCH_SIZE, source_alias)
    return NativeRelay({**consumer, "client.id": consumer_id}, {**producer, "client.id": producer_id},
                       BATCH_SIZE, source_alias, target_alias)

