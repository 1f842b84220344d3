"""Topics and partitions that appear, disappear, and workers that die, while replicating."""

from __future__ import annotations

import os
import re
import signal
import urllib.request

from confluent_kafka.admin import NewPartitions

from engine.offsets import wire
from tests.helpers import wait_for
from tests.integration.kafka_io import end_offsets, mm2_properties, produce, read_all, stored_progress
from tests.integration.test_topologies import count, per_partition, records


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_new_topic_and_new_partitions_are_picked_up(source_cluster, target_cluster, engine, unique_name):
    prefix = unique_name("grow")
    first = source_cluster.create_topic(f"{prefix}-first", 2)
    produce(source_cluster.bootstrap_servers, first, records(500, "first"))
    run = engine(mm2_properties(source_cluster, target_cluster,
                                {"A->B.topics": f"{prefix}-.*", "refresh.topics.interval.seconds": "2"}))
    wait_for(lambda: count(target_cluster, f"A.{first}") >= 500, 60, f"A.{first}", run.log)

    # a topic created after the start
    later = source_cluster.create_topic(f"{prefix}-later", 3)
    later_records = records(900, "later", partitions=3)
    produce(source_cluster.bootstrap_servers, later, later_records)
    wait_for(lambda: count(target_cluster, f"A.{later}") >= 900, 60, f"A.{later} after a refresh", run.log)

    # partitions added to a replicated topic
    admin = source_cluster.admin()
    admin.create_partitions([NewPartitions(first, 4)])[first].result(timeout=30)
    grown = records(800, "grown", partitions=4)
    produce(source_cluster.bootstrap_servers, first, grown)
    wait_for(lambda: len(end_offsets(target_cluster.bootstrap_servers, f"A.{first}")) == 4, 60,
             f"A.{first} grown to 4 partitions", run.log)
    wait_for(lambda: count(target_cluster, f"A.{first}") >= 1300, 60, "records of the new partitions", run.log)
    assert run.stop() == 0, run.log()

    expected = per_partition(records(500, "first"), 4)
    for p, rs in per_partition(grown, 4).items():
        expected[p] = expected[p] + rs
    assert read_all(target_cluster.bootstrap_servers, f"A.{first}") == expected
    assert read_all(target_cluster.bootstrap_servers, f"A.{later}") == per_partition(later_records, 3)


def test_a_killed_worker_is_restarted_and_resumes_from_stored_progress(source_cluster, target_cluster, engine,
                                                                       unique_name):
    topic = source_cluster.create_topic(unique_name("orders"), 2)
    first = records(2000, "before")
    produce(source_cluster.bootstrap_servers, topic, first)
    run = engine(mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, "tasks.max": "1"}))
    wait_for(lambda: count(target_cluster, f"A.{topic}") >= 2000, 60, "the first records", run.log)
    keys = {wire.source_offset_key("A", topic, p) for p in range(2)}
    wait_for(lambda: all(stored_progress(target_cluster.bootstrap_servers, "mm2-offsets.A.internal").get(k)
                         == {"offset": 999} for k in keys), 30, "progress stored for both partitions", run.log)

    (pid,) = run.worker_pids().values()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: run.worker_pids().get(0) not in (None, pid), 60, "the worker restarted", run.log)
    second = records(1000, "after")
    produce(source_cluster.bootstrap_servers, topic, [r for r in second])
    wait_for(lambda: count(target_cluster, f"A.{topic}") >= 3000, 60, "records after the restart", run.log)
    assert run.restarts() == 1
    assert run.stop() == 0, run.log()
    # resumed exactly after the stored offsets: nothing missing, nothing copied twice
    expected = per_partition(first)
    for p, rs in per_partition(second).items():
        expected[p] = expected[p] + rs
    copied = read_all(target_cluster.bootstrap_servers, f"A.{topic}")
    for p in expected:
        assert [r.key for r in copied[p]] == [r.key for r in expected[p]], f"partition {p}"
    assert copied == expected


def test_a_deleted_source_topic_stops_alone_and_metrics_say_so(source_cluster, target_cluster, engine,
                                                              unique_name):
    prefix = unique_name("del")
    doomed = source_cluster.create_topic(f"{prefix}-doomed", 1)
    kept = source_cluster.create_topic(f"{prefix}-kept", 2)
    produce(source_cluster.bootstrap_servers, doomed, records(300, "doomed", partitions=1))
    produce(source_cluster.bootstrap_servers, kept, records(400, "kept"))
    run = engine(mm2_properties(source_cluster, target_cluster,
                                {"A->B.topics": f"{prefix}-.*", "refresh.topics.interval.seconds": "2"}))
    wait_for(lambda: count(target_cluster, f"A.{doomed}") >= 300 and count(target_cluster, f"A.{kept}") >= 400,
             60, "both topics copied", run.log)
    url = run.metrics_url()
    wait_for(lambda: metric(scrape(url), "mirror_engine_records_total", topic=kept, partition="1") == 200, 30,
             "the records counter of kept[1]", run.log)
    # the coordinator knows how far the doomed topic was copied only from its worker's report
    wait_for(lambda: metric(scrape(url), "mirror_engine_records_total", topic=doomed, partition="0") == 300, 30,
             "the records counter of the doomed topic", run.log)

    source_cluster.delete_topic(doomed)
    wait_for(lambda: f"{doomed}: source topic deleted" in run.log(), 30, "the deletion reported", run.log)
    assert re.search(rf"{re.escape(doomed)}: source topic deleted; its replication stopped at source offsets "
                     rf"\{{0: 299\}}", run.log())
    assert metric(scrape(url), "mirror_engine_stopped_topics", topic=doomed, reason="source topic deleted") == 1

    more = records(600, "kept-more")
    produce(source_cluster.bootstrap_servers, kept, more)
    wait_for(lambda: count(target_cluster, f"A.{kept}") >= 1000, 60, "the kept topic still replicating", run.log)
    assert run.stop() == 0, run.log()
    # the remote copy of the deleted topic is kept, as MM2 keeps it
    assert count(target_cluster, f"A.{doomed}") == 300
    expected = per_partition(records(400, "kept"))
    for p, rs in per_partition(more).items():
        expected[p] = expected[p] + rs
    assert read_all(target_cluster.bootstrap_servers, f"A.{kept}") == expected


def test_an_existing_remote_topic_is_grown_or_kept(source_cluster, target_cluster, engine, unique_name):
    short = source_cluster.create_topic(unique_name("short"), 3)
    wide = source_cluster.create_topic(unique_name("wide"), 2)
    target_cluster.create_topic(f"A.{short}", 1)  # fewer partitions than its source: grown
    target_cluster.create_topic(f"A.{wide}", 4)  # more: numbering kept, the extra ones stay empty
    short_records, wide_records = records(900, "short", partitions=3), records(600, "wide")
    produce(source_cluster.bootstrap_servers, short, short_records)
    produce(source_cluster.bootstrap_servers, wide, wide_records)
    run = engine(mm2_properties(source_cluster, target_cluster, {"A->B.topics": f"{short}|{wide}"}))
    wait_for(lambda: count(target_cluster, f"A.{short}") >= 900 and count(target_cluster, f"A.{wide}") >= 600,
             60, "both topics copied", run.log)
    assert run.stop() == 0, run.log()
    assert f"grew topic A.{short} on cluster B from 1 to 3 partitions" in run.log()
    assert f"topic A.{wide} on cluster B has 4 partitions, its source 2: partition numbers are kept" in run.log()
    assert read_all(target_cluster.bootstrap_servers, f"A.{short}") == per_partition(short_records, 3)
    expected_wide = per_partition(wide_records, 4)
    assert read_all(target_cluster.bootstrap_servers, f"A.{wide}") == expected_wide
    assert expected_wide[2] == [] and expected_wide[3] == []

