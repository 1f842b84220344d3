"""The coordinator: per flow, discover topics, create remote topics, run and supervise workers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from confluent_kafka.admin import AdminClient

from engine import ipc, wire
from engine.config import EngineConfig, FlowConfig
from engine.coordinator.supervisor import WorkerProcess
from engine.coordinator.topics import ensure_topic, replicated_topics, topic_partition_counts
from engine.policy import DefaultReplicationPolicy

log = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL_S = 10.0


def assign_round_robin(partitions: list[ipc.PartitionTask], workers: int) -> list[list[ipc.PartitionTask]]:
    """Deals partitions to workers in turn, as MM2 deals them to tasks."""
    groups: list[list[ipc.PartitionTask]] = [[] for _ in range(workers)]
    for index, task in enumerate(sorted(partitions)):
        groups[index % workers].append(task)
    return groups


class FlowRunner:
    """Everything one flow source->target needs: topics, workers and their latest reports."""

    def __init__(self, config: EngineConfig, flow: FlowConfig):
        self.config = config
        self.flow = flow
        self.source = config.cluster(flow.source)
        self.target = config.cluster(flow.target)
        self.policy = DefaultReplicationPolicy(flow.separator, flow.internal_separator_enabled)
        self.source_admin = AdminClient(self._client(self.source, "replication-source-admin"))
        self.target_admin = AdminClient(self._client(self.target, "replication-target-admin"))
        self.workers: list[WorkerProcess] = []
        self.reports: dict[int, ipc.Report] = {}
        self.partitions: list[ipc.PartitionTask] = []
        self.offsets_topic = wire.connect_offsets_topic(flow.source)

    def _client(self, cluster, role: str) -> dict[str, str]:
        return {**cluster.client, "bootstrap.servers": cluster.bootstrap_servers,
                "client.id": f"{self.flow.name}|MirrorSourceConnector|{role}"}

    async def start(self) -> None:
        target_topics = await topic_partition_counts(self.target_admin, self.target.alias, self.target.bootstrap_servers)
        await ensure_topic(
            self.target_admin, self.target.alias, self.offsets_topic, self.flow.offset_storage_partitions,
            self.flow.offset_storage_replication_factor, {"cleanup.policy": "compact"},
            "offset.storage.replication.factor", target_topics,
        )
        self.partitions = await self._sync_topics(target_topics)
        await self._start_workers()

    async def _sync_topics(self, target_topics: dict[str, int] | None = None) -> list[ipc.PartitionTask]:
        source_topics = await topic_partition_counts(self.source_admin, self.source.alias, self.source.bootstrap_servers)
        if target_topics is None:
            target_topics = await topic_partition_counts(self.target_admin, self.target.alias, self.target.bootstrap_servers)
        wanted = replicated_topics(self.flow, self.policy, source_topics)
        rf_key = f"{self.flow.name}.replication.factor" if f"{self.flow.name}.replication.factor" in self.config.raw else "replication.factor"
        tasks = []
        for topic, count in wanted.items():
            remote = self.policy.format_remote_topic(self.flow.source, topic)
            await ensure_topic(self.target_admin, self.target.alias, remote, count,
                               self.flow.replication_factor, {}, rf_key, target_topics)
            tasks.extend(ipc.PartitionTask(topic, p, remote) for p in range(count))
        log.info("%s: replicating %d topics, %d partitions", self.flow.name, len(wanted), len(tasks))
        return tasks

    def _assignments(self) -> list[ipc.Assign]:
        workers = self.flow.tasks_max or os.cpu_count() or 1
        workers = max(1, min(workers, len(self.partitions)))
        return [
            ipc.Assign(
                flow=self.flow.name, source_alias=self.flow.source, target_alias=self.flow.target,
                worker_index=index, partitions=group,
                source_client={**self.source.client, "bootstrap.servers": self.source.bootstrap_servers},
                target_client={**self.target.client, "bootstrap.servers": self.target.bootstrap_servers},
                offsets_topic=self.offsets_topic,
                offset_flush_interval_ms=self.flow.offset_flush_interval_ms,
                poll_timeout_ms=self.flow.consumer_poll_timeout_ms,
            )
            for index, group in enumerate(assign_round_robin(self.partitions, workers))
        ]

    async def _start_workers(self) -> None:
        for assignment in self._assignments():
            worker = WorkerProcess(assignment, self._on_message)
            self.workers.append(worker)
            await worker.start()

    def _on_message(self, message: ipc.Report | ipc.Failed) -> None:
        if isinstance(message, ipc.Report):
            self.reports[message.worker_index] = message
        else:
            log.error("%s worker %d failed: %s", self.flow.name, message.worker_index, message.error)

    async def refresh(self) -> None:
        """Picks up new topics and partitions; reassigns workers when the set changed."""
        partitions = await self._sync_topics()
        if sorted(partitions) == sorted(self.partitions):
            return
        log.info("%s: partition set changed (%d -> %d); reassigning", self.flow.name,
                 len(self.partitions), len(partitions))
        self.partitions = partitions
        assignments = self._assignments()
        for worker, assignment in zip(self.workers, assignments):
            if worker.assignment.partitions != assignment.partitions:
                await worker.reassign(assignment)
        for assignment in assignments[len(self.workers):]:
            worker = WorkerProcess(assignment, self._on_message)
            self.workers.append(worker)
            await worker.start()
        for worker in self.workers[len(assignments):]:
            await worker.stop()
        del self.workers[len(assignments):]

    async def refresh_forever(self) -> None:
        if not self.flow.refresh_topics_enabled:
            return
        while True:
            await asyncio.sleep(self.flow.refresh_topics_interval_s)
            try:
                await self.refresh()
            except Exception as error:  # a refresh failure must not stop running replication
                log.error("%s: topic refresh failed, retrying in %.0fs: %s", self.flow.name,
                          self.flow.refresh_topics_interval_s, error)

    async def stop(self) -> list[int | None]:
        return list(await asyncio.gather(*(w.stop() for w in self.workers)))

    def progress_line(self) -> str:
        acked = sum(r.records_acked for r in self.reports.values())
        value_bytes = sum(r.value_bytes_acked for r in self.reports.values())
        restarts = sum(w.restarts for w in self.workers)
        return (f"{self.flow.name}: {acked} records ({value_bytes / 1e6:.1f} MB values) copied, "
                f"{len(self.partitions)} partitions, {len(self.workers)} workers, {restarts} restarts")


class Coordinator:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.flows = [FlowRunner(config, flow) for flow in config.flows]
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if not self.flows:
            log.error("no flow is enabled: set e.g. A->B.enabled = true")
            return 2
        background = []
        try:
            for flow in self.flows:
                await flow.start()
            background = [asyncio.create_task(f.refresh_forever()) for f in self.flows]
            background.append(asyncio.create_task(self._log_progress()))
            await self.stopping.wait()
            log.info("stopping: flushing workers and storing progress")
        finally:
            for task in background:
                task.cancel()
            codes = [code for flow in self.flows for code in await flow.stop()]
        for flow in self.flows:
            log.info("%s", flow.progress_line())
        return 0 if all(code in (0, None) for code in codes) else 1

    async def _log_progress(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_LOG_INTERVAL_S)
            for flow in self.flows:
                log.info("%s (%.0fs)", flow.progress_line(), time.monotonic() - started)
