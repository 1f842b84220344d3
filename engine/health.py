"""What /ready, /status and the heartbeat alert say about a running coordinator.

Ready means every assigned partition is being consumed and produced, precisely:
  1. the coordinator finished starting (remote topics created, every flow's workers started) and
     is not stopping;
  2. every worker process of every flow is running and has reported within READY_REPORT_AGE_S
     since its latest start (a dead worker waiting for its restart, or a hung one, is not ready);
  3. every partition assigned to a worker is in that worker's latest report (it took it on);
  4. no partition is stopped by an error of its own (a record the target refuses, records lost
     to retention, a recreated source topic draining) and no topic is stopped because its remote
     topic cannot be created (a deleted or deselected source topic is not a fault: nothing is
     left to copy);
  5. no partition has had records in flight with no acknowledgement for READY_STALL_S (a target
     that takes records but never acknowledges them).
A stale heartbeat is an alert, not a readiness condition: it also depends on the process that
emits the heartbeats into the flow's source cluster.

A flow's heartbeat age is now minus the timestamp of the newest heartbeat record the target
acknowledged on the flow's copy of a `heartbeats` topic (the workers report the newest
acknowledged record timestamp of each partition). Until one arrives it is the time since the
flow started. Flows that replicate no heartbeats topic have none. Stale: the age passed
`mirror.engine.heartbeat.alert.seconds` (0 turns the alert off).
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from engine import __version__

if TYPE_CHECKING:
    from engine.coordinator.coordinator import Coordinator
    from engine.coordinator.flow import ReplicationFlow

READY_REPORT_AGE_S = 10.0
READY_STALL_S = 30.0


def heartbeat_age_s(flow: "ReplicationFlow", now_ms: float) -> float | None:
    """Seconds since the newest heartbeat the flow copied was written; None: no heartbeats topic."""
    keys = [(t.topic, t.partition) for t in flow.partitions if flow.policy.is_heartbeats_topic(t.topic)]
    if not keys:
        return None
    newest = max((flow.partition_state[k].newest_acked_timestamp_ms for k in keys if k in flow.partition_state),
                 default=-1)
    return max(0.0, (now_ms - (newest if newest >= 0 else flow.started_at_ms)) / 1000)


def is_stale(age_s: float | None, alert_s: float) -> bool:
    return age_s is not None and alert_s > 0 and age_s > alert_s


def worker_problems(flow: "ReplicationFlow", now: float) -> list[str]:
    problems = []
    for worker in flow.workers:
        name = f"{flow.flow.name} worker {worker.assignment.worker_index}"
        if not worker.alive:
            problems.append(f"{name} is not running (restarts so far: {worker.restarts})")
            continue
        if worker.last_report_at is None or worker.last_report is None:
            problems.append(f"{name} (pid {worker.pid}) has not reported since it started")
            continue
        silent = now - worker.last_report_at
        if silent > READY_REPORT_AGE_S:
            problems.append(f"{name} (pid {worker.pid}) silent for {silent:.0f}s")
            continue
        reported = {(p.topic, p.partition) for p in worker.last_report.partitions}
        missing = sorted({(t.topic, t.partition) for t in worker.assignment.partitions} - reported)
        if missing:
            problems.append(f"{name} has not taken on {_partitions(missing)} yet")
    return problems


def not_ready(coordinator: "Coordinator", now: float | None = None) -> list[str]:
    """Why the engine is not ready; empty when it is."""
    now = time.monotonic() if now is None else now
    if coordinator.stopping.is_set():
        return ["stopping"]
    if not coordinator.running:
        return ["starting: creating remote topics and starting workers"]
    reasons = []
    for flow in coordinator.flows:
        reasons += worker_problems(flow, now)
        for (topic, partition), error in sorted(flow.stopped_partitions.items()):
            reasons.append(f"{flow.flow.name} {topic}[{partition}] stopped: {error}")
        for topic, reason in sorted(flow.stopped_topics.items()):
            if reason == "remote topic cannot be created":
                reasons.append(f"{flow.flow.name} {topic} stopped: {reason}")
        for (topic, partition), state in sorted(flow.partition_state.items()):
            if state.waiting_since is not None and now - state.waiting_since > READY_STALL_S:
                reasons.append(f"{flow.flow.name} {topic}[{partition}]: {state.in_flight} records in flight, none "
                               f"acknowledged by cluster {flow.target.alias} for {now - state.waiting_since:.0f}s")
    return reasons


def _partitions(keys: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{t}[{p}]" for t, p in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def flow_status(flow: "ReplicationFlow", now: float, now_ms_wall: float, alert_s: float) -> dict[str, Any]:
    now_ms = now * 1000
    states = flow.partition_state
    topics: dict[str, dict[str, Any]] = {}
    latency_count, latency_sum, latency_max = 0, 0.0, math.nan
    for task in flow.partitions:
        entry = topics.setdefault(task.topic, {"topic": task.topic, "remote_topic": task.remote_topic,
                                               "partitions": 0, "lag": 0, "records": 0, "record_rate": 0.0,
                                               "byte_rate": 0.0})
        entry["partitions"] += 1
    for (topic, _partition), state in states.items():
        entry = topics.get(topic)
        if entry is None:
            continue
        if state.source_end_offset >= 0:
            entry["lag"] += max(0, state.source_end_offset - state.last_acked_offset - 1)
        entry["records"] += state.mm2.record_count
        entry["record_rate"] += state.mm2.records.rate(now_ms)
        entry["byte_rate"] += state.mm2.value_bytes.rate(now_ms)
        count, total = state.mm2.replication_latency.window.totals(now_ms)
        latency_count, latency_sum = latency_count + count, latency_sum + total
        peak = state.mm2.replication_latency.window.max(now_ms)
        if not math.isnan(peak) and (math.isnan(latency_max) or peak > latency_max):
            latency_max = peak
    for entry in topics.values():
        entry["record_rate"] = round(entry["record_rate"], 3)
        entry["byte_rate"] = round(entry["byte_rate"], 3)
    age = heartbeat_age_s(flow, now_ms_wall)
    workers = []
    for worker in flow.workers:
        workers.append({
            "index": worker.assignment.worker_index, "pid": worker.pid, "alive": worker.alive,
            "restarts": worker.restarts, "partitions": len(worker.assignment.partitions),
            "last_report_s": None if worker.last_report_at is None else round(now - worker.last_report_at, 3),
        })
    auditor = flow.auditor
    return {
        "flow": flow.flow.name, "source": flow.flow.source, "target": flow.flow.target,
        "partitions": len(flow.partitions),
        # scale-out: the partitions this instance's workers hold, and its part in the group
        "partitions_here": sorted([t.topic, t.partition] for w in flow.workers for t in w.assignment.partitions),
        "group": None if flow.membership is None else {
            "id": flow.membership.group_id, "cluster": flow.membership.target.alias,
            "joined": flow.membership.joined, "leader": flow.membership.leads(),
            "healthy": flow.membership.healthy()},
        "lag": sum(t["lag"] for t in topics.values()),
        "in_flight": sum(s.in_flight for s in states.values()),
        "records": sum(t["records"] for t in topics.values()),
        "record_rate": round(sum(t["record_rate"] for t in topics.values()), 3),
        "byte_rate": round(sum(t["byte_rate"] for t in topics.values()), 3),
        "replication_latency_ms_avg": round(latency_sum / latency_count, 3) if latency_count else None,
        "replication_latency_ms_max": _finite(latency_max),
        "workers": workers,
        "restarts": sum(w.restarts for w in flow.workers),
        "stopped_partitions": [{"topic": t, "partition": p, "reason": r}
                               for (t, p), r in sorted(flow.stopped_partitions.items())],
        "stopped_topics": [{"topic": t, "reason": r} for t, r in sorted(flow.stopped_topics.items())],
        # topics no flow of an identity-policy cycle copies, with the clusters they would go round
        "looping_topics": [{"topic": t, "cycle": c} for t, c in sorted(flow.looping_topics.items())],
        "heartbeat": None if age is None else {"age_s": round(age, 3), "stale": is_stale(age, alert_s)},
        "audit": None if auditor is None else {"mismatches": auditor.mismatches, "passes": flow.audit_passes,
                                               "verified_partitions": len(auditor.verified)},
        "checkpoints_written": flow.checkpoints.written if flow.checkpoints is not None else None,
        "topics": sorted(topics.values(), key=lambda t: (-t["lag"], t["topic"])),
    }


def status(coordinator: "Coordinator") -> dict[str, Any]:
    """The /status document: everything `mirror-engine status` shows."""
    now, now_wall_ms = time.monotonic(), time.time() * 1000
    reasons = not_ready(coordinator, now)
    return {
        "version": __version__, "pid": os.getpid(), "uptime_s": round(now - coordinator.started_at, 3),
        "ready": not reasons, "not_ready": reasons, "heartbeat_alert_s": coordinator.heartbeat_alert_s,
        "flows": [flow_status(flow, now, now_wall_ms, coordinator.heartbeat_alert_s) for flow in coordinator.flows],
    }
