"""The scheduler of periodic jobs and the audit's schedule, on a fake sleep: when a job runs, that a
failure is retried at the next interval, and that stop() cancels every job."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from engine.coordinator.audits import AuditRounds
from engine.coordinator.scheduler import Scheduler


class FakeSleep:
    """Records each sleep; after `budget` sleeps it blocks for ever (the test then stops the jobs)."""

    def __init__(self, budget: int):
        self.slept: list[float] = []
        self.budget = budget
        self.done = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len(self.slept) >= self.budget:
            self.done.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


def run_jobs(scheduler: Scheduler, sleep: FakeSleep) -> None:
    async def main() -> None:
        scheduler.start()
        await asyncio.wait_for(sleep.done.wait(), 5)
        scheduler.stop()
        await asyncio.gather(*scheduler.tasks, return_exceptions=True)
        assert all(task.cancelled() for task in scheduler.tasks)

    asyncio.run(main())


def test_a_job_runs_now_and_after_every_interval_and_a_failure_is_retried(caplog):
    sleep, runs = FakeSleep(budget=3), []

    async def job() -> None:
        runs.append(len(sleep.slept))
        if len(runs) == 2:
            raise RuntimeError("broker away")

    scheduler = Scheduler(sleep)
    scheduler.every(30.0, job, "A->B: topic config sync failed")
    with caplog.at_level(logging.ERROR):
        run_jobs(scheduler, sleep)
    assert runs == [0, 1, 2] and sleep.slept == [30.0, 30.0, 30.0]
    assert [r.getMessage() for r in caplog.records] == [
        "A->B: topic config sync failed, retrying in 30s: broker away"]


def test_a_job_may_wait_one_interval_first_and_run_only_when_asked():
    sleep, runs = FakeSleep(budget=4), []
    leads = iter([False, True, True])

    async def job() -> None:
        runs.append(len(sleep.slept))

    scheduler = Scheduler(sleep)
    scheduler.every(5.0, job, "A->B: topic refresh failed", first_now=False, when=lambda: next(leads))
    run_jobs(scheduler, sleep)
    assert runs == [2, 3], "the first run after one interval, where `when` says no, is skipped"


def test_the_audit_samples_the_running_partitions_each_interval_and_counts_passes(caplog):
    sleep = FakeSleep(budget=3)
    sampled: list = []

    def sample(partitions):
        sampled.append(partitions)
        if len(sampled) == 2:
            raise RuntimeError("target away")

    auditor = SimpleNamespace(sample=sample, source="A", target="B", mismatches=0, verified={})
    partitions = [("orders", 0, "A.orders")]
    rounds = AuditRounds("A->B", lambda: auditor, lambda: partitions, 60.0, clock=lambda: 1234.5, sleep=sleep)
    scheduler = Scheduler(sleep)
    scheduler.loop(rounds.run_forever, "A->B: the sampling audit stopped")
    with caplog.at_level(logging.ERROR):
        run_jobs(scheduler, sleep)
    assert sampled == [partitions, partitions] and sleep.slept == [60.0, 60.0, 60.0]
    assert (rounds.passes, rounds.last_pass_at) == (1, 1234.5), "a failed pass is not counted"
    assert [r.getMessage() for r in caplog.records] == ["A->B: audit sample failed: target away"]
    rounds.use_clusters("A2", "B2")
    assert (auditor.source, auditor.target) == ("A2", "B2")


def test_a_looping_job_that_raises_is_named_and_started_again(caplog):
    sleep, starts = FakeSleep(budget=2), []

    async def job() -> None:
        starts.append(len(sleep.slept))
        raise ImportError("cannot import name 'SamplingAuditor'")

    scheduler = Scheduler(sleep)
    scheduler.loop(job, "A->B: the sampling audit stopped", retry_s=7.0)
    with caplog.at_level(logging.ERROR):
        run_jobs(scheduler, sleep)
    assert starts == [0, 1] and sleep.slept == [7.0, 7.0]
    assert [r.getMessage() for r in caplog.records] == [
        "A->B: the sampling audit stopped, restarting in 7s: cannot import name 'SamplingAuditor'"] * 2


def test_stop_before_start_has_nothing_to_cancel():
    scheduler = Scheduler(FakeSleep(1))
    scheduler.stop()
    assert scheduler.tasks == []
