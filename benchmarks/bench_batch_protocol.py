"""The batch relay's protocol client and CRC32C, measured (a script: `python benchmarks/bench_batch_protocol.py`).

What decided docs/batch-relay.md, "The protocol client": per Produce request and per Fetch response, the
CPU time to frame or read one partition's records and how many bytes were allocated at the peak for each
byte of records (1.0 = one copy of the batch alive at once), for engine/batch/protocol.py and for
aiokafka's protocol classes (optional: `pip install aiokafka`); then CRC32C in GB/s for the packages that
offer it in hardware. Socket I/O is the same for both and is left out. Short: about ten seconds.
"""

from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc
from collections.abc import Callable

from engine.batch import protocol

SIZES = (16 * 1024, 256 * 1024, 1024 * 1024)


def timed(operation: Callable[[], object], seconds: float = 0.4) -> float:
    """Seconds per call, the best of three rounds."""
    best = float("inf")
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            operation()
            calls += 1
        best = min(best, elapsed / calls)
    return best


def copies(operation: Callable[[], object], size: int) -> float:
    """Peak bytes allocated while the operation runs, per byte of records."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = operation()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak / size


def fetch_response_body(records: bytes) -> bytes:
    """A FetchResponse v11 body (after the correlation id) with one partition holding `records`."""
    topic = b"orders"
    return b"".join([
        struct.pack(">ihii", 0, 0, 0, 1), struct.pack(">h", len(topic)), topic, struct.pack(">i", 1),
        struct.pack(">ihqqqiii", 0, 0, 1000, 1000, 0, 0, -1, len(records)), records,
    ])


def ours(batch: bytes) -> tuple[Callable[[], object], Callable[[], object]]:
    view = memoryview(batch)
    body = fetch_response_body(batch)

    def produce():
        return protocol.request(protocol.API_PRODUCE, 7, b"mirror-engine",
                                protocol.produce_request([("orders", 0, view)], 30_000))

    def fetch():
        return protocol.read_fetch(protocol.Reader(body))

    return produce, fetch


def aiokafka_ops(batch: bytes) -> tuple[Callable[[], object], Callable[[], object]] | None:
    try:
        from aiokafka.protocol.api import RequestHeader_v1
        from aiokafka.protocol.fetch import FetchResponse_v11
        from aiokafka.protocol.produce import ProduceRequest_v8
    except ImportError:
        return None
    body = fetch_response_body(batch)

    def produce():  # what aiokafka's connection does in send(): header, struct, then size + message
        request = ProduceRequest_v8(None, -1, 30_000, [("orders", [(0, batch)])])
        message = RequestHeader_v1(request, correlation_id=7, client_id="mirror-engine").encode() + request.encode()
        return struct.pack(">i", len(message)) + message

    def fetch():  # as its connection: the body read into bytes, then decoded from a BytesIO
        return FetchResponse_v11.decode(io.BytesIO(body))

    return produce, fetch


def crc_rows(size: int = 1024 * 1024) -> list[tuple[str, float]]:
    data = os.urandom(size)
    rows = []
    try:
        import crc32c
        rows.append(("crc32c " + getattr(crc32c, "__version__", ""), size / timed(lambda: crc32c.crc32c(data)) / 1e9))
    except ImportError:
        rows.append(("crc32c (not installed)", 0.0))
    try:
        import google_crc32c
        rows.append(("google-crc32c" + (" (C)" if google_crc32c.implementation == "c" else " (Python)"),
                     size / timed(lambda: google_crc32c.value(data)) / 1e9))
    except ImportError:
        rows.append(("google-crc32c (not installed)", 0.0))
    return rows


def main() -> None:
    print(f"{'client':10} {'records':>8} {'produce µs':>11} {'copies':>7} {'fetch µs':>9} {'copies':>7}")
    for size in SIZES:
        batch = os.urandom(size)
        for name, ops in (("ours", ours(batch)), ("aiokafka", aiokafka_ops(batch))):
            if ops is None:
                print(f"{name:10} not installed")
                continue
            produce, fetch = ops
            print(f"{name:10} {size // 1024:>6}Ki {timed(produce) * 1e6:11.1f} {copies(produce, size):7.2f} "
                  f"{timed(fetch) * 1e6:9.1f} {copies(fetch, size):7.2f}")
    for name, rate in crc_rows():
        print(f"{name:28} {rate:6.2f} GB/s")


if __name__ == "__main__":
    main()
