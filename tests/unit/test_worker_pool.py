"""The worker pool against fake workers: a hand-over drains before it moves, workers start and
stop with the plan, and a worker's failed partition leaves its assignment."""

from __future__ import annotations

import asyncio

from engine import ipc
from engine.coordinator.worker_pool import WorkerPool


class FakeWorker:
    def __init__(self, assignment: ipc.Assign, calls: list):
        self.assignment = assignment
        self.calls = calls
        self.restarts = 0

    async def start(self) -> None:
        self.calls.append((self.assignment.worker_index, "start", partitions(self.assignment)))

    async def reassign(self, assignment: ipc.Assign) -> None:
        self.calls.append((self.assignment.worker_index, partitions(assignment)))
        await asyncio.sleep(0.01)  # draining takes a while: a taker must not start meanwhile
        self.assignment = assignment

    async def replace(self, assignment: ipc.Assign) -> None:
        self.calls.append((self.assignment.worker_index, "replace", partitions(assignment)))
        self.assignment = assignment

    async def renew_lease(self) -> None:
        self.calls.append((self.assignment.worker_index, "renew"))

    async def stop(self) -> int | None:
        self.calls.append((self.assignment.worker_index, "stop"))
        return 0


def partitions(assignment: ipc.Assign) -> list[int]:
    return [t.partition for t in assignment.partitions]


def assign(index: int, parts: list[int]) -> ipc.Assign:
    return ipc.Assign(flow="A->B", source_alias="A", target_alias="B", worker_index=index,
                      partitions=[ipc.PartitionTask("orders", p, "A.orders") for p in parts],
                      source_client={}, target_client={}, offsets_topic="mm2-offsets.A.internal",
                      offset_flush_interval_ms=1000, poll_timeout_ms=100)


def pool_of(calls: list, *assignments: ipc.Assign) -> WorkerPool:
    pool = WorkerPool(lambda assignment: FakeWorker(assignment, calls))
    asyncio.run(pool.start(list(assignments)))
    calls.clear()
    return pool


def test_a_partition_moving_between_workers_is_drained_by_the_giver_before_the_taker_starts_it():
    calls: list = []
    pool = pool_of(calls, assign(0, [0, 1]), assign(1, [2]))
    asyncio.run(pool.apply([assign(0, [0]), assign(1, [1, 2])]))
    assert calls == [(0, [0]), (1, [1, 2])], "worker 0 gives [1] away before worker 1 takes it"

    calls.clear()  # a swap: each gives first, then each takes
    asyncio.run(pool.apply([assign(0, [0, 2]), assign(1, [1])]))
    assert calls[:1] == [(1, [1])] and calls[1:] == [(0, [0, 2])], calls
    assert pool.plan() == [assign(0, [0, 2]).partitions, assign(1, [1]).partitions]


def test_a_shrinking_plan_drains_and_stops_the_last_workers_before_the_others_take_over():
    calls: list = []
    pool = pool_of(calls, assign(0, [0]), assign(1, [1]), assign(2, [2]))
    asyncio.run(pool.apply([assign(0, [0, 2]), assign(1, [1])]))
    assert calls == [(2, "stop"), (0, [0, 2])]
    assert len(pool.workers) == 2


def test_a_growing_plan_starts_new_workers_after_the_givers_drained():
    calls: list = []
    pool = pool_of(calls, assign(0, [0, 1, 2]))
    asyncio.run(pool.apply([assign(0, [0, 1]), assign(1, [2])]))
    assert calls == [(0, [0, 1]), (1, "start", [2])]
    assert [w.assignment.worker_index for w in pool.workers] == [0, 1]


def test_an_unchanged_plan_touches_no_worker():
    calls: list = []
    pool = pool_of(calls, assign(0, [0]), assign(1, [1]))
    asyncio.run(pool.apply([assign(0, [0]), assign(1, [1])]))
    assert calls == []


def test_new_settings_restart_workers_one_after_another_and_failed_partitions_leave():
    calls: list = []
    pool = pool_of(calls, assign(0, [0, 1]), assign(1, [2]))
    pool.drop_partition(0, "orders", 1)
    assert pool.plan() == [assign(0, [0]).partitions, assign(1, [2]).partitions]
    asyncio.run(pool.replace_each([assign(0, [0]), assign(1, [2])]))
    asyncio.run(pool.renew_leases())
    assert calls == [(0, "replace", [0]), (1, "replace", [2]), (0, "renew"), (1, "renew")]
    assert asyncio.run(pool.stop()) == [0, 0]
