"""The tail of a batch that starts before the offset a copy resumes at, as a new uncompressed batch.

A resume in the middle of a batch (the stored progress is a record offset) fetches the whole batch; its
records before the resume offset are already on the target. Sending the batch as it is would copy them
twice, so its remaining records go in a batch of their own: decompressed, each record's offset delta
renumbered from 0 (a varint, so each record is re-encoded around it), everything else of every record
kept byte for byte, the batch uncompressed (the target's broker compresses it where the remote topic
asks for a codec). This happens once per partition and resume, never in the steady state.

Record layout inside the records section: length (varint), attributes (int8), timestamp delta (varlong),
offset delta (varint), then key, value and headers, which are kept as they are.
"""

from __future__ import annotations

import struct
import zlib

import cramjam

from engine.batch.records import HEADER, HEADER_SIZE, Batch, BatchError

_XERIAL = b"\x82SNAPPY\x00"  # the Java producer's snappy framing: magic, version, compat, then blocks
_BLOCK = struct.Struct(">i")


def decompress(codec: str, data: memoryview) -> bytes:
    if codec == "none":
        return bytes(data)
    if codec == "gzip":
        return zlib.decompress(data, wbits=31)
    if codec == "lz4":
        return bytes(cramjam.lz4.decompress(bytes(data)))
    if codec == "zstd":
        return bytes(cramjam.zstd.decompress(bytes(data)))
    if codec == "snappy":
        if bytes(data[:8]) != _XERIAL:  # librdkafka sends one raw snappy block
            return bytes(cramjam.snappy.decompress_raw(bytes(data)))
        out, at = [], 16
        while at < len(data):
            (length,) = _BLOCK.unpack_from(data, at)
            out.append(bytes(cramjam.snappy.decompress_raw(bytes(data[at + 4:at + 4 + length]))))
            at += 4 + length
        return b"".join(out)
    raise BatchError(f"cannot decompress codec {codec}")


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    shift = raw = 0
    while True:
        byte = data[at]
        at += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), at


def _varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def trim_head(records_section: memoryview | bytes, batch: Batch, offset: int) -> bytearray:
    """A batch of `batch`'s records at or after source offset `offset`, uncompressed, its base offset
    the first of them; the same producer fields, timestamps and timestamp type. Raises when none is left."""
    view = memoryview(records_section)[batch.position:batch.position + batch.size]
    records = decompress(batch.codec, view[HEADER_SIZE:])
    kept, first_delta, max_timestamp_delta, at = [], None, None, 0
    for _ in range(batch.record_count):
        length, body = _read_varint(records, at)
        end = body + length
        timestamp_delta, after_timestamp = _read_varint(records, body + 1)  # after the attributes byte
        offset_delta, after_offset = _read_varint(records, after_timestamp)
        if batch.base_offset + offset_delta >= offset:
            if first_delta is None:
                first_delta = offset_delta
            record = (records[body:after_timestamp] + _varint(offset_delta - first_delta) + records[after_offset:end])
            kept.append(_varint(len(record)) + record)
            max_timestamp_delta = timestamp_delta if max_timestamp_delta is None else max(max_timestamp_delta,
                                                                                           timestamp_delta)
        at = end
    if first_delta is None or max_timestamp_delta is None:  # both are set with the first record kept
        raise BatchError(f"batch at offset {batch.base_offset} holds no record at or after {offset}")
    kept_records = b"".join(kept)
    out = bytearray(HEADER_SIZE + len(kept_records))
    max_timestamp = batch.max_timestamp if batch.log_append_time else batch.base_timestamp + max_timestamp_delta
    HEADER.pack_into(out, 0, batch.base_offset + first_delta, len(out) - 12, batch.leader_epoch, 2, 0,
                     batch.attributes & ~0x07, len(kept) - 1, batch.base_timestamp, max_timestamp,
                     batch.producer_id, batch.producer_epoch, batch.base_sequence, len(kept))
    out[HEADER_SIZE:] = kept_records
    return out
