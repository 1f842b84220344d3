"""What /ready, /status and the heartbeat alert say about a running engine, from its snapshot
(engine.observability.snapshot).

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
from typing import Any

from engine.observability.snapshot import EngineStatus, FlowStatus

READY_REPORT_AGE_S = 10.0
READY_STALL_S = 30.0
CANNOT_CREATE = "remote topic cannot be created"  # engine.coordinator.topic_sync's reason


def heartbeat_age_s(newest_acked_ms: int | None, started_at_ms: float, now_ms: float) -> float | None:
    """Seconds since the newest heartbeat the flow copied was written (`newest_acked_ms`, -1 for
    none yet: since the flow started); None when the flow copies no heartbeats topic (None)."""
    if newest_acked_ms is None:
        return None
    return max(0.0, (now_ms - (newest_acked_ms if newest_acked_ms >= 0 else started_at_ms)) / 1000)


def is_stale(age_s: float | None, alert_s: float) -> bool:
    return age_s is not None and alert_s > 0 and age_s > alert_s


def worker_up(age_s: float | None, alive: bool) -> bool:
    return alive and age_s is not None and age_s <= READY_REPORT_AGE_S


def worker_problems(flow: FlowStatus) -> list[str]:
    problems = []
    for worker in flow.workers:
        name = f"{flow.name} worker {worker.index}"
        if not worker.alive:
            problems.append(f"{name} is not running (restarts so far: {worker.restarts})")
            continue
        if worker.last_report_age_s is None or worker.reported is None:
            problems.append(f"{name} (pid {worker.pid}) has not reported since it started")
            continue
        if worker.last_report_age_s > READY_REPORT_AGE_S:
            problems.append(f"{name} (pid {worker.pid}) silent for {worker.last_report_age_s:.0f}s")
            continue
        missing = sorted(set(worker.partitions) - set(worker.reported))
        if missing:
            problems.append(f"{name} has not taken on {_partitions(missing)} yet")
    return problems


def not_ready(engine: EngineStatus) -> list[str]:
    """Why the engine is not ready; empty when it is."""
    if engine.stopping:
        return ["stopping"]
    if not engine.running:
        return ["starting: creating remote topics and starting workers"]
    reasons = []
    for flow in engine.flows:
        reasons += worker_problems(flow)
        for (topic, partition), error in sorted(flow.stopped_partitions.items()):
            reasons.append(f"{flow.name} {topic}[{partition}] stopped: {error}")
        for topic, reason in sorted(flow.stopped_topics.items()):
            if reason == CANNOT_CREATE:
                reasons.append(f"{flow.name} {topic} stopped: {reason}")
        for state in flow.partitions:
            if state.waiting_s is not None and state.waiting_s > READY_STALL_S:
                reasons.append(f"{flow.name} {state.topic}[{state.partition}]: {state.in_flight} records in flight, "
                               f"none acknowledged by cluster {flow.target} for {state.waiting_s:.0f}s")
    return reasons


def _partitions(keys: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{t}[{p}]" for t, p in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def flow_status(flow: FlowStatus, alert_s: float) -> dict[str, Any]:
    topics: dict[str, dict[str, Any]] = {
        t.topic: {"topic": t.topic, "remote_topic": t.remote_topic, "partitions": t.partitions, "lag": 0,
                  "records": 0, "record_rate": 0.0, "byte_rate": 0.0} for t in flow.topics}
    latency_count, latency_sum, latency_max = 0, 0.0, math.nan
    for state in flow.partitions:
        entry = topics.get(state.topic)
        if entry is None:
            continue
        entry["lag"] += state.lag or 0
        entry["records"] += state.record_count
        entry["record_rate"] += state.record_rate
        entry["byte_rate"] += state.byte_rate
        latency_count += state.replication_latency_count
        latency_sum += state.replication_latency_sum
        peak = state.replication_latency_ms.max
        if not math.isnan(peak) and (math.isnan(latency_max) or peak > latency_max):
            latency_max = peak
    for entry in topics.values():
        entry["record_rate"] = round(entry["record_rate"], 3)
        entry["byte_rate"] = round(entry["byte_rate"], 3)
    age = flow.heartbeat_age_s
    group, audit = flow.group, flow.audit
    return {
        "flow": flow.name, "source": flow.source, "target": flow.target,
        "partitions": flow.partition_count,
        # scale-out: the partitions this instance's workers hold, and its part in the group
        "partitions_here": sorted([t, p] for w in flow.workers for t, p in w.partitions),
        "group": None if group is None else {"id": group.id, "cluster": group.cluster, "joined": group.joined,
                                             "leader": group.leader, "healthy": group.healthy},
        "lag": sum(t["lag"] for t in topics.values()),
        "in_flight": sum(s.in_flight for s in flow.partitions),
        # which relay loop copies the reported partitions, and why (engine/batch/choice.py)
        "loops": [{"loop": loop, "reason": reason,
                   "partitions": sum(1 for s in flow.partitions if (s.loop, s.loop_reason) == (loop, reason))}
                  for loop, reason in sorted({(s.loop, s.loop_reason) for s in flow.partitions})],
        # restarts without duplicates: copies a starting worker found already on the target (not copied
        # again), and target records past the stored progress it could not match (copied again)
        "resume": {"duplicates_avoided": sum(s.resume_found for s in flow.partitions),
                   "copied_again": sum(s.resume_unmatched for s in flow.partitions)},
        "records": sum(t["records"] for t in topics.values()),
        "record_rate": round(sum(t["record_rate"] for t in topics.values()), 3),
        "byte_rate": round(sum(t["byte_rate"] for t in topics.values()), 3),
        "replication_latency_ms_avg": round(latency_sum / latency_count, 3) if latency_count else None,
        "replication_latency_ms_max": _finite(latency_max),
        "workers": [{"index": w.index, "pid": w.pid, "alive": w.alive, "restarts": w.restarts,
                     "partitions": len(w.partitions),
                     "last_report_s": None if w.last_report_age_s is None else round(w.last_report_age_s, 3)}
                    for w in flow.workers],
        "restarts": sum(w.restarts for w in flow.workers),
        "stopped_partitions": [{"topic": t, "partition": p, "reason": r}
                               for (t, p), r in sorted(flow.stopped_partitions.items())],
        "stopped_topics": [{"topic": t, "reason": r} for t, r in sorted(flow.stopped_topics.items())],
        # topics no flow of an identity-policy cycle copies, with the clusters they would go round
        "looping_topics": [{"topic": t, "cycle": c} for t, c in sorted(flow.looping_topics.items())],
        "heartbeat": None if age is None else {"age_s": round(age, 3), "stale": is_stale(age, alert_s)},
        "audit": None if audit is None else {"mismatches": audit.mismatches, "passes": audit.passes,
                                             "verified_partitions": len(audit.verified)},
        "checkpoints_written": flow.checkpoints.written if flow.checkpoints is not None else None,
        "topics": sorted(topics.values(), key=lambda t: (-t["lag"], t["topic"])),
    }


def status(engine: EngineStatus) -> dict[str, Any]:
    """The /status document: everything `mirror-engine status` shows."""
    reasons = not_ready(engine)
    return {
        "version": engine.version, "pid": engine.pid, "uptime_s": round(engine.uptime_s, 3),
        "ready": not reasons, "not_ready": reasons, "heartbeat_alert_s": engine.heartbeat_alert_s,
        "flows": [flow_status(flow, engine.heartbeat_alert_s) for flow in engine.flows],
    }
