"""The Kafka requests the batch relay sends, framed by hand, and their responses read without copying records.

Only non-flexible versions (no tagged fields), all inside what a Kafka 4.x broker serves; the connection
checks them against the broker's ApiVersions answer. Every request starts with the length (int32) and
header v1: api key (int16), api version (int16), correlation id (int32), client id (int16-length string);
every response with its length and the correlation id. Records travel as an int32 length and the bytes.

Why not a client library: docs/batch-relay.md, "The protocol client" (per request, the framing here costs
a few microseconds and no copy of the records; aiokafka's copies each batch about four times).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import cast

API_PRODUCE, API_FETCH, API_METADATA, API_VERSIONS, API_INIT_PRODUCER_ID = 0, 1, 3, 18, 22
API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE = 17, 36
# the version of each request framed here
VERSIONS = {API_PRODUCE: 8, API_FETCH: 11, API_METADATA: 7, API_VERSIONS: 2, API_INIT_PRODUCER_ID: 1,
            API_SASL_HANDSHAKE: 1, API_SASL_AUTHENTICATE: 1}

_I16, _I32, _I64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
_HEADER = struct.Struct(">ihhih")  # length, api key, api version, correlation id, client id length


class ProtocolError(Exception):
    """A response that does not parse as the request's version says."""


def request(api_key: int, correlation_id: int, client_id: bytes, body: list[bytes | memoryview]) -> list:
    """The buffers of one request, for socket.sendmsg: the header, then the body's parts as given."""
    size = _HEADER.size - 4 + len(client_id) + sum(len(part) for part in body)
    return [_HEADER.pack(size, api_key, VERSIONS[api_key], correlation_id, len(client_id)) + client_id, *body]


def _string(value: str | None) -> bytes:
    if value is None:
        return _I16.pack(-1)
    raw = value.encode()
    return _I16.pack(len(raw)) + raw


class Reader:
    """Reads a response body in place; `records` hands out a memoryview of the response buffer."""

    __slots__ = ("view", "at")

    def __init__(self, buffer: bytes | bytearray | memoryview, at: int = 0):
        self.view, self.at = memoryview(buffer), at

    def _take(self, fmt: struct.Struct) -> int:
        try:
            (value,) = fmt.unpack_from(self.view, self.at)
        except struct.error as error:
            raise ProtocolError(f"response cut short at byte {self.at}") from error
        self.at += fmt.size
        return value

    def int8(self) -> int:
        value = self.view[self.at]
        self.at += 1
        return value if value < 128 else value - 256

    def int16(self) -> int:
        return self._take(_I16)

    def int32(self) -> int:
        return self._take(_I32)

    def int64(self) -> int:
        return self._take(_I64)

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        value = bytes(self.view[self.at:self.at + length]).decode()
        self.at += length
        return value

    def records(self) -> memoryview | None:
        length = self.int32()
        if length < 0:
            return None
        if self.at + length > len(self.view):
            raise ProtocolError(f"records of {length} bytes past the end of the response")
        value = self.view[self.at:self.at + length]
        self.at += length
        return value


def api_versions_request() -> list[bytes]:
    return []


def read_api_versions(reader: Reader) -> dict[int, tuple[int, int]]:
    """{api key: (min version, max version)} as the broker serves them; raises on a broker error."""
    error = reader.int16()
    if error:
        raise ProtocolError(f"ApiVersions failed with error code {error}")
    return {reader.int16(): (reader.int16(), reader.int16()) for _ in range(reader.int32())}


def sasl_handshake_request(mechanism: str) -> list[bytes]:
    return [_string(mechanism)]


def read_sasl_handshake(reader: Reader) -> tuple[int, list[str]]:
    """(error code, the mechanisms the listener enables)."""
    error = reader.int16()
    return error, [cast(str, reader.string()) for _ in range(reader.int32())]


def sasl_authenticate_request(auth_bytes: bytes) -> list[bytes]:
    return [_I32.pack(len(auth_bytes)) + auth_bytes]


def read_sasl_authenticate(reader: Reader) -> tuple[int, str | None, bytes, int]:
    """(error code, error message, the server's bytes, session lifetime in ms: 0 when it does not expire)."""
    error, message = reader.int16(), reader.string()
    auth = reader.records()
    return error, message, bytes(auth) if auth is not None else b"", reader.int64()


def metadata_request(topics: list[str]) -> list[bytes]:
    return [_I32.pack(len(topics)), *(_string(topic) for topic in topics), b"\x00"]  # no auto-creation


@dataclass(frozen=True)
class PartitionMetadata:
    error: int
    leader: int
    leader_epoch: int


@dataclass(frozen=True)
class Metadata:
    brokers: dict[int, tuple[str, int]]  # node id -> (host, port)
    topics: dict[str, tuple[int, dict[int, PartitionMetadata]]]  # name -> (error, partitions)


def read_metadata(reader: Reader) -> Metadata:
    reader.int32()  # throttle time
    brokers = {}
    for _ in range(reader.int32()):
        node, host, port = reader.int32(), cast(str, reader.string()), reader.int32()  # STRING: never null
        reader.string()  # rack
        brokers[node] = (host, port)
    reader.string()  # cluster id
    reader.int32()  # controller id
    topics = {}
    for _ in range(reader.int32()):
        error, name = reader.int16(), cast(str, reader.string())  # STRING: never null
        reader.int8()  # is internal
        partitions = {}
        for _ in range(reader.int32()):
            partition_error, index, leader, epoch = reader.int16(), reader.int32(), reader.int32(), reader.int32()
            for _ in range(3):  # replicas, in-sync replicas, offline replicas: arrays of int32
                count = reader.int32()  # read before `at` is: `at += 4 * int32()` would lose the count's 4 bytes
                reader.at += 4 * count
            partitions[index] = PartitionMetadata(partition_error, leader, epoch)
        topics[name] = (error, partitions)
    return Metadata(brokers, topics)


def init_producer_id_request(timeout_ms: int = 60_000) -> list[bytes]:
    return [_string(None), _I32.pack(timeout_ms)]  # no transactional id: an idempotent producer


def read_init_producer_id(reader: Reader) -> tuple[int, int, int]:
    """(error code, producer id, producer epoch)."""
    reader.int32()  # throttle time
    return reader.int16(), reader.int64(), reader.int16()


def produce_request(batches: list[tuple[str, int, memoryview | bytes]], timeout_ms: int) -> list:
    """acks=all; at most one batch per partition (the broker refuses more). The batches are not copied."""
    by_topic: dict[str, list[tuple[int, memoryview | bytes]]] = {}
    for topic, partition, batch in batches:
        by_topic.setdefault(topic, []).append((partition, batch))
    parts: list = [_string(None) + _I16.pack(-1) + _I32.pack(timeout_ms) + _I32.pack(len(by_topic))]
    for topic, partitions in by_topic.items():
        parts.append(_string(topic) + _I32.pack(len(partitions)))
        for partition, batch in partitions:
            parts.append(_I32.pack(partition) + _I32.pack(len(batch)))
            parts.append(batch)
    return parts


@dataclass(frozen=True)
class ProduceResult:
    topic: str
    partition: int
    error: int
    base_offset: int
    message: str | None


def read_produce(reader: Reader) -> list[ProduceResult]:
    results = []
    for _ in range(reader.int32()):
        topic = cast(str, reader.string())  # STRING: never null
        for _ in range(reader.int32()):
            partition, error, base_offset = reader.int32(), reader.int16(), reader.int64()
            reader.int64()  # log append time
            reader.int64()  # log start offset
            messages = []
            for _ in range(reader.int32()):  # record errors: batch index, message
                reader.int32()
                messages.append(reader.string())
            message = reader.string()
            results.append(ProduceResult(topic, partition, error, base_offset, message or "; ".join(
                m for m in messages if m) or None))
    reader.int32()  # throttle time
    return results


def fetch_request(partitions: list[tuple[str, int, int, int]], max_wait_ms: int, min_bytes: int, max_bytes: int,
                  read_committed: bool = True) -> list[bytes]:
    """[(topic, partition, fetch offset, partition max bytes)], without a fetch session."""
    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for topic, partition, offset, partition_max in partitions:
        by_topic.setdefault(topic, []).append((partition, offset, partition_max))
    parts = [struct.pack(">iiiibiii", -1, max_wait_ms, min_bytes, max_bytes, int(read_committed), 0, -1,
                         len(by_topic))]
    for topic, entries in by_topic.items():
        parts.append(_string(topic) + _I32.pack(len(entries)))
        for partition, offset, partition_max in entries:
            parts.append(struct.pack(">iiqqi", partition, -1, offset, -1, partition_max))
    parts.append(_I32.pack(0) + _string(""))  # no forgotten topics, no rack
    return parts


@dataclass(frozen=True)
class FetchedPartition:
    topic: str
    partition: int
    error: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: list[tuple[int, int]] | None  # (producer id, first offset) under read_committed
    records: memoryview | None  # a view into the response buffer, not a copy


def read_fetch(reader: Reader) -> tuple[int, list[FetchedPartition]]:
    """(top-level error code, the partitions)."""
    reader.int32()  # throttle time
    error = reader.int16()
    reader.int32()  # session id
    partitions = []
    for _ in range(reader.int32()):
        topic = cast(str, reader.string())  # STRING: never null
        for _ in range(reader.int32()):
            partition, partition_error = reader.int32(), reader.int16()
            high, stable, start = reader.int64(), reader.int64(), reader.int64()
            count = reader.int32()
            aborted = None if count < 0 else [(reader.int64(), reader.int64()) for _ in range(count)]
            reader.int32()  # preferred read replica
            partitions.append(FetchedPartition(topic, partition, partition_error, high, stable, start, aborted,
                                               reader.records()))
    return error, partitions
