"""The batch relay's idempotent producer: fetched batches to the target's partition leaders, acks=all.

InitProducerId gives a producer id and epoch; each partition numbers its batches' first records from
sequence 0 on, at most `max_in_flight` (5, the broker keeps the last five batches of a producer) batches
per partition unacknowledged. A batch that fails with a retriable error is sent again with the same
sequence and bytes, and so is every later batch of its partition, in order: the broker answers a batch it
already wrote with its first offset, so a retry never writes twice. Anything else stops the relay with
the partition and the broker's error named.
"""

from __future__ import annotations

import select
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
    acked_once: bool = False  # the broker knows this producer on this partition


class IdempotentProducer:
    def __init__(self, brokers: Brokers, timeout_ms: int = 30_000, max_in_flight: int = 5,
                 delivery_timeout_s: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self._brokers, self._timeout_ms, self._max_in_flight = brokers, timeout_ms, max_in_flight
        self._delivery_timeout_s, self._clock = delivery_timeout_s, clock
        self._partitions: dict[tuple[str, int], _Partition] = {}
        # node -> the requests whose responses are due, in order: each [((topic, partition), batch)]
        self._waiting: dict[int, deque[list[tuple[tuple[str, int], _Unacked]]]] = {}
        self._queue: dict[tuple[str, int], deque[_Unacked]] = {}  # batches to send at the next transmit()
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
        """How many more batches this partition may have unacknowledged: one until the first is acknowledged.
        A broker takes a producer's first batch on a partition whatever its sequence, so had the first one
        failed (the leader not ready on a new topic), the second would be written before it; once the broker
        knows the producer, it refuses every batch after a missing one and the ordered retry holds."""
        state = self._partitions.get((topic, partition))
        if state is None:
            return 1
        return (self._max_in_flight if state.acked_once else 1) - len(state.unacked)

    def unacked(self) -> int:
        return sum(len(state.unacked) for state in self._partitions.values())

    def send(self, topic: str, partition: int, buffer: memoryview, batch: Batch) -> None:
        """Rewrites the batch in its buffer with the partition's next sequence and queues it; transmit() or
        poll() sends it."""
        state = self._partitions.setdefault((topic, partition), _Partition())
        if self.room(topic, partition) <= 0:
            raise ProduceError(f"{topic}-{partition}: more than {self._max_in_flight if state.acked_once else 1} "
                               "batches in flight")
        view = rewrite(buffer, batch, self.producer_id, self.producer_epoch, state.next_sequence)
        entry = _Unacked(view, state.next_sequence, batch.record_count, batch.base_offset)
        state.next_sequence = (state.next_sequence + batch.record_count) & 0x7FFFFFFF
        state.unacked.append(entry)
        if not state.failing:  # a failing partition sends everything again at its retry
            self._queue.setdefault((topic, partition), deque()).append(entry)

    def transmit(self) -> None:
        """Sends the queued batches: one Produce request per leader holding at most one batch per partition
        (the broker's rule), as many requests as the longest queue needs, each partition's batches in order."""
        by_node: dict[int, list[tuple[str, int]]] = {}
        for key, queue in self._queue.items():
            if queue:
                try:
                    by_node.setdefault(self._brokers.leader(*key), []).append(key)
                except (NoLeader, BrokerConnectionError):
                    self._failed(key[0], key[1], queue[0])
        for node, keys in by_node.items():
            while True:
                request = [(key, self._queue[key].popleft()) for key in keys if self._queue[key]]
                if not request:
                    break
                try:
                    self._brokers.connection(node).send(protocol.API_PRODUCE, protocol.produce_request(
                        [(topic, partition, entry.view) for (topic, partition), entry in request], self._timeout_ms))
                except BrokerConnectionError:
                    self._brokers.forget(node)
                    for (topic, partition), entry in request:
                        self._failed(topic, partition, entry)
                    continue
                for _, entry in request:
                    entry.waiting = True
                self._waiting.setdefault(node, deque()).append(request)

    def poll(self, timeout_s: float) -> list[Ack]:
        """Sends what is queued, reads the responses that arrive within the timeout (returning at the first
        one, and reading all that are there), retries partitions whose failed batches have all come back;
        the acknowledged batches, each partition's in order."""
        self.transmit()
        acks: list[Ack] = []
        fds = {self._brokers.connection(node).fileno(): node for node, due in self._waiting.items() if due}
        if fds:
            readable, _, _ = select.select(list(fds), [], [], timeout_s)
            for fd in readable:
                self._read_response(fds[fd], acks)
        self._retry_due()
        self.transmit()
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
            response = protocol.read_produce(self._brokers.connection(node).receive())
            results = {(r.topic, r.partition): r for r in response}
        except BrokerConnectionError:
            self._brokers.forget(node)
            while due:
                for (topic, partition), entry in due.popleft():
                    self._failed(topic, partition, entry)
            return
        for (topic, partition), entry in due.popleft():
            entry.waiting = False
            result, state = results[(topic, partition)], self._partitions[(topic, partition)]
            if result.error == 0 and not state.failing:
                assert state.unacked[0] is entry, "responses of a partition come in the order sent"
                state.unacked.popleft()
                state.first_failure, state.acked_once = None, True
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
        self._queue.get((topic, partition), deque()).clear()  # the retry sends all unacknowledged batches
        state = self._partitions[(topic, partition)]
        now = self._clock()
        state.failing, state.retry_at = True, now + RETRY_BACKOFF_S
        if state.first_failure is None:
            state.first_failure = now
        elif now - state.first_failure > self._delivery_timeout_s:
            raise ProduceError(f"producing to {topic}-{partition}: not acknowledged within "
                               f"{self._delivery_timeout_s:g} s of retries")

    def _retry_due(self) -> None:
        """Queues a failing partition's batches again, in order, once none of them awaits a response."""
        for key, state in self._partitions.items():
            if state.failing and self._clock() >= state.retry_at and not any(e.waiting for e in state.unacked):
                state.failing = False
                self._queue[key] = deque(state.unacked)
