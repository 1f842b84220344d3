"""engine/batch/records.py on records sections fetched from a real 4.3.1 broker (tests/data/batch_vectors.json,
written by tools/capture_batch_vectors.py) and on hand-built edge cases."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cramjam
import crc32c
import pytest

from engine.batch.records import HEADER_SIZE, BatchError, copy_refusal, crc_ok, read_batches, rewrite
from engine.batch.trim import decompress, trim_head

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "batch_vectors.json").read_text())
SECTIONS = {name: bytes.fromhex(section) for name, section in VECTORS["sections"].items()}
TIMESTAMP_MS = VECTORS["timestamp_ms"]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), at


def _field(data: bytes, at: int) -> tuple[bytes | None, int]:
    length, at = _varint(data, at)
    return (None, at) if length < 0 else (data[at:at + length], at + length)


def uncompressed_records(records: bytes) -> list[tuple]:
    """(timestamp delta, offset delta, key, value, headers) of each record of an uncompressed batch."""
    out, at = [], 0
    while at < len(records):
        length, at = _varint(records, at)
        end = at + length
        at += 1  # attributes
        timestamp_delta, at = _varint(records, at)
        offset_delta, at = _varint(records, at)
        key, at = _field(records, at)
        value, at = _field(records, at)
        count, at = _varint(records, at)
        headers = []
        for _ in range(count):
            name, at = _field(records, at)
            header_value, at = _field(records, at)
            headers.append((name.decode(), header_value))
        assert at == end
        out.append((timestamp_delta, offset_delta, key, value, headers))
    return out


def _produced() -> list[tuple]:
    def raw(value):
        return None if value is None else bytes.fromhex(value)
    return [(i, i, raw(key), raw(value), [(name, raw(v)) for name, v in headers])
            for i, (key, value, headers) in enumerate(VECTORS["records"])]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_a_batch_of_each_codec_reads_as_the_broker_wrote_it(codec):
    section = SECTIONS[f"codec-{codec}"]
    [batch], partial = read_batches(section)
    assert not partial
    assert (batch.position, batch.size, batch.base_offset, batch.magic) == (0, len(section), 0, 2)
    assert (batch.codec, batch.record_count, batch.last_offset_delta, batch.next_offset) == (codec, 3, 2, 3)
    assert (batch.base_timestamp, batch.max_timestamp) == (TIMESTAMP_MS, TIMESTAMP_MS + 2)
    assert batch.producer_id >= 0 and (batch.producer_epoch, batch.base_sequence) == (0, 0)
    assert crc_ok(section, batch)
    assert copy_refusal(batch) is None


def test_the_uncompressed_vector_holds_the_produced_records_null_keys_values_and_header_values_included():
    assert uncompressed_records(SECTIONS["codec-none"][HEADER_SIZE:]) == _produced()


def test_rewrite_sets_the_producer_fields_and_a_new_crc_and_leaves_the_records_bytes():
    for name in ("codec-none", "codec-zstd", "not-idempotent"):
        section = SECTIONS[name]
        buffer = memoryview(bytearray(section))
        [batch], _ = read_batches(buffer)
        out = rewrite(buffer, batch, producer_id=4242, producer_epoch=3, base_sequence=17)
        [after], _ = read_batches(out)
        assert (after.base_offset, after.leader_epoch) == (0, -1)
        assert (after.producer_id, after.producer_epoch, after.base_sequence) == (4242, 3, 17)
        assert (after.attributes, after.last_offset_delta, after.record_count) == (
            batch.attributes, batch.last_offset_delta, batch.record_count)
        assert (after.base_timestamp, after.max_timestamp) == (batch.base_timestamp, batch.max_timestamp)
        assert bytes(out[HEADER_SIZE:]) == section[HEADER_SIZE:]
        assert crc_ok(out, after) and after.crc != batch.crc


def test_rewrite_clears_the_transactional_and_delete_horizon_bits():
    section = bytearray(SECTIONS["transactional"])
    [data, _marker], _ = read_batches(section)
    struct.pack_into(">h", section, 21, data.attributes | 0x40)  # as the cleaner marks a horizon
    out = rewrite(memoryview(section), data, 1, 0, 0)
    [after], _ = read_batches(out)
    assert after.attributes == data.attributes & ~0x10 == 0
    assert not after.transactional and crc_ok(out, after)


def test_what_part_1_does_not_copy_as_bytes_is_named():
    data, marker = read_batches(SECTIONS["transactional"])[0]
    assert (copy_refusal(data), copy_refusal(marker)) == ("transactional source", "control batch")
    assert (marker.base_offset, marker.record_count) == (3, 1)
    [append_time], _ = read_batches(SECTIONS["log-append-time"])
    assert copy_refusal(append_time) == "LogAppendTime batch"
    [plain], _ = read_batches(SECTIONS["codec-lz4"])
    assert copy_refusal(plain, max_message_bytes=plain.size) is None
    assert copy_refusal(plain, max_message_bytes=plain.size - 1) == (
        f"batch of {plain.size} bytes over max.message.bytes {plain.size - 1}")


def _patched(name: str, at: int, fmt: str, value: int) -> bytearray:
    section = bytearray(SECTIONS[name])
    struct.pack_into(fmt, section, at, value)
    struct.pack_into(">I", section, 17, crc32c.crc32c(section[21:]))
    return section


def test_a_compacted_batch_with_offset_gaps_is_refused():
    [gapped], _ = read_batches(_patched("codec-none", 23, ">i", 7))  # 3 records spread over 8 offsets
    assert (gapped.record_count, gapped.next_offset) == (3, 8)
    assert copy_refusal(gapped) == "offset gaps (compacted topic)"


def test_an_unknown_codec_is_refused():
    [odd], _ = read_batches(_patched("codec-none", 21, ">h", 5))
    assert copy_refusal(odd) == "unknown codec 5"


def test_a_partial_trailing_batch_is_left_for_the_next_fetch():
    one, two = SECTIONS["codec-none"], SECTIONS["codec-gzip"]
    second = bytearray(two)
    struct.pack_into(">q", second, 0, 3)  # the batch after the first one
    section = one + bytes(second)
    for cut in (1, 11, 12, len(two) - 1):
        batches, partial = read_batches(section[:-cut])
        assert ([b.base_offset for b in batches], partial) == ([0], True)
    assert read_batches(section[:5]) == ([], True)
    batches, partial = read_batches(section)
    assert ([(b.base_offset, b.codec) for b in batches], partial) == ([(0, "none"), (3, "gzip")], False)


def test_batches_before_the_fetch_offset_are_dropped_and_one_holding_it_is_kept():
    section = SECTIONS["transactional"]  # offsets 0-2 then the marker at 3
    assert [b.base_offset for b in read_batches(section, fetch_offset=2)[0]] == [0, 3]
    assert [b.base_offset for b in read_batches(section, fetch_offset=3)[0]] == [3]
    assert read_batches(section, fetch_offset=4) == ([], False)


def test_a_section_that_is_not_magic_v2_batches_is_an_error_naming_the_offset():
    with pytest.raises(BatchError, match="batch at offset 0 has magic 1, not 2"):
        read_batches(_patched("codec-none", 16, ">b", 1))
    with pytest.raises(BatchError, match="batch at offset 0 claims 20 bytes, less than a header"):
        read_batches(_patched("codec-none", 8, ">i", 20))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_a_resume_inside_a_batch_keeps_the_records_from_the_resume_offset_renumbered(codec):
    section = bytearray(SECTIONS[f"codec-{codec}"])
    [batch], _ = read_batches(section)
    struct.pack_into(">q", section, 0, 100)  # as if the batch held source offsets 100-102
    [batch], _ = read_batches(section, fetch_offset=101)
    [tail], partial = read_batches(trim_head(section, batch, 101))
    assert not partial
    assert (tail.base_offset, tail.record_count, tail.last_offset_delta, tail.codec) == (101, 2, 1, "none")
    assert (tail.base_timestamp, tail.max_timestamp, tail.producer_id) == (
        batch.base_timestamp, batch.max_timestamp, batch.producer_id)
    [_, *rest] = _produced()
    assert uncompressed_records(bytes(trim_head(section, batch, 101)[HEADER_SIZE:])) == [
        (timestamp_delta, offset_delta - 1, key, value, headers)
        for timestamp_delta, offset_delta, key, value, headers in rest]
    [last], _ = read_batches(trim_head(section, batch, 102))
    assert (last.base_offset, last.record_count, last.max_timestamp) == (102, 1, TIMESTAMP_MS + 2)
    with pytest.raises(BatchError, match="batch at offset 100 holds no record at or after 103"):
        trim_head(section, batch, 103)


def test_snappy_in_the_java_producers_framing_is_read_too():
    records = SECTIONS["codec-none"][HEADER_SIZE:]
    blocks = [records[:40], records[40:]]
    framed = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + b"".join(
        struct.pack(">i", len(c)) + c for c in (bytes(cramjam.snappy.compress_raw(b)) for b in blocks))
    assert decompress("snappy", memoryview(framed)) == records
