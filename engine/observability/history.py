"""The last minutes of the engine's figures, for the status page's small charts (engine.observability.page).

A snapshot (engine.observability.snapshot) is one moment; a chart needs a few minutes of them. The
HTTP side keeps them here: every SAMPLE_S it reads one snapshot and keeps, per partition and per
flow, its lag and records per second. Bounded in memory: KEEP samples per series (ten minutes), and
only the series of the latest snapshot (a partition that leaves the engine leaves the history).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from engine.observability.snapshot import EngineStatus

SAMPLE_S = 5.0
KEEP = 120  # samples per series: ten minutes at SAMPLE_S

SeriesKey = tuple[str, str, int]  # (flow, source topic, partition); ("flow", "", -1) for the flow's totals


class Sample:
    __slots__ = ("lag", "rate")

    def __init__(self, lag: int, rate: float):
        self.lag = lag  # records not yet acknowledged by the target
        self.rate = rate  # records per second the target acknowledged

    def __repr__(self) -> str:
        return f"Sample(lag={self.lag}, rate={self.rate})"


class History:
    """Recent figures per partition and per flow, bounded; safe to share between HTTP threads."""

    def __init__(self, keep: int = KEEP, sample_s: float = SAMPLE_S):
        self.keep = keep
        self.sample_s = sample_s
        self._series: dict[SeriesKey, deque[Sample]] = {}
        self._last_at: float | None = None
        self._lock = threading.Lock()

    def record(self, engine: EngineStatus, at: float) -> bool:
        """Keeps the snapshot's figures, taken at `at` (monotonic seconds), unless the last ones kept
        are younger than sample_s; True when they were kept."""
        with self._lock:
            if self._last_at is not None and at - self._last_at < self.sample_s:
                return False
            self._last_at = at
            seen: set[SeriesKey] = set()
            for flow in engine.flows:
                total_lag, total_rate = 0, 0.0
                for state in flow.partitions:
                    key = (flow.name, state.topic, state.partition)
                    self._append(key, Sample(state.lag or 0, state.record_rate))
                    seen.add(key)
                    total_lag += state.lag or 0
                    total_rate += state.record_rate
                self._append((flow.name, "", -1), Sample(total_lag, total_rate))
                seen.add((flow.name, "", -1))
            for gone in self._series.keys() - seen:
                del self._series[gone]
            return True

    def sample_forever(self, take: Callable[[], EngineStatus], stop: threading.Event) -> None:
        """Keeps the figures of `take()` every sample_s until `stop` is set; a snapshot that cannot be
        taken (the coordinator's loop is busy or gone) leaves a gap."""
        while not stop.wait(0 if self._last_at is None else self.sample_s):
            try:
                self.record(take(), time.monotonic())
            except Exception:  # noqa: BLE001 (a gap in a chart, not a fault of the engine)
                continue

    def _append(self, key: SeriesKey, sample: Sample) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.keep)
        series.append(sample)

    def series(self, flow: str, topic: str = "", partition: int = -1) -> list[Sample]:
        """Oldest first; the flow's totals without topic and partition."""
        with self._lock:
            return list(self._series.get((flow, topic, partition), ()))

    def __len__(self) -> int:
        """Series kept."""
        with self._lock:
            return len(self._series)
