"""The benchmark's records: keys of 8 to 16 bytes, values that compress like real data, one header.

A value is a random half followed by that half again (truncated to the size): lz4 finds the repeat
and roughly halves it, as it would for typical JSON or Avro, instead of compressing random bytes not
at all or a constant to nothing. Values use only letters and digits so that the same pool, one value
a line, can feed Kafka's ProducerPerformance (`--payload-file`) for the ceiling and latency phases.
"""

from __future__ import annotations

import random
import string
import time
from pathlib import Path

ALPHABET = (string.ascii_letters + string.digits).encode()
POOL_SIZE = 512
HEADER_NAME = "seq"
HEADER_VALUE_BYTES = 8


def value_pool(size: int, count: int = POOL_SIZE, seed: int = 7) -> list[bytes]:
    """`count` distinct values of exactly `size` bytes: a random half, then the same half again."""
    rng = random.Random(seed)
    half = max(1, (size + 1) // 2)
    pool = []
    for _ in range(count):
        block = bytes(rng.choice(ALPHABET) for _ in range(half))
        pool.append((block * 2)[:size])
    return pool


def key_for(index: int) -> bytes:
    """8 to 16 bytes: 'k' and the index, zero-padded to at least 8 characters."""
    return b"k%07d" % index


def record_bytes(index: int, value_size: int) -> int:
    """Bytes of key, value and header (name and value) of record `index`."""
    return len(key_for(index)) + value_size + len(HEADER_NAME) + HEADER_VALUE_BYTES


def total_bytes(records: int, value_size: int) -> int:
    """Sum of record_bytes over records 0..records-1, without a loop over every record."""
    total = records * (8 + value_size + len(HEADER_NAME) + HEADER_VALUE_BYTES)
    # a key is 8 bytes up to index 9,999,999, then one byte more per extra digit
    threshold = 10**7
    while threshold < records:
        total += records - threshold
        threshold *= 10
    return total


def write_payload_file(path: Path, size: int) -> Path:
    """The value pool, one value a line, for ProducerPerformance --payload-file."""
    path.write_bytes(b"\n".join(value_pool(size)) + b"\n")
    return path


def preload(servers: str, topic: str, records: int, value_size: int, partitions: int,
            compression: str, timeout_s: float = 600.0, first_index: int = 0) -> float:
    """Produces records first_index .. first_index + records - 1 round-robin over the partitions
    (a top-up continues the keys and the round); returns the seconds it took.

    Written by the ceiling's librdkafka load generator (engine/bench/_floor.pyx load_pass), in this
    process: key_for(i), value_pool(value_size)[i % POOL_SIZE], the 8-byte big-endian header
    HEADER_NAME = i; several times faster than a produce() call per record from Python."""
    import engine.librdkafka  # noqa: F401  (librdkafka's symbols, before the extension loads)
    from engine.bench import _floor

    config = {"bootstrap.servers": servers, "acks": "all", "enable.idempotence": "true", "linger.ms": "20",
              "batch.size": "1000000", "queue.buffering.max.kbytes": "262144", "compression.type": compression,
              "message.timeout.ms": str(int(timeout_s * 1000)), "client.id": "mebench-preload"}
    started = time.monotonic()
    try:
        _floor.load_pass(config, topic, partitions, records, first_index, value_pool(value_size), 2000,
                         lambda _name: None)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"preloading {topic}: {error}") from None
    return time.monotonic() - started
