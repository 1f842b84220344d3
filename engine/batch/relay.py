"""The batch relay's core: fetched batches from the source to the same partition of the remote topic, byte
for byte but for the header (docs/batch-relay.md), and what the target acknowledged.

`committed` is, per source partition, the offset after the last record the target acknowledged: the
progress to store. `runs` is the offset map: each acknowledged batch maps its source offsets one by one
onto the target offsets from the Produce response's base offset on (a batch without gaps holds
consecutive offsets on both sides). Partitions whose batches part 1 does not copy stop, named in `stopped`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from engine.batch.brokers import Brokers
from engine.batch.fetcher import Fetched, Fetcher
from engine.batch.producer import Ack, IdempotentProducer

# batches fetched ahead per partition before its fetching pauses: the producer's window and as many again
AHEAD = 10


@dataclass(frozen=True, slots=True)
class OffsetRun:
    """Source offsets [source_offset, source_offset + count) are target offsets from target_offset on."""
    topic: str  # the source topic
    partition: int
    source_offset: int
    target_offset: int
    count: int


class BatchRelay:
    def __init__(self, source: Brokers, target: Brokers, fetcher: Fetcher | None = None,
                 producer: IdempotentProducer | None = None,
                 on_sent: Callable[[str, int, Fetched], None] | None = None,
                 on_acked: Callable[[str, int, Ack], None] | None = None):
        """`on_sent(source topic, partition, fetched)` and `on_acked(source topic, partition, ack)`: for the
        worker's bookkeeping, each partition's in order."""
        self._source, self._target = source, target
        self.fetcher = fetcher or Fetcher(source)
        self.producer = producer or IdempotentProducer(target)
        self._remote: dict[tuple[str, int], str] = {}  # source (topic, partition) -> remote topic
        self._source_topic: dict[tuple[str, int], str] = {}  # remote (topic, partition) -> source topic
        self._pending: dict[tuple[str, int], deque[Fetched]] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.runs: dict[tuple[str, int], list[OffsetRun]] = {}  # source partition -> its runs, in order
        self._on_sent, self._on_acked = on_sent, on_acked

    def start(self, timeout_s: float = 30.0) -> None:
        self.producer.init(timeout_s)

    def add_partition(self, source_topic: str, remote_topic: str, partition: int, offset: int) -> None:
        """Copies the partition from source offset `offset` on (the stored progress)."""
        self._remote[(source_topic, partition)] = remote_topic
        self._source_topic[(remote_topic, partition)] = source_topic
        self._pending[(source_topic, partition)] = deque()
        self.committed[(source_topic, partition)] = offset
        self.runs.setdefault((source_topic, partition), [])
        self.fetcher.assign(source_topic, partition, offset)

    def remove_partition(self, source_topic: str, partition: int) -> None:
        """Stops copying the partition; batches fetched and not sent are dropped (their progress is not stored)."""
        key = (source_topic, partition)
        self.fetcher.remove(*key)
        for table in (self._pending, self.committed, self.runs):
            table.pop(key, None)
        self._source_topic.pop((self._remote.pop(key), partition), None)

    def position(self, source_topic: str, partition: int) -> int:
        """The first offset not yet handed to the producer."""
        pending = self._pending.get((source_topic, partition))
        if pending:
            return pending[0].batch.base_offset
        return self.fetcher.positions[(source_topic, partition)]

    @property
    def stopped(self) -> dict[tuple[str, int], tuple[int, str]]:
        """Source partitions whose next batch part 1 does not copy: (its offset, why)."""
        return self.fetcher.stopped

    def pump(self, timeout_ms: int) -> int:
        """Fetches, sends what the producer's window allows, reads acknowledgements; the records acknowledged."""
        paused = {key for key, pending in self._pending.items() if len(pending) >= AHEAD}
        fetched_any = False
        if len(paused) < len(self._pending):
            busy = self.producer.unacked() or any(self._pending.values())
            for fetched in self.fetcher.fetch(max_wait_ms=0 if busy else timeout_ms, paused=paused):
                self._pending[(fetched.topic, fetched.partition)].append(fetched)
                fetched_any = True
        self._send()
        # unless the fetch brought more, wait here for an acknowledgement (it returns at the first one): a
        # full window or a caught-up source must not spin
        acked = self._account(self.producer.poll(0.0 if fetched_any else timeout_ms / 1000))
        self._send()
        return acked

    def serve(self, timeout_ms: int) -> int:
        """Reads acknowledgements and sends what they make room for, without fetching."""
        acked = self._account(self.producer.poll(timeout_ms / 1000))
        self._send()
        return acked

    def _send(self) -> None:
        for key, pending in self._pending.items():
            remote = self._remote[key]
            while pending and self.producer.room(remote, key[1]) > 0:
                fetched = pending.popleft()
                self.producer.send(remote, key[1], fetched.buffer, fetched.batch)
                if self._on_sent is not None:
                    self._on_sent(key[0], key[1], fetched)
        self.producer.transmit()

    def _account(self, acks: list[Ack]) -> int:
        records = 0
        for ack in acks:
            topic = self._source_topic.get((ack.topic, ack.partition))
            if topic is None:
                continue  # the partition was removed while this batch was in flight
            if self._on_acked is not None:
                self._on_acked(topic, ack.partition, ack)
            self.committed[(topic, ack.partition)] = ack.source_offset + ack.record_count
            runs = self.runs[(topic, ack.partition)]
            last = runs[-1] if runs else None
            if (last is not None and last.source_offset + last.count == ack.source_offset
                    and last.target_offset + last.count == ack.target_offset):
                runs[-1] = OffsetRun(topic, ack.partition, last.source_offset, last.target_offset,
                                     last.count + ack.record_count)
            else:
                runs.append(OffsetRun(topic, ack.partition, ack.source_offset, ack.target_offset, ack.record_count))
            records += ack.record_count
        return records

    def flush(self, timeout_s: float) -> int:
        """Sends every batch fetched and waits for the target to acknowledge them; the records acknowledged."""
        records = 0
        while any(self._pending.values()):
            self._send()
            records += self._account(self.producer.poll(0.2))
        return records + self._account(self.producer.flush(timeout_s))

    def close(self) -> None:
        self._source.close()
        self._target.close()
