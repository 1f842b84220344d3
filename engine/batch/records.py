"""Record batches (magic v2) read out of a fetched records section, and rewritten in place for the target.

Layout of a batch, big-endian, 61 header bytes then the records (compressed as a whole unless codec 0):

    base offset      int64   the source offset of the first record; a producer sends 0
    batch length     int32   bytes after this field
    leader epoch     int32   the partition leader epoch, set by the broker; a producer sends -1
    magic            int8    2
    crc              uint32  CRC-32C of everything after it
    attributes       int16   bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control, 6 delete horizon
    last offset delta int32  record count - 1 unless compaction left gaps
    base timestamp   int64   (the delete horizon when bit 6 is set; records keep base + their delta)
    max timestamp    int64
    producer id      int64   -1 without idempotence
    producer epoch   int16
    base sequence    int32
    record count     int32

What the relay rewrites and why: docs/batch-relay.md, "What is rewritten". Keys, values, headers,
timestamps, the codec and the records bytes are never touched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
_LENGTH = struct.Struct(">qi")  # base offset, batch length: enough to find the next batch
_PRODUCER = struct.Struct(">qhi")  # producer id, epoch, base sequence
_CRC_AT, _ATTRIBUTES_AT, _PRODUCER_AT = 17, 21, 43  # byte positions inside a batch

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TIMESTAMP_TYPE, TRANSACTIONAL, CONTROL, DELETE_HORIZON = 0x08, 0x10, 0x20, 0x40
NO_PRODUCER_ID, NO_LEADER_EPOCH = -1, -1


class BatchError(Exception):
    """A records section that is not a sequence of magic v2 batches."""


@dataclass(frozen=True, slots=True)
class Batch:
    position: int  # where the batch starts in the records section
    size: int  # its bytes, header included
    base_offset: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def codec(self) -> str:
        return CODECS[self.attributes & 0x07] if self.attributes & 0x07 < len(CODECS) else "unknown"

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset after the batch: where the next fetch starts."""
        return self.last_offset + 1

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL)

    @property
    def control(self) -> bool:
        return bool(self.attributes & CONTROL)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE)


def read_batches(records: memoryview | bytes, fetch_offset: int = 0) -> tuple[list[Batch], bool]:
    """The whole batches of a fetched records section that hold offsets at or after `fetch_offset`, and
    whether the section ends with a partial batch (the broker cuts the last one at its byte limit: the
    next fetch starts at that batch again). A batch that starts before `fetch_offset` is returned: the
    caller trims it (`starts_before`)."""
    view = memoryview(records)
    batches: list[Batch] = []
    at, end = 0, len(view)
    while at + 12 <= end:
        base_offset, length = _LENGTH.unpack_from(view, at)
        size = length + 12
        if length < HEADER_SIZE - 12:
            raise BatchError(f"batch at offset {base_offset} claims {length} bytes, less than a header")
        if at + size > end:
            return batches, True
        fields = HEADER.unpack_from(view, at)
        if fields[3] != 2:
            raise BatchError(f"batch at offset {base_offset} has magic {fields[3]}, not 2")
        batch = Batch(at, size, base_offset, *fields[2:])
        if batch.last_offset >= fetch_offset:
            batches.append(batch)
        at += size
    return batches, at < end


def crc_ok(records: memoryview | bytes, batch: Batch) -> bool:
    view = memoryview(records)
    return crc32c.crc32c(view[batch.position + _ATTRIBUTES_AT:batch.position + batch.size]) == batch.crc


def copy_refusal(batch: Batch, max_message_bytes: int | None = None) -> str | None:
    """Why part 1 does not copy this batch as bytes (the record loop copies it), or None when it can."""
    if batch.control:
        return "control batch"
    if batch.transactional:
        return "transactional source"
    if batch.log_append_time:
        return "LogAppendTime batch"
    if batch.codec == "unknown":
        return f"unknown codec {batch.attributes & 0x07}"
    if batch.last_offset_delta != batch.record_count - 1:
        return "offset gaps (compacted topic)"
    if max_message_bytes is not None and batch.size > max_message_bytes:
        return f"batch of {batch.size} bytes over max.message.bytes {max_message_bytes}"
    return None


def rewrite(buffer: memoryview, batch: Batch, producer_id: int, producer_epoch: int, base_sequence: int) -> memoryview:
    """Rewrites the batch in its (writable) buffer as the target's broker demands of a producer and returns
    a view of it: base offset 0, no leader epoch, the relay's producer id, epoch and sequence, the
    transactional and delete-horizon bits cleared, a new CRC-32C. The records bytes stay as they are."""
    view = buffer[batch.position:batch.position + batch.size]
    struct.pack_into(">q", view, 0, 0)
    struct.pack_into(">i", view, 12, NO_LEADER_EPOCH)
    struct.pack_into(">h", view, _ATTRIBUTES_AT, batch.attributes & ~(TRANSACTIONAL | DELETE_HORIZON))
    _PRODUCER.pack_into(view, _PRODUCER_AT, producer_id, producer_epoch, base_sequence)
    struct.pack_into(">I", view, _CRC_AT, crc32c.crc32c(view[_ATTRIBUTES_AT:]))
    return view
