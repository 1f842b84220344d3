"""Resuming after the target's tail: the record match and the offset-map runs of what was found."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from engine.offsets import wire
from engine.worker.resume import runs_of, same_record


class Message:
    def __init__(self, key, value, headers, timestamp, timestamp_type=TIMESTAMP_CREATE_TIME):
        self._k, self._v, self._h, self._t = key, value, headers, (timestamp_type, timestamp)

    def key(self): return self._k
    def value(self): return self._v
    def headers(self): return self._h
    def timestamp(self): return self._t


ORIGINAL = Message(b"k", b"v", [("h", b"1")], 1000)


def test_a_copy_matches_by_key_value_headers_and_timestamp():
    assert same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1")], 1000), None)
    assert not same_record(ORIGINAL, Message(b"k", b"w", [("h", b"1")], 1000), None)
    assert not same_record(ORIGINAL, Message(b"x", b"v", [("h", b"1")], 1000), None)
    assert not same_record(ORIGINAL, Message(b"k", b"v", [], 1000), None)
    assert not same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1")], 1001), None)


def test_a_remote_topic_with_log_append_time_is_matched_without_timestamps():
    assert same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1")], 99_999, TIMESTAMP_LOG_APPEND_TIME), None)


def test_with_provenance_the_copy_must_carry_this_hop_s_header_for_this_very_record():
    here = wire.Provenance("A", "orders", 0, 41)
    header = (wire.PROVENANCE_HEADER, here.encode())
    assert same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1"), header], 1000), here)
    assert not same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1")], 1000), here)
    other = (wire.PROVENANCE_HEADER, wire.Provenance("A", "orders", 0, 40).encode())
    assert not same_record(ORIGINAL, Message(b"k", b"v", [("h", b"1"), other], 1000), here)


def test_runs_go_on_while_both_offsets_step_by_one():
    # source 10, 11 copied to 100, 101; 12 filtered; 13, 14 to 102, 103
    pairs = [(10, 100), (11, 101), (13, 102), (14, 103)]
    assert runs_of("orders", 3, pairs) == [("orders", 3, 10, 100, 11, 101), ("orders", 3, 13, 102, 14, 103)]
    assert runs_of("orders", 3, []) == []


def test_where_the_copy_resumes_from_the_offset_map_and_the_stored_progress():
    from engine.offsets.translation import PartitionMap
    from engine.worker.resume import copy_resumes_at

    # source 0 filtered; 1..2 -> 0..1; 3 filtered; 4..9 -> 2..7
    mapped = PartitionMap()
    mapped.add(1, 0, 2, 1)
    mapped.add(4, 2, 9, 7)
    assert copy_resumes_at(mapped, 2) == 2 and copy_resumes_at(mapped, 3) == 2 and copy_resumes_at(mapped, 9) == 8
    # nothing stored (a crash before the first progress store, after the map's first run): from the
    # first run's copy, though source offset 0 (filtered) has none
    assert copy_resumes_at(mapped, -1) == 0
    later = PartitionMap()
    later.add(1000, 40, 1010, 50)
    assert copy_resumes_at(later, -1) == 40, "records before the flow's first copy are not its own"
    assert copy_resumes_at(None, -1) == 0 and copy_resumes_at(PartitionMap(), -1) == 0
    # stored progress the map does not place: another replicator's copy (a switch from MM2)
    assert copy_resumes_at(None, 499) is None and copy_resumes_at(later, 999) is None
