"""Topic sync against in-memory clusters: remote topics are created with their configs and grown
with their source, a deleted topic stops alone, a stopped partition is retried, and a topic created
again restarts from its first offset (at once, or after its workers drained it)."""

from __future__ import annotations

import asyncio

from engine import ipc
from engine.config.model import ClusterConfig, FlowConfig
from engine.coordinator.recreated_topics import RecreatedTopics, TopicRestart
from engine.coordinator.statistics import FlowStatistics, PartitionState
from engine.coordinator.topic_sync import TopicSync
from engine.offsets import wire
from engine.offsets.policy import make_policy
from engine.offsets.translation import READ_THROUGH, OffsetMap
from tests.unit.fake_admin import FakeAdmin

FLOW = FlowConfig("A", "B", topics="orders.*|heartbeats")
POLICY = make_policy(FLOW.policy_class, "A", FLOW.separator, FLOW.internal_separator_enabled)


class Restarts:
    """What TopicRestart writes, kept in lists."""

    def __init__(self, offset_map: OffsetMap | None = None):
        self.offset_map = offset_map or OffsetMap()
        self.writes: list = []

    def write_reset(self, tombstones: list[bytes], progress: list[tuple[str, int, int]]) -> None:
        self.writes.append(("tombstones", tombstones))
        self.writes.append(("progress", progress))

    def write_syncs(self, syncs: list[wire.OffsetSync]) -> None:
        self.writes.append(("syncs", syncs))


def topic_sync(source: FakeAdmin, target: FakeAdmin, restarts: Restarts) -> TopicSync:
    restart = TopicRestart("A", POLICY, source, target, "a:9092", lambda: restarts.offset_map,
                           restarts.write_reset, restarts.write_syncs)
    return TopicSync(FLOW, [FLOW], POLICY, ClusterConfig("A", "a:9092"), ClusterConfig("B", "b:9092"), source, target,
                     FlowStatistics(), RecreatedTopics("A->B", source, restart, lambda t: f"A.{t}"), None,
                     lambda key: key)


def started(source: FakeAdmin, target: FakeAdmin, restarts: Restarts) -> TopicSync:
    topics = topic_sync(source, target, restarts)
    topics.partitions = asyncio.run(topics.sync(fail_fast=True))
    return topics


def keys(topics: TopicSync) -> list[tuple[str, int]]:
    return [(t.topic, t.partition) for t in topics.partitions]


def test_selected_topics_get_remote_topics_with_their_configs_and_grow_with_their_source():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 2, **{"retention.ms": "3600000"})
    source.add_topic("other", 1)
    topics = started(source, target, Restarts())
    assert keys(topics) == [("orders", 0), ("orders", 1)]
    assert topics.partitions[0] == ipc.PartitionTask("orders", 0, "A.orders", apply_filter=True)
    assert target.created == [("A.orders", 2, {"retention.ms": "3600000"})]

    source.topics["orders"] = 3  # grown on the source
    source.add_topic("orders-eu", 1)  # a new selected topic
    assert asyncio.run(topics.refresh()) is True
    assert keys(topics) == [("orders", 0), ("orders", 1), ("orders", 2), ("orders-eu", 0)]
    assert target.grown == [("A.orders", 3)] and target.topics["A.orders-eu"] == 1
    assert asyncio.run(topics.refresh()) is False, "nothing changed"


def test_a_deleted_source_topic_stops_alone_and_its_statistics_go():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 1)
    source.add_topic("orders-eu", 1)
    topics = started(source, target, Restarts())
    topics.statistics.partitions[("orders", 0)] = PartitionState(last_acked_offset=41)
    source.delete_topic("orders")
    assert asyncio.run(topics.refresh()) is True
    assert keys(topics) == [("orders-eu", 0)]
    assert topics.stopped_topics == {"orders": "source topic deleted"}
    assert ("orders", 0) not in topics.statistics.partitions and "A.orders" in target.topics, "remote topic kept"


def test_a_stopped_partition_is_left_out_until_the_next_refresh_retries_it():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 2)
    topics = started(source, target, Restarts())
    topics.stopped_partitions[("orders", 1)] = "target refused orders[1]@300"
    assert [(t.topic, t.partition) for t in topics.running()] == [("orders", 0)]
    assert [(t.topic, t.partition) for t in topics.running(lambda _remote, p: p == 1)] == []
    assert asyncio.run(topics.refresh()) is True, "a retry is a change: the partition goes back to a worker"
    assert topics.stopped_partitions == {} and len(topics.running()) == 2


def test_a_partition_that_keeps_stopping_waits_longer_before_each_retry_and_starts_again_once_it_runs():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 2)
    now = [1000.0]
    topics = started(source, target, Restarts())
    topics.clock = lambda: now[0]
    key = ("orders", 1)
    waits = []
    for _ in range(5):  # the record is refused at every retry
        waits.append(topics.stop_partition(key, "target refused orders[1]@300"))
        now[0] += waits[-1] - 0.1
        assert asyncio.run(topics.refresh()) is False and key in topics.stopped_partitions, "not due yet"
        now[0] += 0.1
        assert asyncio.run(topics.refresh()) is True and key not in topics.stopped_partitions
    assert waits == [5.0, 10.0, 20.0, 30.0, 30.0]
    # a retry that runs through a refresh without stopping again starts the count again
    assert asyncio.run(topics.refresh()) is False
    assert topics.stop_partition(key, "target refused orders[1]@301") == 5.0


def test_a_topic_created_again_while_copied_drains_first_then_restarts_from_its_first_offset():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 2)
    offset_map = OffsetMap()
    restarts = Restarts(offset_map)
    topics = started(source, target, restarts)
    assert restarts.writes == [], "a topic seen for the first time is not a recreated one"
    topics.statistics.partitions[("orders", 0)] = PartitionState(last_acked_offset=99)
    target.end_offsets.update({("A.orders", 0): 100, ("A.orders", 1): 7})

    source.delete_topic("orders")
    source.add_topic("orders", 2)  # a new topic id
    assert asyncio.run(topics.refresh()) is True
    # the workers still hold the old partitions: they are stopped (drained) and nothing is written yet
    assert topics.stopped_partitions == {("orders", 0): "source topic created again",
                                         ("orders", 1): "source topic created again"}
    assert topics.running() == [] and restarts.writes == [] and topics.statistics.partitions == {}

    assert asyncio.run(topics.refresh()) is True  # the next refresh: drained, so it restarts
    assert restarts.writes == [
        ("tombstones", [wire.OffsetRun("orders", 0, READ_THROUGH, 0, 0, 0).key(),
                        wire.OffsetRun("orders", 1, READ_THROUGH, 0, 0, 0).key()]),
        ("progress", [("orders", 0, -1), ("orders", 1, -1)]),  # before the first offset
        # upstream 0 is downstream where the old copies end
        ("syncs", [wire.OffsetSync("orders", 0, 0, 100), wire.OffsetSync("orders", 1, 0, 7)]),
    ]
    assert topics.stopped_partitions == {} and len(topics.running()) == 2


def test_a_topic_created_again_while_not_copied_restarts_at_once():
    source, target = FakeAdmin(), FakeAdmin()
    source.add_topic("orders", 1)
    restarts = Restarts()
    topics = topic_sync(source, target, restarts)
    asyncio.run(topics.recreated.notice(["orders"], running=set()))  # seen once (e.g. by a previous flow run)
    source.delete_topic("orders")
    source.add_topic("orders", 1)
    topics.partitions = asyncio.run(topics.sync())
    assert [kind for kind, _ in restarts.writes] == ["tombstones", "progress", "syncs"]
    assert topics.stopped_partitions == {} and keys(topics) == [("orders", 0)]
