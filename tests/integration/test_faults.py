"""Faults on real brokers, each ending with an audit: nothing missing; duplicates only what
at-least-once allows (records acknowledged after the last stored progress), counted."""

from __future__ import annotations

import threading
import time

from engine.audit import audit_flow
from engine.config import from_properties, parse_properties
from tests.helpers import wait_for
from tests.integration.kafka_io import end_offsets, mm2_properties, produce
from tests.integration.test_topologies import records

WORKER_RSS_LIMIT = 256 * 1024 * 1024


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
    assert expected == 25_000
    # at-least-once: at most what was acknowledged but not stored when the coordinator died
    assert duplicated <= sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) - 25_000
    print(f"\nkill -9 coordinator: sent 25000, missing 0, duplicated {duplicated}")


def test_a_frozen_target_broker_stalls_the_copy_which_resumes_on_its_own(source_cluster, target_cluster, engine,
                                                                        unique_name):
    topic = source_cluster.create_topic(unique_name("target-frozen"), 2)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, "tasks.max": "1"})
    remote = f"A.{topic}"
    run = engine(properties)
    written = []
    stop = threading.Event()

    def keep_producing():
        while not stop.is_set():
            batch = records(500, f"r{len(written)}")
            produce(source_cluster.bootstrap_servers, topic, batch)
            written.extend(batch)

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    try:
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > 1000, 60,
                 "a part of the copy", run.log)
        worker = run.worker_pids()[0]
        node = target_cluster.cluster.members[0].node_id
        target_cluster.cluster.pause(node)  # SIGSTOP: connections stay open, nothing answers
        peak_rss = 0
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_bytes(worker))
                stop.wait(0.5)
        finally:
            target_cluster.cluster.resume(node)
        stop.set()
        producer.join(timeout=60)
    finally:
        stop.set()
    assert run.worker_pids()[0] == worker and alive(worker)  # no restart was needed
    assert peak_rss < WORKER_RSS_LIMIT, f"worker RSS {peak_rss / 2**20:.0f} MiB while the target was frozen"
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= len(written), 120,
             "the copy to catch up on its own", run.log)
    assert run.stop() == 0, run.log()
    duplicated, expected = audit(properties, topic)
    assert expected == len(written) and duplicated == 0
    print(f"\ntarget frozen 15 s: sent {len(written)}, missing 0, duplicated 0, peak worker RSS "
          f"{peak_rss / 2**20:.0f} MiB")
