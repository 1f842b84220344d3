"""Flow statistics: what the coordinator knows of each source partition, from its workers' reports.

The workers report every second what the target acknowledged since the last report (records,
bytes, offsets, MM2's latency samples). FlowStatistics adds them up per partition, smooths the
observed byte rate (placement weighs partitions by it) and notices a partition whose records are in
flight with none acknowledged (readiness reports it as a stall).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine import ipc
from engine.observability.windowed_stats import SourceMetrics

RATE_SMOOTHING = 0.3

PartitionKey = tuple[str, int]  # (source topic, partition)


@dataclass
class PartitionState:
    """What the coordinator knows of one source partition, from the workers' reports."""

    records: int = 0
    value_bytes: int = 0
    last_acked_offset: int = -1
    last_committed_offset: int = -1
    in_flight: int = 0
    source_end_offset: int = -1
    bytes_per_s: float = 0.0
    filtered: int = 0
    resume_found: int = 0  # copies a starting worker found on the target: not copied twice
    resume_unmatched: int = 0  # target records a starting worker could not match: copied again
    mm2: SourceMetrics = field(default_factory=SourceMetrics)  # MM2's metrics of the partition
    newest_acked_timestamp_ms: int = -1  # of the records the target acknowledged
    waiting_since: float | None = None  # monotonic: records in flight, none acknowledged since

    @property
    def lag(self) -> int | None:
        """Source records not yet acknowledged by the target; None before the end offset is known."""
        return max(0, self.source_end_offset - self.last_acked_offset - 1) if self.source_end_offset >= 0 else None


class FlowStatistics:
    """Per partition totals and rates of one flow, fed by its workers' reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.partitions: dict[PartitionKey, PartitionState] = {}

    def record(self, report: ipc.Report) -> None:
        now = self.clock()
        for progress in report.partitions:
            state = self.partitions.setdefault((progress.topic, progress.partition), PartitionState())
            state.mm2.record(now * 1000, progress)
            state.newest_acked_timestamp_ms = max(state.newest_acked_timestamp_ms, progress.newest_acked_timestamp_ms)
            if progress.records_delta or not progress.in_flight:
                state.waiting_since = None
            elif state.waiting_since is None:
                state.waiting_since = now
            state.records += progress.records_delta
            state.value_bytes += progress.value_bytes_delta
            state.filtered += progress.filtered_delta
            state.resume_found += progress.resume_found_delta
            state.resume_unmatched += progress.resume_unmatched_delta
            state.last_acked_offset = progress.last_acked_offset
            state.last_committed_offset = progress.last_committed_offset
            state.in_flight = progress.in_flight
            state.source_end_offset = progress.source_end_offset
            if report.interval_s > 0:
                observed = progress.value_bytes_delta / report.interval_s
                state.bytes_per_s += RATE_SMOOTHING * (observed - state.bytes_per_s)

    def forget_topic(self, topic: str) -> None:
        """The topic is no longer copied (deleted, deselected, created again, going round a cycle)."""
        for key in [k for k in self.partitions if k[0] == topic]:
            del self.partitions[key]

    def keep_only(self, owned: Iterable[PartitionKey]) -> None:
        """Scale-out: the partitions another instance reports now are dropped."""
        owned = set(owned)
        for key in [k for k in self.partitions if k not in owned]:
            del self.partitions[key]

    def acked_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> last source offset the target acknowledged, of one topic."""
        return {p: s.last_acked_offset for (t, p), s in sorted(self.partitions.items()) if t == topic}

    def records(self) -> int:
        return sum(s.records for s in self.partitions.values())

    def value_bytes(self) -> int:
        return sum(s.value_bytes for s in self.partitions.values())

    def lag(self) -> int:
        return sum(s.lag or 0 for s in self.partitions.values())
