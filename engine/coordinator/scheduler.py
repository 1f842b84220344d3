"""A small scheduler of a flow's periodic jobs (topic refresh, config and ACL syncs, checkpoints,
the audit): each runs in a task of its own, a failure is logged and retried at the next interval,
so no job stops running replication; stop() cancels them all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.sleep = sleep
        self._jobs: list[Callable[[], Coroutine]] = []
        self.tasks: list[asyncio.Task] = []

    def every(self, interval_s: float, job: Callable[[], Awaitable[None]], failure: str, *,
              first_now: bool = True, when: Callable[[], bool] = lambda: True) -> None:
        """Runs `job` now (or after one interval) and then every interval, whenever `when()` says so;
        `failure` starts the line logged when a run fails."""
        async def run() -> None:
            if not first_now:
                await self.sleep(interval_s)
            while True:
                try:
                    if when():
                        await job()
                except Exception as error:  # a failed job must not stop running replication
                    log.error("%s, retrying in %.0fs: %s", failure, interval_s, error)
                await self.sleep(interval_s)

        self._jobs.append(run)

    def loop(self, job: Callable[[], Coroutine], failure: str, retry_s: float = 5.0) -> None:
        """A job that keeps its own schedule (it loops until cancelled). Should it raise, `failure`
        starts the line logged and the job starts again after `retry_s`: a job that died silently
        would leave its figures frozen with nothing said."""
        async def run() -> None:
            while True:
                try:
                    await job()
                    return
                except Exception as error:
                    log.error("%s, restarting in %.0fs: %s", failure, retry_s, error)
                await self.sleep(retry_s)

        self._jobs.append(run)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(job()) for job in self._jobs]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
