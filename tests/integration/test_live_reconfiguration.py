"""SIGHUP with a changed file: a flow's topics change, a flow is added and removed, while the flow that
was running keeps replicating (its copy never stops for long) and loses nothing."""

from __future__ import annotations

import signal
import time

from tests.helpers import wait_for
from tests.integration.kafka_io import (
    BASE_TIMESTAMP_MS,
    Record,
    SteadyProducer,
    end_offsets,
    mm2_properties,
    produce,
    read_all,
)


def batch(partitions: int, tag: str):
    def make(first: int) -> list[Record]:
        return [Record(i % partitions, f"{tag}-k{i}".encode(), f"{tag}-v{i}".encode(), (("n", str(i).encode()),),
                       BASE_TIMESTAMP_MS + i) for i in range(first, first + 20)]
    return make


def copied(cluster, topic: str) -> int:
    return sum(end_offsets(cluster.bootstrap_servers, topic).values()) if topic in \
        cluster.admin().list_topics(timeout=10).topics else 0


def test_topics_and_flows_change_on_sighup_while_the_running_flow_keeps_copying(
        source_cluster, target_cluster, engine, unique_name):
    steady = source_cluster.create_topic(unique_name("steady"), 2)
    added = source_cluster.create_topic(unique_name("added"), 1)
    backwards = target_cluster.create_topic(unique_name("backwards"), 1)
    produce(source_cluster.bootstrap_servers, added, batch(1, "added")(0))
    produce(target_cluster.bootstrap_servers, backwards, batch(1, "back")(0))
    before = mm2_properties(source_cluster, target_cluster, {"A->B.topics": steady, "emit.heartbeats.enabled": "false",
                                                             "refresh.topics.interval.seconds": "600"})
    with SteadyProducer(source_cluster.bootstrap_servers, steady, batch(2, "steady")) as producer:
        run = engine(before)
        wait_for(lambda: copied(target_cluster, f"A.{steady}") >= 100, 60, "the steady topic copied", run.log)
        workers = run.worker_pids("A->B")

        # A->B also copies `added`; a new flow B->A copies `backwards`
        (run.folder / "mm2.properties").write_text(before.replace(
            f"A->B.topics = {steady}", f"A->B.topics = {steady}, {added}")
            + f"B->A.enabled = true\nB->A.topics = {backwards}\n")
        run.process.send_signal(signal.SIGHUP)
        samples = []  # (monotonic, copies of the steady topic) while the change is applied
        def changed() -> bool:
            samples.append((time.monotonic(), copied(target_cluster, f"A.{steady}")))
            return copied(target_cluster, f"A.{added}") >= 20 and copied(source_cluster, f"B.{backwards}") >= 20
        wait_for(changed, 90, "the added topic and the added flow copied", run.log, interval_s=0.25)
        assert sorted(run.flows()) == ["A->B", "B->A"]
        assert run.worker_pids("A->B") == workers, "the running flow's workers were not restarted"

        # the new flow goes away again; A->B goes on
        (run.folder / "mm2.properties").write_text(before.replace(
            f"A->B.topics = {steady}", f"A->B.topics = {steady}, {added}"))
        run.process.send_signal(signal.SIGHUP)
        wait_for(lambda: run.flows() == ["A->B"], 60, "B->A stopped", run.log)
        mark = copied(target_cluster, f"A.{steady}")
        wait_for(lambda: copied(target_cluster, f"A.{steady}") >= mark + 100, 60, "the steady topic still copied",
                 run.log)
    wait_for(lambda: copied(target_cluster, f"A.{steady}") >= len(producer.written), 60, "every steady record",
             run.log)
    assert run.stop() == 0, run.log()
    # the steady flow's copy never stood still for long while the new topic and flow started
    stalls = [later[0] - earlier[0] for earlier, later in zip(samples, samples[1:], strict=False)
              if later[1] == earlier[1]]
    print(f"steady copy while the flows changed: {len(samples)} samples, longest stand-still "
          f"{max(stalls, default=0):.2f}s; {len(producer.written)} records copied")
    assert max(stalls, default=0) < 5, f"the steady copy stood still for {max(stalls):.1f}s"
    expected = {p: [r for r in producer.written if r.partition == p] for p in range(2)}
    assert read_all(target_cluster.bootstrap_servers, f"A.{steady}") == expected
    assert read_all(target_cluster.bootstrap_servers, f"A.{added}")[0] == batch(1, "added")(0)
    assert read_all(source_cluster.bootstrap_servers, f"B.{backwards}")[0] == batch(1, "back")(0)
