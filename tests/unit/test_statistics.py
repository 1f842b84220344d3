"""Flow statistics from worker reports: totals, offsets, the smoothed rate, stalls, forgetting."""

from engine import ipc
from engine.coordinator.statistics import RATE_SMOOTHING, FlowStatistics, PartitionState


def progress(partition: int, records: int, value_bytes: int, acked: int, end: int, in_flight: int = 0,
             committed: int = -1) -> ipc.PartitionProgress:
    return ipc.PartitionProgress("orders", partition, acked, committed, records, value_bytes, 0, in_flight, end)


def test_reports_add_up_per_partition_and_offsets_are_the_latest():
    now = [100.0]
    statistics = FlowStatistics(clock=lambda: now[0])
    statistics.record(ipc.Report(0, 1.0, [progress(0, 10, 1000, acked=9, end=20, committed=4)]))
    statistics.record(ipc.Report(0, 1.0, [progress(0, 5, 500, acked=14, end=30, committed=9),
                                          progress(1, 1, 10, acked=0, end=1)]))
    state = statistics.partitions[("orders", 0)]
    assert (state.records, state.value_bytes, state.last_acked_offset, state.last_committed_offset,
            state.source_end_offset, state.lag) == (15, 1500, 14, 9, 30, 15)
    assert state.bytes_per_s == RATE_SMOOTHING * 1000 + RATE_SMOOTHING * (500 - RATE_SMOOTHING * 1000)
    assert (statistics.records(), statistics.value_bytes(), statistics.lag()) == (16, 1510, 15)
    assert statistics.acked_offsets("orders") == {0: 14, 1: 0}
    assert state.mm2.record_count == 15


def test_records_in_flight_with_none_acknowledged_start_a_wait():
    now = [100.0]
    statistics = FlowStatistics(clock=lambda: now[0])
    statistics.record(ipc.Report(0, 1.0, [progress(0, 0, 0, acked=-1, end=10, in_flight=7)]))
    assert statistics.partitions[("orders", 0)].waiting_since == 100.0
    now[0] = 101.0
    statistics.record(ipc.Report(0, 1.0, [progress(0, 0, 0, acked=-1, end=10, in_flight=7)]))
    assert statistics.partitions[("orders", 0)].waiting_since == 100.0, "still the first wait"
    statistics.record(ipc.Report(0, 1.0, [progress(0, 3, 30, acked=2, end=10, in_flight=4)]))
    assert statistics.partitions[("orders", 0)].waiting_since is None


def test_forgotten_topics_and_partitions_others_own_leave_the_statistics():
    statistics = FlowStatistics()
    statistics.partitions.update({("a", 0): PartitionState(), ("a", 1): PartitionState(), ("b", 0): PartitionState()})
    statistics.forget_topic("a")
    assert list(statistics.partitions) == [("b", 0)]
    statistics.partitions[("c", 0)] = PartitionState()
    statistics.keep_only([("c", 0)])
    assert list(statistics.partitions) == [("c", 0)]
    assert PartitionState().lag is None and statistics.lag() == 0
