"""The smaller parts of a flow against in-memory clusters: the config sync, the internal topics,
and what a worker is told (its Assign)."""

from __future__ import annotations

import asyncio
import logging
import re
from types import SimpleNamespace

from engine import ipc
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.coordinator.assignments import assignments, transactional_id
from engine.coordinator.config_sync import TopicConfigSync
from engine.coordinator.internal_topics import InternalTopics
from engine.offsets.policy import make_policy
from tests.unit.fake_admin import FakeAdmin

SOURCE, TARGET = ClusterConfig("A", "a:9092"), ClusterConfig("B", "b:9092")


def test_the_config_sync_brings_remote_topics_in_line_and_keeps_the_flows_overrides(caplog):
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 1, **{"retention.ms": "60000", "min.insync.replicas": "2"})
    source.add_topic("gone-from-target", 1, **{"retention.ms": "1"})
    target.add_topic("A.orders", 1, **{"retention.ms": "1000", "max.message.bytes": "5"})
    sync = TopicConfigSync("A->B", source, target, "A", "B", lambda t: f"A.{t}", re.compile("min\\.insync\\.replicas"),
                           "target", {"max.message.bytes": "2000000"})
    with caplog.at_level(logging.INFO):
        asyncio.run(sync.sync(["orders", "gone-from-target"]))
    assert target.configs["A.orders"] == {"retention.ms": "60000", "max.message.bytes": "2000000"}
    assert sync.failures == 1, "the remote topic of gone-from-target does not exist"
    assert "A->B: synced the configs of 1 remote topics" in [r.getMessage() for r in caplog.records]


def internal_topics(flow: FlowConfig, source: FakeAdmin, target: FakeAdmin) -> InternalTopics:
    policy = make_policy(flow.policy_class, "A", flow.separator, flow.internal_separator_enabled)
    return InternalTopics(flow, policy, SOURCE, TARGET, source, target, lambda key: key, lambda key: key)


def test_internal_topics_are_created_compacted_where_mm2_puts_them():
    source, target = FakeAdmin(), FakeAdmin()
    flow = FlowConfig("A", "B", offset_syncs_topic_location="source")
    topics = internal_topics(flow, source, target)
    asyncio.run(topics.ensure(dict(target.topics)))
    assert {name for name, _, config in target.created if config == {"cleanup.policy": "compact"}} == {
        flow.offsets_topic, "mm2-offset-map.A.internal", "A.checkpoints.internal"}
    assert [name for name, _, _ in source.created] == ["mm2-offset-syncs.B.internal"]
    assert topics.offset_syncs_cluster() is SOURCE and topics.writes_checkpoints()


def test_without_offset_syncs_neither_syncs_nor_checkpoints_are_written():
    source, target = FakeAdmin(), FakeAdmin()
    topics = internal_topics(FlowConfig("A", "B", emit_offset_syncs_enabled=False), source, target)
    asyncio.run(topics.ensure({}))
    assert not topics.writes_checkpoints() and source.created == []
    assert [name for name, _, _ in target.created] == ["mm2-offsets.A.internal", "mm2-offset-map.A.internal"]


def test_a_worker_is_told_its_partitions_its_share_of_the_budget_and_its_transactional_id():
    flow = FlowConfig("A", "B", exactly_once=True, bandwidth_limit_bytes_per_s=1000)
    config = EngineConfig(clusters={"A": SOURCE, "B": TARGET}, flows=[flow], raw={}, loop="python")
    plan = [[ipc.PartitionTask("orders", 0, "A.orders")], [ipc.PartitionTask("orders", 1, "A.orders")]]
    alone = assignments(plan, config, flow, SOURCE, TARGET, (TARGET, "mm2-offset-syncs.A.internal"), None, 4096)
    assert [(a.worker_index, a.partitions, a.bandwidth_limit_bytes_per_s, a.transactional_id) for a in alone] == [
        (0, plan[0], 500, "mirror-engine-A->B-0"), (1, plan[1], 500, "mirror-engine-A->B-1")]
    assert (alone[0].loop, alone[0].max_message_bytes, alone[0].lease_s, alone[0].resume_from_target) == (
        "python", 4096, 0.0, False)
    member = SimpleNamespace(instance_id="i-7", session_timeout_ms=6000)
    in_group = assignments(plan[:1], config, flow, SOURCE, TARGET, (TARGET, "t"), member, None)
    assert (in_group[0].transactional_id, in_group[0].lease_s) == ("mirror-engine-A->B-i-7-0", 3.0)
    assert transactional_id(flow, member, 3) == "mirror-engine-A->B-i-7-3"
