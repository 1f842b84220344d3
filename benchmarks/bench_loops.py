"""The two relay loops over librdkafka's mock cluster (in-process brokers): CPU per record.

Both loops relay the same preloaded records (512 B values, 3 headers) from one topic to a fresh
one, acks=all with idempotence, and stop when every record is acknowledged. The mock brokers run
in this process too, so their work is in both numbers alike and the ratio understates the loops'
difference; the end-to-end harness (`mirror-engine bench`) measures against real brokers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import pytest
from confluent_kafka import Producer

from engine.worker.relays import make_relay

# the mock cluster keeps about 5 MB per partition: stay below it, or the source log start moves
RECORDS = 20_000
PARTITIONS = 4
VALUE = bytes(range(256)) * 2


class _MockAddress(logging.Handler):
    def __init__(self):
        super().__init__()
        self.address = None

    def emit(self, record):
        match = re.search(r"replaced with (\S+)", record.getMessage())
        if match:
            self.address = match.group(1)


@pytest.fixture(scope="module")
def mock_cluster():
    """(bootstrap servers, source topic) of a mock cluster holding RECORDS records."""
    finder = _MockAddress()
    log = logging.getLogger("bench-mock")
    log.addHandler(finder)
    log.setLevel(logging.INFO)  # librdkafka says where the mock cluster listens at notice level
    # the mock cluster auto-creates topics with 4 partitions (PARTITIONS)
    owner = Producer({"bootstrap.servers": "unused", "test.mock.num.brokers": 1, "logger": log})
    deadline = time.monotonic() + 10
    while finder.address is None and time.monotonic() < deadline:
        owner.poll(0.05)
    assert finder.address, "librdkafka did not say where its mock cluster listens"
    topic = "bench-source"
    for i in range(RECORDS):
        while True:
            try:
                owner.produce(topic, VALUE, f"key-{i}".encode(), i % PARTITIONS,
                              headers=[("trace", b"t"), ("origin", b"bench"), ("n", str(i).encode())])
                break
            except BufferError:
                owner.poll(0.05)
    assert owner.flush(60) == 0
    yield finder.address, topic
    del owner  # the mock cluster lives as long as the client that made it


def relay_all(loop: str, servers: str, topic: str, provenance: bool = False) -> float:
    """Relays every record; returns the process CPU seconds it took."""
    client = {"bootstrap.servers": servers}
    relay = make_relay(loop, client, client, f"bench-{loop}", "bench", "A", "B")
    if provenance:
        relay.bookkeeper.enable_provenance("A", "B")
    remote = f"A.{topic}.{uuid.uuid4().hex[:6]}"
    for partition in range(PARTITIONS):
        relay.add_partition(topic, remote, partition)
    relay.assign([(topic, p, 0) for p in range(PARTITIONS)])
    started = time.process_time()
    deadline = time.monotonic() + 120
    while relay.bookkeeper.records_acked < RECORDS:
        assert time.monotonic() < deadline, f"{loop} loop: {relay.bookkeeper.records_acked} of {RECORDS} acked"
        assert relay.bookkeeper.failure is None, relay.bookkeeper.failure
        if relay.bookkeeper.records_sent < RECORDS:
            relay.pump(100)
        else:
            relay.serve(100)
    cpu = time.process_time() - started
    relay.close()
    return cpu


@pytest.mark.parametrize("provenance", [False, True], ids=["plain", "provenance-header"])
@pytest.mark.parametrize("loop", ["python", "c"])
def test_relay_loop_over_mock_cluster(benchmark, mock_cluster, loop, provenance):
    """Header rewrite: the provenance variant appends one header per record on the way."""
    servers, topic = mock_cluster
    cpu_seconds = []
    benchmark.pedantic(lambda: cpu_seconds.append(relay_all(loop, servers, topic, provenance)), rounds=3,
                       iterations=1)
    benchmark.extra_info["cpu_us_per_record"] = round(min(cpu_seconds) / RECORDS * 1e6, 3)
