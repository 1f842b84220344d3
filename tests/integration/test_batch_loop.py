"""`mirror.engine.loop = batch` in the engine: the same copies, progress, offset syncs and offset map as the
C loop; a restart resumes after the stored progress; what it cannot serve keeps the C loop, named."""

from __future__ import annotations

import os
import signal

import pytest

from engine.config.loading import from_properties
from engine.config.properties import parse_properties
from engine.offsets import wire
from engine.offsets.checkpoints import OffsetMapReader
from tests.helpers import wait_for
from tests.integration.kafka_io import (
    SteadyProducer,
    end_offsets,
    mm2_properties,
    produce,
    raw_records,
    read_all,
    stored_progress,
)
from tests.integration.test_batch_relay import raw_batches
from tests.integration.test_faults import audit
from tests.integration.test_replicate_a_to_b import PARTITIONS, by_partition, sample_records
from tests.integration.test_topologies import records

pytestmark = pytest.mark.kafka


def _copied(cluster, topic: str) -> int:
    return sum(end_offsets(cluster.bootstrap_servers, topic).values())


def _progress_at_end(source_cluster, target_cluster, topic: str) -> bool:
    progress = stored_progress(target_cluster.bootstrap_servers, wire.connect_offsets_topic("A"))
    return all(progress.get(_progress_key(topic, partition)) == {"offset": end - 1}
               for partition, end in end_offsets(source_cluster.bootstrap_servers, topic).items())


def _progress_key(topic: str, partition: int) -> bytes:
    return f'["MirrorSourceConnector",{{"cluster":"A","partition":{partition},"topic":"{topic}"}}]'.encode()


def replicate(loop: str, topic: str, source_cluster, target_cluster, engine, extra=None) -> tuple[str, set]:
    """Runs the loop until the copy is complete and its progress stored; (properties, the (loop, reason) pairs
    /status showed for the flow's partitions)."""
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "mirror.engine.loop": loop, "offset.lag.max": "7", **(extra or {})})
    run = engine(properties)
    total = _copied(source_cluster, topic)
    wait_for(lambda: _copied(target_cluster, f"A.{topic}") >= total, 60, f"the copy of {topic} by the {loop} loop",
             run.log)
    wait_for(lambda: _progress_at_end(source_cluster, target_cluster, topic), 60,
             f"the {loop} loop's progress at the end of {topic}", run.log)
    shown = {(entry["loop"], entry["reason"]) for entry in run.status()["flows"][0]["loops"]}
    assert run.stop() == 0, run.log()
    return properties, shown


def _offset_map_runs(properties: str, topic: str) -> list:
    reader = OffsetMapReader(from_properties(parse_properties(properties)).cluster("B"), "A", "test-reader")
    try:
        offset_map = reader.read_to_end()
    finally:
        reader.close()
    return [offset_map.partitions[(topic, p)].runs for p in range(PARTITIONS)]


def test_the_batch_loop_writes_what_the_c_loop_writes_and_resumes_after_its_progress(source_cluster, target_cluster,
                                                                                      engine, unique_name):
    records = sample_records(3000)
    topics = {}
    for loop in ("c", "batch"):
        topics[loop] = source_cluster.create_topic(unique_name(f"bl-{loop}"), PARTITIONS)
        produce(source_cluster.bootstrap_servers, topics[loop], records)
    runs = {loop: replicate(loop, topic, source_cluster, target_cluster, engine) for loop, topic in topics.items()}
    assert runs["batch"][1] == {("batch", "mirror.engine.loop = batch")}
    assert runs["c"][1] == {("c", "mirror.engine.loop = c")}
    for partition in range(PARTITIONS):  # batches kept as the source's producer wrote them: no codec
        assert {b[1] for b in raw_batches(target_cluster.bootstrap_servers, f"A.{topics['batch']}", partition)} == {
            "none"}

    expected = by_partition(records)
    for loop, topic in topics.items():
        copies = read_all(target_cluster.bootstrap_servers, f"A.{topic}")
        for partition, want in expected.items():
            assert copies[partition] == want, f"{loop} loop, partition {partition}"

    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(source_cluster.bootstrap_servers,
                                                                   "mm2-offset-syncs.B.internal")]
    for partition in range(PARTITIONS):
        pairs = [(s.upstream_offset, s.downstream_offset) for s in syncs
                 if s.topic == topics["batch"] and s.partition == partition]
        assert pairs and all(up == down for up, down in pairs), pairs  # a fresh remote topic: the same offsets
    maps = {loop: _offset_map_runs(runs[loop][0], topic) for loop, topic in topics.items()}
    assert all(maps["c"]) and maps["batch"] == maps["c"]

    # a restart resumes after the stored progress: the new records once, nothing twice
    more = sample_records(600, first=3000)
    produce(source_cluster.bootstrap_servers, topics["batch"], more)
    replicate("batch", topics["batch"], source_cluster, target_cluster, engine)
    copies = read_all(target_cluster.bootstrap_servers, f"A.{topics['batch']}")
    for partition, want in by_partition(records + more).items():
        assert copies[partition] == want, f"after the restart, partition {partition}"


def test_a_flow_the_batch_loop_cannot_serve_keeps_the_c_loop_named(source_cluster, target_cluster, engine,
                                                                   unique_name):
    topic = source_cluster.create_topic(unique_name("bl-filter"), PARTITIONS)
    records = sample_records(300)
    produce(source_cluster.bootstrap_servers, topic, records)
    _, shown = replicate("batch", topic, source_cluster, target_cluster, engine,
                         {"A->B.producer.compression.type": "lz4"})
    assert shown == {("c", "record loop: producer.compression.type = lz4")}
    assert read_all(target_cluster.bootstrap_servers, f"A.{topic}") == by_partition(records)
    # the source's batches are uncompressed: lz4 on the target means the records were produced again
    for partition in range(PARTITIONS):
        codecs = {codec for _, codec, *_ in raw_batches(target_cluster.bootstrap_servers, f"A.{topic}", partition)}
        assert codecs == {"lz4"}, partition


def test_kill_9_of_a_batch_loop_worker_mid_stream_loses_nothing_and_copies_nothing_twice(source_cluster,
                                                                                         target_cluster, engine,
                                                                                         unique_name):
    topic = source_cluster.create_topic(unique_name("bl-kill"), 2)
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "tasks.max": "1", "B.offset.flush.interval.ms": "5000", "mirror.engine.loop": "batch"})
    remote = f"A.{topic}"
    copied = lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values())  # noqa: E731
    run = engine(properties)
    with SteadyProducer(source_cluster.bootstrap_servers, topic, lambda first: records(300, f"r{first}")):
        wait_for(lambda: copied() > 3000, 60, "a part of the copy", run.log)
        (pid,) = run.worker_pids().values()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: run.worker_pids().get(0) not in (None, pid), 60, "the worker restarted", run.log)
        before = copied()
        wait_for(lambda: copied() > before + 2000, 60, "copying after the restart", run.log)
    wait_for(lambda: _progress_at_end(source_cluster, target_cluster, topic), 90, "the copy at the source's end",
             run.log)
    assert run.stop() == 0, run.log()
    # every source record on the target once: the restarted worker resumed after the target's tail
    duplicated, expected = audit(properties, topic)
    assert (duplicated, expected) == (0, sum(end_offsets(source_cluster.bootstrap_servers, topic).values()))
    assert end_offsets(target_cluster.bootstrap_servers, remote) == end_offsets(source_cluster.bootstrap_servers, topic)
