"""Micro-benchmarks of the fast path (opt-in: `make bench`). Read ratios, not absolute numbers.

Each benchmark pairs the compiled path with a plain-Python baseline measured in the same run.
"""

from __future__ import annotations

from collections import deque

from engine._fastpath import Relay
from engine.offsets.translation import PartitionMap

RECORDS = 10_000


class Message:
    __slots__ = ("_offset",)

    def __init__(self, offset: int):
        self._offset = offset

    def topic(self): return "t"
    def partition(self): return 0
    def offset(self): return self._offset
    def key(self): return b"k"
    def value(self): return b"v" * 100
    def headers(self): return None
    def timestamp(self): return (1, 1)
    def error(self): return None


class Acked:
    __slots__ = ("_offset",)

    def __init__(self, offset: int):
        self._offset = offset

    def topic(self): return "A.t"
    def partition(self): return 0
    def offset(self): return self._offset
    def value(self): return b"v" * 100
    def __len__(self): return 100


class NullProducer:
    def produce(self, *args, **kwargs): pass
    def poll(self, timeout): pass


BATCH = [Message(i) for i in range(RECORDS)]
ACKS = [Acked(i) for i in range(RECORDS)]


def relay_batch_with_ack_bookkeeping():
    relay = Relay()
    relay.attach(NullProducer())
    relay.offset_lag_max = 100
    relay.add_partition("t", "A.t", 0)
    relay.send(BATCH)
    for ack in ACKS:
        relay.on_delivery(None, ack)
    relay.take_offset_syncs()
    relay.take_offset_runs()


def python_baseline_batch():
    """The same per-record steps in plain Python: the in-run baseline."""
    in_flight, syncs, last_sync, prev = deque(), [], -1, -1
    producer = NullProducer()
    for m in BATCH:
        producer.produce("A.t", m.value(), m.key(), 0, timestamp=m.timestamp()[1], headers=m.headers())
        in_flight.append(m.offset())
    for ack in ACKS:
        upstream = in_flight.popleft()
        downstream = ack.offset()
        if last_sync < 0 or downstream - (last_sync + 1) >= 100 or upstream - prev != 1:
            syncs.append((upstream, downstream))
            last_sync = downstream
        prev = upstream


def test_relay_and_bookkeeping(benchmark):
    benchmark(relay_batch_with_ack_bookkeeping)


def test_python_baseline(benchmark):
    benchmark(python_baseline_batch)


def test_exact_translation_lookup(benchmark):
    partition_map = PartitionMap()
    for run in range(1000):  # a gap every 10 records
        partition_map.add(run * 10, run * 9, run * 10 + 8, run * 9 + 8)
    benchmark(lambda: [partition_map.translate(p) for p in range(0, 10_000, 97)])
