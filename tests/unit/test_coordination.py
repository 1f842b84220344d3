"""Coordinator <-> worker messages and the partition assignment."""

from engine import ipc
from engine.coordinator.coordinator import CATCH_UP_S, PartitionState, assign_balanced, max_load, partition_weight


def test_messages_round_trip_as_json_lines():
    assign = ipc.Assign(
        flow="A->B", source_alias="A", target_alias="B", worker_index=1,
        partitions=[ipc.PartitionTask("orders", 0, "A.orders")],
        source_client={"bootstrap.servers": "h:1"}, target_client={"bootstrap.servers": "h:2"},
        offsets_topic="mm2-offsets.A.internal", offset_flush_interval_ms=5000, poll_timeout_ms=1000,
    )
    line = ipc.encode_line(assign)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert ipc.to_worker_decoder.decode(line) == assign
    assert ipc.to_worker_decoder.decode(ipc.encode_line(ipc.Stop())) == ipc.Stop()
    failed = ipc.Failed(worker_index=2, error="target refused t[0]@5")
    assert ipc.from_worker_decoder.decode(ipc.encode_line(failed)) == failed


def test_without_observed_load_partitions_are_dealt_evenly():
    tasks = [ipc.PartitionTask(t, p, f"A.{t}") for t in ("b", "a") for p in range(3)]
    groups = assign_balanced(tasks, 4)
    assert [len(g) for g in groups] == [2, 2, 1, 1]
    dealt = [task for group in groups for task in group]
    assert sorted(dealt) == sorted(tasks) and len(set(dealt)) == len(tasks)
    assert groups[0] == [ipc.PartitionTask("a", 0, "A.a"), ipc.PartitionTask("b", 1, "A.b")]


def test_hot_partitions_are_spread_by_observed_bytes_per_second():
    tasks = [ipc.PartitionTask("t", p, "A.t") for p in range(6)]
    weights = {("t", 0): 900.0, ("t", 1): 800.0, ("t", 2): 10.0, ("t", 3): 10.0, ("t", 4): 10.0, ("t", 5): 10.0}
    groups = assign_balanced(tasks, 2, weights)
    hot = [{t.partition for t in g} & {0, 1} for g in groups]
    assert hot == [{0}, {1}]  # the two hot partitions never share a worker
    assert max_load(groups, weights) == 900.0  # 900 alone | 800 + 4 * 10
    assert sorted(t.partition for g in groups for t in g) == list(range(6))


def test_unobserved_partitions_weigh_the_average():
    tasks = [ipc.PartitionTask("t", p, "A.t") for p in range(3)]
    groups = assign_balanced(tasks, 2, {("t", 0): 100.0, ("t", 1): 100.0})
    assert sorted(len(g) for g in groups) == [1, 2]


def test_byte_budget_says_how_long_a_worker_is_ahead_of_its_share():
    from engine.worker.loop import ByteBudget

    now = [100.0]
    budget = ByteBudget(1_000_000, clock=lambda: now[0])
    assert budget.ahead_s(500_000) == 0.5  # half a second's budget sent at once
    now[0] = 100.5
    assert budget.ahead_s(500_000) == 0.0
    assert budget.ahead_s(3_000_000) == 2.5
    assert ByteBudget(0, clock=lambda: now[0]).ahead_s(10**12) == 0.0  # no limit


def test_sticky_plan_keeps_partitions_on_their_workers_and_deals_new_ones():
    from engine.coordinator.coordinator import assign_sticky
    from engine.ipc import PartitionTask

    t = [PartitionTask("t", p, "A.t") for p in range(6)]
    current = [[t[0], t[1], t[2]], [t[3]]]
    # t[1] is gone; t[4] and t[5] are new: both to the smaller group, nothing moves
    assert assign_sticky(current, [t[0], t[2], t[3], t[4], t[5]], 2) == [[t[0], t[2], t[5]], [t[3], t[4]]]
    # a third worker gets only new partitions
    assert assign_sticky(current, t[:4] + [t[5]], 3) == [[t[0], t[1], t[2]], [t[3]], [t[5]]]


def test_a_lagging_partition_weighs_its_arrival_rate_plus_its_backlog_to_catch_up():
    steady = PartitionState(records=1000, value_bytes=100_000, last_acked_offset=999, source_end_offset=1000,
                            bytes_per_s=500.0)
    assert partition_weight(steady) == 500.0  # no backlog: what arrives
    lagging = PartitionState(records=1000, value_bytes=100_000, last_acked_offset=999, source_end_offset=7000,
                             bytes_per_s=500.0)
    assert partition_weight(lagging) == 500.0 + 6000 * 100 / CATCH_UP_S
    unknown = PartitionState(bytes_per_s=20.0)  # no end offset or record size seen yet
    assert partition_weight(unknown) == 20.0
