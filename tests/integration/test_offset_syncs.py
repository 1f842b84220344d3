"""MM2 offset syncs: MM2's bytes and spacing, each one true to the records it maps."""

from __future__ import annotations

import pytest

from engine.offsets import wire
from tests.helpers import wait_for
from tests.integration.kafka_io import (
    BASE_TIMESTAMP_MS,
    Record,
    end_offsets,
    keys_by_offset,
    mm2_properties,
    produce,
    raw_records,
)


def records(count: int, partitions: int = 2) -> list[Record]:
    # every 7th record is dropped by the flow's filter: the source offsets of the copy have gaps
    return [Record(i % partitions, (b"skip-" if i % 7 == 0 else b"keep-") + str(i).encode(), b"v",
                   (), BASE_TIMESTAMP_MS + i) for i in range(count)]


@pytest.mark.parametrize("location", ["source", "target"])
def test_offset_syncs_map_source_to_target_records(location, source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name(f"syncs-{location}"), 2)
    produce(source_cluster.bootstrap_servers, topic, records(3000))
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "offset-syncs.topic.location": location, "offset.lag.max": "50",
        "A->B.record.filter.key.prefix": "keep-",
    }))
    remote = f"A.{topic}"
    kept = sum(1 for r in records(3000) if r.key.startswith(b"keep-"))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= kept, 60,
             "the filtered copy", run.log)
    assert run.stop() == 0, run.log()

    holder, other = (source_cluster, "B") if location == "source" else (target_cluster, "A")
    syncs_topic = f"mm2-offset-syncs.{other}.internal"
    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(holder.bootstrap_servers, syncs_topic)
             if wire.OffsetSync.decode(k, b"\0" * 16).topic == topic]
    source_keys = keys_by_offset(source_cluster.bootstrap_servers, topic)
    target_keys = keys_by_offset(target_cluster.bootstrap_servers, remote)
    for partition in (0, 1):
        mine = [s for s in syncs if s.partition == partition]
        assert len(mine) > 1000 // 7  # a sync after every gap, at least
        for sync in mine:
            # the record at the synced target offset is the copy of the synced source record
            assert target_keys[partition][sync.downstream_offset] == source_keys[partition][sync.upstream_offset]
        # the store at shutdown promoted the newest position
        last_source = max(o for o, k in source_keys[partition].items() if k.startswith(b"keep-"))
        assert (mine[-1].upstream_offset, mine[-1].downstream_offset) == (last_source, max(target_keys[partition]))


def test_no_offset_syncs_when_disabled(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("nosyncs"), 1)
    produce(source_cluster.bootstrap_servers, topic, records(100, partitions=1))
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "emit.offset-syncs.enabled": "false", "offset-syncs.topic.location": "target",
        "emit.checkpoints.interval.seconds": "1",
    }))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= 100, 60,
             "the copy", run.log)
    assert run.stop() == 0, run.log()
    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(target_cluster.bootstrap_servers,
                                                                   "mm2-offset-syncs.A.internal")]
    assert [s for s in syncs if s.topic == topic] == []
    # and no checkpoints either, as MM2's checkpoint connector refuses to run without offset syncs
    assert "A.checkpoints.internal" not in target_cluster.admin().list_topics(timeout=10).topics or not [
        c for c in (wire.Checkpoint.decode(k, v) for k, v in raw_records(target_cluster.bootstrap_servers,
                                                                          "A.checkpoints.internal"))
        if c.topic == f"A.{topic}"]
