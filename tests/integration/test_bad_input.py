"""Bad input that concerns one partition stops that partition alone, names the culprit, loses
nothing, and `mirror-engine skip` is the documented way past it."""

from __future__ import annotations

import re
import subprocess
import sys

from confluent_kafka import TopicPartition

from engine.audit.flow import audit_flow
from engine.config.loading import from_properties
from engine.config.properties import parse_properties
from tests.helpers import wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, mm2_properties, produce, read_all
from tests.integration.test_topologies import records


def skip(properties_file, topic: str, partition: int, past: int) -> str:
    done = subprocess.run([sys.executable, "-m", "engine", "skip", str(properties_file), "--flow", "A->B",
                           "--topic", topic, "--partition", str(partition), "--past", str(past)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_oversized_record_stops_its_partition_alone_until_skipped(source_cluster, target_cluster, engine,
                                                                     unique_name, tmp_path):
    topic = source_cluster.create_topic(unique_name("big"), 2)
    before = [Record(0, f"small-{i}".encode(), b"s" * 100, (), BASE_TIMESTAMP_MS + i) for i in range(300)]
    big = Record(0, b"big", b"x" * 20_000, (), BASE_TIMESTAMP_MS + 300)
    after = [Record(0, f"after-{i}".encode(), b"a", (), BASE_TIMESTAMP_MS + 301 + i) for i in range(50)]
    other = records(400, "other", partitions=2)
    other = [r for r in other if r.partition == 1]
    produce(source_cluster.bootstrap_servers, topic, before + [big] + after + other)
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.target.topic.config.max.message.bytes": "10000", "tasks.max": "1"})
    run = engine(properties)
    remote = f"A.{topic}"
    reason = wait_for(lambda: (run.stopped_partitions() or {}).get((topic, 0)), 60, "the partition to stop", run.log)
    assert re.search(rf"cannot produce {re.escape(topic)}\[0\]@300 to {re.escape(remote)} on cluster B: .*too large",
                     reason), reason
    # the other partition of the same worker is copied in full meanwhile
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, remote).get(1, 0) >= len(other), 60,
             "partition 1 copied", run.log)
    log = run.log()
    # the producer knows the remote topic's limit and refuses the culprit alone, naming it
    assert re.search(rf"cannot produce {re.escape(topic)}\[0\]@300 to {re.escape(remote)} on cluster B: .*too large",
                     log), log
    assert f"mirror-engine skip <config> --flow A->B --topic {topic} --partition 0 --past 300" in log
    copied = read_all(target_cluster.bootstrap_servers, remote)[0]
    assert copied == before[: len(copied)]  # nothing past the refused record

    config_file = tmp_path / "mm2.properties"
    config_file.write_text(properties)
    out = skip(config_file, topic, 0, 300)
    assert f"{topic}[0] continues at offset 301" in out
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, remote).get(0, 0) >= len(before) + len(after), 60,
             "partition 0 going on after the skip", run.log)
    wait_for(lambda: run.stopped_partitions() == {}, 60, "/status no longer showing the partition stopped", run.log)
    assert run.stop() == 0, run.log()
    copies = read_all(target_cluster.bootstrap_servers, remote)
    assert copies[0] == before + after and copies[1] == other
    config = from_properties(parse_properties(properties))
    results = {r.partition: r for r in audit_flow(config, config.flows[0], [topic])}
    assert results[0].missing == [(300, 300)] and results[1].ok  # the audit tells the skip, nothing else


def test_retention_outrunning_the_copy_is_an_alarm_naming_the_lost_range(source_cluster, target_cluster, engine,
                                                                        unique_name, tmp_path):
    topic = source_cluster.create_topic(unique_name("retention"), 2)
    first = records(200, "first", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, first)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic})
    remote = f"A.{topic}"
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 200, 60, "the copy",
             run.log)
    assert run.stop() == 0, run.log()
    # while the engine is down, partition 0 gets 100 more records and loses 150 to "retention"
    second = records(200, "second", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, second)
    admin = source_cluster.admin()
    admin.delete_records([TopicPartition(topic, 0, 150)])[TopicPartition(topic, 0, 150)].result(timeout=30)

    run = engine(properties)
    reason = wait_for(lambda: (run.stopped_partitions() or {}).get((topic, 0)), 60, "the alarm", run.log)
    assert "records 100..149 were deleted (retention) before they were copied" in reason, reason
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, remote).get(1, 0) >= 200, 60,
             "partition 1 going on", run.log)
    log = run.log()
    assert (f"source {topic}[0] on cluster A: records 100..149 were deleted (retention) before they were copied"
            in log), log
    assert end_offsets(target_cluster.bootstrap_servers, remote)[0] == 100  # no silent jump

    config_file = tmp_path / "mm2.properties"
    config_file.write_text(properties)
    skip(config_file, topic, 0, 149)
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, remote).get(0, 0) >= 150, 60,
             "partition 0 from the log start", run.log)
    wait_for(lambda: run.stopped_partitions() == {}, 60, "/status no longer showing the alarm", run.log)
    assert run.stop() == 0, run.log()
    copies = read_all(target_cluster.bootstrap_servers, remote)
    on_source = [r for r in first + second if r.partition == 0]
    assert copies[0] == on_source[:100] + on_source[150:]


def test_damaged_progress_and_map_records_are_named_and_cost_duplicates_never_records(
        source_cluster, target_cluster, engine, unique_name):
    from confluent_kafka import Producer

    from engine.offsets import wire

    topic = source_cluster.create_topic(unique_name("damaged"), 2)
    first = records(400, "first", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, first)
    # aliases of its own: the damage goes into internal topics no other test reads
    properties = "".join(f"{k} = {v}\n" for k, v in {
        "clusters": "DA, DB", "DA.bootstrap.servers": source_cluster.bootstrap_servers,
        "DB.bootstrap.servers": target_cluster.bootstrap_servers, "DA->DB.enabled": "true", "DA->DB.topics": topic,
        "replication.factor": "1", "offset.storage.replication.factor": "1", "DB.offset.flush.interval.ms": "1000",
        "refresh.topics.interval.seconds": "5", "mirror.engine.metrics.listen": "127.0.0.1:0",
        "heartbeats.topic.replication.factor": "1", "offset-syncs.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1", "emit.checkpoints.interval.seconds": "1",
        "emit.heartbeats.enabled": "false"}.items())
    remote = f"DA.{topic}"
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 400, 60, "the copy",
             run.log)
    assert run.stop() == 0, run.log()
    # garbage where partition 0's progress and the offset map are kept
    writer = Producer({"bootstrap.servers": target_cluster.bootstrap_servers, "partitioner": "murmur2_random"})
    writer.produce(wire.connect_offsets_topic("DA"), key=wire.source_offset_key("DA", topic, 0), value=b"{not json")
    writer.produce(wire.offset_map_topic("DA"), key=b"\x00\x03abc", value=b"short", partition=0)
    assert writer.flush(30) == 0

    second = records(200, "second", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, second)
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 600, 60,
             "the copy after the damage", run.log)
    wait_for(lambda: "damaged record in mm2-offset-map.DA.internal" in run.log(), 30, "the map's reader", run.log)
    assert run.stop() == 0, run.log()
    log = run.log()
    assert re.search(rf"damaged progress record in mm2-offsets\.DA\.internal\[\d+\]@\d+ on cluster DB, ignored: "
                     rf"bad Connect offset value for .*{re.escape(topic)}", log), log
    assert "damaged record in mm2-offset-map.DA.internal, ignored" in log
    config = from_properties(parse_properties(properties))
    for result in audit_flow(config, config.flows[0], [topic]):
        assert not result.missing and not result.differing and result.copied == result.expected == 300, result


def test_an_unreachable_target_is_an_error_naming_the_cluster_and_key(source_cluster, target_cluster, engine,
                                                                      unique_name):
    import socket

    with socket.socket() as closed:  # a port nothing listens on: bound, never accepting
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        properties = mm2_properties(source_cluster, target_cluster, {
            "A->B.topics": unique_name("nowhere"), "B.bootstrap.servers": f"127.0.0.1:{port}"})
        run = engine(properties)
        code = run.wait(90)
    log = run.log()
    assert code == 2, log
    assert re.search(rf"cluster B \(127\.0\.0\.1:{port}\) did not answer within 15s: .*"
                     r"\(config key: B\.bootstrap\.servers\)", log), log


def test_a_source_topic_deleted_and_created_again_is_copied_again_from_its_start(source_cluster, target_cluster,
                                                                                 engine, unique_name):
    from confluent_kafka import KafkaException

    from engine.offsets import wire
    from tests.integration.kafka_io import raw_records, stored_progress

    topic = source_cluster.create_topic(unique_name("recreated"), 2)
    old = records(100, "old", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, old)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic,
                                                                 "refresh.topics.interval.seconds": "2"})
    remote = f"A.{topic}"
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 100, 60, "the copy",
             run.log)
    source_cluster.delete_topic(topic)

    def create_again() -> bool:
        try:
            source_cluster.create_topic(topic, 2)
            return True
        except KafkaException:  # still being deleted
            return False

    wait_for(create_again, 60, "the topic created again", run.log)
    new = records(60, "new", partitions=2)
    produce(source_cluster.bootstrap_servers, topic, new)
    wait_for(lambda: "was deleted and created again" in run.log(), 60, "the engine to notice", run.log)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 160, 60,
             "the new topic copied", run.log)
    assert run.stop() == 0, run.log()
    copies = read_all(target_cluster.bootstrap_servers, remote)
    for partition in (0, 1):
        # the old topic's copies stay; the new topic's records follow them, from its offset 0
        assert copies[partition] == [r for r in old + new if r.partition == partition]
    progress = stored_progress(target_cluster.bootstrap_servers, wire.connect_offsets_topic("A"))
    for partition in (0, 1):
        key = wire.source_offset_key("A", topic, partition)
        assert progress[key] == {"offset": 29}
    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(source_cluster.bootstrap_servers,
                                                                   "mm2-offset-syncs.B.internal")]
    rewinds = {s.partition: s.downstream_offset for s in syncs if s.topic == topic and s.upstream_offset == 0}
    assert rewinds[0] >= 50 and rewinds[1] >= 50  # upstream 0 of the new topic: after the old copies
