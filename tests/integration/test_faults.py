"""Faults on real brokers, each ending with an audit: nothing missing, and — since a worker resumes
after the copies the target already holds (engine/worker/resume.py) — nothing copied twice either."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine.audit.flow import audit_flow
from engine.config.loading import from_properties
from engine.config.properties import parse_properties
from tests.helpers import wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, SteadyProducer, end_offsets, mm2_properties, produce
from tests.integration.test_discovery_and_recovery import scrape
from tests.integration.test_topologies import records

WORKER_RSS_LIMIT = 256 * 1024 * 1024
# the soak (make soak) freezes the target for a minute instead of CI's 15 s
SOAK = bool(os.environ.get("MIRROR_ENGINE_SOAK"))
FREEZE_S = 60 if SOAK else 15


def audit(properties: str, topic: str):
    config = from_properties(parse_properties(properties))
    results = audit_flow(config, config.flows[0], [topic])
    for result in results:
        assert not result.missing and not result.differing and not result.foreign, result
        assert result.copied == result.expected
    return sum(r.duplicated for r in results), sum(r.expected for r in results)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_a_killed_coordinator_takes_its_workers_along_and_a_restart_resumes(source_cluster, target_cluster, engine,
                                                                           unique_name):
    topic = source_cluster.create_topic(unique_name("coordinator-kill"), 2)
    first = records(20_000, "first")
    produce(source_cluster.bootstrap_servers, topic, first)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, "tasks.max": "2"})
    remote = f"A.{topic}"
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > 2000, 60,
             "a part of the copy", run.log)
    workers = list(run.worker_pids().values())
    run.kill()  # kill -9 of the coordinator: no flush, no goodbye
    # workers see their stdin close and stop rather than go on orphaned
    wait_for(lambda: not any(alive(pid) for pid in workers), 30, f"workers {workers} to stop", run.log)

    second = records(5_000, "second")
    produce(source_cluster.bootstrap_servers, topic, second)
    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 25_000, 90,
             "the whole copy after the restart", run.log)
    assert run.stop() == 0, run.log()
    duplicated, expected = audit(properties, topic)
    assert (expected, duplicated) == (25_000, 0)
    # a fresh remote topic of a gap-free source, restarted without duplicates: the source's offsets
    assert end_offsets(target_cluster.bootstrap_servers, remote) == end_offsets(source_cluster.bootstrap_servers, topic)
    assert sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) == 25_000


def kept_and_dropped(index: int, count: int, tag: str) -> list[Record]:
    """Records of which every third carries a `drop` header, which the flow's record filter drops."""
    return [Record(i % 2, f"{tag}-k{i}".encode(), f"{tag}-v{i}".encode(),
                   (("origin", tag.encode()),) + ((("drop", b"1"),) if i % 3 == 0 else ()), BASE_TIMESTAMP_MS + i)
            for i in range(index, index + count)]


def missing_any(properties: str, topic: str) -> bool:
    config = from_properties(parse_properties(properties))
    return any(r.missing for r in audit_flow(config, config.flows[0], [topic]))


@pytest.mark.parametrize("killed, resume", [("worker", "on"), ("whole engine", "on"), ("worker", "off")])
def test_a_kill_mid_stream_copies_nothing_twice(killed, resume, source_cluster, target_cluster, engine, unique_name):
    """kill -9 of one worker, or of the coordinator and every worker at once, while records keep coming
    and a record filter drops a third of them. With resume on (the default) the restarted worker
    resumes after what the target holds: 0 duplicates. Off (the control), it resumes at its stored
    progress, stored every 5 s here, and copies again what was acknowledged after it."""
    for round_ in range(3 if SOAK else 1):
        topic = source_cluster.create_topic(unique_name(f"kill-{resume}"), 2)
        properties = mm2_properties(source_cluster, target_cluster, {
            "A->B.topics": topic, "tasks.max": "1", "B.offset.flush.interval.ms": "5000",
            "A->B.record.filter.header.absent": "drop",
            "mirror.engine.resume.from.target.enabled": "true" if resume == "on" else "false",
        })
        remote = f"A.{topic}"
        copied = lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values())  # noqa: E731
        run = engine(properties)
        with SteadyProducer(source_cluster.bootstrap_servers, topic, lambda i: kept_and_dropped(i, 300, "steady")):
            wait_for(lambda: copied() > 3000, 60, "a part of the copy", run.log)
            if killed == "worker":
                (pid,) = run.worker_pids().values()
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: run.worker_pids().get(0) not in (None, pid), 60, "the worker restarted", run.log)
            else:
                (pid,) = run.worker_pids().values()
                os.kill(pid, signal.SIGKILL)
                run.kill()
                wait_for(lambda: not alive(pid), 30, "the worker gone", run.log)
                run = engine(properties)
            before = copied()
            wait_for(lambda: copied() > before + 2000, 60, "copying after the restart", run.log)
        wait_for(lambda: not missing_any(properties, topic), 90, "every kept record on the target", run.log,
                 interval_s=1.0)
        # what the restarted worker found already copied: counted alike in /status and the metrics
        avoided = lambda: sum(float(line.rsplit(" ", 1)[1]) for line in scrape(run.metrics_url()).splitlines()  # noqa: E731
                              if line.startswith("mirror_engine_resume_duplicates_avoided_records_total{"))
        resumed = wait_for(lambda: (lambda r: r if r["duplicates_avoided"] == avoided() else None)(
            run.status()["flows"][0]["resume"]), 30, "the same duplicates avoided in /status and the metrics",
            lambda: "\n".join(line for line in scrape(run.metrics_url()).splitlines() if "resume" in line))
        found = resumed["duplicates_avoided"]
        assert run.stop() == 0, run.log()
        config = from_properties(parse_properties(properties))
        expected = sum(r.expected for r in audit_flow(config, config.flows[0], [topic]))
        duplicated = copied() - expected  # nothing is missing: every record past the kept ones is a copy again
        print(f"\nkill -9 {killed}, resume {resume}, round {round_}: {expected} kept records, missing 0, "
              f"duplicated {duplicated}")
        if resume == "on":
            assert audit(properties, topic) == (0, expected), run.log()
            assert duplicated == 0
            assert found > 0 and resumed["copied_again"] == 0
        else:
            assert duplicated > 0  # what resuming after the target's tail removes
            assert resumed == {"duplicates_avoided": 0, "copied_again": 0}
            # copies whose offset-map run was never stored: duplicates to the audit, not strangers
            assert audit(properties, topic) == (duplicated, expected), run.log()


def test_a_frozen_target_broker_stalls_the_copy_which_resumes_on_its_own(source_cluster, target_cluster, engine,
                                                                        unique_name):
    topic = source_cluster.create_topic(unique_name("target-frozen"), 2)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, "tasks.max": "1"})
    remote = f"A.{topic}"
    run = engine(properties)
    with SteadyProducer(source_cluster.bootstrap_servers, topic, lambda first: records(500, f"r{first}")) as producer:
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > 1000, 60,
                 "a part of the copy", run.log)
        worker = run.worker_pids()[0]
        node = target_cluster.cluster.members[0].node_id
        target_cluster.cluster.pause(node)  # SIGSTOP: connections stay open, nothing answers
        peak_rss = 0
        try:
            deadline = time.monotonic() + FREEZE_S
            while time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_bytes(worker))
                time.sleep(0.5)  # sampling memory while the freeze lasts: nothing to wait for
        finally:
            target_cluster.cluster.resume(node)
    written = producer.written
    assert run.worker_pids()[0] == worker and alive(worker)  # no restart was needed
    assert peak_rss < WORKER_RSS_LIMIT, f"worker RSS {peak_rss / 2**20:.0f} MiB while the target was frozen"
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= len(written), 120,
             "the copy to catch up on its own", run.log)
    assert run.stop() == 0, run.log()
    duplicated, expected = audit(properties, topic)
    assert expected == len(written) and duplicated == 0
    print(f"\ntarget frozen {FREEZE_S} s: sent {len(written)}, missing 0, duplicated 0, peak worker RSS "
          f"{peak_rss / 2**20:.0f} MiB")


def test_broker_restarts_on_both_sides_lose_nothing(source_cluster_3, target_cluster_3, engine, unique_name):
    """3-node clusters, replication factor 3 everywhere: one source broker, then one target broker
    restarts while records flow."""
    from confluent_kafka.admin import NewTopic

    for round_ in range(3 if SOAK else 1):
        topic = unique_name("restarts")
        admin = source_cluster_3.admin()
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(timeout=30)
        rf3 = {key: "3" for key in ("replication.factor", "offset.storage.replication.factor",
                                    "heartbeats.topic.replication.factor", "offset-syncs.topic.replication.factor",
                                    "checkpoints.topic.replication.factor")}
        properties = mm2_properties(source_cluster_3, target_cluster_3, {"A->B.topics": topic, "tasks.max": "2", **rf3})
        remote = f"A.{topic}"
        run = engine(properties)
        with SteadyProducer(source_cluster_3.bootstrap_servers, topic,
                            lambda first: records(300, f"r{first}", partitions=3)) as producer:
            wait_for(lambda: sum(end_offsets(target_cluster_3.bootstrap_servers, remote).values()) > 1000, 90,
                     "a part of the copy", run.log)
            for cluster in (source_cluster_3, target_cluster_3):
                copied = sum(end_offsets(target_cluster_3.bootstrap_servers, remote).values())
                cluster.cluster.restart(cluster.cluster.members[1].node_id)
                wait_for(lambda: sum(end_offsets(target_cluster_3.bootstrap_servers, remote).values()) > copied + 1000,
                         90, f"the copy going on after a {cluster.alias} broker restart", run.log)
        written = producer.written
        wait_for(lambda: sum(end_offsets(target_cluster_3.bootstrap_servers, remote).values()) >= len(written), 120,
                 "the whole copy", run.log)
        assert run.stop() == 0, run.log()
        duplicated, expected = audit(properties, topic)
        print(f"\nbroker restarts (source, then target), round {round_}: sent {len(written)}, missing 0, "
              f"duplicated {duplicated}")
        # no worker restarts here, so resuming after the target's tail plays no part: duplicates can still
        # come from the producer's own retries across the target broker's restart (counted, not asserted)
        assert expected == len(written)
