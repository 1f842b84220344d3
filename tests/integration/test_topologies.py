"""Many flows in one run: active-active, chains, fan-in; heartbeats show the path; loops are refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from engine.offsets import wire
from engine.offsets.mirror_client import replication_hops, upstream_clusters
from engine.offsets.policy import DefaultReplicationPolicy
from tests.helpers import http_get, wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, produce, raw_records, read_all

POLICY = DefaultReplicationPolicy()


def records(count: int, tag: str, partitions: int = 2) -> list[Record]:
    return [
        Record(i % partitions, f"{tag}-k{i}".encode(), f"{tag}-v{i}".encode(), (("origin", tag.encode()),),
               BASE_TIMESTAMP_MS + i)
        for i in range(count)
    ]


def per_partition(rs: list[Record], partitions: int = 2) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {p: [] for p in range(partitions)}
    for r in rs:
        out[r.partition].append(r)
    return out


def properties(clusters: dict, flows: list[str], extra: dict[str, str] | None = None) -> str:
    lines = {"clusters": ", ".join(clusters)}
    for alias, handle in clusters.items():
        lines[f"{alias}.bootstrap.servers"] = handle.bootstrap_servers
    for flow in flows:
        lines[f"{flow}.enabled"] = "true"
    lines.update({
        "replication.factor": "1", "offset.storage.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1", "refresh.topics.interval.seconds": "3",
        "offset-syncs.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "mirror.engine.metrics.listen": "127.0.0.1:0",
    })
    for alias in clusters:
        lines[f"{alias}.offset.flush.interval.ms"] = "1000"
    lines.update(extra or {})
    return "".join(f"{k} = {v}\n" for k, v in lines.items())


def topic_names(cluster) -> list[str]:
    return list(cluster.admin().list_topics(timeout=10).topics)


def count(cluster, topic: str) -> int:
    return sum(end_offsets(cluster.bootstrap_servers, topic).values())


def refreshes(run, flow: str) -> int:
    return len(re.findall(rf"{re.escape(flow)}: replicating \d+ topics", run.log()))


def test_active_active_copies_each_side_once_and_nothing_loops(source_cluster, target_cluster, engine, unique_name):
    a, b = source_cluster, target_cluster
    name = unique_name("orders")
    a.create_topic(name, 2)
    b.create_topic(name, 2)
    on_a, on_b = records(3000, "a"), records(2000, "b")
    produce(a.bootstrap_servers, name, on_a)
    produce(b.bootstrap_servers, name, on_b)
    # the filter also matches the remote copies (B.<name> on A); only MM2's cycle rule stops them
    run = engine(properties({"A": a, "B": b}, ["A->B", "B->A"], {"topics": f".*{name}"}))
    wait_for(lambda: count(b, f"A.{name}") >= 3000 and count(a, f"B.{name}") >= 2000, 60,
             "both directions copied", run.log)
    before = refreshes(run, "A->B"), refreshes(run, "B->A")
    wait_for(lambda: refreshes(run, "A->B") > before[0] + 1 and refreshes(run, "B->A") > before[1] + 1, 30,
             "two more topic refreshes in each direction", run.log)
    assert run.stop() == 0, run.log()
    assert read_all(b.bootstrap_servers, f"A.{name}") == per_partition(on_a)
    assert read_all(a.bootstrap_servers, f"B.{name}") == per_partition(on_b)
    for cluster in (a, b):
        looped = [t for t in topic_names(cluster) if t.endswith(name) and t.count(".") > 1]
        assert looped == [], looped


def test_chain_a_b_c_and_heartbeats_count_two_hops(source_cluster, target_cluster, third_cluster, engine,
                                                    unique_name):
    a, b, c = source_cluster, target_cluster, third_cluster
    name = unique_name("orders")
    a.create_topic(name, 2)
    sent = records(2500, "chain")
    produce(a.bootstrap_servers, name, sent)
    run = engine(properties({"A": a, "B": b, "C": c}, ["A->B", "B->C"],
                            {"A->B.topics": name, "B->C.topics": f"A\\.{name}"}))
    wait_for(lambda: count(c, f"B.A.{name}") >= len(sent), 90, f"B.A.{name} on C", run.log)
    wait_for(lambda: count(c, "B.A.heartbeats") > 0, 60, "B.A.heartbeats on C", run.log)
    assert run.stop() == 0, run.log()
    assert read_all(c.bootstrap_servers, f"B.A.{name}") == per_partition(sent)

    topics = topic_names(c)
    assert replication_hops(topics, "A", POLICY) == 2
    assert replication_hops(topics, "B", POLICY) == 1
    assert {"A", "B"} <= upstream_clusters(topics, POLICY)
    # the beats in B.A.heartbeats are the ones emitted into A's heartbeats topic, MM2's bytes
    beats = [wire.Heartbeat.decode(k, v) for k, v in raw_records(c.bootstrap_servers, "B.A.heartbeats")]
    assert beats and all(beat.target_alias == "A" for beat in beats)
    assert {beat.source_alias for beat in beats} <= {"B", "C"}


def test_fan_in_of_a_and_c_into_b(source_cluster, target_cluster, third_cluster, engine, unique_name):
    a, b, c = source_cluster, target_cluster, third_cluster
    name = unique_name("orders")
    a.create_topic(name, 2)
    c.create_topic(name, 2)
    from_a, from_c = records(1500, "from-a"), records(1200, "from-c")
    produce(a.bootstrap_servers, name, from_a)
    produce(c.bootstrap_servers, name, from_c)
    run = engine(properties({"A": a, "B": b, "C": c}, ["A->B", "C->B"], {"topics": name}))
    wait_for(lambda: count(b, f"A.{name}") >= 1500 and count(b, f"C.{name}") >= 1200, 60,
             "both sources on B", run.log)
    assert run.stop() == 0, run.log()
    assert read_all(b.bootstrap_servers, f"A.{name}") == per_partition(from_a)
    assert read_all(b.bootstrap_servers, f"C.{name}") == per_partition(from_c)


def test_identity_two_way_with_disjoint_filters_runs_and_a_topic_both_would_copy_is_copied_by_neither(
        source_cluster, target_cluster, engine, unique_name, tmp_path):
    """A migration's file: everything but `recommendations` A->B, only `recommendations` B->A, both
    with the identity policy. MM2 runs it; so does the engine. A topic that both flows select is
    not copied (it would go round), and is named in the log, /status and a metric."""
    a, b = source_cluster, target_cluster
    token = unique_name("two-way")
    orders, recommendations, both = f"{token}-orders", f"{token}-recommendations", f"{token}-both"
    a.create_topic(orders, 2)
    a.create_topic(both, 2)
    b.create_topic(recommendations, 2)
    on_a, on_b = records(800, "a"), records(600, "b")
    produce(a.bootstrap_servers, orders, on_a)
    produce(a.bootstrap_servers, both, records(50, "both"))
    produce(b.bootstrap_servers, recommendations, on_b)
    file = properties({"A": a, "B": b}, ["A->B", "B->A"], {
        "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
        "A->B.topics": f"^(?!{recommendations}$){token}-.*", "B->A.topics": f"{recommendations}, {both}"})
    run = engine(file)
    wait_for(lambda: orders in topic_names(b) and count(b, orders) >= len(on_a) and recommendations in topic_names(a)
             and count(a, recommendations) >= len(on_b), 60, "both directions copied", run.log)
    before = refreshes(run, "A->B")
    wait_for(lambda: refreshes(run, "A->B") > before + 1, 30, "two more topic refreshes", run.log)
    status = json.loads(http_get(run.metrics_url().replace("/metrics", "/status"))[1])
    metrics = http_get(run.metrics_url())[1]
    assert run.stop() == 0, run.log()
    assert read_all(b.bootstrap_servers, orders) == per_partition(on_a)
    assert read_all(a.bootstrap_servers, recommendations) == per_partition(on_b)
    assert both not in topic_names(b)
    log = run.log()
    assert log.count(f"A->B: topic {both} is not copied: the flows A -> B -> A would copy it all the way round") == 1
    a_to_b = next(flow for flow in status["flows"] if flow["flow"] == "A->B")
    assert a_to_b["looping_topics"] == [{"topic": both, "cycle": "A -> B -> A"}]
    assert f'mirror_engine_looping_topics{{cycle="A -> B -> A",flow="A->B",topic="{both}"}} 1.0' in metrics
    # check-config says what run said at start, word for word
    (tmp_path / "mm2.properties").write_text(file)
    checked = subprocess.run([sys.executable, "-m", "engine", "check-config", str(tmp_path / "mm2.properties")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    said = ["flows A -> B -> A form a cycle and A->B uses IdentityReplicationPolicy",
            f"topic {both} would be copied round B -> A -> B: B->A does not copy it"]
    for remark in said:
        assert remark in checked.stdout and remark in log, remark


def test_two_aliases_of_one_cluster_are_refused_at_start(source_cluster, target_cluster, engine):
    run = engine(properties({"A": source_cluster, "A2": source_cluster, "B": target_cluster},
                            ["A->B", "B->A2"]))
    assert run.wait(60) == 2, run.log()
    assert re.search(r"clusters A and A2 are the same Kafka cluster \(cluster id \S+\)", run.log())


def test_an_empty_separator_names_topics_as_mm2_does(source_cluster, target_cluster, engine, unique_name):
    """`replication.policy.separator =`: remote topics A<topic>, offset syncs and checkpoints without
    dots, and MM2's one-character-at-a-time cycle rule (a B in the name keeps a topic from B). The
    file also has a typo'd key, which run names with the key it meant and then ignores."""
    a, b = source_cluster, target_cluster
    name, looks_from_b = unique_name("orders"), f"xB{unique_name('orders')}"
    for topic in (name, looks_from_b):
        a.create_topic(topic, 2)
    sent = records(500, "empty-sep")
    produce(a.bootstrap_servers, name, sent)
    produce(a.bootstrap_servers, looks_from_b, records(10, "cycle"))
    run = engine(properties({"A": a, "B": b}, ["A->B"], {
        "A->B.topics": f"{name}, {looks_from_b}", "replication.policy.separator": "",
        # an unknown key: MM2 ignores it, run warns and starts (check-config would exit 1)
        "A->B.topcis": "never-this"}))
    wait_for(lambda: f"A{name}" in topic_names(b) and count(b, f"A{name}") >= len(sent), 60, f"A{name} on B",
             run.log)
    before = refreshes(run, "A->B")
    wait_for(lambda: refreshes(run, "A->B") > before + 1, 30, "two more topic refreshes", run.log)
    assert run.stop() == 0, run.log()
    assert read_all(b.bootstrap_servers, f"A{name}") == per_partition(sent)
    assert f"A{looks_from_b}" not in topic_names(b)
    assert "mm2-offset-syncsBinternal" in topic_names(a) and "Acheckpointsinternal" in topic_names(b)
    assert "replication.policy.separator is empty, as MM2 allows" in run.log()
    assert ("A->B.topcis is not a key MM2 or mirror-engine knows; did you mean `A->B.topics`? (ignored, as MM2 "
            "ignores it)") in run.log()
