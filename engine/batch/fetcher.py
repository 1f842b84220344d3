"""The batch relay's fetcher: whole batches of a set of source partitions, from each partition's position on.

One Fetch request per leader broker (read_committed, no fetch session), the responses read in place.
Each partition's position moves past the batches handed out. The first batch of a resume may start before
the position: its remaining records come as a batch of their own (engine/batch/trim.py). A batch that
part 1 does not copy as bytes stops its partition there, with the reason (`stopped`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from engine.batch import protocol
from engine.batch.brokers import LEADER_ERRORS, Brokers, NoLeader
from engine.batch.connection import BrokerConnectionError
from engine.batch.records import Batch, copy_refusal, read_batches
from engine.batch.trim import trim_head

OFFSET_OUT_OF_RANGE = 1
EARLIEST = -2  # a position to assign: the partition's log start, learnt from the first Fetch


class FetchError(Exception):
    """A source partition that cannot be read from its position on."""


@dataclass(frozen=True, slots=True)
class Fetched:
    topic: str
    partition: int
    buffer: memoryview  # writable: the producer rewrites the batch where it lies
    batch: Batch


class Fetcher:
    def __init__(self, brokers: Brokers, max_wait_ms: int = 500, max_bytes: int = 50 * 1024 * 1024,
                 partition_max_bytes: int = 1024 * 1024, max_message_bytes: int | None = None):
        self._brokers = brokers
        self._max_wait_ms, self._max_bytes, self._partition_max_bytes = max_wait_ms, max_bytes, partition_max_bytes
        self._max_message_bytes = max_message_bytes
        self.positions: dict[tuple[str, int], int] = {}
        self.stopped: dict[tuple[str, int], tuple[int, str]] = {}  # partition -> (offset, why)
        self.high_watermarks: dict[tuple[str, int], int] = {}
        self.log_start_offsets: dict[tuple[str, int], int] = {}
        self._earliest: set[tuple[str, int]] = set()

    def assign(self, topic: str, partition: int, offset: int) -> None:
        """From `offset` on; EARLIEST: from the log start (offset 0, moved to the log start if out of range)."""
        self.positions[(topic, partition)] = max(offset, 0)
        self._earliest.discard((topic, partition))
        if offset == EARLIEST:
            self._earliest.add((topic, partition))
        self.stopped.pop((topic, partition), None)

    def remove(self, topic: str, partition: int) -> None:
        for table in (self.positions, self.stopped, self.high_watermarks, self.log_start_offsets):
            table.pop((topic, partition), None)
        self._earliest.discard((topic, partition))

    def fetch(self, max_wait_ms: int | None = None, paused: Collection[tuple[str, int]] = frozenset()) -> list[Fetched]:
        """The batches fetched from every partition not stopped or paused, each partition's in order."""
        by_leader: dict[int, list[tuple[str, int, int, int]]] = {}
        for (topic, partition), offset in self.positions.items():
            if (topic, partition) in self.stopped or (topic, partition) in paused:
                continue
            try:
                leader = self._brokers.leader(topic, partition)
            except NoLeader:
                continue
            by_leader.setdefault(leader, []).append((topic, partition, offset, self._partition_max_bytes))
        wait = self._max_wait_ms if max_wait_ms is None else max_wait_ms
        sent = []
        for leader, partitions in by_leader.items():
            try:
                self._brokers.connection(leader).send(protocol.API_FETCH, protocol.fetch_request(
                    partitions, max_wait_ms=wait, min_bytes=1, max_bytes=self._max_bytes))
                sent.append(leader)
            except BrokerConnectionError:
                self._brokers.forget(leader)
        fetched: list[Fetched] = []
        for leader in sent:
            try:
                error, answered = protocol.read_fetch(self._brokers.connection(leader).receive())
            except BrokerConnectionError:
                self._brokers.forget(leader)
                continue
            if error:
                raise FetchError(f"Fetch from broker {leader} failed with error code {error}")
            for part in answered:
                fetched += self._batches(part)
        return fetched

    def _batches(self, part: protocol.FetchedPartition) -> list[Fetched]:
        key = (part.topic, part.partition)
        if part.error in LEADER_ERRORS:
            self._brokers.forget_leader(*key)
            return []
        if key not in self.positions:
            return []  # removed while the Fetch was out
        if part.error == OFFSET_OUT_OF_RANGE and key in self._earliest:
            self.positions[key] = part.log_start_offset
            self._earliest.discard(key)
            return []
        if part.error == OFFSET_OUT_OF_RANGE:
            raise FetchError(f"{part.topic}-{part.partition}: offset {self.positions[key]} is outside the log "
                             f"(it starts at {part.log_start_offset})")
        if part.error:
            raise FetchError(f"fetching {part.topic}-{part.partition} failed with error code {part.error}")
        self.high_watermarks[key] = part.high_watermark
        self.log_start_offsets[key] = part.log_start_offset
        self._earliest.discard(key)
        if not part.records:
            return []
        batches, _partial = read_batches(part.records, self.positions[key])
        out = []
        for batch in batches:
            why = copy_refusal(batch, self._max_message_bytes)
            if why is not None:
                self.stopped[key] = (max(batch.base_offset, self.positions[key]), why)
                break
            buffer = part.records
            if batch.base_offset < self.positions[key]:  # a resume inside this batch
                buffer = memoryview(trim_head(part.records, batch, self.positions[key]))
                [batch], _ = read_batches(buffer)
            out.append(Fetched(part.topic, part.partition, buffer, batch))
            self.positions[key] = batch.next_offset
        return out
