"""The workers of one flow, and the one order in which partitions move between them.

A hand-over drains before it moves: the workers that give partitions away drain them and store
their progress first; only then do the workers that take them over start them, from that
progress. So no partition is ever copied by two workers at once, and none is copied twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec

from engine import ipc


class Worker(Protocol):
    """What the pool needs of a worker (engine.coordinator.supervisor.WorkerProcess)."""

    assignment: ipc.Assign
    restarts: int

    async def start(self) -> None: ...
    async def reassign(self, assignment: ipc.Assign) -> None: ...
    async def replace(self, assignment: ipc.Assign) -> None: ...
    async def renew_lease(self) -> None: ...
    async def stop(self) -> int | None: ...


W = TypeVar("W", bound=Worker)


class WorkerPool(Generic[W]):
    """Starts, reassigns and stops one flow's workers; a refresh and a reload change them one at a time."""

    def __init__(self, make_worker: Callable[[ipc.Assign], W]):
        self.make_worker = make_worker
        self.workers: list[W] = []
        self.lock = asyncio.Lock()

    def plan(self) -> list[list[ipc.PartitionTask]]:
        """The partitions each worker holds now."""
        return [w.assignment.partitions for w in self.workers]

    async def start(self, assignments: list[ipc.Assign]) -> None:
        for assignment in assignments:
            await self._start_worker(assignment)

    async def apply(self, assignments: list[ipc.Assign]) -> None:
        async with self.lock:
            await self.apply_locked(assignments)

    async def apply_locked(self, assignments: list[ipc.Assign]) -> None:
        """Workers that give partitions away drain them first, with their progress stored; only then
        do the workers that take them over start them, from that progress. The caller holds `lock`."""
        # more assignments than workers start new ones, fewer stop the rest (below)
        pairs = list(zip(self.workers, assignments, strict=False))
        await asyncio.gather(*(
            worker.reassign(msgspec.structs.replace(assignment, partitions=[
                t for t in worker.assignment.partitions if t in assignment.partitions]))
            for worker, assignment in pairs if not set(worker.assignment.partitions) <= set(assignment.partitions)))
        for worker in self.workers[len(assignments):]:
            await worker.stop()
        await asyncio.gather(*(worker.reassign(assignment) for worker, assignment in pairs
                               if worker.assignment.partitions != assignment.partitions))
        for assignment in assignments[len(self.workers):]:
            await self._start_worker(assignment)
        del self.workers[len(assignments):]

    async def replace_each(self, assignments: list[ipc.Assign]) -> None:
        """Each worker stores its progress, stops and starts again with its new assignment, one
        after another, so the flow never stops as a whole."""
        async with self.lock:
            # the assignments were planned before the lock: a pool changed meanwhile restarts what both know
            for worker, assignment in zip(self.workers, assignments, strict=False):
                await worker.replace(assignment)

    def drop_partition(self, worker_index: int, topic: str, partition: int) -> None:
        """The worker (restarting after its failure) goes on without the partition."""
        worker = self.workers[worker_index]
        worker.assignment = msgspec.structs.replace(worker.assignment, partitions=[
            t for t in worker.assignment.partitions if (t.topic, t.partition) != (topic, partition)])

    async def renew_leases(self) -> None:
        for worker in self.workers:
            await worker.renew_lease()

    def restarts(self) -> int:
        return sum(w.restarts for w in self.workers)

    async def stop(self) -> list[int | None]:
        return list(await asyncio.gather(*(w.stop() for w in self.workers)))

    async def _start_worker(self, assignment: ipc.Assign) -> None:
        worker = self.make_worker(assignment)
        self.workers.append(worker)
        await worker.start()
