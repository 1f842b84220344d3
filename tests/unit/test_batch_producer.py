"""engine/batch/producer.py against a scripted broker: sequences, the in-flight window, ordered retries."""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from pathlib import Path

import pytest

from engine.batch import protocol
from engine.batch.producer import IdempotentProducer, ProduceError
from engine.batch.records import read_batches

SECTION = bytes.fromhex(json.loads((Path(__file__).resolve().parents[1] / "data" / "batch_vectors.json").read_text())
                        ["sections"]["codec-none"])  # one batch of 3 records


def produce_response(topic: str, results: list[tuple[int, int, int]]) -> bytes:
    """A Produce v8 response for one topic: (partition, error, base offset) each, no record errors."""
    name = topic.encode()
    body = b"".join(struct.pack(">ihqqqih", partition, error, base_offset, -1, 0, 0, -1)
                    for partition, error, base_offset in results)
    return struct.pack(">ih", 1, len(name)) + name + struct.pack(">i", len(results)) + body + struct.pack(">i", 0)


class ScriptedBroker:
    """One leader (node 1) that answers Produce requests with the (error, base offset) pairs it is given."""

    def __init__(self, answers: list[tuple[int, int]]):
        self.answers = deque(answers)
        self.sent: list[tuple[int, bytes]] = []  # (base sequence, batch bytes) as sent
        self.requests: list[list[int]] = []  # the partitions of each request
        self.forgotten_leaders = 0
        self._due: deque[bytes] = deque()
        self._read_end, write_end = os.pipe()
        os.write(write_end, b"x")  # always readable: responses are due as soon as requests are
        os.close(write_end)

    # the Brokers surface the producer uses
    def leader(self, topic, partition):
        return 1

    def connection(self, node):
        return self

    def any_connection(self):
        return self

    def forget_leader(self, topic, partition):
        self.forgotten_leaders += 1

    def forget(self, node):
        pass

    # the BrokerConnection surface
    def fileno(self):
        return self._read_end

    def send(self, api, body):
        assert api == protocol.API_PRODUCE
        results, partitions = [], []
        for head, batch in zip(body[2::2], body[3::2], strict=True):  # after the request's and the topic's fields
            (partition,) = struct.unpack_from(">i", head)
            [parsed], _ = read_batches(bytes(batch))
            self.sent.append((parsed.base_sequence, bytes(batch)))
            partitions.append(partition)
            results.append((partition, *self.answers.popleft()))
        self.requests.append(partitions)
        self._due.append(produce_response("t", results))

    def receive(self):
        return protocol.Reader(self._due.popleft())


def batches(count: int) -> list:
    out = []
    for i in range(count):
        buffer = memoryview(bytearray(SECTION))
        struct.pack_into(">q", buffer, 0, 3 * i)  # source offsets 3i .. 3i+2
        [batch], _ = read_batches(buffer)
        out.append((buffer, batch))
    return out


def producer(broker: ScriptedBroker, clock=None) -> IdempotentProducer:
    p = IdempotentProducer(broker, clock=clock) if clock else IdempotentProducer(broker)
    p.producer_id, p.producer_epoch = 77, 0
    return p


def test_batches_get_consecutive_sequences_and_are_acked_in_order_with_the_target_offsets():
    broker = ScriptedBroker([(0, 10), (0, 13)])
    p = producer(broker)
    acks = []
    for buffer, batch in batches(2):
        p.send("t", 0, buffer, batch)
        acks += p.flush(5)
    assert [(a.source_offset, a.record_count, a.target_offset) for a in acks] == [(0, 3, 10), (3, 3, 13)]
    assert [seq for seq, _ in broker.sent] == [0, 3]


def test_the_window_holds_one_batch_until_the_first_ack_then_five_per_partition():
    broker = ScriptedBroker([(0, 0)] * 6)
    p = producer(broker)
    items = batches(6)
    p.send("t", 0, *items[0])
    assert p.room("t", 0) == 0
    with pytest.raises(ProduceError, match="t-0: more than 1 batches in flight"):
        p.send("t", 0, *items[1])
    p.flush(5)
    for buffer, batch in items[1:5]:
        p.send("t", 0, buffer, batch)
    p.send("t", 0, *items[5])
    assert p.room("t", 0) == 0
    with pytest.raises(ProduceError, match="t-0: more than 5 batches in flight"):
        p.send("t", 0, *items[5])


def test_a_retriable_error_resends_that_batch_and_every_later_one_in_order_with_the_same_bytes():
    # not leader for the first; the broker refuses the next two as out of order; then all three succeed
    broker = ScriptedBroker([(0, 97), (6, -1), (45, -1), (45, -1), (0, 100), (0, 103), (0, 106)])
    p = producer(broker)
    first, *rest = batches(4)
    p.send("t", 0, *first)
    p.flush(5)  # the broker knows the producer now: five in flight
    for buffer, batch in rest:
        p.send("t", 0, buffer, batch)
    acks = p.flush(5)
    assert [(a.source_offset, a.target_offset) for a in acks] == [(3, 100), (6, 103), (9, 106)]
    assert [seq for seq, _ in broker.sent] == [0, 3, 6, 9, 3, 6, 9]
    assert [b for _, b in broker.sent[4:]] == [b for _, b in broker.sent[1:4]]
    assert broker.forgotten_leaders == 1


def test_a_first_batch_that_fails_is_retried_before_any_later_one_is_sent():
    # a new topic whose leader is not ready: had the second batch gone out, the broker would take it first
    broker = ScriptedBroker([(6, -1), (0, 0), (0, 3)])
    p = producer(broker)
    first, second = batches(2)
    p.send("t", 0, *first)
    assert p.room("t", 0) == 0
    acks = p.flush(5)
    p.send("t", 0, *second)
    acks += p.flush(5)
    assert [seq for seq, _ in broker.sent] == [0, 0, 3]
    assert [(a.source_offset, a.target_offset) for a in acks] == [(0, 0), (3, 3)]


def test_an_error_that_is_not_retriable_names_the_partition_and_the_code():
    broker = ScriptedBroker([(87, -1)])
    p = producer(broker)
    p.send("t", 0, *batches(1)[0])
    with pytest.raises(ProduceError, match=r"producing to t-0 failed: error code 87"):
        p.flush(5)


def test_retries_end_at_the_delivery_timeout():
    now = [0.0]
    broker = ScriptedBroker([(7, -1)] * 1000)  # request timed out, every time

    def clock():
        now[0] += 1.0
        return now[0]

    p = producer(broker, clock)
    p.send("t", 0, *batches(1)[0])
    with pytest.raises(ProduceError, match="producing to t-0: not acknowledged within 120 s of retries"):
        p.flush(10_000)


def test_one_request_carries_one_batch_of_each_partition_of_a_leader():
    broker = ScriptedBroker([(0, 0), (0, 0), (0, 3), (0, 3)])
    p = producer(broker)
    first, second = batches(2)
    acks = []
    for batch in (first, second):
        for partition in (0, 1):
            p.send("t", partition, memoryview(bytearray(batch[0])), batch[1])
        acks += p.flush(5)
    assert broker.requests == [[0, 1], [0, 1]]
    assert sorted((a.partition, a.source_offset, a.target_offset) for a in acks) == [
        (0, 0, 0), (0, 3, 3), (1, 0, 0), (1, 3, 3)]
    assert [seq for seq, _ in broker.sent] == [0, 0, 3, 3]
