"""MM2's windowed statistics (Kafka's SampledStat: 2 samples of 30 s) and the per-partition
aggregates the coordinator builds from worker reports."""

from __future__ import annotations

import math

import pytest

from engine import ipc
from engine.observability.windowed_stats import CheckpointLatencies, SampledWindow, SourceMetrics


def test_avg_min_max_combine_every_sample_in_the_window():
    window = SampledWindow()
    window.record(0, 10)
    window.record_many(1_000, 3, 60, 5, 40)  # three values: 5, 15, 40
    assert (window.avg(2_000), window.min(2_000), window.max(2_000)) == (70 / 4, 5, 40)
    # a second sample starts after 30 s; both count
    window.record(30_000, 100)
    assert window.max(31_000) == 100 and window.avg(31_000) == 170 / 5


def test_a_sample_expires_two_windows_after_its_last_value():
    window = SampledWindow()
    window.record(0, 500)
    window.record(31_000, 20)  # the second sample
    assert window.max(59_999) == 500
    assert window.max(60_000) == 20  # the first sample's last value is 60 s old: gone
    assert window.avg(60_000) == 20
    assert math.isnan(window.max(91_000)) and math.isnan(window.avg(91_000)) and math.isnan(window.min(91_000))


def test_an_empty_window_is_nan_as_in_kafka():
    window = SampledWindow()
    assert math.isnan(window.avg(0)) and math.isnan(window.max(0))
    window.record_many(0, 0, 0, 0, 0)  # an interval without values records nothing
    assert math.isnan(window.avg(1))
    assert window.totals(1) == (0, 0)


def test_samples_are_recycled_after_num_samples_plus_one():
    window = SampledWindow()
    for second in range(0, 300, 10):  # a value every 10 s for 5 minutes
        window.record(second * 1000, second)
    # what is left: the samples whose last value is less than 60 s old
    assert window.max(290_000) == 290
    assert window.min(290_000) >= 230
    assert len(window._samples) == 3


def test_rate_counts_at_least_one_full_window_before_the_current_one():
    window = SampledWindow()
    window.add(0, 300)
    # 300 records in the first second: Kafka's Rate divides by 1 s + one missing 30 s window
    assert window.rate(1_000) == pytest.approx(300 / 31)
    window.add(45_000, 900)
    # 45 s since the oldest sample started: one full window, no padding
    assert window.rate(45_000) == pytest.approx(1200 / 45)
    # at 70 s the first sample (last value at 0) expired
    assert window.rate(70_000) == pytest.approx(900 / (70 - 45 + 30))


def test_rate_of_nothing_is_zero():
    assert SampledWindow().rate(5_000) == 0.0


def progress(records=0, polled=0, age=ipc.Timings(), latency=ipc.Timings(), newest=-1) -> ipc.PartitionProgress:
    return ipc.PartitionProgress("orders", 0, 10, 5, records, polled, 0, 0, 20, polled_value_bytes_delta=polled,
                                 record_age=age, replication_latency=latency, newest_acked_timestamp_ms=newest)


def test_source_metrics_add_up_the_reports_of_one_partition():
    metrics = SourceMetrics()
    metrics.record(0, progress(records=4, polled=400, age=ipc.Timings(5, 50, 2, 20, 7),
                               latency=ipc.Timings(4, 80, 10, 30, 30)))
    metrics.record(1_000, progress(records=1, polled=100, age=ipc.Timings(1, 8, 8, 8, 8),
                                   latency=ipc.Timings(1, 40, 40, 40, 40)))
    metrics.record(2_000, progress())  # an idle interval
    assert (metrics.record_count, metrics.byte_count) == (5, 500)
    assert metrics.records.rate(2_000) == pytest.approx(5 / 32)
    assert metrics.value_bytes.rate(2_000) == pytest.approx(500 / 32)
    age, latency = metrics.record_age, metrics.replication_latency
    assert (age.window.avg(2_000), age.window.min(2_000), age.window.max(2_000), age.last) == (58 / 6, 2, 20, 8)
    assert (latency.window.avg(2_000), latency.window.max(2_000), latency.last) == (24, 40, 40)
    # the plain metric is the last value recorded; an idle interval keeps it
    assert latency.last == 40


def test_checkpoint_latencies_per_group_topic_and_partition():
    latencies = CheckpointLatencies()
    latencies.record(("g1", "A.orders", 0), 0, 12)
    latencies.record(("g1", "A.orders", 0), 500, 30)
    latencies.record(("g0", "A.orders", 1), 500, 7)
    measured = latencies.measure(1_000)
    assert measured == [(("g0", "A.orders", 1), 7, 7, 7, 7), (("g1", "A.orders", 0), 30, 12, 30, 21)]
