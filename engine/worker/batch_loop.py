"""`mirror.engine.loop = batch` (`run --loop batch`): the batch relay (engine/batch/) behind RelayLoop.

The worker drives it as the other loops and accounts through the same compiled Bookkeeper, so progress,
offset syncs, the offset map and MM2's metrics come out of the same code: each batch handed to the
producer is entered with one call (`sent_batch`) and each acknowledged batch with one (`delivered_batch`),
which apply the per-record rules in C at the target offsets the Produce response gives. Without
decoding the records, a record's value bytes are its share of the batch's records bytes (so MM2's
byte-count counts records bytes as stored, compressed) and its timestamp the batch's max timestamp
(record age and replication latency). What part 1 of the batch relay does not do (a record filter, the
provenance header, exactly-once mode, a producer codec, a secured cluster) keeps the record loop:
engine/batch/choice.py decides and names why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from engine import ipc
from engine._fastpath import Bookkeeper, PartitionFailed, PartitionLedger
from engine.batch.brokers import Brokers
from engine.batch.choice import chosen_loop
from engine.batch.connection import BrokerConnectionError
from engine.batch.fetcher import EARLIEST, Fetched, Fetcher, FetchError
from engine.batch.producer import Ack, IdempotentProducer, ProduceError
from engine.batch.protocol import ProtocolError
from engine.batch.records import HEADER_SIZE, BatchError
from engine.batch.relay import BatchRelay
from engine.batch.security import ClusterRefused, cluster_security

log = logging.getLogger(__name__)
_FAILURES = (BrokerConnectionError, ClusterRefused, FetchError, ProduceError, BatchError, ProtocolError)
_NO_TRANSACTIONS = "the batch loop has no transactions (exactly-once mode needs the record loop)"


def effective_loop(assignment: ipc.Assign) -> str:
    """The loop the worker runs: the one asked for, but the C loop where the batch loop cannot serve."""
    loop, why = chosen_loop(assignment.loop, assignment.record_filter, assignment.provenance,
                            assignment.transactional_id is not None, assignment.compression,
                            assignment.source_client, assignment.target_client)
    if loop != assignment.loop:  # the coordinator decides the same (engine/batch/choice.py); this is a net
        log.warning("worker %s of %s: %s; the C loop copies its partitions", assignment.worker_index, assignment.flow,
                    why)
    return loop


class BatchLoop:
    """The batch relay as a RelayLoop (tests/unit/test_relay_loops.py checks)."""

    def __init__(self, relay_factory, bookkeeper: Bookkeeper | None = None):
        """`relay_factory(on_sent, on_acked)` makes the BatchRelay; open_batch_loop() gives the real one."""
        self.bookkeeper = bookkeeper or Bookkeeper()
        self._ledgers: dict[tuple[str, int], PartitionLedger] = {}  # source (topic, partition) -> ledger
        self.relay: BatchRelay = relay_factory(self._sent, self._acked)
        self._reported_stops: set[tuple[str, int]] = set()

    # -- partitions --------------------------------------------------------------------------------

    def add_partition(self, source_topic: str, remote_topic: str, partition: int, last_committed_offset: int = -1,
                      apply_filter: bool = True) -> PartitionLedger:
        ledger = self.bookkeeper.add_partition(source_topic, remote_topic, partition, last_committed_offset,
                                               apply_filter)
        self._ledgers[(source_topic, partition)] = ledger
        return ledger

    def remove_partition(self, remote_topic: str, partition: int) -> PartitionLedger:
        ledger = self.bookkeeper.remove_partition(remote_topic, partition)
        self._ledgers.pop((ledger.source_topic, partition), None)
        if (ledger.source_topic, partition) in self.relay.committed:
            self.relay.remove_partition(ledger.source_topic, partition)
        return ledger

    def assign(self, positions: list[tuple[str, int, int]]) -> None:
        """[(topic, partition, start offset)], -2 = earliest; what is no longer listed stops."""
        wanted = {(topic, partition) for topic, partition, _ in positions}
        for key in [key for key in self.relay.committed if key not in wanted]:
            self.relay.remove_partition(*key)
        for topic, partition, offset in positions:
            ledger = self._ledgers[(topic, partition)]
            self.relay.add_partition(topic, ledger.remote_topic, partition, EARLIEST if offset < 0 else offset)

    def positions(self, partitions: list[tuple[str, int]]) -> list[int]:
        return [self.relay.position(topic, partition) for topic, partition in partitions]

    def source_watermarks(self, topic: str, partition: int, timeout_s: float = 10.0) -> tuple[int, int]:
        fetcher = self.relay.fetcher
        return (fetcher.log_start_offsets.get((topic, partition), -1),
                fetcher.high_watermarks.get((topic, partition), -1))

    def high_watermark(self, topic: str, partition: int) -> int:
        return self.relay.fetcher.high_watermarks.get((topic, partition), -1)

    # -- the loop ----------------------------------------------------------------------------------

    def pump(self, timeout_ms: int) -> int:
        try:
            acked = self.relay.pump(timeout_ms)
        except _FAILURES as error:
            raise PartitionFailed(f"batch loop: {error}") from None
        self._check_stops()
        return acked

    def serve(self, timeout_ms: int) -> None:
        try:
            self.relay.serve(timeout_ms)
        except _FAILURES as error:
            raise PartitionFailed(f"batch loop: {error}") from None

    def flush(self, timeout_s: float) -> int:
        try:
            self.relay.flush(timeout_s)
        except ProduceError:
            return self.relay.producer.unacked()
        except _FAILURES as error:
            raise PartitionFailed(f"batch loop: {error}") from None
        return 0

    def _check_stops(self) -> None:
        """A partition whose next batch is not copied as bytes stops alone, once what came before is acked."""
        for key, (offset, why) in self.relay.stopped.items():
            if key in self._reported_stops or self.relay.committed.get(key, -1) < offset:
                continue
            self._reported_stops.add(key)
            raise PartitionFailed(f"{key[0]}[{key[1]}]@{offset}: the batch loop does not copy this batch as bytes "
                                  f"({why}); run this flow with mirror.engine.loop = c", key[0], key[1])

    def _sent(self, topic: str, partition: int, fetched: Fetched) -> None:
        batch = fetched.batch
        self.bookkeeper.sent_batch(self._ledgers[(topic, partition)], batch.base_offset, batch.record_count,
                                   batch.max_timestamp, batch.size, batch.size - HEADER_SIZE)

    def _acked(self, topic: str, partition: int, ack: Ack) -> None:
        ledger = self._ledgers.get((topic, partition))
        if ledger is not None:
            self.bookkeeper.delivered_batch(ledger.remote_topic, partition, ack.target_offset, ack.record_count,
                                            ack.batch_size - HEADER_SIZE)

    # -- what the batch loop does not do -------------------------------------------------------------

    def produce_record(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        raise PartitionFailed("the batch loop does not write the engine's own records (exactly-once mode)")

    def init_transactions(self, timeout_s: float) -> None:
        raise PartitionFailed(_NO_TRANSACTIONS)

    def begin_transaction(self) -> None:
        raise PartitionFailed(_NO_TRANSACTIONS)

    def commit_transaction(self, timeout_s: float) -> None:
        raise PartitionFailed(_NO_TRANSACTIONS)

    def abort_transaction(self, timeout_s: float) -> None:
        raise PartitionFailed(_NO_TRANSACTIONS)

    def close(self) -> None:
        self.relay.close()


def open_batch_loop(consumer: Mapping[str, str], producer: Mapping[str, str], consumer_id: str, producer_id: str,
                    max_message_bytes: int | None = None, source_alias: str = "source",
                    target_alias: str = "target") -> BatchLoop:
    """A BatchLoop on its own connections, secured as the consumer's and producer's librdkafka settings say;
    the target's InitProducerId is done here. A refused login or certificate raises ClusterRefused."""
    source_security = cluster_security(source_alias, consumer)
    target_security = cluster_security(target_alias, producer)

    def relay_factory(on_sent, on_acked) -> BatchRelay:
        source = Brokers(consumer["bootstrap.servers"], consumer_id, security=source_security)
        target = Brokers(producer["bootstrap.servers"], producer_id, security=target_security)
        relay = BatchRelay(source, target, Fetcher(source, max_message_bytes=max_message_bytes),
                           IdempotentProducer(target), on_sent, on_acked)
        relay.start()
        return relay

    return BatchLoop(relay_factory)
