"""The audit finds what is missing, duplicated or foreign, with offsets, and passes a clean copy."""

from __future__ import annotations

import os
import signal

from confluent_kafka import TopicPartition

from engine.audit.comparison import report
from engine.audit.flow import audit_flow
from engine.config.loading import load
from tests.helpers import wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, mm2_properties, produce


def sample(count: int, partitions: int = 2) -> list[Record]:
    return [Record(i % partitions, (b"skip-" if i % 5 == 4 else b"keep-") + str(i).encode(), f"v{i}".encode(),
                   (("h", bytes([i % 256])),), BASE_TIMESTAMP_MS + i) for i in range(count)]


def audited(run, topic: str):
    loaded = load(run.folder / "mm2.properties")
    return {(r.topic, r.partition): r for r in audit_flow(loaded, loaded.flows[0], topics=[topic])}


def test_audit_of_a_clean_filtered_copy_then_of_tampering(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("audit"), 2)
    produce(source_cluster.bootstrap_servers, topic, sample(2000))
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.record.filter.key.prefix": "keep-"}))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= 1600, 60,
             "the filtered copy", run.log)
    assert run.stop() == 0, run.log()
    results = audited(run, topic)
    for partition in (0, 1):
        r = results[(topic, partition)]
        assert (r.expected, r.copied, r.filtered, r.duplicated) == (800, 800, 200, 0)
        assert r.ok and (r.missing, r.differing, r.foreign) == ([], [], [])
    assert "AUDIT OK: 1600 of 1600 records verified in 2 partitions, 0 duplicates" in report(list(results.values()))

    # a foreign writer on the remote topic, and records deleted on the target
    produce(target_cluster.bootstrap_servers, f"A.{topic}", [Record(0, b"intruder", b"x", (), BASE_TIMESTAMP_MS)])
    admin = target_cluster.admin()
    deleted = TopicPartition(f"A.{topic}", 1, 10)
    admin.delete_records([deleted])[deleted].result(timeout=30)
    results = audited(run, topic)
    assert results[(topic, 0)].foreign == [(800, 800)]
    # target offsets 0..9 of partition 1 held the copies of the first ten kept source records
    first_ten = results[(topic, 1)].missing
    assert sum(b - a + 1 for a, b in first_ten) == 10 and first_ten[0][0] == 0
    assert not results[(topic, 0)].ok and not results[(topic, 1)].ok
    assert "AUDIT FAILED" in report(list(results.values()))


def test_audit_counts_the_duplicates_of_a_restarted_worker(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("auditdup"), 1)
    produce(source_cluster.bootstrap_servers, topic, sample(500, partitions=1))
    # resuming after the target's tail off: the duplicates of a restart where it falls back
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "tasks.max": "1", "B.offset.flush.interval.ms": "600000",
        "mirror.engine.resume.from.target.enabled": "false"}))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= 500, 60,
             "the first copy", run.log)
    (pid,) = run.worker_pids().values()
    os.kill(pid, signal.SIGKILL)  # nothing was stored: the restart copies everything again
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= 1000, 60,
             "the second copy", run.log)
    assert run.stop() == 0, run.log()
    r = audited(run, topic)[(topic, 0)]
    # the first copy's runs were never stored: the audit pairs it by content with the copied records,
    # so it counts 500 duplicates rather than 500 foreign records, and the copy is complete
    assert (r.expected, r.copied, r.missing, r.differing, r.foreign) == (500, 500, [], [], [])
    assert (r.duplicated, r.ok) == (500, True)


def test_the_engine_audits_by_sampling_and_exports_the_verified_offset(source_cluster, target_cluster, engine,
                                                                      unique_name):
    import re
    import urllib.request

    topic = source_cluster.create_topic(unique_name("sampled"), 2)
    produce(source_cluster.bootstrap_servers, topic, sample(600))
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "mirror.engine.audit.interval.seconds": "1"}))

    wait_for(lambda: "metrics on http" in run.log(), 30, "the metrics endpoint", run.log)

    def verified() -> dict[int, int]:
        with urllib.request.urlopen(run.metrics_url(), timeout=5) as response:
            text = response.read().decode()
        return {int(p): int(float(v)) for p, v in re.findall(
            rf'mirror_engine_audit_verified_offset{{flow="A->B",partition="(\d+)",topic="{re.escape(topic)}"}} (\S+)',
            text)}

    # the newest record of each partition (offset 299 of 300) was read on both sides and matched
    wait_for(lambda: verified() == {0: 299, 1: 299}, 30, "sampled partitions verified to their end",
             lambda: urllib.request.urlopen(run.metrics_url(), timeout=5).read().decode()[-3000:])
    with urllib.request.urlopen(run.metrics_url(), timeout=5) as response:
        assert 'mirror_engine_audit_mismatches_total{flow="A->B"} 0.0' in response.read().decode()
    assert run.stop() == 0, run.log()
