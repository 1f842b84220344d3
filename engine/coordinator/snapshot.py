"""The coordinator's snapshot of itself (engine.observability.snapshot): what its flows, workers,
memberships and heartbeat emitters hold at one moment, measured on the coordinator's loop."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from engine import __version__
from engine.batch.choice import flow_loop
from engine.coordinator.statistics import PartitionState
from engine.observability import snapshot as s
from engine.observability.health import heartbeat_age_s
from engine.observability.windowed_stats import LatencyStat

if TYPE_CHECKING:
    from engine.coordinator.flow import ReplicationFlow
    from engine.coordinator.supervisor import WorkerProcess
    from engine.offsets.heartbeat import HeartbeatEmitter


def engine_status(flows: list[ReplicationFlow], heartbeat_emitters: list[HeartbeatEmitter], started_at: float,
                  running: bool, stopping: bool, heartbeat_alert_s: float) -> s.EngineStatus:
    """`started_at`: when the coordinator started (monotonic)."""
    now, now_wall_ms = time.monotonic(), time.time() * 1000
    return s.EngineStatus(
        version=__version__, pid=os.getpid(), uptime_s=now - started_at, running=running, stopping=stopping,
        heartbeat_alert_s=heartbeat_alert_s, flows=[flow_status(flow, now, now_wall_ms) for flow in flows],
        heartbeats_sent=[s.HeartbeatsSent(e.target.alias, e.sent) for e in heartbeat_emitters],
    )


def flow_status(flow: ReplicationFlow, now: float, now_wall_ms: float) -> s.FlowStatus:
    now_ms = now * 1000
    states = flow.statistics.partitions
    topics: dict[str, s.TopicStatus] = {}
    for task in flow.topics.partitions:
        entry = topics.get(task.topic)
        topics[task.topic] = s.TopicStatus(task.topic, task.remote_topic, (entry.partitions if entry else 0) + 1)
    heartbeats = [(t.topic, t.partition) for t in flow.topics.partitions if flow.policy.is_heartbeats_topic(t.topic)]
    newest_beat = max((states[k].newest_acked_timestamp_ms for k in heartbeats if k in states), default=-1) \
        if heartbeats else None
    loop, loop_reason = flow_loop(flow.config.loop, flow.flow, flow.source, flow.target)
    membership, audits, checkpoints = flow.membership, flow.audits, flow.checkpoints
    return s.FlowStatus(
        name=flow.flow.name, source=flow.flow.source, target=flow.flow.target,
        topics=list(topics.values()),
        partitions=[partition_status(topic, partition, flow.policy.format_remote_topic(flow.flow.source, topic),
                                     state, loop, loop_reason, now, now_ms)
                    for (topic, partition), state in sorted(states.items())],
        workers=[worker_status(worker, now) for worker in flow.pool.workers],
        stopped_partitions=dict(flow.topics.stopped_partitions),
        stopped_topics=dict(flow.topics.stopped_topics),
        looping_topics=dict(flow.topics.looping_topics),
        unauthorised_topics=sorted(flow.topics.hidden_topics),
        heartbeat_age_s=heartbeat_age_s(newest_beat, flow.started_at_ms, now_wall_ms),
        group=None if membership is None else s.GroupStatus(
            membership.group_id, membership.target.alias, membership.joined, membership.leads(),
            membership.healthy()),
        audit=None if audits.auditor is None else s.AuditStatus(
            audits.auditor.mismatches, audits.passes, audits.last_pass_at, dict(audits.auditor.verified)),
        checkpoints=None if checkpoints is None else s.CheckpointStatus(
            checkpoints.written,
            [s.CheckpointLatency(group, topic, partition, s.Window(last, low, high, avg))
             for (group, topic, partition), last, low, high, avg in checkpoints.latency.measure(now_ms)]),
    )


def _window(stat: LatencyStat, now_ms: float) -> s.Window:
    return s.Window(stat.last, stat.window.min(now_ms), stat.window.max(now_ms), stat.window.avg(now_ms))


def partition_status(topic: str, partition: int, remote_topic: str, state: PartitionState, loop: str,
                     loop_reason: str, now: float, now_ms: float) -> s.PartitionStatus:
    mm2 = state.mm2
    latency_count, latency_sum = mm2.replication_latency.window.totals(now_ms)
    return s.PartitionStatus(
        topic=topic, partition=partition, remote_topic=remote_topic,
        loop=loop, loop_reason=loop_reason,
        records=state.records, value_bytes=state.value_bytes, filtered=state.filtered,
        resume_found=state.resume_found, resume_unmatched=state.resume_unmatched,
        last_acked_offset=state.last_acked_offset, last_committed_offset=state.last_committed_offset,
        in_flight=state.in_flight, source_end_offset=state.source_end_offset, lag=state.lag,
        bytes_per_s=state.bytes_per_s,
        waiting_s=None if state.waiting_since is None else now - state.waiting_since,
        newest_acked_timestamp_ms=state.newest_acked_timestamp_ms,
        record_count=mm2.record_count, record_rate=mm2.records.rate(now_ms),
        byte_count=mm2.byte_count, byte_rate=mm2.value_bytes.rate(now_ms),
        record_age_ms=_window(mm2.record_age, now_ms),
        replication_latency_ms=_window(mm2.replication_latency, now_ms),
        replication_latency_count=latency_count, replication_latency_sum=latency_sum,
    )


def worker_status(worker: WorkerProcess, now: float) -> s.WorkerStatus:
    report = worker.last_report
    return s.WorkerStatus(
        index=worker.assignment.worker_index, pid=worker.pid, alive=worker.alive, restarts=worker.restarts,
        partitions=[(t.topic, t.partition) for t in worker.assignment.partitions],
        reported=None if report is None else [(p.topic, p.partition) for p in report.partitions],
        last_report_age_s=None if worker.last_report_at is None else now - worker.last_report_at,
        lease_s=worker.assignment.lease_s,
    )
