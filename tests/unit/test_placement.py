"""Placement: the balanced and the sticky plan, a partition's weight, and when a refresh moves partitions."""

import pytest

from engine import ipc
from engine.coordinator.placement import (
    CATCH_UP_S,
    REBALANCE_GAIN,
    Placement,
    assign_balanced,
    assign_sticky,
    max_load,
    partition_weight,
)
from engine.coordinator.statistics import PartitionState


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


def test_sticky_plan_keeps_partitions_on_their_workers_and_deals_new_ones():
    t = [ipc.PartitionTask("t", p, "A.t") for p in range(6)]
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


def tasks(*partitions: int) -> list[ipc.PartitionTask]:
    return [ipc.PartitionTask("t", p, "A.t") for p in partitions]


def loaded(rates: dict[int, float]) -> dict[tuple[str, int], PartitionState]:
    return {("t", p): PartitionState(bytes_per_s=rate) for p, rate in rates.items()}


def test_the_worker_count_is_the_limit_or_fewer_with_fewer_partitions():
    placement = Placement(lambda: 4, {}, sticky=False)
    assert placement.worker_count(tasks(0, 1)) == 2
    assert placement.worker_count(tasks(*range(9))) == 4
    assert placement.worker_count([]) == 1
    assert [len(g) for g in placement.initial(tasks(*range(6)))] == [2, 2, 1, 1]


def test_an_unchanged_balanced_set_stays_where_it_is():
    placement = Placement(lambda: 2, loaded({0: 100.0, 1: 100.0, 2: 100.0, 3: 100.0}), sticky=False)
    current = [tasks(0, 1), tasks(2, 3)]
    assert placement.next(current, tasks(0, 1, 2, 3), changed=False, total=4) == (None, "")


def test_uneven_load_moves_partitions_only_past_the_rebalance_gain():
    states = loaded({0: 1000.0, 1: 1000.0, 2: 10.0, 3: 10.0})
    placement = Placement(lambda: 2, states, sticky=False)
    current = [tasks(0, 1), tasks(2, 3)]  # the two hot partitions share a worker
    plan, why = placement.next(current, tasks(0, 1, 2, 3), changed=False, total=4)
    assert plan is not None and [{t.partition for t in g} & {0, 1} for g in plan] == [{0}, {1}]
    assert why == "load is uneven (busiest worker 2000 B/s, balanced 1010 B/s); rebalancing"
    # within the gain: nothing moves
    states[("t", 1)].bytes_per_s = 200.0  # busiest 1200 B/s, balanced 1000 B/s: under the gain
    assert 1200.0 <= REBALANCE_GAIN * 1000.0
    assert placement.next(current, tasks(0, 1, 2, 3), changed=False, total=4) == (None, "")


def test_nothing_moves_while_no_load_was_observed():
    placement = Placement(lambda: 2, {}, sticky=False)
    assert placement.next([tasks(0, 1, 2), tasks(3)], tasks(0, 1, 2, 3), changed=False, total=4) == (None, "")


def test_a_changed_set_is_placed_afresh_and_balanced():
    placement = Placement(lambda: 2, {}, sticky=False)
    plan, why = placement.next([tasks(0, 1, 2, 3)], tasks(0, 1, 2, 3, 4), changed=True, total=6)
    assert plan == [tasks(0, 2, 4), tasks(1, 3)] and why == "partition set changed; reassigning 6 partitions"


@pytest.mark.parametrize("changed", [False, True])
def test_exactly_once_placement_is_sticky_even_under_uneven_load(changed):
    placement = Placement(lambda: 2, loaded({0: 1000.0, 1: 1000.0, 2: 10.0}), sticky=True)
    current = [tasks(0, 1), tasks(2)]
    plan, why = placement.next(current, tasks(0, 1, 2, 3), changed=changed, total=4)
    if not changed:
        assert plan is None
        return
    assert plan == [tasks(0, 1), tasks(2, 3)], "no partition moves; the new one joins the smaller group"
    assert why == "partition set changed; new partitions join workers, none moves"


def test_ownership_changes_keep_partitions_on_their_workers():
    placement = Placement(lambda: 3, {}, sticky=False)
    assert placement.keep([tasks(0, 1), tasks(2)], tasks(1, 2, 5)) == [tasks(1), tasks(2), tasks(5)]
