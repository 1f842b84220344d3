"""MM2's byte formats, checked against the vectors the real Java classes produced (docs/design.md,
'Internal topics and byte formats')."""

import pytest

from engine.offsets import wire


def test_offset_sync_vector():
    sync = wire.OffsetSync("orders", 3, 1000, 998)
    assert sync.key().hex() == "00066f726465727300000003"
    assert sync.value().hex() == "00000000000003e800000000000003e6"
    assert wire.OffsetSync.decode(sync.key(), sync.value()) == sync


def test_offset_sync_extremes():
    sync = wire.OffsetSync("t", 0, -1, 2**63 - 1)
    assert sync.key().hex() == "00017400000000"
    assert sync.value().hex() == "ffffffffffffffff7fffffffffffffff"


def test_checkpoint_vectors():
    cp = wire.Checkpoint("g1", "A.orders", 3, 1000, 998, "")
    assert cp.key().hex() == "000267310008412e6f726465727300000003"
    assert cp.value().hex() == "000000000000000003e800000000000003e60000"
    utf8 = wire.Checkpoint("grp-é", "B.A.orders", 0, 0, 0, "meta")
    assert utf8.key().hex() == "00066772702dc3a9000a422e412e6f726465727300000000"
    assert utf8.value().hex() == "00000000000000000000000000000000000000046d657461"
    assert wire.Checkpoint.decode(utf8.key(), utf8.value()) == utf8


def test_heartbeat_vector():
    beat = wire.Heartbeat("A", "B", 1_700_000_000_000)
    assert beat.key().hex() == "000141000142"
    assert beat.value().hex() == "00000000018bcfe56800"
    assert wire.Heartbeat.decode(beat.key(), beat.value()) == beat


def test_readers_ignore_trailing_bytes_and_reject_short_buffers():
    sync = wire.OffsetSync("orders", 3, 1000, 998)
    assert wire.OffsetSync.decode(sync.key() + b"\x00\x01", sync.value() + b"xyz") == sync
    with pytest.raises(wire.WireError, match="too short"):
        wire.OffsetSync.decode(sync.key(), sync.value()[:15])


def test_checkpoint_any_version_reads_as_v0():
    cp = wire.Checkpoint("g", "t", 1, 5, 6, "m")
    value = b"\x00\x07" + cp.value()[2:]
    assert wire.Checkpoint.decode(cp.key(), value) == cp


def test_string_limit():
    with pytest.raises(wire.WireError, match="32767"):
        wire.OffsetSync("x" * 32768, 0, 0, 0).key()


def test_internal_topic_names():
    assert wire.connect_offsets_topic("A") == "mm2-offsets.A.internal"
    assert wire.offset_syncs_topic("B") == "mm2-offset-syncs.B.internal"
    assert wire.checkpoints_topic("A") == "A.checkpoints.internal"
    assert wire.offset_syncs_topic("B", "__") == "mm2-offset-syncs__B__internal"
    assert wire.checkpoints_topic("A", "__") == "A__checkpoints__internal"


def test_connect_source_offset_bytes():
    assert wire.source_offset_key("A", "orders", 3) == (
        b'["MirrorSourceConnector",{"cluster":"A","partition":3,"topic":"orders"}]'
    )
    assert wire.source_offset_value(1000) == b'{"offset":1000}'
    # non-ASCII stays UTF-8, as Jackson writes it
    assert wire.source_offset_key("A", "é", 0) == (
        '["MirrorSourceConnector",{"cluster":"A","partition":0,"topic":"é"}]'.encode()
    )


def test_connect_source_offset_decode():
    key = wire.source_offset_key("A", "orders", 3)
    where, offset = wire.decode_source_offset(key, b'{"offset":41}')
    assert where == wire.SourcePartition("A", "orders", 3)
    assert offset == 41
    assert wire.decode_source_offset(key, None) == (where, None)
    checkpoint_key = b'["MirrorCheckpointConnector",{"partition":3,"topic":"A.orders","group":"g1"}]'
    assert wire.decode_source_offset(checkpoint_key, b'{"offset":0}') is None
    assert wire.decode_source_offset(b"not json", b"{}") is None
    with pytest.raises(wire.WireError, match="orders"):
        wire.decode_source_offset(key, b'{"position":3}')


def test_provenance_header_value_layout_and_round_trip():
    from engine.offsets.wire import Provenance, provenance_prefix

    value = Provenance("A", "orders", 3, 258).encode()
    # version INT16 0 | STRING "A" | STRING "orders" | INT32 3 | INT64 258
    assert value.hex() == "0000" + "0001" + "41" + "0006" + b"orders".hex() + "00000003" + "0000000000000102"
    assert Provenance.decode(value) == Provenance("A", "orders", 3, 258)
    prefix = provenance_prefix("A", "orders", 3)
    assert value.startswith(prefix) and len(value) == len(prefix) + 8
    with pytest.raises(wire.WireError, match="unknown version 1"):
        Provenance.decode(b"\x00\x01" + value[2:])
    with pytest.raises(wire.WireError, match="too short"):
        Provenance.decode(value[:-1])
