"""The batch relay's core on real 4.3.1 brokers: batches copied byte for byte, records field by field, offsets
mapped exactly, a resume inside a batch, and the batches part 1 leaves to the record loop."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from engine.batch import protocol
from engine.batch.brokers import Brokers
from engine.batch.connection import BrokerConnection
from engine.batch.records import HEADER_SIZE, read_batches
from engine.batch.relay import BatchRelay, OffsetRun
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, end_offsets, read_all

pytestmark = pytest.mark.kafka

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def produce_in_batches(servers: str, topic: str, partition: int, codec: str, batches: int, per_batch: int,
                       transactional_id: str | None = None) -> None:
    """`batches` batches of `per_batch` records: null keys, null values, headers with null values among them."""
    settings = {"bootstrap.servers": servers, "linger.ms": 1000, "compression.type": codec,
                "enable.idempotence": True}
    if transactional_id:
        settings["transactional.id"] = transactional_id
    producer = Producer(settings)
    if transactional_id:
        producer.init_transactions(30)
        producer.begin_transaction()
    for b in range(batches):
        for i in range(b * per_batch, (b + 1) * per_batch):
            producer.produce(topic, partition=partition, timestamp=BASE_TIMESTAMP_MS + i,
                             key=None if i % 7 == 0 else b"key-%d" % i,
                             value=None if i % 11 == 0 else b"value-%d-" % i * (1 + i % 5),
                             headers=[("h", b"x%d" % i), ("null", None)] if i % 3 == 0 else [])
        producer.flush(30)  # one batch per flush
    if transactional_id:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def relay_until(relay: BatchRelay, ends: dict[tuple[str, int], int], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while any(relay.committed[key] < end for key, end in ends.items()):
        assert time.monotonic() < deadline, f"copied {relay.committed}, the source ends at {ends}"
        relay.pump(100)
    relay.flush(30)


def raw_batches(servers: str, topic: str, partition: int) -> list[tuple]:
    """(base offset, codec, record count, base and max timestamp, producer id, base sequence, records bytes)."""
    host, port = servers.split(",")[0].rsplit(":", 1)
    connection = BrokerConnection(host, int(port))
    out, offset, end = [], 0, end_offsets(servers, topic)[partition]
    try:
        while offset < end:
            _, [part] = protocol.read_fetch(connection.call(protocol.API_FETCH, protocol.fetch_request(
                [(topic, partition, offset, 1 << 20)], max_wait_ms=100, min_bytes=1, max_bytes=1 << 20)))
            batches, _ = read_batches(part.records, offset)
            for b in batches:
                out.append((b.base_offset, b.codec, b.record_count, b.base_timestamp, b.max_timestamp, b.producer_id,
                            b.base_sequence, bytes(part.records[b.position + HEADER_SIZE:b.position + b.size])))
            offset = batches[-1].next_offset
    finally:
        connection.close()
    return out


def test_every_codec_is_copied_batch_for_batch_and_record_for_record(source_cluster, target_cluster, unique_name):
    topic = source_cluster.create_topic(unique_name("codecs"), len(CODECS))
    remote = target_cluster.create_topic("A." + topic, len(CODECS))
    for partition, codec in enumerate(CODECS):
        produce_in_batches(source_cluster.bootstrap_servers, topic, partition, codec, batches=4, per_batch=50)
    relay = BatchRelay(Brokers(source_cluster.bootstrap_servers), Brokers(target_cluster.bootstrap_servers))
    try:
        relay.start()
        for partition in range(len(CODECS)):
            relay.add_partition(topic, remote, partition, 0)
        relay_until(relay, {(topic, p): 200 for p in range(len(CODECS))})
        assert relay.stopped == {}
        assert relay.runs == {(topic, p): [OffsetRun(topic, p, 0, 0, 200)] for p in range(len(CODECS))}
        producer_id = relay.producer.producer_id
    finally:
        relay.close()

    source = read_all(source_cluster.bootstrap_servers, topic)
    target = read_all(target_cluster.bootstrap_servers, remote)
    for partition in range(len(CODECS)):
        assert len(source[partition]) == 200
        assert target[partition] == source[partition]
    assert any(r.key is None for r in source[0]) and any(r.value is None for r in source[0])
    assert any(("null", None) in r.headers for r in source[0])

    for partition, codec in enumerate(CODECS):
        copied = raw_batches(target_cluster.bootstrap_servers, remote, partition)
        original = raw_batches(source_cluster.bootstrap_servers, topic, partition)
        assert [b[:5] + b[7:] for b in copied] == [b[:5] + b[7:] for b in original]  # records bytes too
        assert [b[1] for b in copied] == [codec] * 4
        assert [(b[5], b[6]) for b in copied] == [(producer_id, 50 * i) for i in range(4)]


def test_a_resume_inside_a_batch_copies_the_rest_of_it_then_whole_batches(source_cluster, target_cluster,
                                                                           unique_name):
    topic = source_cluster.create_topic(unique_name("resume"), 1)
    remote = target_cluster.create_topic("A." + topic, 1)
    produce_in_batches(source_cluster.bootstrap_servers, topic, 0, "zstd", batches=3, per_batch=10)
    relay = BatchRelay(Brokers(source_cluster.bootstrap_servers), Brokers(target_cluster.bootstrap_servers))
    try:
        relay.start()
        relay.add_partition(topic, remote, 0, 15)  # the stored progress: inside the second batch
        relay_until(relay, {(topic, 0): 30})
        assert relay.runs == {(topic, 0): [OffsetRun(topic, 0, 15, 0, 15)]}
    finally:
        relay.close()

    source = read_all(source_cluster.bootstrap_servers, topic)
    target = read_all(target_cluster.bootstrap_servers, remote)
    assert target[0] == source[0][15:]
    copied = raw_batches(target_cluster.bootstrap_servers, remote, 0)
    original = raw_batches(source_cluster.bootstrap_servers, topic, 0)
    assert [(b[0], b[1], b[2]) for b in copied] == [(0, "none", 5), (5, "zstd", 10)]
    assert copied[1][7] == original[2][7]


@pytest.mark.parametrize("case, reason", [("transactional", "transactional source"),
                                          ("log-append-time", "LogAppendTime batch")])
def test_what_part_1_does_not_copy_stops_the_partition_at_that_batch_named(source_cluster, target_cluster,
                                                                          unique_name, case, reason):
    config = {"message.timestamp.type": "LogAppendTime"} if case == "log-append-time" else {}
    topic = source_cluster.create_topic(unique_name("refused"), 1, config)
    remote = target_cluster.create_topic("A." + topic, 1)
    servers = source_cluster.bootstrap_servers
    if case == "transactional":
        produce_in_batches(servers, topic, 0, "none", batches=1, per_batch=5)
        produce_in_batches(servers, topic, 0, "none", batches=1, per_batch=5, transactional_id=unique_name("tx"))
    else:
        produce_in_batches(servers, topic, 0, "none", batches=2, per_batch=5)
    relay = BatchRelay(Brokers(servers), Brokers(target_cluster.bootstrap_servers))
    try:
        relay.start()
        relay.add_partition(topic, remote, 0, 0)
        deadline = time.monotonic() + 30
        while not relay.stopped:
            assert time.monotonic() < deadline, f"the relay copied {relay.committed} and did not stop"
            relay.pump(100)
        relay.flush(30)
        stopped_at = 5 if case == "transactional" else 0
        assert relay.stopped == {(topic, 0): (stopped_at, reason)}
        assert relay.committed == {(topic, 0): stopped_at}
    finally:
        relay.close()
    assert end_offsets(target_cluster.bootstrap_servers, remote) == {0: stopped_at}
