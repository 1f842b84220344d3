"""MM2's internal topic names and byte formats — the one place that writes or reads them.

Layouts (docs/design.md, 'Internal topics and byte formats'). STRING = int16 big-endian byte count +
UTF-8; INT16/32/64 big-endian.
  OffsetSync  key: topic STRING, partition INT32          value: upstream INT64, downstream INT64
  Checkpoint  key: group STRING, topic STRING, partition INT32
              value: version INT16 (0), upstream INT64, downstream INT64, metadata STRING
  Heartbeat   key: source STRING, target STRING           value: version INT16 (0), timestamp INT64
  Connect source offset (mm2-offsets.<source>.internal, JsonConverter, schemas off)
              key: ["MirrorSourceConnector",{"cluster":"A","partition":3,"topic":"orders"}]
              value: {"offset":<last replicated source offset>}
Readers ignore trailing bytes and reject short buffers, as Java's Schema.read does.
"""

from __future__ import annotations

import json
import struct

import msgspec

SOURCE_CONNECTOR = "MirrorSourceConnector"


class WireError(ValueError):
    """A record in an MM2 internal topic does not decode."""


# -- topic names -------------------------------------------------------------------------------


def connect_offsets_topic(source_alias: str) -> str:
    """Where the dedicated MM2 driver's herder <source>-><target> keeps source progress (on target)
    unless the file's `offset.storage.topic` names another topic (FlowConfig.offsets_topic)."""
    return f"mm2-offsets.{source_alias}.internal"


def offset_syncs_topic(other_alias: str, internal_separator: str = ".") -> str:
    sep = internal_separator
    return f"mm2-offset-syncs{sep}{other_alias}{sep}internal"


def checkpoints_topic(source_alias: str, internal_separator: str = ".") -> str:
    sep = internal_separator
    return f"{source_alias}{sep}checkpoints{sep}internal"


# -- Connect source offsets ----------------------------------------------------------------------


def _compact_json(value: object) -> bytes:
    # Jackson's compact form: no spaces, non-ASCII written as UTF-8
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def source_offset_key(source_alias: str, topic: str, partition: int) -> bytes:
    # key order of Java's HashMap over these three keys (docs/design.md, 'Progress records')
    return _compact_json(
        [SOURCE_CONNECTOR, {"cluster": source_alias, "partition": partition, "topic": topic}]
    )


def source_offset_value(last_replicated_offset: int) -> bytes:
    return _compact_json({"offset": last_replicated_offset})


class SourcePartition(msgspec.Struct, frozen=True, order=True):
    cluster: str
    topic: str
    partition: int


def decode_source_offset(key: bytes | None, value: bytes | None) -> tuple[SourcePartition, int | None] | None:
    """(partition, last replicated offset) for a MirrorSourceConnector record, None for others.

    A tombstone yields offset None (the stored progress was deleted).
    """
    if key is None:
        return None
    try:
        decoded = json.loads(key)
    except ValueError:
        return None
    if not (isinstance(decoded, list) and len(decoded) == 2 and decoded[0] == SOURCE_CONNECTOR):
        return None
    fields = decoded[1]
    if not isinstance(fields, dict) or not {"cluster", "topic", "partition"} <= fields.keys():
        return None
    where = SourcePartition(str(fields["cluster"]), str(fields["topic"]), int(fields["partition"]))
    if value is None:
        return where, None
    try:
        offset = json.loads(value)["offset"]
    except (ValueError, KeyError, TypeError) as error:
        raise WireError(f"bad Connect offset value for {where}: {value!r}") from error
    return where, int(offset)


# -- Kafka protocol STRUCT primitives -------------------------------------------------------------


def _string(text: str) -> bytes:
    encoded = text.encode("utf-8")
    if len(encoded) > 32767:
        raise WireError(f"string of {len(encoded)} bytes exceeds the STRING limit of 32767")
    return struct.pack(">h", len(encoded)) + encoded


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise WireError(f"record too short: need {self.pos + size} bytes, have {len(self.data)}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str:
        size = self.int16()
        if size < 0:
            raise WireError("null STRING where a value is required")
        return bytes(self.take(size)).decode("utf-8")


class OffsetSync(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int

    def key(self) -> bytes:
        return _string(self.topic) + struct.pack(">i", self.partition)

    def value(self) -> bytes:
        return struct.pack(">qq", self.upstream_offset, self.downstream_offset)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> OffsetSync:
        k, v = _Reader(key), _Reader(value)
        return cls(k.string(), k.int32(), v.int64(), v.int64())


class Checkpoint(msgspec.Struct, frozen=True):
    group: str
    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int
    metadata: str = ""

    def key(self) -> bytes:
        return _string(self.group) + _string(self.topic) + struct.pack(">i", self.partition)

    def value(self) -> bytes:
        return (
            struct.pack(">hqq", 0, self.upstream_offset, self.downstream_offset)
            + _string(self.metadata)
        )

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Checkpoint:
        k, v = _Reader(key), _Reader(value)
        group, topic, partition = k.string(), k.string(), k.int32()
        v.int16()  # version: Java checks it only with a disabled assert, so any version reads as v0
        return cls(group, topic, partition, v.int64(), v.int64(), v.string())


class Heartbeat(msgspec.Struct, frozen=True):
    source_alias: str
    target_alias: str
    timestamp_ms: int

    def key(self) -> bytes:
        return _string(self.source_alias) + _string(self.target_alias)

    def value(self) -> bytes:
        return struct.pack(">hq", 0, self.timestamp_ms)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Heartbeat:
        k, v = _Reader(key), _Reader(value)
        source, target = k.string(), k.string()
        v.int16()
        return cls(source, target, v.int64())


# -- the offset map (mirror-engine's own, for exact translation) ----------------------------------
#   topic  mm2-offset-map.<source>.internal on the target: matches MM2's internal pattern, so no
#          flow ever replicates it; compacted, so each key keeps its newest value
#   key    topic STRING (source-side name), partition INT32, first upstream offset INT64
#   value  version INT16 (0), first downstream INT64, last upstream INT64, last downstream INT64
# One record per run of copies in which source and target offsets both step by one; a run ends at
# any gap (compaction, transaction markers, filtered records, a restarted worker's re-copies).


def offset_map_topic(source_alias: str) -> str:
    return f"mm2-offset-map.{source_alias}.internal"


class OffsetRun(msgspec.Struct, frozen=True, order=True):
    topic: str
    partition: int
    first_upstream: int
    first_downstream: int
    last_upstream: int
    last_downstream: int

    def key(self) -> bytes:
        return _string(self.topic) + struct.pack(">iq", self.partition, self.first_upstream)

    def value(self) -> bytes:
        return struct.pack(">hqqq", 0, self.first_downstream, self.last_upstream, self.last_downstream)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> OffsetRun:
        k, v = _Reader(key), _Reader(value)
        topic, partition, first_upstream = k.string(), k.int32(), k.int64()
        v.int16()
        return cls(topic, partition, first_upstream, v.int64(), v.int64(), v.int64())


# -- provenance header (mirror-engine's own, opt-in) ----------------------------------------------
#   header name  mirror-engine-origin
#   value        version INT16 (0), origin cluster STRING, topic STRING, partition INT32, offset INT64
# Appended by each hop after the record's own headers, so a record that crossed A->B->C carries A's
# origin first, then B's. The fast path writes the prefix built here plus the offset per record.
# The codec's C side (engine/fastpath/provenance.pyx) is held to the same vectors
# (tests/data/provenance_vectors.json): the value per record, and the cycle rule of came_from().

PROVENANCE_HEADER = "mirror-engine-origin"
_INT64 = struct.Struct(">q")


class Provenance(msgspec.Struct, frozen=True):
    cluster: str
    topic: str
    partition: int
    offset: int

    def encode(self) -> bytes:
        return provenance_value(provenance_prefix(self.cluster, self.topic, self.partition), self.offset)

    @classmethod
    def decode(cls, value: bytes) -> Provenance:
        reader = _Reader(value)
        version = reader.int16()
        if version != 0:
            raise WireError(f"{PROVENANCE_HEADER}: unknown version {version}")
        return cls(reader.string(), reader.string(), reader.int32(), reader.int64())


def provenance_prefix(cluster: str, topic: str, partition: int) -> bytes:
    """Everything of a provenance value but its offset: fixed per source partition."""
    return struct.pack(">h", 0) + _string(cluster) + _string(topic) + struct.pack(">i", partition)


def provenance_value(prefix: bytes, offset: int) -> bytes:
    """A record's provenance value from its partition's provenance_prefix: the fast path's per-record step."""
    return prefix + _INT64.pack(offset)


def came_from(headers, cluster: bytes) -> bool:
    """Whether a provenance header names `cluster` (UTF-8) as an origin: copying the record there
    would close a record-level cycle. Only the cluster STRING after the version is read, so any
    version and any tail count, as the C loop reads it."""
    size = len(cluster)
    for name, value in headers or ():
        if name == PROVENANCE_HEADER and value is not None and len(value) >= 4 + size \
                and int.from_bytes(value[2:4], "big") == size and value[4:4 + size] == cluster:
            return True
    return False


def without_provenance(headers, expected: Provenance) -> list | None:
    """The headers without this hop's provenance header, which the copy carries last; None when the
    last header is not exactly `expected` (another record, another hop, or none)."""
    headers = list(headers or ())
    if not headers or headers[-1][0] != PROVENANCE_HEADER:
        return None
    try:
        if Provenance.decode(headers[-1][1] or b"") != expected:
            return None
    except WireError:
        return None
    return headers[:-1]
