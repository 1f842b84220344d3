"""The batch relay's idempotent producer: fetched batches to the target's partition leaders, acks=all.

InitProducerId gives a producer id and epoch; each partition numbers its batches' first records from
sequence 0 on, at most `max_in_flight` (5, the broker keeps the last five batches of a producer) batches
per partition unacknowledged. A batch that fails with a retriable error is sent again with the same
sequence and bytes, and so is every later batch of its partition, in order: the broker answers a batch it
already wrote with its first offset, so a retry never writes twice. Anything else stops the relay with
the partition and the broker's error named.
"""

from __future__ import annotations

import selectors
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.batch import protocol
from engine.batch.brokers import LEADER_ERRORS, Brokers, NoLeader
from engine.batch.connection import BrokerConnectionError
from engine.batch.records import Batch, rewrite

OUT_OF_ORDER_SEQUENCE = 45
RETRIABLE = LEADER_ERRORS | {7, 13, 19, 20, 56}  # timed out, network, not enough replicas (2), storage
RETRY_BACKOFF_S = 0.1
INIT_RETRIABLE = {7, 13, 14, 15, 51}  # timed out, network, coordinator loading / not available, concurrent


class ProduceError(Exception):
    """A batch the target refused for good, or did not take within the delivery timeout."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The target took `record_count` records from source offset `source_offset` at `target_offset` on."""
    topic: str
    partition: int
    source_offset: int
    record_count: int
    target_offset: int
    batch_size: int  # bytes, header included


@dataclass(slots=True)
class _Unacked:
    view: memoryview  # the rewritten batch, as sent
    sequence: int
    record_count: int
    source_offset: int
    waiting: bool = False  # sent, its response not read yet


@dataclass(slots=True)
class _Partition:
    next_sequence: int = 0
    unacked: deque[_Unacked] = field(default_factory=deque)
    failing: bool = False  # a retry is due once none of its batches awaits a response
    retry_at: float = 0.0
    first_failure: float | None = None  # since the last acknowledgement: the delivery timeout


class IdempotentProducer:
    def __init__(self, brokers: Brokers, timeout_ms: int = 30_000, max_in_flight: int = 5,
                 delivery_timeout_s: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self._brokers, self._timeout_ms, self._max_in_flight = brokers, timeout_ms, max_in_flight
        self._delivery_timeout_s, self._clock = delivery_timeout_s, clock
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._waiting: dict[int, deque[tuple[str, int, _Unacked]]] = {}  # node -> responses due, in order
        self.producer_id, self.producer_epoch = -1, -1

    def init(self, timeout_s: float = 30.0) -> None:
        deadline = self._clock() + timeout_s
        while True:
            error, self.producer_id, self.producer_epoch = protocol.read_init_producer_id(
                self._brokers.any_connection().call(protocol.API_INIT_PRODUCER_ID, protocol.init_producer_id_request()))
            if error == 0:
                return
            if error not in INIT_RETRIABLE or self._clock() > deadline:
                raise ProduceError(f"InitProducerId failed with error code {error}")
            time.sleep(0.1)

    def room(self, topic: str, partition: int) -> int:
        """How many more batches this partition may have unacknowledged."""
        state = self._partitions.get((topic, partition))
        return self._max_in_flight - (len(state.unacked) if state else 0)

    def unacked(self) -> int:
        return sum(len(state.unacked) for state in self._partitions.values())

    def send(self, topic: str, partition: int, buffer: memoryview, batch: Batch) -> None:
        """Rewrites the batch in its buffer with the partition's next sequence and sends it."""
        state = self._partitions.setdefault((topic, partition), _Partition())
        if len(state.unacked) >= self._max_in_flight:
            raise ProduceError(f"{topic}-{partition}: more than {self._max_in_flight} batches in flight")
        view = rewrite(buffer, batch, self.producer_id, self.producer_epoch, state.next_sequence)
        entry = _Unacked(view, state.next_sequence, batch.record_count, batch.base_offset)
        state.next_sequence = (state.next_sequence + batch.record_count) & 0x7FFFFFFF
        state.unacked.append(entry)
        if not state.failing:
            self._transmit(topic, partition, entry)

    def _transmit(self, topic: str, partition: int, entry: _Unacked) -> None:
        try:
            node = self._brokers.leader(topic, partition)
            self._brokers.connection(node).send(protocol.API_PRODUCE, protocol.produce_request(
                [(topic, partition, entry.view)], self._timeout_ms))
        except (NoLeader, BrokerConnectionError):
            self._failed(topic, partition, entry)
            return
        entry.waiting = True
        self._waiting.setdefault(node, deque()).append((topic, partition, entry))

    def poll(self, timeout_s: float) -> list[Ack]:
        """Reads the responses that arrive within the timeout (at least those already there), retries
        partitions whose failed batches have all come back; the acknowledged batches in order."""
        acks: list[Ack] = []
        nodes = [node for node, due in self._waiting.items() if due]
        if nodes:
            with selectors.DefaultSelector() as selector:
                for node in nodes:
                    selector.register(self._brokers.connection(node).fileno(), selectors.EVENT_READ, node)
                for key, _ in selector.select(timeout_s):
                    self._read_response(key.data, acks)
        self._retry_due()
        return acks

    def flush(self, timeout_s: float) -> list[Ack]:
        """Waits until every batch sent is acknowledged; raises when that takes longer than the timeout."""
        acks, deadline = [], self._clock() + timeout_s
        while self.unacked():
            if self._clock() > deadline:
                raise ProduceError(f"{self.unacked()} batches not acknowledged within {timeout_s:g} s")
            acks += self.poll(0.2)
        return acks

    def _read_response(self, node: int, acks: list[Ack]) -> None:
        due = self._waiting[node]
        try:
            results = protocol.read_produce(self._brokers.connection(node).receive())
        except BrokerConnectionError:
            self._brokers.forget(node)
            while due:
                self._failed(*due.popleft())
            return
        topic, partition, entry = due.popleft()
        entry.waiting = False
        [result] = [r for r in results if (r.topic, r.partition) == (topic, partition)]
        state = self._partitions[(topic, partition)]
        if result.error == 0 and not state.failing:
            assert state.unacked[0] is entry, "responses of a partition come in the order sent"
            state.unacked.popleft()
            state.first_failure = None
            acks.append(Ack(topic, partition, entry.source_offset, entry.record_count, result.base_offset,
                            len(entry.view)))
        elif result.error == 0 or result.error in RETRIABLE or (
                result.error == OUT_OF_ORDER_SEQUENCE and state.failing):
            if result.error in LEADER_ERRORS:
                self._brokers.forget_leader(topic, partition)
            self._failed(topic, partition, entry)
        else:
            raise ProduceError(f"producing to {topic}-{partition} failed: error code {result.error}"
                               + (f" ({result.message})" if result.message else ""))

    def _failed(self, topic: str, partition: int, entry: _Unacked) -> None:
        entry.waiting = False
        state = self._partitions[(topic, partition)]
        now = self._clock()
        state.failing, state.retry_at = True, now + RETRY_BACKOFF_S
        if state.first_failure is None:
            state.first_failure = now
        elif now - state.first_failure > self._delivery_timeout_s:
            raise ProduceError(f"producing to {topic}-{partition}: not acknowledged within "
                               f"{self._delivery_timeout_s:g} s of retries")

    def _retry_due(self) -> None:
        """Sends a failing partition's batches again, in order, once none of them awaits a response."""
        for (topic, partition), state in self._partitions.items():
            if not state.failing or self._clock() < state.retry_at:
                continue
            if not any(entry.waiting for entry in state.unacked):
                state.failing = False
                for entry in state.unacked:
                    self._transmit(topic, partition, entry)
                    if state.failing:  # no leader or no connection: all of them again at the next retry
                        break
