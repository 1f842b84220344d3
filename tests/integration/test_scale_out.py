"""Scale-out: instances with one file and one mirror.engine.group.id share the partitions through a
consumer group on the target cluster; a killed one's partitions are taken over, a new one takes its
share, and nothing is lost or copied twice on the way."""

from __future__ import annotations

import json
import os
import signal
import time

from engine.audit.flow import audit_flow
from engine.config.loading import load
from tests.helpers import http_get, wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, SteadyProducer, end_offsets, mm2_properties, read_all

SOAK = bool(os.environ.get("MIRROR_ENGINE_SOAK"))  # make soak: three rounds of the hand-over kill
SESSION_TIMEOUT_MS = 6000  # the brokers' group.min.session.timeout.ms
PARTITIONS = 6


def batch(partitions: int, tag: str):
    def make(first: int) -> list[Record]:
        return [Record(i % partitions, f"{tag}-k{i}".encode(), f"{tag}-v{i}".encode(), (("n", str(i).encode()),),
                       BASE_TIMESTAMP_MS + i) for i in range(first, first + 12)]
    return make


def group_properties(source_cluster, target_cluster, topic: str, group: str, extra: dict | None = None) -> str:
    return mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "tasks.max": "1", "emit.heartbeats.enabled": "false",
        "mirror.engine.group.id": group, "mirror.engine.group.session.timeout.ms": str(SESSION_TIMEOUT_MS),
        **(extra or {})})


def status(run) -> dict:
    code, body = http_get(run.metrics_url().replace("/metrics", "/status"))
    assert code in (200, 503), body
    return json.loads(body)


def owners(runs: list, flow_name: str = "A->B") -> dict[tuple[str, int], list[int]]:
    """partition of the flow -> the instances (by index in runs) whose workers hold it."""
    held: dict[tuple[str, int], list[int]] = {}
    for index, run in enumerate(runs):
        for flow in status(run)["flows"]:
            if flow["flow"] != flow_name:
                continue
            for topic, partition in flow["partitions_here"]:
                held.setdefault((topic, partition), []).append(index)
    return held


def owned_once_by(runs: list, topic: str, instances: int, partitions: int = PARTITIONS, flow: str = "A->B"):
    """partition -> owner, for every partition of the flow, once each has exactly one owner, the topic's
    are all there, `instances` own some and the counts are even (the flow also copies the source's
    heartbeats topic when other tests made one)."""
    def check():
        every = owners(runs, flow)
        if not {(topic, p) for p in range(partitions)} <= every.keys() or any(len(o) != 1 for o in every.values()):
            return None
        counts = [sum(1 for o in every.values() if o[0] == i) for i in range(len(runs))]
        owning = [c for c in counts if c]
        if len(owning) != instances or max(owning) - min(owning) > 1:
            return None  # not yet balanced: a cooperative rebalance takes two rounds
        return {tp: o[0] for tp, o in every.items()}
    return check


def logs(runs: list):
    return lambda: "\n\n".join(f"--- instance {i}:\n{run.log()[-4000:]}" for i, run in enumerate(runs))


def sharing(engine, properties: str, count: int, topic: str) -> tuple[list, dict[tuple[str, int], int]]:
    """`count` instances of one file, once they share the topic's partitions (and that ownership)."""
    runs = [engine(properties) for _ in range(count)]
    wait_for(lambda: all("metrics on" in run.log() for run in runs), 60, f"{count} instances up", logs(runs))
    return runs, wait_for(owned_once_by(runs, topic, count), 90, f"every partition owned by exactly one of {count}",
                          logs(runs))


def copied(target_cluster, remote: str) -> int:
    return sum(end_offsets(target_cluster.bootstrap_servers, remote).values())


def kill_instance(run) -> list[int]:
    """kill -9 of an instance, its workers and its coordinator at once; returns the workers' pids."""
    workers = list(run.worker_pids().values())
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    run.kill()
    return workers


def assert_every_record_once(target_cluster, topic: str, written: list[Record], runs: list) -> int:
    """Waits for the whole copy, stops the instances, and checks every record is on the target once, in
    order, and the audit agrees; returns the records copied twice (0, or the assertion failed)."""
    remote = f"A.{topic}"
    wait_for(lambda: copied(target_cluster, remote) >= len(written), 90, "every record copied", logs(runs))
    for run in runs:
        assert run.stop() == 0, run.log()
    copies = read_all(target_cluster.bootstrap_servers, remote)
    twice = sum(map(len, copies.values())) - len(written)
    assert copies == {p: [r for r in written if r.partition == p] for p in range(PARTITIONS)}  # no gap, nothing twice
    loaded = load(runs[0].folder / "mm2.properties", quiet=True)
    results = audit_flow(loaded, loaded.flows[0], topics=[topic])
    assert all(r.ok and r.duplicated == 0 for r in results), "\n".join(map(str, results))
    assert sum(r.copied for r in results) == len(written)
    return twice


def test_instances_share_partitions_a_new_one_takes_its_share_and_a_killed_ones_are_taken_over(
        source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("shared"), PARTITIONS)
    remote = f"A.{topic}"
    properties = group_properties(source_cluster, target_cluster, topic, unique_name("group"))
    with SteadyProducer(source_cluster.bootstrap_servers, topic, batch(PARTITIONS, "s")) as producer:
        runs, three = sharing(engine, properties, 3, topic)
        leaders = [i for i, run in enumerate(runs) if status(run)["flows"][0]["group"]["leader"]]
        assert len(leaders) == 1, f"one leader expected, got instances {leaders}"

        # a fourth instance: only the partitions it takes move, and they move without a gap
        samples = []
        runs.append(engine(properties))
        wait_for(lambda: "metrics on" in runs[3].log(), 60, "a fourth instance up", logs(runs))
        def four_share():
            samples.append((time.monotonic(), copied(target_cluster, remote)))
            return owned_once_by(runs, topic, 4)()
        four = wait_for(four_share, 90, "every partition owned by exactly one of 4", logs(runs), interval_s=0.25)
        moved = {tp for tp in four if four[tp] != three.get(tp)}
        assert moved and all(four[tp] == 3 for tp in moved), f"only partitions for the new instance move: {four}"
        stalls = [b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False) if b[1] == a[1]]
        print(f"fourth instance: {len(moved)} partitions moved to it; longest stand-still of the copy "
              f"{max(stalls, default=0):.2f}s")

        # kill -9 one instance, coordinator and workers at once: nothing of what they copied since their
        # last stored progress is stored; the others take over and resume after the target's tail
        victim = four[(topic, 0)]
        killed_at = time.monotonic()
        victim_workers = kill_instance(runs[victim])
        survivors = [run for i, run in enumerate(runs) if i != victim]
        wait_for(owned_once_by(survivors, topic, 3), 60, "the killed instance's partitions taken over",
                 logs(survivors), interval_s=0.25)
        takeover_s = time.monotonic() - killed_at
        print(f"kill -9: partitions taken over after {takeover_s:.1f}s (session timeout "
              f"{SESSION_TIMEOUT_MS / 1000:.0f}s)")
        assert takeover_s < 2 * SESSION_TIMEOUT_MS / 1000 + 5, takeover_s
        wait_for(lambda: not any(_alive(pid) for pid in victim_workers), 30, "the killed instance's workers gone")
        mark = copied(target_cluster, remote)
        wait_for(lambda: copied(target_cluster, remote) >= mark + 100, 60, "copying goes on", logs(survivors))
    assert_every_record_once(target_cluster, topic, producer.written, survivors)


def test_a_kill_during_a_hand_over_copies_nothing_twice(source_cluster, target_cluster, engine, unique_name):
    """Two instances share the partitions; a third joins, and the moment the rebalance starts moving
    partitions one of the first two is killed with -9, coordinator and workers at once, in the middle
    of its hand-over (its drain unfinished, its last copies unstored). The others take everything
    over and resume after the target's tail: every record once, none twice."""
    for round_ in range(3 if SOAK else 1):
        topic = source_cluster.create_topic(unique_name("handover"), PARTITIONS)
        remote = f"A.{topic}"
        properties = group_properties(source_cluster, target_cluster, topic, unique_name("group"))
        with SteadyProducer(source_cluster.bootstrap_servers, topic, batch(PARTITIONS, f"h{round_}")) as producer:
            runs, two = sharing(engine, properties, 2, topic)
            victim = two[(topic, 0)]
            held_by_victim = {tp for tp, owner in two.items() if owner == victim}
            runs.append(engine(properties))

            def handing_over() -> bool:  # the victim gave up a partition, or the newcomer took one
                up = runs if "metrics on" in runs[2].log() else runs[:2]
                held = owners(up)
                return any(2 in o for o in held.values()) or \
                    not held_by_victim <= {tp for tp, o in held.items() if victim in o}
            wait_for(handing_over, 90, "the third instance's rebalance moving partitions", logs(runs), interval_s=0.05)
            victim_workers = kill_instance(runs[victim])
            survivors = [run for i, run in enumerate(runs) if i != victim]
            wait_for(owned_once_by(survivors, topic, 2), 90, "the killed instance's partitions taken over",
                     logs(survivors), interval_s=0.25)
            wait_for(lambda: not any(_alive(pid) for pid in victim_workers), 30, "the killed instance's workers gone")
            mark = copied(target_cluster, remote)
            wait_for(lambda: copied(target_cluster, remote) >= mark + 100, 60, "copying goes on", logs(survivors))
        twice = assert_every_record_once(target_cluster, topic, producer.written, survivors)
        print(f"\nkill -9 during a hand-over, round {round_}: {len(producer.written)} records, {twice} copied twice")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_config_change_adds_a_flow_while_the_group_keeps_replicating(
        source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("steady"), PARTITIONS)
    backwards = target_cluster.create_topic(unique_name("backwards"), 2)
    remote = f"A.{topic}"
    group = unique_name("group")
    before = group_properties(source_cluster, target_cluster, topic, group)
    with SteadyProducer(source_cluster.bootstrap_servers, topic, batch(PARTITIONS, "s")) as producer, \
            SteadyProducer(target_cluster.bootstrap_servers, backwards, batch(2, "b")) as reverse:
        runs, _ = sharing(engine, before, 2, topic)
        for run in runs:
            (run.folder / "mm2.properties").write_text(before + f"B->A.enabled = true\nB->A.topics = {backwards}\n")
            run.process.send_signal(signal.SIGHUP)
        samples = []
        def added():
            samples.append((time.monotonic(), copied(target_cluster, remote)))
            return f"B.{backwards}" in source_cluster.admin().list_topics(timeout=10).topics and \
                copied(source_cluster, f"B.{backwards}") >= 100
        wait_for(added, 120, "the added flow copying", logs(runs), interval_s=0.25)
        # the new flow's partitions are shared too, in the group on its own target cluster A
        wait_for(owned_once_by(runs, backwards, 2, partitions=2, flow="B->A"), 60, "the added flow's partitions shared",
                 logs(runs))
        mark = copied(target_cluster, remote)
        wait_for(lambda: copied(target_cluster, remote) >= mark + 100, 60, "the first flow goes on", logs(runs))
    wait_for(lambda: copied(target_cluster, remote) >= len(producer.written)
             and copied(source_cluster, f"B.{backwards}") >= len(reverse.written), 90, "every record copied",
             logs(runs))
    for run in runs:
        assert run.stop() == 0, run.log()
    stalls = [b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False) if b[1] == a[1]]
    print(f"A->B while B->A was added to both instances: longest stand-still {max(stalls, default=0):.2f}s")
    assert max(stalls, default=0) < 5, f"the running flow stood still for {max(stalls):.1f}s"
    assert read_all(target_cluster.bootstrap_servers, remote) == \
        {p: [r for r in producer.written if r.partition == p] for p in range(PARTITIONS)}
    assert read_all(source_cluster.bootstrap_servers, f"B.{backwards}") == \
        {p: [r for r in reverse.written if r.partition == p] for p in range(2)}


def test_a_frozen_instance_writes_nothing_more_once_its_partitions_are_taken_over(
        source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("frozen"), PARTITIONS)
    remote = f"A.{topic}"
    properties = group_properties(source_cluster, target_cluster, topic, unique_name("group"))
    with SteadyProducer(source_cluster.bootstrap_servers, topic, batch(PARTITIONS, "f")) as producer:
        runs, _ = sharing(engine, properties, 2, topic)
        frozen, other = runs
        # SIGSTOP the coordinator alone, as a host that stalls: its workers run on, unrenewed
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: "copying paused" in frozen.log(), 30, "the frozen instance's workers pausing",
                     logs(runs))
            wait_for(owned_once_by([other], topic, 1), 60, "the other instance owning every partition",
                     logs(runs), interval_s=0.25)
            mark = copied(target_cluster, remote)
            wait_for(lambda: copied(target_cluster, remote) >= mark + 100, 60, "copying goes on", logs(runs))
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        wait_for(owned_once_by(runs, topic, 2), 90, "the partitions shared again after the wake-up", logs(runs))
    wait_for(lambda: copied(target_cluster, remote) >= len(producer.written), 90, "every record copied", logs(runs))
    for run in runs:
        assert run.stop() == 0, run.log()
    assert "lost its membership" in frozen.log() or "stood still for" in frozen.log(), frozen.log()
    # the frozen instance's workers copied nothing after their lease ran out: every record once
    copies = read_all(target_cluster.bootstrap_servers, remote)
    twice = sum(len(copies[p]) for p in range(PARTITIONS)) - len(producer.written)
    print(f"frozen instance: {twice} records copied twice of {len(producer.written)}")
    assert copies == {p: [r for r in producer.written if r.partition == p] for p in range(PARTITIONS)}


def test_exactly_once_instances_hand_partitions_over_and_a_frozen_one_commits_nothing_more(
        source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("eos"), PARTITIONS)
    remote = f"A.{topic}"
    properties = group_properties(source_cluster, target_cluster, topic, unique_name("group"),
                                  {"B.exactly.once.source.support": "enabled"})
    with SteadyProducer(source_cluster.bootstrap_servers, topic, batch(PARTITIONS, "e")) as producer:
        runs, _ = sharing(engine, properties, 2, topic)
        runs.append(engine(properties))
        wait_for(lambda: "metrics on" in runs[2].log(), 60, "a third instance up", logs(runs))
        wait_for(owned_once_by(runs, topic, 3), 90, "every partition owned by exactly one of 3", logs(runs))
        frozen = runs[0]
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            wait_for(owned_once_by(runs[1:], topic, 2), 60, "the others owning every partition", logs(runs[1:]),
                     interval_s=0.25)
            mark = committed(target_cluster, remote)
            wait_for(lambda: committed(target_cluster, remote) >= mark + 100, 60, "copying goes on", logs(runs[1:]))
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        wait_for(owned_once_by(runs, topic, 3), 90, "the partitions shared again after the wake-up", logs(runs))
    wait_for(lambda: committed(target_cluster, remote) >= len(producer.written), 90, "every record committed",
             logs(runs))
    for run in runs:
        assert run.stop() == 0, run.log()
    copies = read_all(target_cluster.bootstrap_servers, remote, isolation="read_committed")
    assert copies == {p: [r for r in producer.written if r.partition == p] for p in range(PARTITIONS)}
    loaded = load(runs[1].folder / "mm2.properties", quiet=True)
    results = audit_flow(loaded, loaded.flows[0], topics=[topic])
    assert all(r.ok and r.duplicated == 0 for r in results), "\n".join(map(str, results))
    print(f"exactly-once under scale-out: {len(producer.written)} records, each committed once")


def committed(cluster, topic: str) -> int:
    return sum(len(r) for r in read_all(cluster.bootstrap_servers, topic, isolation="read_committed").values())
