"""The C loop against the Python loop: the same records in, the same copies, progress, offset
syncs, offset map and MM2 metrics out; and the opt-in provenance header on both."""

from __future__ import annotations

import time
import urllib.request

import pytest

from engine.audit.flow import audit_flow
from engine.config.loading import from_properties
from engine.config.properties import parse_properties
from engine.offsets import wire
from engine.offsets.checkpoints import OffsetMapReader
from tests.helpers import wait_for
from tests.integration.kafka_io import (
    BASE_TIMESTAMP_MS,
    Record,
    end_offsets,
    mm2_properties,
    produce,
    raw_records,
    read_all,
    stored_progress,
)
from tests.integration.test_replicate_a_to_b import PARTITIONS, by_partition, sample_records

FILTER = {"A->B.record.filter.header.absent": "binary"}  # drops every 4th record: gaps in each partition


def replicate(loop: str, topic: str, source_cluster, target_cluster, engine, extra=None) -> tuple[str, str]:
    """Runs the loop until the copy is complete and reported; (properties, the last /metrics scrape)."""
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "mirror.engine.loop": loop, "offset.lag.max": "7", **FILTER, **(extra or {})})
    run = engine(properties)
    wait_for(lambda: _copied(target_cluster, f"A.{topic}") >= _kept(), 60,
             f"the copy of {topic} by the {loop} loop", run.log)
    remote = f'topic="A.{topic}"'
    metrics = wait_for(lambda: _scrape_when(run, lambda text: sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith(MM2 + "record_count{") and remote in line) >= _kept()), 60,
        f"the {loop} loop's record-count", run.log)
    assert run.stop() == 0, run.log()
    return properties, metrics


MM2 = "kafka_connect_mirror_mirrorsourceconnector_"


def _scrape_when(run, condition) -> str | None:
    with urllib.request.urlopen(run.metrics_url(), timeout=10) as response:
        text = response.read().decode()
    return text if condition(text) else None


def _mm2_metric(text: str, name: str, topic: str, partition: int) -> float:
    labels = f'{{partition="{partition}",source="A",target="B",topic="A.{topic}"}} '
    return float(text.split(MM2 + name + labels, 1)[1].split()[0])


def _kept() -> int:
    return sum(1 for r in sample_records(3000) if not any(name == "binary" for name, _ in r.headers))


def _copied(cluster, topic: str) -> int:
    return sum(end_offsets(cluster.bootstrap_servers, topic).values())


def test_c_and_python_loops_copy_the_same_records_to_the_same_offsets(source_cluster, target_cluster, engine,
                                                                      unique_name):
    records = sample_records(3000)
    topics = {}
    for loop in ("python", "c"):
        topics[loop] = source_cluster.create_topic(unique_name(f"diff-{loop}"), PARTITIONS)
        produce(source_cluster.bootstrap_servers, topics[loop], records)
    started_ms = time.time() * 1000
    runs = {loop: replicate(loop, topic, source_cluster, target_cluster, engine) for loop, topic in topics.items()}
    properties = {loop: run[0] for loop, run in runs.items()}
    metrics = {loop: run[1] for loop, run in runs.items()}

    expected = by_partition([r for r in records if not any(name == "binary" for name, _ in r.headers)])
    copies = {loop: read_all(target_cluster.bootstrap_servers, f"A.{topic}") for loop, topic in topics.items()}
    for partition, want in expected.items():
        # records field by field, at the same target offsets (list index = offset of a fresh topic)
        assert copies["python"][partition] == want, f"python loop, partition {partition}"
        assert copies["c"][partition] == want, f"c loop, partition {partition}"

    progress = stored_progress(target_cluster.bootstrap_servers, wire.connect_offsets_topic("A"))
    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(source_cluster.bootstrap_servers,
                                                                   "mm2-offset-syncs.B.internal")]
    for partition in range(PARTITIONS):
        stored = {}
        for loop, topic in topics.items():
            key = f'["MirrorSourceConnector",{{"cluster":"A","partition":{partition},"topic":"{topic}"}}]'.encode()
            stored[loop] = progress[key]
        assert stored["c"] == stored["python"] == {"offset": max(r_i for r_i, r in enumerate(records)
                                                                  if r.partition == partition) // PARTITIONS}
        pairs = {loop: [(s.upstream_offset, s.downstream_offset) for s in syncs
                        if s.topic == topic and s.partition == partition] for loop, topic in topics.items()}
        assert len(pairs["c"]) > 200  # a sync at every filtered gap
        assert pairs["c"] == pairs["python"], f"offset syncs of partition {partition}"

    # MM2's metrics, the same from both loops: record-count counts the acknowledged copies (not the
    # filtered records), byte-count the value bytes of every polled record (the filtered too)
    for partition in range(PARTITIONS):
        mine = [r for r in records if r.partition == partition]
        kept = [r for r in mine if not any(name == "binary" for name, _ in r.headers)]
        for loop, topic in topics.items():
            assert _mm2_metric(metrics[loop], "record_count", topic, partition) == len(kept), (loop, partition)
            assert _mm2_metric(metrics[loop], "byte_count", topic, partition) == sum(len(r.value or b"") for r in mine)
            # record timestamps are an hour old (BASE_TIMESTAMP_MS): each age and latency lies between
            # the age of the newest record when the test started and that of the oldest one now
            low, high = started_ms - max(r.timestamp for r in mine), time.time() * 1000 - min(r.timestamp for r in mine)
            for stat in ("record_age_ms", "replication_latency_ms"):
                values = [_mm2_metric(metrics[loop], f"{stat}_{s}", topic, partition) for s in ("min", "avg", "max")]
                assert low <= values[0] <= values[1] <= values[2] <= high, (loop, stat, values, low, high)

    reader = OffsetMapReader(from_properties(parse_properties(properties["c"])).cluster("B"), "A", "test-reader")
    try:
        offset_map = reader.read_to_end()
    finally:
        reader.close()
    runs = {loop: [offset_map.partitions[(topic, p)].runs for p in range(PARTITIONS)] for loop, topic in topics.items()}
    assert all(runs["c"]) and runs["c"] == runs["python"]


@pytest.mark.parametrize("loop", ["c", "python"])
def test_provenance_header_names_the_origin_and_stops_an_identity_cycle(loop, source_cluster, target_cluster,
                                                                       engine, unique_name):
    topic = unique_name("prov")
    source_cluster.create_topic(topic, 2)
    target_cluster.create_topic(topic, 2)
    on_a = [Record(i % 2, f"a{i}".encode(), b"from A", (("h", b"1"),), BASE_TIMESTAMP_MS + i) for i in range(60)]
    on_b = [Record(i % 2, f"b{i}".encode(), b"from B", (), BASE_TIMESTAMP_MS + i) for i in range(40)]
    produce(source_cluster.bootstrap_servers, topic, on_a)
    produce(target_cluster.bootstrap_servers, topic, on_b)
    identity = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "B->A.enabled": "true", "B->A.topics": topic,
        "replication.policy.class": identity, "mirror.engine.provenance.header.enabled": "true",
        "mirror.engine.loop": loop, "emit.heartbeats.enabled": "false"})
    run = engine(properties)
    total = len(on_a) + len(on_b)
    wait_for(lambda: _copied(source_cluster, topic) >= total and _copied(target_cluster, topic) >= total, 60,
             "both directions copied", run.log)
    # both flows have read everything the other wrote: had a record looped, it would be there now
    wait_for(lambda: _read_to_the_end(source_cluster, target_cluster, "A", topic)
             and _read_to_the_end(target_cluster, source_cluster, "B", topic), 60,
             "both flows' progress at the end of their source", run.log)
    assert run.stop() == 0, run.log()
    assert (_copied(source_cluster, topic), _copied(target_cluster, topic)) == (total, total)
    # others write into an identity flow's remote topics: a restart cannot resume after the target's tail
    for flow in ("A->B", "B->A"):
        assert f"{flow}: with the identity policy a remote topic is the source topic's namesake" in run.log()

    for partition, records in read_all(target_cluster.bootstrap_servers, topic).items():
        copies = [r for r in records if r.value == b"from A"]
        originals = [r for r in on_a if r.partition == partition]
        assert len(copies) == len(originals)
        for offset, (copy, original) in enumerate(zip(copies, originals, strict=True)):
            # the record's own headers first, then this hop's provenance
            assert copy.headers[:-1] == original.headers and copy.headers[-1][0] == wire.PROVENANCE_HEADER
            assert wire.Provenance.decode(copy.headers[-1][1]) == wire.Provenance("A", topic, partition, offset)
        # records written on B itself carry no provenance
        assert all(r.headers == () for r in records if r.value == b"from B")

    # the audit checks each provenance header against the offset map and knows the cycle skips;
    # each cluster's own records are foreign to the flow into it (active-active)
    config = from_properties(parse_properties(properties))
    flows = {f.name: f for f in config.flows}
    for flow, originals, others in ((flows["A->B"], on_a, on_b), (flows["B->A"], on_b, on_a)):
        results = audit_flow(config, flow, [topic])
        for result in results:
            mine = sum(1 for r in originals if r.partition == result.partition)
            theirs = sum(1 for r in others if r.partition == result.partition)
            assert (result.missing, result.differing) == ([], []), (flow.name, result)
            assert (result.expected, result.copied, result.filtered) == (mine, mine, theirs), (flow.name, result)
            assert sum(last - first + 1 for first, last in result.foreign) == theirs


def _read_to_the_end(source, target, source_alias: str, topic: str) -> bool:
    """Whether the flow from `source` stored progress at the last offset of every partition."""
    progress = stored_progress(target.bootstrap_servers, wire.connect_offsets_topic(source_alias))
    for partition, end in end_offsets(source.bootstrap_servers, topic).items():
        key = (f'["MirrorSourceConnector",{{"cluster":"{source_alias}","partition":{partition},'
               f'"topic":"{topic}"}}]').encode()
        if progress.get(key) != {"offset": end - 1}:
            return False
    return True

