"""Checkpoints translate exactly: a consumer that fails over to B reads exactly what follows."""

from __future__ import annotations

import os
import signal
import uuid

from confluent_kafka import Consumer, TopicPartition

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

PARTITIONS = 2


def records(count: int) -> list[Record]:
    # every 7th record is dropped by the flow's filter: the copy has gaps
    return [Record(i % PARTITIONS, (b"skip-" if i % 7 == 3 else b"keep-") + str(i).encode(), b"v", (),
                   BASE_TIMESTAMP_MS + i) for i in range(count)]


def commit(servers: str, group: str, topic: str, positions: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    finally:
        consumer.close()


def checkpoints(target, topic: str) -> dict[tuple[str, int], wire.Checkpoint]:
    latest = {}
    for key, value in raw_records(target.bootstrap_servers, "A.checkpoints.internal"):
        checkpoint = wire.Checkpoint.decode(key, value)
        if checkpoint.topic == f"A.{topic}":
            latest[(checkpoint.group, checkpoint.partition)] = checkpoint
    return latest


def read_from(servers: str, topic: str, partition: int, offset: int) -> list[bytes]:
    """Keys from offset to the end of one partition, as a failed-over consumer reads them."""
    end = end_offsets(servers, topic)[partition]
    by_offset = keys_by_offset(servers, topic).get(partition, {})
    return [by_offset[o] for o in range(offset, end)]


def expected_after(source_keys: dict[int, bytes], position: int) -> list[bytes]:
    return [k for o, k in sorted(source_keys.items()) if o >= position and k.startswith(b"keep-")]


def run_failover_check(source, target, engine, topic: str, groups: dict[str, dict[int, int]], extra: dict) -> None:
    for group, positions in groups.items():
        commit(source.bootstrap_servers, group, topic, positions)
    run = engine(mm2_properties(source, target, {
        "A->B.topics": topic, "A->B.record.filter.key.prefix": "keep-", "emit.checkpoints.interval.seconds": "1",
        **extra,
    }))
    wanted = {(g, p) for g in groups for p in range(PARTITIONS)}
    wait_for(lambda: wanted <= checkpoints(target, topic).keys(), 90, "a checkpoint for every group and partition",
             run.log)
    return run


def assert_exact(source, target, topic: str, groups: dict[str, dict[int, int]]) -> None:
    found = checkpoints(target, topic)
    source_keys = keys_by_offset(source.bootstrap_servers, topic)
    for group, positions in groups.items():
        for partition, position in positions.items():
            checkpoint = found[(group, partition)]
            assert checkpoint.upstream_offset == position
            assert checkpoint.metadata == ""
            copied = read_from(target.bootstrap_servers, f"A.{topic}", partition, checkpoint.downstream_offset)
            expected = expected_after(source_keys[partition], position)
            # none missed, none read again
            assert copied[: len(expected)] == expected, (group, partition, position)
            assert len(copied) == len(expected), (group, partition, position)


def test_exact_at_lag_zero_far_behind_and_inside_a_gap(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("dr"), PARTITIONS)
    sent = records(210_000)
    produce(source_cluster.bootstrap_servers, topic, sent)
    per_partition = len(sent) // PARTITIONS
    suffix = uuid.uuid4().hex[:6]
    # in partition 1 the records at offsets 1, 8, 15, ... are filtered (i % 7 == 3, i = 2 * offset + 1)
    groups = {
        f"lag0-{suffix}": {p: per_partition for p in range(PARTITIONS)},
        f"far-{suffix}": {0: 7, 1: 3},  # more than 100,000 records behind in each partition
        f"gap-{suffix}": {0: 5000, 1: 8},  # partition 1 offset 8 was filtered: resume at the next copy
    }
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups, {})
    assert run.stop() == 0, run.log()
    assert_exact(source_cluster, target_cluster, topic, groups)


def test_exact_after_a_killed_worker_copied_records_twice(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("dup"), PARTITIONS)
    sent = records(4000)
    produce(source_cluster.bootstrap_servers, topic, sent)
    # progress is stored rarely, so the kill loses it and the restarted worker copies everything again
    # (resuming after the target's tail is off: the duplicates it avoids still happen where it falls back)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.record.filter.key.prefix": "keep-", "tasks.max": "1",
        "B.offset.flush.interval.ms": "600000", "emit.checkpoints.enabled": "false",
        "mirror.engine.resume.from.target.enabled": "false",
    }))
    kept = sum(1 for r in sent if r.key.startswith(b"keep-"))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= kept, 60,
             "the first copy", run.log)
    (pid,) = run.worker_pids().values()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) >= 2 * kept, 60,
             "the second copy by the restarted worker", run.log)
    assert run.stop() == 0, run.log()

    suffix = uuid.uuid4().hex[:6]
    groups = {f"dup-{suffix}": {0: 100, 1: 1999}, f"dupend-{suffix}": {0: 2000, 1: 2000}}
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups,
                             {"B.offset.flush.interval.ms": "600000"})
    assert run.stop() == 0, run.log()
    assert_exact(source_cluster, target_cluster, topic, groups)


def test_java_remote_cluster_utils_returns_the_engine_s_exact_offsets(source_cluster, target_cluster, engine,
                                                                      unique_name, tmp_path):
    import subprocess
    from pathlib import Path

    from engine.sandbox.distribution import MIRROR_CLIENT_ARTIFACTS, kafka_libs

    topic = source_cluster.create_topic(unique_name("java"), PARTITIONS)
    produce(source_cluster.bootstrap_servers, topic, records(5000))
    group = f"java-{uuid.uuid4().hex[:6]}"
    groups = {group: {0: 1234, 1: 8}}
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups, {})
    assert run.stop() == 0, run.log()
    assert_exact(source_cluster, target_cluster, topic, groups)

    jars = kafka_libs(MIRROR_CLIENT_ARTIFACTS, "mirror-client")
    source = Path(__file__).parent / "java" / "TranslateOffsets.java"
    compiled = subprocess.run(["javac", "-cp", f"{jars}/*", "-d", str(tmp_path), str(source)],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    java = subprocess.run(["java", "-cp", f"{tmp_path}:{jars}/*", "TranslateOffsets",
                           target_cluster.bootstrap_servers, "A", group],
                          capture_output=True, text=True, timeout=120)
    assert java.returncode == 0, java.stderr
    found = checkpoints(target_cluster, topic)
    # "topic partition offset metadata": the metadata is empty, as the group committed none
    expected = sorted(f"A.{topic} {p} {found[(group, p)].downstream_offset} " for p in range(PARTITIONS))
    assert sorted(java.stdout.splitlines()) == expected


def test_failover_command_moves_the_group_exactly(source_cluster, target_cluster, engine, unique_name, tmp_path):
    import subprocess
    import sys

    topic = source_cluster.create_topic(unique_name("fo"), PARTITIONS)
    produce(source_cluster.bootstrap_servers, topic, records(6000))
    group = f"fo-{uuid.uuid4().hex[:6]}"
    groups = {group: {0: 1500, 1: 29}}
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups, {})
    assert run.stop() == 0, run.log()
    config = run.folder / "mm2.properties"
    command = [sys.executable, "-m", "engine", "failover", str(config), "--group", group, "--from", "A", "--to", "B"]

    dry = subprocess.run(command + ["--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing changed" in dry.stdout

    # an active member on B blocks the failover
    member = Consumer({"bootstrap.servers": target_cluster.bootstrap_servers, "group.id": group,
                       "enable.auto.commit": False, "session.timeout.ms": 6000})
    member.subscribe([f"A.{topic}"])
    wait_for(lambda: member.poll(0.2) is None and bool(member.assignment()), 30, "the member joined")
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    member.close()
    assert refused.returncode == 2
    assert f"group '{group}' has 1 active members on cluster B" in refused.stderr

    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"committed {PARTITIONS} offsets for group {group} on cluster B" in done.stdout
    # the group's consumer on B carries on exactly where it was on A
    source_keys = keys_by_offset(source_cluster.bootstrap_servers, topic)
    consumer = Consumer({"bootstrap.servers": target_cluster.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(f"A.{topic}", p) for p in range(PARTITIONS)], timeout=30)
    consumer.close()
    for tp in committed:
        copied = read_from(target_cluster.bootstrap_servers, f"A.{topic}", tp.partition, tp.offset)
        assert copied == expected_after(source_keys[tp.partition], groups[group][tp.partition])


def committed_on(cluster, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
    finally:
        consumer.close()


def test_group_offsets_synced_to_an_idle_group_never_backwards(source_cluster, target_cluster, engine,
                                                               unique_name):
    topic = source_cluster.create_topic(unique_name("gsync"), PARTITIONS)
    produce(source_cluster.bootstrap_servers, topic, records(3000))
    suffix = uuid.uuid4().hex[:6]
    synced, ahead = f"synced-{suffix}", f"ahead-{suffix}"
    groups = {synced: {0: 700, 1: 15}, ahead: {0: 100, 1: 100}}
    # the "ahead" group already moved on past its translation on B: it must keep its position
    target_cluster.create_topic(f"A.{topic}", PARTITIONS)
    commit(target_cluster.bootstrap_servers, ahead, f"A.{topic}", {0: 1200, 1: 1200})
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups, {
        "sync.group.offsets.enabled": "true", "sync.group.offsets.interval.seconds": "1"})
    found = checkpoints(target_cluster, topic)
    expected = {p: found[(synced, p)].downstream_offset for p in range(PARTITIONS)}
    wait_for(lambda: committed_on(target_cluster, synced, f"A.{topic}") == expected, 60,
             "the translated offsets committed on B", run.log)
    assert run.stop() == 0, run.log()
    assert committed_on(target_cluster, ahead, f"A.{topic}") == {0: 1200, 1: 1200}
    assert_exact(source_cluster, target_cluster, topic, {synced: groups[synced]})


def test_exact_on_a_transactional_source_with_aborted_records(source_cluster, target_cluster, engine, unique_name):
    from confluent_kafka import Producer

    topic = source_cluster.create_topic(unique_name("txn"), PARTITIONS)
    producer = Producer({"bootstrap.servers": source_cluster.bootstrap_servers,
                         "transactional.id": f"txn-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    for batch in range(60):
        producer.begin_transaction()
        for i in range(10):
            n = batch * 10 + i
            producer.produce(topic, key=f"keep-{n}".encode(), value=b"v", partition=n % PARTITIONS)
        if batch % 3 == 2:
            producer.abort_transaction(30)  # aborted records are not copied (read_committed)
        else:
            producer.commit_transaction(30)
    source_keys = keys_by_offset(source_cluster.bootstrap_servers, topic)  # committed records only
    # positions on an aborted record or a transaction marker: offsets the copy has no record for
    gaps = {p: sorted(set(range(max(keys) + 1)) - set(keys)) for p, keys in source_keys.items()}
    suffix = uuid.uuid4().hex[:6]
    groups = {f"aborted-{suffix}": {0: gaps[0][5], 1: gaps[1][20]}, f"end-{suffix}": {0: max(source_keys[0]) + 2,
                                                                                      1: 0}}
    run = run_failover_check(source_cluster, target_cluster, engine, topic, groups, {})
    assert run.stop() == 0, run.log()
    assert_exact(source_cluster, target_cluster, topic, groups)


def test_failover_produce_on_b_then_failback_round_trip(source_cluster, target_cluster, engine, unique_name):
    import subprocess
    import sys

    from tests.integration.test_topologies import properties

    a, b = source_cluster, target_cluster
    topic = unique_name("trip")
    a.create_topic(topic, PARTITIONS)
    b.create_topic(topic, PARTITIONS)  # where producers write after the failover
    produce(a.bootstrap_servers, topic, records(1000))
    group = f"trip-{uuid.uuid4().hex[:6]}"
    commit(a.bootstrap_servers, group, topic, {0: 300, 1: 200})
    run = engine(properties({"A": a, "B": b}, ["A->B", "B->A"], {
        "topics": topic, "emit.checkpoints.interval.seconds": "1"}))
    config = str(run.folder / "mm2.properties")
    wait_for(lambda: {(group, 0), (group, 1)} <= checkpoints(b, topic).keys(), 60, "checkpoints on B", run.log)

    # 1. fail over to B; the group reads on from there
    moved = subprocess.run([sys.executable, "-m", "engine", "failover", config, "--group", group,
                            "--from", "A", "--to", "B"], capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0, moved.stderr
    on_b = committed_on(b, group, f"A.{topic}")
    # 2. producers now write to B; the group reads 50 old records per partition and 30 new ones
    produce(b.bootstrap_servers, topic, [Record(i % PARTITIONS, f"b-{i}".encode(), b"v", (), BASE_TIMESTAMP_MS + i)
                                         for i in range(200)])
    commit(b.bootstrap_servers, group, f"A.{topic}", {p: o + 50 for p, o in on_b.items()})
    commit(b.bootstrap_servers, group, topic, {0: 30, 1: 30})
    # the B->A flow checkpoints the group's position on B's own topic into A
    def back_checkpoints():
        found = {}
        for key, value in raw_records(a.bootstrap_servers, "B.checkpoints.internal"):
            cp = wire.Checkpoint.decode(key, value)
            if cp.group == group and cp.topic == f"B.{topic}":
                found[cp.partition] = cp
        return found
    wait_for(lambda: {p: cp.upstream_offset for p, cp in back_checkpoints().items()} == {0: 30, 1: 30}, 60,
             "B->A checkpoints of the group", run.log)
    # 3. stop replication towards B first, then fail back
    assert run.stop() == 0, run.log()
    back = subprocess.run([sys.executable, "-m", "engine", "failback", config, "--group", group,
                           "--from", "B", "--to", "A"], capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stdout + back.stderr
    # home topic: exactly after the 50 records read on B; B's topic: after the 30 read there
    assert committed_on(a, group, topic) == {0: 350, 1: 250}
    home = committed_on(a, group, f"B.{topic}")
    b_keys = keys_by_offset(a.bootstrap_servers, f"B.{topic}")
    for partition in range(PARTITIONS):
        assert b_keys[partition][home[partition]] == f"b-{30 * PARTITIONS + partition}".encode()


def test_exact_inside_a_compaction_gap(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("compact"), 1, {
        "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.001",
        "delete.retention.ms": "0", "min.compaction.lag.ms": "0"})
    # keys repeat, so compaction removes the older records and leaves offset gaps
    first = [Record(0, f"keep-{i % 50}".encode(), f"v{i}".encode(), (), BASE_TIMESTAMP_MS + i) for i in range(500)]
    produce(source_cluster.bootstrap_servers, topic, first)
    import time

    def poke() -> bool:
        # segment.ms rolls on record timestamps: each poke carries the current time
        produce(source_cluster.bootstrap_servers, topic,
                [Record(0, b"keep-0", b"poke", (), int(time.time() * 1000))])
        return True

    wait_for(lambda: poke()
             and len(keys_by_offset(source_cluster.bootstrap_servers, topic)[0])
             < end_offsets(source_cluster.bootstrap_servers, topic)[0] - 100, 120,
             "the log cleaner to compact the source topic", interval_s=1)
    source_keys = keys_by_offset(source_cluster.bootstrap_servers, topic)[0]
    holes = sorted(set(range(max(source_keys))) - set(source_keys))
    group = f"compact-{uuid.uuid4().hex[:6]}"
    groups = {group: {0: holes[len(holes) // 2]}}  # a position inside a compacted-away range
    commit(source_cluster.bootstrap_servers, group, topic, groups[group])
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "emit.checkpoints.interval.seconds": "1"}))
    wait_for(lambda: (group, 0) in checkpoints(target_cluster, topic), 60, "the checkpoint", run.log)
    assert run.stop() == 0, run.log()
    checkpoint = checkpoints(target_cluster, topic)[(group, 0)]
    copied = read_from(target_cluster.bootstrap_servers, f"A.{topic}", 0, checkpoint.downstream_offset)
    assert copied == [k for o, k in sorted(source_keys.items()) if o >= groups[group][0]]


def test_mm2_translation_mode_resumes_at_the_last_sync_plus_one(source_cluster, target_cluster, engine,
                                                               unique_name):
    topic = source_cluster.create_topic(unique_name("mm2mode"), 1)
    produce(source_cluster.bootstrap_servers, topic,
            [Record(0, f"keep-{i}".encode(), b"v", (), BASE_TIMESTAMP_MS + i) for i in range(1000)])
    group = f"mm2-{uuid.uuid4().hex[:6]}"
    commit(source_cluster.bootstrap_servers, group, topic, {0: 550})
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "emit.checkpoints.interval.seconds": "1", "offset.translation": "mm2",
        "offset.lag.max": "100"}))
    wait_for(lambda: (group, 0) in checkpoints(target_cluster, topic), 60, "the checkpoint", run.log)
    assert run.stop() == 0, run.log()
    syncs = [wire.OffsetSync.decode(k, v) for k, v in raw_records(source_cluster.bootstrap_servers,
                                                                   "mm2-offset-syncs.B.internal")]
    mine = [(s.upstream_offset, s.downstream_offset) for s in syncs if s.topic == topic and s.upstream_offset <= 550]
    upstream, downstream = max(mine)
    assert upstream < 550  # syncs every 101 records: 550 itself is not one
    checkpoint = checkpoints(target_cluster, topic)[(group, 0)]
    assert checkpoint.downstream_offset == downstream + 1  # MM2's rule: re-reads from the sync on


def test_identity_migration_cutover(source_cluster, target_cluster, engine, unique_name):
    import subprocess
    import sys

    topic = source_cluster.create_topic(unique_name("migrate"), PARTITIONS)
    produce(source_cluster.bootstrap_servers, topic, records(3000))
    group = f"migrate-{uuid.uuid4().hex[:6]}"
    positions = {0: 400, 1: 1500}  # partition 1 fully consumed
    commit(source_cluster.bootstrap_servers, group, topic, positions)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.record.filter.key.prefix": "keep-",
        "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"}))
    config = str(run.folder / "mm2.properties")
    cut = subprocess.run([sys.executable, "-m", "engine", "cutover", config, "--from", "A", "--to", "B",
                          "--groups", group, "--timeout", "120"], capture_output=True, text=True, timeout=180)
    assert run.stop() == 0, run.log()
    assert cut.returncode == 0, cut.stdout + cut.stderr
    assert f"lag 0 on all {PARTITIONS} partitions of 1 topics" in cut.stdout
    assert f"group {group}: {PARTITIONS} offsets committed on B" in cut.stdout
    assert f"switch producers of {topic} to B" in cut.stdout
    # identity policy: the same topic name on B, and the group resumes exactly
    on_b = committed_on(target_cluster, group, topic)
    source_keys = keys_by_offset(source_cluster.bootstrap_servers, topic)
    for partition, position in positions.items():
        copied = read_from(target_cluster.bootstrap_servers, topic, partition, on_b[partition])
        assert copied == expected_after(source_keys[partition], position)


def test_offset_map_runs_below_the_source_log_start_are_tombstoned(source_cluster, target_cluster, engine,
                                                                  unique_name):
    topic = source_cluster.create_topic(unique_name("prune"), 1)
    produce(source_cluster.bootstrap_servers, topic,
            [Record(0, (b"skip-" if i % 10 == 9 else b"keep-") + str(i).encode(), b"v", (), BASE_TIMESTAMP_MS + i)
             for i in range(1000)])
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.record.filter.key.prefix": "keep-", "emit.checkpoints.interval.seconds": "1"}))

    def runs() -> dict[int, bool]:
        found = {}
        for key, value in raw_records(target_cluster.bootstrap_servers, "mm2-offset-map.A.internal"):
            run_key = wire.OffsetRun.decode(key, b"\0" * 26)
            if run_key.topic == topic and run_key.first_upstream >= 0:
                found[run_key.first_upstream] = value is not None
        return found

    wait_for(lambda: len(runs()) == 100, 60, "100 runs of 9 copies in the offset map", run.log)
    admin = source_cluster.admin()
    admin.delete_records([TopicPartition(topic, 0, 505)])[TopicPartition(topic, 0, 505)].result(timeout=30)
    # runs ending before 505 (first offsets 0, 10, ..., 490) get tombstones; the one covering 505 stays
    wait_for(lambda: sorted(first for first, alive in runs().items() if not alive) == list(range(0, 500, 10)),
             60, "tombstones for the runs below the log start", run.log)
    assert all(alive for first, alive in runs().items() if first >= 500)
    assert run.stop() == 0, run.log()
