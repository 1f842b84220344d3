"""The sampling audit's schedule: a pass over the partitions this instance runs every
`audit.interval.seconds`; the auditor itself is engine.audit.sampler.SamplingAuditor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from engine.config.model import ClusterConfig

log = logging.getLogger(__name__)


class Auditor(Protocol):
    source: ClusterConfig
    target: ClusterConfig
    mismatches: int
    verified: dict[tuple[str, int], int]

    def sample(self, partitions: list[tuple[str, int, str]]) -> None: ...


class AuditRounds:
    def __init__(self, flow_name: str, make_auditor: Callable[[], Auditor],
                 partitions: Callable[[], list[tuple[str, int, str]]], interval_s: float,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.flow_name = flow_name
        self.make_auditor = make_auditor  # blocking (it connects): run on a thread
        self.partitions = partitions  # (source topic, partition, remote topic) this instance copies
        self.interval_s = interval_s
        self.clock = clock
        self.sleep = sleep
        self.auditor: Auditor | None = None
        self.passes = 0
        self.last_pass_at: float | None = None  # wall clock, seconds

    async def run_forever(self) -> None:
        self.auditor = await asyncio.to_thread(self.make_auditor)
        while True:
            await self.sleep(self.interval_s)
            await self.run_once()

    async def run_once(self) -> None:
        assert self.auditor is not None
        partitions = self.partitions()
        try:
            await asyncio.to_thread(self.auditor.sample, partitions)
            self.passes += 1
            self.last_pass_at = self.clock()
        except Exception as error:  # an audit failure must not stop running replication
            log.error("%s: audit sample failed: %s", self.flow_name, error)

    def use_clusters(self, source: ClusterConfig, target: ClusterConfig) -> None:
        if self.auditor is not None:
            self.auditor.source, self.auditor.target = source, target
