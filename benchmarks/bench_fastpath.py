"""Micro-benchmarks of the fast path (opt-in: `make bench`). Read ratios, not absolute numbers.

Each benchmark pairs the compiled path with a plain-Python baseline measured in the same run.
"""

from __future__ import annotations

from collections import deque

from engine._fastpath import Bookkeeper
from engine.offsets.translation import PartitionMap
from engine.worker.python_relay import PythonRelay

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
    def __len__(self): return 100


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
    relay = PythonRelay(None, NullProducer(), Bookkeeper())
    relay.bookkeeper.offset_lag_max = 100
    relay.add_partition("t", "A.t", 0)
    relay.send(BATCH)
    for ack in ACKS:
        relay.on_delivery(None, ack)
    relay.bookkeeper.take_offset_syncs()
    relay.bookkeeper.take_offset_runs()


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


RUNS = [(run * 10, run * 9, run * 10 + 8, run * 9 + 8) for run in range(1000)]  # a gap every 10 records


def test_exact_translation_lookup(benchmark):
    partition_map = PartitionMap()
    for run in RUNS:
        partition_map.add(*run)
    benchmark(lambda: [partition_map.translate(p) for p in range(0, 10_000, 97)])


def test_translation_lookup_baseline_linear_scan(benchmark):
    """The naive lookup: scan the runs for the one holding the position."""

    def translate(position):
        for first_up, first_down, last_up, _ in RUNS:
            if first_up <= position <= last_up:
                return first_down + position - first_up
        return None

    benchmark(lambda: [translate(p) for p in range(0, 10_000, 97)])


AUDIT_RECORDS = [(f"key-{i}".encode(), bytes(range(256)) * 4, [("trace", b"t"), ("n", str(i).encode())],
                  1_700_000_000_000 + i) for i in range(2_000)]


def test_audit_checksum(benchmark):
    from engine.audit.comparison import record_digest

    benchmark(lambda: [record_digest(*record) for record in AUDIT_RECORDS])


def test_audit_checksum_baseline_md5(benchmark):
    """The same fields through hashlib's md5: what the audit would cost with a stock digest."""
    import hashlib
    import struct

    def digest(key, value, headers, timestamp):
        h = hashlib.md5()
        for part in (key, value):
            h.update(struct.pack(">i", len(part)))
            h.update(part)
        for name, header_value in headers:
            h.update(name.encode())
            h.update(header_value)
        h.update(struct.pack(">q", timestamp))
        return h.digest()

    benchmark(lambda: [digest(*record) for record in AUDIT_RECORDS])
