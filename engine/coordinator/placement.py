"""Placement: which worker copies which partition.

Two plans. The balanced one deals the heaviest partition first to the least loaded worker; a
partition weighs the bytes/s a worker must give it (what arrives, plus its backlog spread over
CATCH_UP_S). The sticky one keeps every partition on its worker and deals only new ones: the
exactly-once mode's plan, so two workers never hold open transactions for one partition. A
balanced plan replaces the running one when the partition set changed, or when it cuts the
busiest worker's load by REBALANCE_GAIN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine import ipc
from engine.coordinator.statistics import PartitionKey, PartitionState

Plan = list[list[ipc.PartitionTask]]

# a new plan must cut the busiest worker's load by this much before partitions move
REBALANCE_GAIN = 1.25
# a partition's backlog counts as load as if it were to be copied within this time
CATCH_UP_S = 60.0


def assign_balanced(partitions: list[ipc.PartitionTask], workers: int,
                    weights: Mapping[PartitionKey, float] | None = None) -> Plan:
    """Heaviest partition first to the least loaded worker (by weight, then partition count).

    With no observed weights every partition weighs the same, which deals them round-robin.
    """
    weights = weights or {}
    known = [w for w in weights.values() if w > 0]
    default = sum(known) / len(known) if known else 1.0
    weight = {(t.topic, t.partition): weights.get((t.topic, t.partition)) or default for t in partitions}
    groups: Plan = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for task in sorted(partitions, key=lambda t: (-weight[(t.topic, t.partition)], t)):
        index = min(range(workers), key=lambda i: (loads[i], len(groups[i]), i))
        groups[index].append(task)
        loads[index] += weight[(task.topic, task.partition)]
    return [sorted(group) for group in groups]


def assign_sticky(current: Plan, partitions: list[ipc.PartitionTask], workers: int) -> Plan:
    """Keeps every partition on its worker, drops gone ones, deals new ones to the smallest groups.

    The exactly-once mode's plan: a partition never moves from a live worker to another, so two
    workers never hold open transactions for one partition."""
    wanted = set(partitions)
    groups = [[t for t in group if t in wanted] for group in current[:workers]]
    groups += [[] for _ in range(workers - len(groups))]
    placed = {t for group in groups for t in group}
    for task in sorted(t for t in partitions if t not in placed):
        min(groups, key=len).append(task)
    return groups


def partition_weight(state: PartitionState) -> float:
    """Bytes/s a worker must give the partition: what arrives, plus its backlog spread over
    CATCH_UP_S (a lagging partition needs more than its arrival rate to catch up)."""
    record_bytes = state.value_bytes / state.records if state.records else 0.0
    return state.bytes_per_s + (state.lag or 0) * record_bytes / CATCH_UP_S


def max_load(groups: Plan, weights: Mapping[PartitionKey, float]) -> float:
    return max((sum(weights.get((t.topic, t.partition), 0.0) for t in g) for g in groups), default=0.0)


class Placement:
    """Plans the workers of one flow from the partitions it runs and their observed load."""

    def __init__(self, worker_limit: Callable[[], int], states: Mapping[PartitionKey, PartitionState],
                 sticky: bool):
        self.worker_limit = worker_limit  # tasks.max, or the usable CPUs
        self.states = states
        self.sticky = sticky  # exactly-once: partitions never move between live workers

    def worker_count(self, partitions: list[ipc.PartitionTask]) -> int:
        return max(1, min(self.worker_limit(), len(partitions)))

    def weights(self) -> dict[PartitionKey, float]:
        return {key: partition_weight(state) for key, state in self.states.items()}

    def initial(self, partitions: list[ipc.PartitionTask]) -> Plan:
        return assign_balanced(partitions, self.worker_count(partitions), self.weights())

    def keep(self, current: Plan, partitions: list[ipc.PartitionTask]) -> Plan:
        """Partitions stay where they are; new ones join the smallest groups (ownership changes)."""
        return assign_sticky(current, partitions, self.worker_count(partitions))

    def next(self, current: Plan, partitions: list[ipc.PartitionTask], changed: bool,
             total: int) -> tuple[Plan | None, str]:
        """The plan to apply after a topic refresh and why, or None to leave the workers as they are.
        `changed`: the partition set changed; `total`: the flow's partitions (also others' and stopped)."""
        if self.sticky:
            if not changed:
                return None, ""
            return self.keep(current, partitions), "partition set changed; new partitions join workers, none moves"
        plan, weights = self.initial(partitions), self.weights()
        if changed:
            return plan, f"partition set changed; reassigning {total} partitions"
        if max_load(current, weights) <= REBALANCE_GAIN * max_load(plan, weights) or not any(weights.values()):
            return None, ""
        return plan, (f"load is uneven (busiest worker {max_load(current, weights):.0f} B/s, balanced "
                      f"{max_load(plan, weights):.0f} B/s); rebalancing")
