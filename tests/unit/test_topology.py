"""Cycles of flows: two aliases of one cluster are refused; in a cycle through an identity-policy
flow, a topic the flows would copy all the way round is copied by none of them, the rest is."""

import pytest

from engine.config.loading import from_properties
from engine.config.model import FlowConfig
from engine.coordinator.topology import (
    FlowGraph,
    TopologyError,
    check_same_cluster_aliases,
    cycle_remarks,
    identity_cycles,
    path_text,
)
from engine.offsets.policy import IDENTITY_POLICY_CLASS


def flow(source, target, identity=False, provenance=False, topics=".*"):
    if identity:
        return FlowConfig(source=source, target=target, policy_class=IDENTITY_POLICY_CLASS,
                          provenance_header_enabled=provenance, topics=topics)
    return FlowConfig(source=source, target=target, provenance_header_enabled=provenance, topics=topics)


def loops(flows, topics=("orders", "recommendations", "both", "A.orders", "B.orders", "heartbeats", "A.heartbeats")):
    """{flow name: {topic: cycle}} for the topics each flow's walk finds coming back."""
    graph = FlowGraph(flows)
    return {f.name: {t: path_text(p) for t in topics if (p := graph.loop(f, t)) is not None} for f in flows}


def test_default_policy_cycles_never_loop_mm2s_cycle_rule_stops_them():
    assert identity_cycles([flow("A", "B"), flow("B", "A")]) == []
    assert loops([flow("A", "B"), flow("B", "A")]) == {"A->B": {}, "B->A": {}}
    assert loops([flow("A", "B"), flow("B", "C"), flow("C", "A")]) == {"A->B": {}, "B->C": {}, "C->A": {}}


def test_identity_without_cycle_copies_everything():
    flows = [flow("A", "B", identity=True), flow("C", "B", identity=True)]
    assert identity_cycles(flows) == [] and loops(flows) == {"A->B": {}, "C->B": {}}


def test_identity_two_way_with_disjoint_filters_copies_every_topic():
    # a migration: everything but `recommendations` one way, only `recommendations` the other
    flows = [flow("A", "B", identity=True, topics="^(?!recommendations$).*"),
             flow("B", "A", identity=True, topics="recommendations")]
    assert loops(flows) == {"A->B": {}, "B->A": {}}
    assert [path_text(c) for c in identity_cycles(flows)] == ["A -> B -> A"]


def test_a_topic_both_directions_would_copy_is_copied_by_neither():
    flows = [flow("A", "B", identity=True, topics="^(?!recommendations$).*"),
             flow("B", "A", identity=True, topics="recommendations, both")]
    assert loops(flows) == {"A->B": {"both": "A -> B -> A"}, "B->A": {"both": "B -> A -> B"}}


def test_identity_one_way_and_default_back_loops_with_growing_names():
    # A->B keeps `orders`; B->A names it B.orders on A, which A->B (identity: no source chain) copies on
    flows = [flow("A", "B", identity=True), flow("B", "A")]
    assert loops(flows, ("orders", "B.orders", "heartbeats")) == {
        "A->B": {"orders": "A -> B -> A", "B.orders": "A -> B -> A"},
        "B->A": {"orders": "B -> A -> B", "B.orders": "B -> A -> B"}}
    # heartbeats are renamed (A.heartbeats) and MM2's cycle rule stops them
    assert FlowGraph(flows).loop(flows[0], "heartbeats") is None


def test_longer_identity_cycle():
    flows = [flow("A", "B"), flow("B", "C", identity=True), flow("C", "A")]
    assert [path_text(c) for c in identity_cycles(flows)] == ["B -> C -> A -> B"]
    # orders on B: C gets orders, A gets C.orders, B gets A.C.orders: round, with a longer name
    assert path_text(FlowGraph(flows).loop(flows[1], "orders")) == "B -> C -> A -> B"
    # A.orders reaches C as A.orders, and C->A (default policy) keeps it from A: MM2's cycle rule
    assert FlowGraph(flows).loop(flows[0], "orders") is None


def test_provenance_headers_on_every_flow_of_the_cycle_stop_it_record_by_record():
    flows = [flow("A", "B", identity=True, provenance=True), flow("B", "A", identity=True, provenance=True)]
    assert identity_cycles(flows) == [] and loops(flows) == {"A->B": {}, "B->A": {}}
    mixed = [flow("A", "B", identity=True, provenance=True), flow("B", "A", identity=True)]
    assert loops(mixed, ("orders",)) == {"A->B": {"orders": "A -> B -> A"}, "B->A": {"orders": "B -> A -> B"}}


def test_check_config_and_run_say_the_same_of_a_cycle(tmp_path, capsys):
    from engine.cli import main

    props = {"clusters": "A, B", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1",
             "A->B.enabled": "true", "B->A.enabled": "true",
             "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
             "A->B.topics": "^(?!recommendations$).*", "B->A.topics": "recommendations, both"}
    remarks = cycle_remarks(from_properties(props, quiet=True).all_flows)
    assert remarks == [
        "flows A -> B -> A form a cycle and A->B uses IdentityReplicationPolicy, which keeps topic names: a topic "
        "the flows would copy all the way round is copied by none of them (named in the log, /status and "
        "mirror_engine_looping_topics at each topic refresh); the other topics are copied",
        "topic both would be copied round B -> A -> B: B->A does not copy it",
    ]
    path = tmp_path / "mm2.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(remark in out for remark in remarks)


def test_run_judges_cycles_on_every_flow_of_the_file_also_those_another_instance_serves():
    from engine.config.loading import for_targets

    props = {"clusters": "A, B", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1",
             "A->B.enabled": "true", "B->A.enabled": "true",
             "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"}
    config = for_targets(from_properties(props, quiet=True), ["B"])
    assert [f.name for f in config.flows] == ["A->B"]
    assert [f.name for f in config.all_flows] == ["A->B", "B->A"]
    assert path_text(FlowGraph(config.all_flows).loop(config.flows[0], "orders")) == "A -> B -> A"


def test_two_aliases_of_one_cluster_are_refused():
    check_same_cluster_aliases({"A": "id-1", "B": "id-2"})
    with pytest.raises(TopologyError, match="clusters A and A2 are the same Kafka cluster \\(cluster id id-1\\)"):
        check_same_cluster_aliases({"A": "id-1", "A2": "id-1", "B": "id-2"})
