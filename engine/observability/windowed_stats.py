"""Windowed statistics as Kafka's metrics library computes them for MM2 (docs/metrics.md).

MM2's `record-rate`, `byte-rate` and the `-min`, `-max`, `-avg` variants of `record-age-ms`,
`replication-latency-ms` and `checkpoint-latency-ms` are Kafka `SampledStat`s with the client
defaults `metrics.num.samples` = 2 and `metrics.sample.window.ms` = 30 s:

- a sample collects values for one window, then the next sample starts (one more sample than
  `num.samples` is kept, the oldest recycled);
- a measurement first resets every sample whose last value is at least num.samples × window old,
  then combines what is left: avg = sum / count, max, min (NaN when no value is left);
- a rate is the sum of the samples over the time since the oldest sample started, counted as at
  least (num.samples − 1) full windows, so the first seconds are not inflated.

The fast path aggregates per partition (count, sum, min, max) between two worker reports; the
coordinator records each aggregate here at the time the report arrives, as if its values had been
recorded then: the same sample boundaries, to within one report interval.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from engine import ipc

NUM_SAMPLES = 2
SAMPLE_WINDOW_MS = 30_000
NAN = math.nan


@dataclass
class _Sample:
    start_ms: float
    last_ms: float
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def reset(self, now_ms: float) -> None:
        self.start_ms = self.last_ms = now_ms
        self.count, self.total, self.minimum, self.maximum = 0, 0.0, math.inf, -math.inf


class SampledWindow:
    """Kafka's SampledStat for avg, min, max and rate at once (they share sample boundaries)."""

    def __init__(self, num_samples: int = NUM_SAMPLES, window_ms: int = SAMPLE_WINDOW_MS):
        self.num_samples = num_samples
        self.window_ms = window_ms
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, now_ms: float, value: float) -> None:
        self.record_many(now_ms, 1, value, value, value)

    def record_many(self, now_ms: float, count: int, total: float, minimum: float, maximum: float) -> None:
        """`count` values with this sum and these extremes, recorded at now_ms."""
        if count <= 0:
            return
        sample = self._sample_at(now_ms)
        sample.count += count
        sample.total += total
        sample.minimum = min(sample.minimum, minimum)
        sample.maximum = max(sample.maximum, maximum)
        sample.last_ms = now_ms

    def add(self, now_ms: float, amount: float) -> None:
        """A quantity for rate(): records/s from record counts, bytes/s from byte counts."""
        self.record_many(now_ms, 1, amount, amount, amount)

    def _sample_at(self, now_ms: float) -> _Sample:
        if not self._samples:
            self._samples.append(_Sample(now_ms, now_ms))
        sample = self._samples[self._current]
        if now_ms - sample.start_ms >= self.window_ms:
            self._current = (self._current + 1) % (self.num_samples + 1)
            if self._current >= len(self._samples):
                sample = _Sample(now_ms, now_ms)
                self._samples.append(sample)
            else:
                sample = self._samples[self._current]
                sample.reset(now_ms)
        return sample

    def _purge(self, now_ms: float) -> list[_Sample]:
        expire_ms = self.num_samples * self.window_ms
        for sample in self._samples:
            if now_ms - sample.last_ms >= expire_ms:
                sample.reset(now_ms)
        return self._samples

    def totals(self, now_ms: float) -> tuple[int, float]:
        """(count, sum) of the values in the window: averages across partitions combine these."""
        samples = self._purge(now_ms)
        return sum(s.count for s in samples), sum(s.total for s in samples)

    def avg(self, now_ms: float) -> float:
        count, total = self.totals(now_ms)
        return total / count if count else NAN

    def max(self, now_ms: float) -> float:
        samples = [s for s in self._purge(now_ms) if s.count]
        return max(s.maximum for s in samples) if samples else NAN

    def min(self, now_ms: float) -> float:
        samples = [s for s in self._purge(now_ms) if s.count]
        return min(s.minimum for s in samples) if samples else NAN

    def rate(self, now_ms: float) -> float:
        """The sum of the window per second (Kafka's Rate over a WindowedSum)."""
        samples = self._purge(now_ms)
        total = sum(s.total for s in samples)
        oldest = min((s.start_ms for s in samples), default=now_ms)
        elapsed = now_ms - oldest
        full_windows = int(elapsed // self.window_ms)
        if full_windows < self.num_samples - 1:
            elapsed += (self.num_samples - 1 - full_windows) * self.window_ms
        return total / (max(elapsed, 1.0) / 1000)


@dataclass
class LatencyStat:
    """One MM2 latency sensor: the last value, and min, max and avg over the window."""

    window: SampledWindow = field(default_factory=SampledWindow)
    last: float = NAN

    def record_timings(self, now_ms: float, timings: ipc.Timings) -> None:
        self.window.record_many(now_ms, timings.count, timings.sum_ms, timings.min_ms, timings.max_ms)
        if timings.count:
            self.last = float(timings.last_ms)

    def record(self, now_ms: float, value_ms: float) -> None:
        self.window.record(now_ms, value_ms)
        self.last = float(value_ms)


@dataclass
class SourceMetrics:
    """MirrorSourceConnector's metrics of one partition, fed by the worker reports.

    record-count: records the target acknowledged (filtered records are not counted);
    byte-count: value bytes of every polled record (keys and headers excluded, a null value is 0).
    """

    record_count: int = 0
    byte_count: int = 0
    records: SampledWindow = field(default_factory=SampledWindow)
    value_bytes: SampledWindow = field(default_factory=SampledWindow)
    record_age: LatencyStat = field(default_factory=LatencyStat)
    replication_latency: LatencyStat = field(default_factory=LatencyStat)

    def record(self, now_ms: float, progress: ipc.PartitionProgress) -> None:
        self.record_count += progress.records_delta
        self.byte_count += progress.polled_value_bytes_delta
        self.records.add(now_ms, progress.records_delta)
        self.value_bytes.add(now_ms, progress.polled_value_bytes_delta)
        self.record_age.record_timings(now_ms, progress.record_age)
        self.replication_latency.record_timings(now_ms, progress.replication_latency)


class CheckpointLatencies:
    """MirrorCheckpointConnector's checkpoint-latency-ms per (group, remote topic, partition): the
    time from reading the group's offsets to the target's ack of the checkpoint. (MM2's legacy
    metrics share one sensor among all of them; here each has its own.) Recorded from the
    producer's delivery callbacks, read by the metrics endpoint: hence the lock."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str, int], LatencyStat] = {}
        self._lock = threading.Lock()

    def record(self, key: tuple[str, str, int], now_ms: float, latency_ms: float) -> None:
        with self._lock:
            self._stats.setdefault(key, LatencyStat()).record(now_ms, latency_ms)

    def measure(self, now_ms: float) -> list[tuple[tuple[str, str, int], float, float, float, float]]:
        """[(key, last, min, max, avg)] sorted by key."""
        with self._lock:
            return [(key, stat.last, stat.window.min(now_ms), stat.window.max(now_ms), stat.window.avg(now_ms))
                    for key, stat in sorted(self._stats.items())]
