"""The engine's state at one moment, as the coordinator publishes it: immutable and typed.

/metrics, /ready, /status, `mirror-engine status` and the alerts read only this (never the
coordinator's internals), so what they show is one consistent state, and the coordinator is free
to change how it keeps that state. Built to grow: a new part of the engine adds its fields here.
Times are seconds, measured when the snapshot was taken; windowed values are NaN when their window
is empty, as Kafka's metrics say.
"""

from __future__ import annotations

import msgspec

Key = tuple[str, int]  # (source topic, partition)


class Window(msgspec.Struct, frozen=True):
    """One windowed statistic: its last value and min, max, avg over the window (MM2's -min/-max/-avg)."""

    last: float
    min: float
    max: float
    avg: float


class PartitionStatus(msgspec.Struct, frozen=True):
    """One source partition a worker of this instance reported."""

    topic: str
    partition: int
    remote_topic: str
    loop: str  # the relay that copies it: "c" (the fast path) or "python"
    loop_reason: str  # why that one
    records: int  # the target acknowledged
    value_bytes: int
    filtered: int  # a record filter dropped
    resume_found: int  # found already copied by a starting worker: not copied again
    resume_unmatched: int  # target records a starting worker could not match: copied again
    last_acked_offset: int
    last_committed_offset: int  # stored as progress
    in_flight: int
    source_end_offset: int  # -1: not known yet
    lag: int | None  # None: the source end is not known yet
    bytes_per_s: float  # observed, smoothed (placement weighs by it)
    waiting_s: float | None  # records in flight with none acknowledged for this long
    newest_acked_timestamp_ms: int
    # MM2's source-connector metrics
    record_count: int
    record_rate: float
    byte_count: int
    byte_rate: float
    record_age_ms: Window
    replication_latency_ms: Window
    replication_latency_count: int  # values in the window, with their sum: averages over partitions
    replication_latency_sum: float


class WorkerStatus(msgspec.Struct, frozen=True):
    index: int
    pid: int | None
    alive: bool
    restarts: int
    partitions: list[Key]  # assigned
    reported: list[Key] | None  # in its latest report; None: no report since its start
    last_report_age_s: float | None
    lease_s: float = 0.0  # scale-out: how long a renewed lease lets it copy; 0: no group, no lease


class TopicStatus(msgspec.Struct, frozen=True):
    topic: str
    remote_topic: str
    partitions: int  # copied by the flow (by every instance of a group)


class GroupStatus(msgspec.Struct, frozen=True):
    """Scale-out: this instance's part in the group on the target cluster."""

    id: str
    cluster: str
    joined: bool
    leader: bool
    healthy: bool


class AuditStatus(msgspec.Struct, frozen=True):
    mismatches: int
    passes: int
    last_pass_at: float | None  # Unix time
    verified: dict[Key, int]  # newest source offset found copied unchanged


class CheckpointLatency(msgspec.Struct, frozen=True):
    group: str
    topic: str  # the remote topic
    partition: int
    latency_ms: Window


class CheckpointStatus(msgspec.Struct, frozen=True):
    written: int
    latencies: list[CheckpointLatency]


class FlowStatus(msgspec.Struct, frozen=True):
    name: str
    source: str
    target: str
    topics: list[TopicStatus]
    partitions: list[PartitionStatus]  # reported, by (topic, partition)
    workers: list[WorkerStatus]
    stopped_partitions: dict[Key, str]  # by an error of their own, with it; retried at refresh
    stopped_topics: dict[str, str]  # with the reason
    looping_topics: dict[str, str]  # not copied: the clusters an identity-policy cycle would go round
    heartbeat_age_s: float | None  # None: the flow copies no heartbeats topic
    group: GroupStatus | None = None
    audit: AuditStatus | None = None
    checkpoints: CheckpointStatus | None = None
    # source topics named in `topics` that the engine's principal may not describe: not copied
    unauthorised_topics: list[str] = msgspec.field(default_factory=list)

    @property
    def partition_count(self) -> int:
        return sum(t.partitions for t in self.topics)


class HeartbeatsSent(msgspec.Struct, frozen=True):
    target: str
    sent: int


class EngineStatus(msgspec.Struct, frozen=True):
    version: str
    pid: int
    uptime_s: float
    running: bool  # every flow started
    stopping: bool
    heartbeat_alert_s: float
    flows: list[FlowStatus]
    heartbeats_sent: list[HeartbeatsSent]
