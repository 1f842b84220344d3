"""The relay loops' ack ledger and bookkeeping, driven through the Python-API loop by fake messages and
a fake producer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from engine import _fastpath
from engine._fastpath import Bookkeeper, DeliveryFailed, SourceReadFailed
from engine.worker.python_relay import PythonRelay


def test_the_compiled_module_is_loaded():
    # never a silent fallback to Python: the extension itself must import
    assert _fastpath.__file__.endswith((".so", ".pyd"))


class FakeMessage:
    def __init__(self, topic, partition, offset, key=None, value=None, headers=None, timestamp=(1, 0), error=None):
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers, self._timestamp, self._error = key, value, headers, timestamp, error

    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return self._headers
    def timestamp(self): return self._timestamp
    def error(self): return self._error
    def __len__(self): return 0 if self._value is None else len(self._value)


class FakeProducer:
    """Records produce calls; deliver() acks them in order with target offsets 0, 1, 2, ..."""

    def __init__(self, full_after: int | None = None):
        self.produced: list[dict] = []
        self.next_offset: dict[tuple[str, int], int] = {}
        self.full_after = full_after
        self.polls = 0

    def produce(self, topic, value, key, partition, timestamp, headers):
        if self.full_after is not None and len(self.produced) >= self.full_after:
            raise BufferError("queue full")
        self.produced.append(dict(topic=topic, value=value, key=key, partition=partition,
                                  timestamp=timestamp, headers=headers))

    def poll(self, timeout):
        self.polls += 1
        self.full_after = None

    def deliver(self, relay: PythonRelay, error=None, count=None):
        pending, self.produced = self.produced[:count], self.produced[count:] if count else []
        for record in pending:
            key = (record["topic"], record["partition"])
            offset = self.next_offset.get(key, 0)
            self.next_offset[key] = offset + 1
            relay.on_delivery(error, FakeMessage(record["topic"], record["partition"], offset, value=record["value"]))


def make_relay(producer) -> PythonRelay:
    return PythonRelay(None, producer, Bookkeeper())


def test_records_keep_partition_key_value_headers_and_timestamp():
    producer = FakeProducer()
    relay = make_relay(producer)
    relay.add_partition("orders", "A.orders", 2)
    headers = [("h", b""), ("n", None), ("h", b"\x00\xff")]
    sent = relay.send([
        FakeMessage("orders", 2, 10, key=b"k", value=b"v", headers=headers, timestamp=(1, 1234)),
        FakeMessage("orders", 2, 11, key=None, value=None, headers=None, timestamp=(0, -1)),
    ])
    assert sent == 2
    assert producer.produced == [
        dict(topic="A.orders", value=b"v", key=b"k", partition=2, timestamp=1234, headers=headers),
        # no timestamp: 0 asks librdkafka for "now", as MM2 replaces -1 with the producer clock
        dict(topic="A.orders", value=None, key=None, partition=2, timestamp=0, headers=None),
    ]


def test_acks_map_back_to_source_offsets_per_partition_across_gaps():
    producer = FakeProducer()
    relay = make_relay(producer)
    p0 = relay.add_partition("orders", "A.orders", 0, 99)
    p1 = relay.add_partition("orders", "A.orders", 1)
    # source offsets with gaps (compaction, transaction markers)
    relay.send([FakeMessage("orders", 0, 100, value=b"ab"), FakeMessage("orders", 1, 7),
                FakeMessage("orders", 0, 105, value=b"cde"), FakeMessage("orders", 0, 109)])
    assert (p0.in_flight, p1.in_flight) == (3, 1)
    assert not p0.uncommitted()
    producer.deliver(relay, count=2)  # acks 100 (target 0) and 7 (target 0)
    assert (p0.last_acked_source, p0.last_acked_target) == (100, 0)
    assert (p1.last_acked_source, p1.last_acked_target) == (7, 0)
    producer.deliver(relay)
    assert (p0.last_acked_source, p0.last_acked_target) == (109, 2)
    assert p0.acked_records == 3 and p0.acked_value_bytes == 5
    assert p0.in_flight == 0 and p0.uncommitted()
    assert relay.bookkeeper.records_sent == 4 and relay.bookkeeper.records_acked == 4


def test_ring_buffer_grows_beyond_its_initial_capacity():
    producer = FakeProducer()
    relay = make_relay(producer)
    ledger = relay.add_partition("t", "A.t", 0)
    relay.send([FakeMessage("t", 0, i) for i in range(5000)])
    producer.deliver(relay, count=1234)
    relay.send([FakeMessage("t", 0, i) for i in range(5000, 6000)])
    assert ledger.in_flight == 6000 - 1234
    producer.deliver(relay)
    assert ledger.last_acked_source == 5999 and ledger.last_acked_target == 5999


def test_a_failed_delivery_stops_progress():
    producer = FakeProducer()
    relay = make_relay(producer)
    ledger = relay.add_partition("t", "A.t", 0)
    relay.send([FakeMessage("t", 0, i) for i in range(3)])
    producer.deliver(relay, count=1)
    producer.deliver(relay, error=KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), count=1)
    producer.deliver(relay)  # a later success must not count as progress past the failure
    assert ledger.last_acked_source == 0
    assert isinstance(relay.bookkeeper.failure, DeliveryFailed)
    assert "t[0]@1" in str(relay.bookkeeper.failure) and "A.t" in str(relay.bookkeeper.failure)


def test_a_full_queue_is_served_and_the_record_retried():
    producer = FakeProducer(full_after=1)
    relay = make_relay(producer)
    relay.add_partition("t", "A.t", 0)
    assert relay.send([FakeMessage("t", 0, 0), FakeMessage("t", 0, 1)]) == 2
    assert producer.polls == 1
    assert [r["partition"] for r in producer.produced] == [0, 0]


def test_partition_eof_is_skipped_and_other_source_errors_raise():
    relay = make_relay(FakeProducer())
    relay.add_partition("t", "A.t", 0)
    eof = FakeMessage("t", 0, 5, error=KafkaError(KafkaError._PARTITION_EOF))
    assert relay.send([eof]) == 0
    broken = FakeMessage("t", 0, 5, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(SourceReadFailed,
                       match=r"source t\[0\] on cluster source: Broker: Topic authorization failed") as raised:
        relay.send([broken])
    assert (raised.value.topic, raised.value.partition) == ("t", 0)  # this partition's own problem


def test_a_position_below_the_log_start_names_the_records_retention_deleted():
    from engine._fastpath import source_error

    lost = source_error("A->B", "A", "orders", 2, KafkaError._AUTO_OFFSET_RESET, "Offset out of range", 120,
                        lambda: (500, 900))
    assert isinstance(lost, SourceReadFailed) and (lost.topic, lost.partition) == ("orders", 2)
    assert str(lost).startswith("source orders[2] on cluster A: records 120..499 were deleted (retention) before "
                                "they were copied")
    assert "mirror-engine skip <config> --flow A->B --topic orders --partition 2 --past 499" in str(lost)
    recreated = source_error("A->B", "A", "orders", 2, KafkaError._AUTO_OFFSET_RESET, "Offset out of range", 950,
                             lambda: (0, 10))
    assert "position 950 is outside the log (0..10); was the topic deleted and created again?" in str(recreated)
    transient = source_error("A->B", "A", "orders", 2, KafkaError._TRANSPORT, "Broker: transport", 7, lambda: (0, 0))
    assert transient.topic is None  # the link's problem, not the partition's: the worker restarts


def test_delivery_report_without_a_record_in_flight_is_an_error():
    relay = make_relay(FakeProducer())
    relay.add_partition("t", "A.t", 0)
    with pytest.raises(DeliveryFailed, match="no record in flight"):
        relay.on_delivery(None, FakeMessage("A.t", 0, 0))


def test_ring_buffer_grows_while_wrapped_around():
    producer = FakeProducer()
    relay = make_relay(producer)
    ledger = relay.add_partition("t", "A.t", 0)
    relay.send([FakeMessage("t", 0, i) for i in range(1000)])
    producer.deliver(relay, count=900)
    # 100 left at the ring's end; the next 1000 wrap around, then force growth
    relay.send([FakeMessage("t", 0, i) for i in range(1000, 2000)])
    assert ledger.in_flight == 1100
    producer.deliver(relay, count=150)
    assert ledger.last_acked_source == 1049
    producer.deliver(relay)
    assert ledger.last_acked_source == 1999 and ledger.last_acked_target == 1999


def test_record_filter_conditions():
    from engine._fastpath import RecordFilter

    def msg(key=None, headers=None):
        return FakeMessage("t", 0, 0, key=key, headers=headers)

    present = RecordFilter(header_present=["trace"])
    assert present.keeps(msg(headers=[("trace", None)]))
    assert not present.keeps(msg(headers=[("other", b"x")]))
    assert not present.keeps(msg())
    absent = RecordFilter(header_absent=["internal"])
    assert absent.keeps(msg()) and not absent.keeps(msg(headers=[("internal", b"")]))
    equals = RecordFilter(header_equals=[("region", b"eu")])
    assert equals.keeps(msg(headers=[("region", b"us"), ("region", b"eu")]))
    assert not equals.keeps(msg(headers=[("region", b"us")]))
    prefix = RecordFilter(key_prefixes=[b"eu-", b"uk-"])
    assert prefix.keeps(msg(key=b"uk-1")) and not prefix.keeps(msg(key=b"us-1")) and not prefix.keeps(msg())
    calls = []
    python = RecordFilter(python=lambda *args: calls.append(args) or args[2] == b"yes")
    assert python.keeps(msg(key=b"yes")) and not python.keeps(msg(key=b"no"))
    assert calls[0] == ("t", 0, b"yes", None, None)


def test_filtered_records_are_gaps_that_progress_passes():
    from engine._fastpath import RecordFilter

    producer = FakeProducer()
    relay = make_relay(producer)
    relay.bookkeeper.record_filter = RecordFilter(key_prefixes=[b"keep"])
    ledger = relay.add_partition("t", "A.t", 0)
    # nothing in flight: a filtered record is done at once
    relay.send([FakeMessage("t", 0, 0, key=b"drop")])
    assert ledger.last_acked_source == 0 and ledger.filtered_records == 1
    # 1 in flight, 2 filtered: progress reaches 2 only when 1 is acked
    relay.send([FakeMessage("t", 0, 1, key=b"keep"), FakeMessage("t", 0, 2, key=b"drop")])
    assert ledger.last_acked_source == 0
    producer.deliver(relay)
    assert (ledger.last_acked_source, ledger.last_acked_target) == (2, 0)
    # 3 in flight, 4 filtered, 5 in flight: 4 is passed by the ack of 5, not earlier
    relay.send([FakeMessage("t", 0, 3, key=b"keep"), FakeMessage("t", 0, 4, key=b"drop"),
                FakeMessage("t", 0, 5, key=b"keep")])
    producer.deliver(relay, count=1)
    assert ledger.last_acked_source == 3
    producer.deliver(relay)
    assert (ledger.last_acked_source, ledger.last_acked_target) == (5, 2)
    assert [r["key"] for r in producer.produced] == []
    assert ledger.filtered_records == 3 and ledger.acked_records == 3


def test_a_raising_python_filter_stops_naming_the_record():
    from engine._fastpath import RecordFilter, RecordFilterFailed

    relay = make_relay(FakeProducer())
    relay.bookkeeper.record_filter = RecordFilter(python=lambda *args: 1 / 0)
    relay.add_partition("t", "A.t", 0)
    with pytest.raises(RecordFilterFailed, match=r"record.filter.python raised on t\[0\]@7: ZeroDivisionError"):
        relay.send([FakeMessage("t", 0, 7)])


def test_partitions_marked_unfiltered_bypass_the_filter():
    from engine._fastpath import RecordFilter

    producer = FakeProducer()
    relay = make_relay(producer)
    relay.bookkeeper.record_filter = RecordFilter(header_present=["trace"])
    relay.add_partition("heartbeats", "A.heartbeats", 0, apply_filter=False)
    assert relay.send([FakeMessage("heartbeats", 0, 0, value=b"beat")]) == 1
    assert producer.produced[0]["topic"] == "A.heartbeats"


def relay_with_syncs(lag_max: int):
    producer = FakeProducer()
    relay = make_relay(producer)
    relay.bookkeeper.offset_lag_max = lag_max
    ledger = relay.add_partition("t", "A.t", 0)
    return producer, relay, ledger


def test_offset_syncs_follow_mm2_spacing_and_flush_promotes_the_newest():
    producer, relay, ledger = relay_with_syncs(100)
    syncs = []
    for offset in range(300):
        relay.send([FakeMessage("t", 0, offset)])
        producer.deliver(relay)
        syncs += relay.bookkeeper.take_offset_syncs()
    # MM2's steady state with offset.lag.max = 100: downstream 0, 101, 202
    assert syncs == [("t", 0, 0, 0), ("t", 0, 101, 101), ("t", 0, 202, 202)]
    assert relay.bookkeeper.take_offset_syncs() == []
    relay.bookkeeper.promote_delayed_syncs()  # what a progress store does
    assert relay.bookkeeper.take_offset_syncs() == [("t", 0, 299, 299)]
    relay.bookkeeper.promote_delayed_syncs()
    assert relay.bookkeeper.take_offset_syncs() == []


def test_offset_syncs_on_gaps_and_target_truncation_and_lag_zero():
    producer, relay, ledger = relay_with_syncs(100)
    for offset in (10, 11, 15, 16):  # 12-14 compacted away or filtered
        relay.send([FakeMessage("t", 0, offset)])
    producer.deliver(relay)
    assert relay.bookkeeper.take_offset_syncs() == [("t", 0, 10, 0), ("t", 0, 15, 2)]  # the first, then the gap's
    producer.next_offset[("A.t", 0)] = 0  # the target partition was truncated and starts over
    relay.send([FakeMessage("t", 0, 17)])
    producer.deliver(relay)
    assert relay.bookkeeper.take_offset_syncs() == [("t", 0, 17, 0)]

    producer, relay, ledger = relay_with_syncs(0)
    relay.send([FakeMessage("t", 0, o) for o in range(3)])
    producer.deliver(relay, count=1)
    assert relay.bookkeeper.take_offset_syncs() == [("t", 0, 0, 0)]
    producer.deliver(relay)
    assert relay.bookkeeper.take_offset_syncs() == [("t", 0, 1, 1), ("t", 0, 2, 2)]  # every record is due, none merged


def test_no_offset_syncs_when_disabled():
    producer, relay, ledger = relay_with_syncs(-1)
    relay.send([FakeMessage("t", 0, 0)])
    producer.deliver(relay)
    relay.bookkeeper.promote_delayed_syncs()
    assert relay.bookkeeper.take_offset_syncs() == []


def test_mm2_metrics_are_aggregated_per_partition_without_an_object_per_record():
    from engine._fastpath import RecordFilter, wall_clock_ms

    producer = FakeProducer()
    relay = make_relay(producer)
    relay.bookkeeper.record_filter = RecordFilter(key_prefixes=[b"keep"])
    ledger = relay.add_partition("t", "A.t", 0)
    before = wall_clock_ms()
    written = [before - 5_000, before - 2_000, before - 9_000]
    relay.send([FakeMessage("t", 0, 0, key=b"keep", value=b"abc", timestamp=(1, written[0])),
                FakeMessage("t", 0, 1, key=b"drop", value=b"12345", timestamp=(1, written[1])),
                FakeMessage("t", 0, 2, key=b"keep", value=None, timestamp=(1, written[2])),
                FakeMessage("t", 0, 3, key=b"keep", value=b"xy", timestamp=(0, -1))])
    polled = wall_clock_ms()
    # byte-count at poll: every polled record's value, filtered ones too (MM2 counts before its SMTs)
    assert ledger.polled_value_bytes == 3 + 5 + 0 + 2
    producer.deliver(relay)
    acked = wall_clock_ms()
    (age_count, age_sum, age_min, age_max, age_last), latency = ledger.take_timings()
    # record age of every polled record with a timestamp, at one clock reading for the batch
    assert age_count == 3
    assert before - written[1] <= age_min <= polled - written[1]
    assert before - written[2] <= age_max <= polled - written[2]
    assert age_last == age_max  # the last polled record with a timestamp is also the oldest
    assert sum(before - w for w in written) <= age_sum <= sum(polled - w for w in written)
    # replication latency of the acknowledged records only (not the filtered one, not the one without a timestamp)
    latency_count, latency_sum, latency_min, latency_max, latency_last = latency
    assert latency_count == 2 and ledger.acked_records == 3
    assert before - written[0] <= latency_min <= acked - written[0]
    assert before - written[2] <= latency_max == latency_last <= acked - written[2]
    assert latency_sum == latency_min + latency_max
    assert ledger.newest_acked_timestamp == written[0]
    # the next interval starts empty; the last values stay
    assert ledger.take_timings() == ((0, 0, 0, 0, age_last), (0, 0, 0, 0, latency_last))



def test_records_of_a_removed_or_unknown_partition_are_dropped_by_the_python_loop():
    producer = FakeProducer()
    relay = make_relay(producer)
    kept = relay.add_partition("t", "A.t", 0)
    relay.add_partition("t", "A.t", 1)
    relay.remove_partition("A.t", 1)
    sent = relay.send([FakeMessage("t", 1, 5), FakeMessage("t", 7, 5), FakeMessage("other", 0, 5),
                       FakeMessage("t", 0, 5, value=b"v")])
    assert sent == 1 and [(r["topic"], r["partition"], r["value"]) for r in producer.produced] == [("A.t", 0, b"v")]
    producer.deliver(relay)
    assert (kept.last_acked_source, kept.polled_value_bytes, relay.bookkeeper.failure) == (5, 1, None)


def test_the_in_flight_ring_keeps_its_order_over_wraps_and_growth_at_power_of_two_sizes():
    producer = FakeProducer()
    relay = make_relay(producer)
    ledger = relay.add_partition("t", "A.t", 0)
    assert ledger.ring_capacity == 1024
    next_offset, acked = 0, -1
    for batch, acks in [(700, 600), (900, 300), (1500, 2000), (3000, 1000), (4100, 5000)]:
        relay.send([FakeMessage("t", 0, next_offset + i) for i in range(batch)])
        next_offset += batch
        acks = min(acks, ledger.in_flight)
        producer.deliver(relay, count=acks)
        acked += acks
        # the acks map back to the source offsets in produce order, whatever the slots
        assert (ledger.last_acked_source, ledger.last_acked_target) == (acked, acked)
        capacity = ledger.ring_capacity
        assert capacity & (capacity - 1) == 0 and capacity >= ledger.in_flight
    producer.deliver(relay)
    assert ledger.last_acked_source == next_offset - 1 and ledger.in_flight == 0 and ledger.ring_capacity == 8192
