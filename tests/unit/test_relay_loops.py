"""The C loop against its oracle, the Python loop: the same batches in, the same copies and books out.

Both run over librdkafka's mock cluster (in-process brokers started by a client with
test.mock.num.brokers), so no Kafka is needed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from engine import _fastpath
from engine._fastpath import NativeRelay, RecordFilter
from engine.batch.brokers import Brokers
from engine.batch.choice import batch_loop_refusal
from engine.batch.relay import BatchRelay
from engine.offsets import wire
from engine.worker.batch_loop import BatchLoop
from engine.worker.python_relay import PythonRelay
from engine.worker.relays import RelayLoop, make_relay
from tests.helpers import wait_for

PARTITIONS = 4  # the mock cluster creates topics with 4 partitions
RECORDS = 400
BASE_TS = 1_700_000_000_000


def test_both_loops_satisfy_the_relay_protocol():
    members = {name for name in vars(RelayLoop) if not name.startswith("_")} | set(RelayLoop.__annotations__)
    for loop in (NativeRelay, PythonRelay):
        relay = loop({"bootstrap.servers": "127.0.0.1:1"}, {"bootstrap.servers": "127.0.0.1:1"}) \
            if loop is NativeRelay else PythonRelay(None, None, _fastpath.Bookkeeper())
        assert isinstance(relay, RelayLoop), loop
        assert {name for name in members if not hasattr(relay, name)} == set(), loop
        if loop is NativeRelay:
            relay.close()


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
    """(bootstrap servers, the client that owns the mock cluster)."""
    finder = _MockAddress()
    log = logging.getLogger(f"mock-cluster-{uuid.uuid4().hex[:6]}")
    log.addHandler(finder)
    log.setLevel(logging.INFO)  # librdkafka says where the mock cluster listens at notice level
    owner = Producer({"bootstrap.servers": "unused", "test.mock.num.brokers": 1, "logger": log})
    deadline = time.monotonic() + 10
    while finder.address is None and time.monotonic() < deadline:
        owner.poll(0.05)
    assert finder.address, "librdkafka did not say where its mock cluster listens"
    yield finder.address, owner
    del owner  # the mock cluster lives as long as the client that made it


def source_records(owner: Producer, topic: str) -> dict[int, list[tuple]]:
    """RECORDS records over the partitions: (key, value, headers, timestamp) by partition. Every 5th
    carries a `drop` header (the filter's), every 7th a provenance header naming B (a cycle)."""
    written: dict[int, list[tuple]] = {p: [] for p in range(PARTITIONS)}
    for i in range(RECORDS):
        headers = [("n", str(i).encode()), ("empty", b"")]
        if i % 5 == 0:
            headers.append(("drop", None))
        if i % 7 == 0:
            headers.append((wire.PROVENANCE_HEADER, wire.Provenance("B", "x", 0, i).encode()))
        key = None if i % 11 == 0 else f"key-{i}".encode()
        value = None if i % 13 == 0 else bytes([i % 256]) * (i % 50)
        owner.produce(topic, value, key, i % PARTITIONS, timestamp=BASE_TS + i, headers=headers)
        written[i % PARTITIONS].append((key, value, headers, BASE_TS + i))
    assert owner.flush(30) == 0
    return written


def read_all(servers: str, topic: str, partition: int, count: int) -> list[tuple]:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex, "enable.partition.eof": True,
                         "auto.offset.reset": "earliest"})
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, partition, 0)])
    records: list[tuple] = []
    deadline = time.monotonic() + 30
    while len(records) < count and time.monotonic() < deadline:
        for m in consumer.consume(500, timeout=0.2):
            if m.error() is None:
                records.append((m.key(), m.value(), m.headers(), m.timestamp()[1], m.offset()))
            elif m.error().code() != KafkaError._PARTITION_EOF:
                raise AssertionError(m.error().str())
    consumer.close()
    return records


def relay_until_done(relay, last_offsets: dict[int, int]) -> None:
    ledgers = relay.bookkeeper.ledgers
    wait_for(lambda: relay.pump(50) >= 0 and relay.bookkeeper.failure is None and all(
        ledger.in_flight == 0 and ledger.last_acked_source >= last_offsets[ledger.partition]
        for ledger in ledgers.values()) or relay.bookkeeper.failure, 60, "every record relayed", interval_s=0)
    assert relay.bookkeeper.failure is None, relay.bookkeeper.failure


def test_the_c_loop_copies_and_accounts_exactly_as_the_python_loop(mock_cluster):
    servers, owner = mock_cluster
    topic = f"source-{uuid.uuid4().hex[:6]}"
    written = source_records(owner, topic)
    last_offsets = {p: len(records) - 1 for p, records in written.items()}
    outcome = {}
    for loop in ("python", "c"):
        client = {"bootstrap.servers": servers}
        relay = make_relay(loop, client, client, "A->B", "A->B|test", "A", "B")
        books = relay.bookkeeper
        books.flow_name = "A->B"
        books.enable_provenance("A", "B")
        books.record_filter = RecordFilter(header_absent=["drop"])
        books.offset_lag_max = 3
        remote = f"A.{topic}.{loop}"
        for partition in range(PARTITIONS):
            relay.add_partition(topic, remote, partition, -1)
        relay.assign([(topic, p, 0) for p in range(PARTITIONS)])
        relay_until_done(relay, last_offsets)
        kept = {p: [r for r in records if not any(name in ("drop", wire.PROVENANCE_HEADER) for name, _ in r[2])]
                for p, records in written.items()}
        copies = {p: read_all(servers, remote, p, len(kept[p])) for p in range(PARTITIONS)}
        for partition, records in kept.items():
            # the record as it was, plus this hop's provenance header naming its source offset
            assert [c[:4] for c in copies[partition]] == [
                (key, value, headers + [(wire.PROVENANCE_HEADER, wire.Provenance(
                    "A", topic, partition, written[partition].index((key, value, headers, ts))).encode())], ts)
                for key, value, headers, ts in records], f"{loop} loop, partition {partition}"
        ledgers = {p: books.ledgers[(remote, p)] for p in range(PARTITIONS)}
        outcome[loop] = dict(
            ledgers={p: (ledger.last_acked_source, ledger.last_acked_target, ledger.acked_records,
                         ledger.acked_value_bytes, ledger.filtered_records, ledger.polled_value_bytes,
                         ledger.sent_records, ledger.newest_acked_timestamp)
                     for p, ledger in ledgers.items()},
            syncs=sorted(books.take_offset_syncs()), runs=sorted(run[1:] for run in books.take_offset_runs()),
            counts=(books.records_sent, books.records_acked))
        relay.close()
    assert outcome["c"] == outcome["python"]
    assert outcome["c"]["syncs"] and outcome["c"]["runs"]  # both were exercised


@pytest.mark.parametrize("loop", ["python", "c"])
def test_records_of_partitions_the_relay_does_not_hold_are_dropped_not_fatal(mock_cluster, loop):
    """A removed partition's records still fetched, a partition past the topic's known ones and a
    topic never added: each record is dropped (its progress is not the relay's); the rest is copied."""
    servers, owner = mock_cluster
    topic, stranger = f"mine-{uuid.uuid4().hex[:6]}", f"stranger-{uuid.uuid4().hex[:6]}"
    for i in range(40):
        owner.produce(topic, f"v{i}".encode(), None, i % PARTITIONS)
        owner.produce(stranger, f"s{i}".encode(), None, i % PARTITIONS)
    assert owner.flush(30) == 0
    client = {"bootstrap.servers": servers}
    relay = make_relay(loop, client, client, "A->B", "A->B|test", "A", "B")
    remote = f"A.{topic}.{loop}"
    kept = relay.add_partition(topic, remote, 0)
    relay.add_partition(topic, remote, 1)
    relay.remove_partition(remote, 1)  # a None slot on the C loop's route
    # partitions 2 and 3 lie past the route's slots; `stranger` has no route at all
    relay.assign([(topic, p, 0) for p in range(PARTITIONS)] + [(stranger, p, 0) for p in range(PARTITIONS)])
    ends = [(topic, p) for p in range(PARTITIONS)] + [(stranger, p) for p in range(PARTITIONS)]
    wait_for(lambda: relay.pump(50) >= 0 and kept.in_flight == 0 and kept.last_acked_source == 9
             and relay.positions(ends) == [10] * (2 * PARTITIONS), 30, "every fetched record relayed or dropped",
             interval_s=0)
    books = relay.bookkeeper
    assert books.failure is None
    assert (books.records_sent, books.records_acked, kept.acked_records) == (10, 10, 10)
    assert list(books.ledgers) == [(remote, 0)]
    relay.close()
    assert [c[1] for c in read_all(servers, remote, 0, 10)] == [f"v{i}".encode() for i in range(0, 40, PARTITIONS)]


def test_the_c_loop_surfaces_failed_watermark_and_position_calls(mock_cluster):
    from engine._fastpath import SourceReadFailed

    servers, owner = mock_cluster
    relay = NativeRelay({"bootstrap.servers": servers, "group.id": "g"}, {"bootstrap.servers": servers}, 10, "A", "B")
    owner.produce("known", b"v", None, 0)
    assert owner.flush(10) == 0
    assert relay.source_watermarks("known", 0) == (0, 1)
    # a partition the cluster does not have: the error is raised, not (-1, -1) taken for offsets
    with pytest.raises(SourceReadFailed, match=r"cannot read the log start and end of source known\[9\] on "
                                               r"cluster A: Local: Unknown partition"):
        relay.source_watermarks("known", 9, timeout_s=2)
    assert relay.positions([("known", 0)]) == [-1001]  # not assigned: unknown, as documented
    relay.close()
    for call in (lambda: relay.positions([("known", 0)]), lambda: relay.source_watermarks("known", 0),
                 lambda: relay.high_watermark("known", 0), lambda: relay.assign([])):
        with pytest.raises(SourceReadFailed, match="on cluster A: the relay is closed"):
            call()


def test_the_batch_loop_satisfies_the_relay_protocol_too():
    members = {name for name in vars(RelayLoop) if not name.startswith("_")} | set(RelayLoop.__annotations__)
    relay = BatchLoop(lambda on_sent, on_acked: BatchRelay(Brokers("127.0.0.1:1"), Brokers("127.0.0.1:1"),
                                                           on_sent=on_sent, on_acked=on_acked))
    assert isinstance(relay, RelayLoop)
    assert {name for name in members if not hasattr(relay, name)} == set()


@pytest.mark.parametrize("settings, why", [
    ({"record_filter": object()}, "record loop: record.filter set"),
    ({"provenance": True}, "record loop: provenance header enabled"),
    ({"exactly_once": True}, "record loop: exactly-once mode"),
    ({"compression": "lz4"}, "record loop: producer.compression.type = lz4"),
    ({"target": {"security.protocol": "sasl_ssl", "sasl.mechanisms": "OAUTHBEARER"}},
     "record loop: the target cluster logs in with SASL mechanism OAUTHBEARER "
     "(the batch loop logs in with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
    ({"source": {"security.protocol": "SASL_PLAINTEXT"}},
     "record loop: the source cluster logs in with SASL mechanism GSSAPI "
     "(the batch loop logs in with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
    ({"source": {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512"},
      "target": {"security.protocol": "SSL"}}, None),
    ({"source": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN"}}, None),
    ({}, None),
])
def test_what_keeps_the_record_loop_when_the_batch_loop_is_asked_for_is_named(settings, why):
    arguments = {"record_filter": None, "provenance": False, "exactly_once": False, "compression": "none",
                 "source": {"bootstrap.servers": "a:1"}, "target": {"bootstrap.servers": "b:1"}, **settings}
    assert batch_loop_refusal(**arguments) == why
