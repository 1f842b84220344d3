"""The benchmark harness's pure parts: statistics, /proc parsing, mm2.properties, tool output, sizing."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from engine.bench import ceiling, floor, payload, report
from engine.bench.command import add_arguments, settings_from
from engine.bench.latency import latency_rate
from engine.bench.mm2 import MM2_TUNED, bench_properties, exact_topic_regex, render
from engine.bench.procstat import CLOCK_TICKS, TreeMeter, parse_stat, parse_status_memory
from engine.bench.rows import MAX_TOPIC_BYTES, copy_timeout, records_for_window
from engine.bench.schedule import plan
from engine.bench.settings import COPIERS, Settings
from engine.bench.sweep import sizing, sweep_plan, sweep_plot
from engine.bench.window import window_bounds
from engine.config.loading import from_properties
from engine.config.properties import parse_properties

# -- statistics ---------------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks():
    assert report.percentile([4, 1, 3, 2], 50) == 2.5
    assert report.percentile([10, 20, 30, 40, 50], 99) == pytest.approx(49.6)
    assert report.percentile([10, 20, 30, 40, 50], 0) == 10
    assert report.percentile([10, 20, 30, 40, 50], 100) == 50
    assert report.percentile([7], 99) == 7


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        report.percentile([], 50)


def test_cpu_seconds_per_gb():
    assert report.cpu_seconds_per_gb(3.0, 1.5e9) == 2.0
    assert report.cpu_seconds_per_gb(0.5, 250e6) == 2.0


def test_window_metrics():
    m = report.window_metrics(1000, 1_100_000, 1_000_000, 2.0, 0.5)
    assert m["records_per_s"] == 500
    assert m["mb_per_s"] == pytest.approx(0.55)
    assert m["value_mb_per_s"] == pytest.approx(0.5)
    assert m["cpu_s_per_gb"] == pytest.approx(0.5 / 0.0011)
    assert m["cpu_s_per_value_gb"] == pytest.approx(500.0)
    assert m["cores_used"] == 0.25
    assert report.window_metrics(10, 10, 10, 1.0, None)["cpu_s_per_gb"] is None


def _run(replicator, rps, cpu_per_gb, run=1, warmup=False, compression="none"):
    return {"replicator": replicator, "record_size": 1024, "compression": compression, "run": run,
            "warmup": warmup, "records_per_s": rps, "cpu_s_per_gb": cpu_per_gb}


def test_summary_takes_medians_of_measured_runs_and_ratios():
    runs = [
        _run("mm2-tuned", 999_999, 1.0, run=0, warmup=True),  # the warm-up does not count
        _run("mm2-tuned", 100, 40.0, 1), _run("mm2-tuned", 300, 20.0, 2), _run("mm2-tuned", 200, 30.0, 3),
        _run("mm2-defaults", 100, 50.0, 1),
        _run("c", 400, 10.0, 1), _run("c", 600, 15.0, 2), _run("c", 500, 12.0, 3),
        _run("ceiling", 1000, None, 1),
        {**_run("floor", None, 4.0, 1), "consume_cpu_us_per_record": 1.0, "produce_cpu_us_per_record": 3.0},
        {"replicator": "python", "record_size": 1024, "compression": "none", "run": 1, "error": "boom"},
    ]
    summary = {e["replicator"]: e for e in report.summarise(runs)}
    assert [e["replicator"] for e in report.summarise(runs)] == ["ceiling", "floor", "mm2-defaults", "mm2-tuned",
                                                                 "c"]
    mm2 = summary["mm2-tuned"]
    assert mm2["records_per_s"] == 200 and mm2["runs"] == 3
    assert (mm2["records_per_s_min"], mm2["records_per_s_max"]) == (100, 300)
    assert (mm2["cpu_s_per_gb"], mm2["cpu_s_per_gb_min"], mm2["cpu_s_per_gb_max"]) == (30.0, 20.0, 40.0)
    c = summary["c"]
    assert c["records_per_s"] == 500
    assert c["throughput_vs_mm2_tuned"] == 2.5 and c["throughput_vs_mm2_defaults"] == 5.0
    assert c["cpu_per_gb_vs_mm2_tuned"] == pytest.approx(0.4) and c["cpu_per_gb_vs_mm2_defaults"] == 0.24
    assert c["cpu_vs_floor"] == 3.0 and mm2["cpu_vs_floor"] == 7.5 and summary["floor"]["cpu_vs_floor"] == 1.0
    assert c["throughput_vs_ceiling"] == 0.5
    assert mm2["throughput_vs_ceiling"] == 0.2
    assert summary["ceiling"]["cpu_s_per_gb"] is None and summary["ceiling"]["cpu_per_gb_vs_mm2_tuned"] is None
    assert summary["floor"]["records_per_s"] is None and summary["floor"]["throughput_vs_ceiling"] is None


def test_ratios_only_within_the_same_compression():
    summary = report.summarise([_run("mm2-tuned", 100, 10.0), _run("floor", None, 1.0),
                                _run("c", 300, 5.0, compression="lz4")])
    [c] = [e for e in summary if e["replicator"] == "c"]
    assert c["throughput_vs_mm2_tuned"] is None and c["cpu_vs_floor"] is None


def test_latency_summary():
    s = report.latency_summary([float(v) for v in range(1, 101)])
    assert s == {"samples": 100, "p50_ms": 50.5, "p99_ms": pytest.approx(99.01), "p999_ms": pytest.approx(99.901),
                 "max_ms": 100.0, "mean_ms": 50.5}


def test_markdown_table_has_one_row_per_case_with_spread_and_floor_multiple():
    runs = [_run("mm2-defaults", 100, 10.0), _run("mm2-tuned", 150, 8.0), _run("floor", None, 2.5)]
    runs += [{**_run("c", rps, cpu, run), "cores_used": cores, "peak_rss_total_bytes": rss * 2**20,
              "duration_s": window}
             for run, rps, cpu, cores, rss, window in ((1, 300, 5.0, 0.5, 300, 10.5), (2, 280, 4.0, 0.4, 310, 12.0),
                                                       (3, 320, 6.0, 0.6, 290, 11.0))]
    table = report.markdown_table(report.summarise(runs))
    lines = table.splitlines()
    assert len(lines) == 6
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    floor, c = lines[2], lines[5]
    assert floor.startswith("| 1 KiB | none | floor | 1 | – | – | 2.5 |")
    assert "| 1 KiB | none | c | 3 | 300 (280–320) |" in c and "| 5.0 (4.0–6.0) |" in c
    assert "| 2.00× |" in c  # CPU-s/GB as a multiple of the floor
    assert "| 0.50 (0.40–0.60) | 300 (290–310) | 11.0 (10.5–12.0) |" in c
    assert "| 3.00× / 2.00× | 0.50× / 0.62× |" in c


# -- /proc --------------------------------------------------------------------------------------

STAT_LINE = ("4242 (python3 -m (x) y) S 4200 4242 4200 0 -1 4194304 5000 0 0 0 "
             "1234 567 8 9 20 0 5 0 987654 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 "
             "0 17 1 0 0 0 0 0")


def test_parse_stat_with_spaces_and_parentheses_in_the_command_name():
    stat = parse_stat(STAT_LINE)
    assert stat.pid == 4242
    assert stat.comm == "python3 -m (x) y"
    assert stat.state == "S"
    assert stat.ppid == 4200
    assert (stat.utime_ticks, stat.stime_ticks, stat.cpu_ticks) == (1234, 567, 1801)
    assert stat.start_ticks == 987654


def test_parse_status_memory():
    text = "Name:\tjava\nVmPeak:\t 9000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t40\n"
    assert parse_status_memory(text) == (102400 * 1024, 204800 * 1024)
    assert parse_status_memory("Name:\tkthreadd\n") == (0, 0)  # kernel threads have no Vm lines


def _fake_process(proc, pid, ppid, utime, stime, children=(), start=100, rss_kb=1000, hwm_kb=2000):
    folder = proc / str(pid)
    (folder / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
    (folder / "stat").write_text(
        f"{pid} (p{pid}) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 {start} 1 1 0")
    (folder / "status").write_text(f"VmHWM:\t{hwm_kb} kB\nVmRSS:\t{rss_kb} kB\n")
    (folder / "task" / str(pid) / "children").write_text(" ".join(str(c) for c in children))


def test_tree_meter_counts_every_process_of_the_tree_inside_the_window(tmp_path):
    proc = tmp_path
    _fake_process(proc, 10, 1, 100, 50, children=[11])
    _fake_process(proc, 11, 10, 1000, 0)
    _fake_process(proc, 99, 1, 5000, 5000)  # not ours
    meter = TreeMeter(10, proc)
    meter.start_window()
    # the window: the coordinator uses 30 ticks, the worker 400, and a new worker starts with 70
    _fake_process(proc, 10, 1, 120, 60, children=[11, 12])
    _fake_process(proc, 11, 10, 1400, 0, rss_kb=3000, hwm_kb=3000)
    _fake_process(proc, 12, 10, 50, 20, start=500)
    meter.sample()
    assert meter.cpu_seconds() == pytest.approx(500 / CLOCK_TICKS)
    assert meter.peak_total_rss == (1000 + 3000 + 1000) * 1024
    by_pid = {p["pid"]: p for p in meter.processes()}
    assert sorted(by_pid) == [10, 11, 12]
    assert by_pid[11]["hwm_bytes"] == 3000 * 1024
    assert by_pid[12]["cpu_s"] == pytest.approx(70 / CLOCK_TICKS)


def test_tree_meter_peak_memory_counts_from_the_window_start(tmp_path):
    _fake_process(tmp_path, 10, 1, 100, 50, rss_kb=9000)
    meter = TreeMeter(10, tmp_path)
    meter.sample()  # before the window: a start-up peak
    _fake_process(tmp_path, 10, 1, 100, 50, rss_kb=2000)
    meter.start_window()
    _fake_process(tmp_path, 10, 1, 100, 50, rss_kb=3000)
    meter.sample()
    assert meter.peak_total_rss == 3000 * 1024


# -- records and mm2.properties ---------------------------------------------------------------


def test_values_compress_but_not_to_nothing():
    pool = payload.value_pool(1024, count=8)
    assert len(pool) == 8 and len(set(pool)) == 8
    assert all(len(v) == 1024 and v[:512] == v[512:] for v in pool)
    assert all(re.fullmatch(rb"[A-Za-z0-9]+", v) for v in pool)
    assert [len(v) for v in payload.value_pool(101, count=2)] == [101, 101]


def test_record_bytes_and_their_total():
    assert payload.key_for(5) == b"k0000005"
    assert payload.record_bytes(5, 100) == 8 + 100 + 3 + 8
    assert payload.total_bytes(1000, 100) == sum(payload.record_bytes(i, 100) for i in range(1000))
    assert payload.total_bytes(10**7 + 5, 100) == (10**7 + 5) * 119 + 5
    assert len(payload.key_for(10**7 + 4)) == 9


def test_bench_properties_for_mm2_and_the_engine():
    props = bench_properties("A", "B", "a:1", "b:2", ["mebench-x.tp-c-1024"], 2, "lz4")
    assert props["clusters"] == "A, B"
    assert props["A->B.enabled"] == "true" and props["B->A.enabled"] == "false"
    assert props["B->A.emit.heartbeats.enabled"] == "false"
    assert props["tasks.max"] == "2"
    assert props["A->B.topics"] == r"mebench\-x\.tp\-c\-1024"
    for key in ("replication.factor", "offset.storage.replication.factor", "config.storage.replication.factor",
                "status.storage.replication.factor", "heartbeats.topic.replication.factor",
                "checkpoints.topic.replication.factor", "offset-syncs.topic.replication.factor"):
        assert props[key] == "1", key
    for key in ("sync.topic.configs.enabled", "sync.topic.acls.enabled", "emit.checkpoints.enabled"):
        assert props[key] == "false", key
    assert props["B.producer.compression.type"] == props["producer.compression.type"] == "lz4"
    assert props["B.producer.acks"] == "all" and props["B.producer.batch.size"] == "262144"
    assert props["A.consumer.max.poll.records"] == "4000"
    assert "mirror.engine.metrics.listen" not in props


def test_mm2_defaults_get_no_client_settings_and_mm2_tuned_the_published_ones():
    defaults = bench_properties("A", "B", "a:1", "b:2", ["t"], 2, "none", tuning="defaults")
    assert not [k for k in defaults
                if ".producer." in k or ".consumer." in k or k.startswith(("producer.", "consumer."))]
    assert defaults["tasks.max"] == "2" and defaults["replication.factor"] == "1"
    lz4 = bench_properties("A", "B", "a:1", "b:2", ["t"], 2, "lz4", tuning="defaults")
    assert {k: v for k, v in lz4.items() if "producer" in k} == {"B.producer.compression.type": "lz4",
                                                                 "producer.compression.type": "lz4"}
    tuned = bench_properties("A", "B", "a:1", "b:2", ["t"], 2, "lz4", tuning="tuned")
    assert tuned["B.producer.batch.size"] == "327680" and tuned["B.producer.linger.ms"] == "100"
    assert tuned["B.producer.compression.type"] == "lz4"
    assert tuned["A.consumer.fetch.min.bytes"] == "16384"
    assert tuned["offset.flush.timeout.ms"] == "10000"
    for setting in MM2_TUNED:
        key = {"producer": f"B.producer.{setting.key}", "consumer": f"A.consumer.{setting.key}",
               "worker": setting.key}[setting.role]
        assert tuned[key] == setting.value, key
        assert setting.sources and all("https://" in source for source in setting.sources), setting.key
    lines = report.mm2_settings_lines()
    assert "| `batch.size` | 327680 | `<target>.producer.` and `producer.` | [1], [2] |" in lines
    with pytest.raises(ValueError):
        bench_properties("A", "B", "a:1", "b:2", ["t"], 2, "none", tuning="best")


def test_rendered_properties_read_back_as_the_same_flow():
    topic = "mebench-x.tp-c-1024"
    props = bench_properties("A", "B", "a:1", "b:2", [topic], 2, "none", heartbeats=False)
    parsed = parse_properties(render(props))
    assert parsed == props
    loaded = from_properties(parsed)
    [flow] = loaded.flows
    assert (flow.source, flow.target, flow.tasks_max, flow.replication_factor) == ("A", "B", 2, 1)
    assert not flow.sync_topic_configs_enabled and not flow.emit_checkpoints_enabled
    assert loaded.heartbeats == []
    assert flow.topic_filter().matches(topic)
    assert not flow.topic_filter().matches("mebench-xXtp-c-1024")


def test_exact_topic_regex():
    assert re.fullmatch(exact_topic_regex("a.b-c"), "a.b-c")
    assert not re.fullmatch(exact_topic_regex("a.b-c"), "aXb-c")


# -- Kafka's perf tools -------------------------------------------------------------------------

def test_the_ceilings_load_is_shared_out_over_several_processes():
    assert ceiling.load_processes(2) == 3 and ceiling.load_processes(8) == 9
    assert ceiling.split(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert ceiling.split(2, 3) == [(0, 1), (1, 1)]
    assert sum(n for _, n in ceiling.split(1_000_003, 3)) == 1_000_003


def test_the_ceilings_limit_says_whether_the_machine_was_cpu_bound():
    bound = ceiling.limit_text("librdkafka", 3, 0.97, 1.1, 0.7, 2)
    assert bound.startswith("3 librdkafka load generators; the machine was 97% busy, the generators used 1.10 "
                            "cores, the target broker 0.70: CPU-bound")
    free = ceiling.limit_text("java", 3, 0.5, 0.6, None, 2)
    assert "3 ProducerPerformance JVMs" in free and "not CPU-bound" in free and "broker" in free
    assert "not measured" in ceiling.limit_text("java", 3, None, None, None, 2)


def test_machine_ticks_leave_out_idle_and_iowait(tmp_path):
    from engine.bench.procstat import machine_ticks

    (tmp_path / "stat").write_text("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n")
    assert machine_ticks(tmp_path) == (160, 1000)


def test_rows_above_the_ceiling_are_flagged_with_what_held_the_ceiling():
    runs = [{**_run("ceiling", 1000, None, r), "ceiling_flavour": flavour, "machine_busy": 0.95,
             "generator_cores": 1.2, "target_broker_cores": 0.6,
             "ceiling_flavours": [{"flavour": "librdkafka", "processes": 3}, {"flavour": "java", "processes": 3}]}
            for r, flavour in ((1, "librdkafka"), (2, "java"), (3, "librdkafka"))]
    runs += [_run("c", 1500, 3.0), _run("mm2-tuned", 600, 9.0)]
    summary = report.summarise(runs)
    by = {e["replicator"]: e for e in summary}
    assert by["c"]["above_ceiling"] and not by["mm2-tuned"]["above_ceiling"] and not by["ceiling"]["above_ceiling"]
    assert by["ceiling"]["ceiling_flavour"] == "librdkafka" and by["ceiling"]["ceiling_flavour_runs"] == 2
    lines = report.ceiling_lines(summary)
    assert lines[0].startswith("- 1 KiB none: best flavour librdkafka (2 of 3 runs), medians over its windows: "
                               "3 librdkafka load generators; the machine was 95% busy")
    assert "CPU-bound" in lines[0]
    assert lines[1] == ("  - ▲ c copied 1.50× the ceiling's records/s: the ceiling understates the target here "
                        "(see above).")
    assert len(lines) == 2
    [c_row] = [line for line in report.markdown_table(summary).splitlines() if "| c |" in line]
    assert c_row.endswith("| 1.50× ▲ |")


# -- plan, latency rate, sizing -----------------------------------------------------------------


def test_plan_interleaves_replicators_and_starts_with_a_warm_up():
    settings = Settings(record_sizes=[100], compressions=["none"], runs=2, replicators=["c", "mm2-tuned", "floor"])
    p = "plaintext"
    assert plan(settings) == [(100, "none", 0, p, "floor"), (100, "none", 0, p, "mm2-tuned"), (100, "none", 0, p, "c"),
                              (100, "none", 1, p, "floor"), (100, "none", 1, p, "mm2-tuned"), (100, "none", 1, p, "c"),
                              (100, "none", 2, p, "floor"), (100, "none", 2, p, "mm2-tuned"), (100, "none", 2, p, "c")]
    settings.warmup = False
    assert plan(settings)[0] == (100, "none", 1, p, "floor")
    # each run round takes every security mode's rows in turn
    settings.securities, settings.replicators = ["plaintext", "tls"], ["floor", "c"]
    assert plan(settings)[:4] == [(100, "none", 1, p, "floor"), (100, "none", 1, p, "c"),
                                  (100, "none", 1, "tls", "floor"), (100, "none", 1, "tls", "c")]


def test_latency_rate_is_half_the_ceiling():
    runs = [_run("ceiling", 1000, None, 1), _run("ceiling", 3000, None, 2), _run("ceiling", 2000, None, 3),
            _run("c", 700, 1.0)]
    assert latency_rate(runs, 1024, "none") == (1000.0, "half the ceiling")
    assert latency_rate(runs[3:], 1024, "none") == (350.0, "half the fastest replicator (no ceiling measured)")


def test_the_steady_window_leaves_out_the_first_and_last_tenth():
    assert window_bounds(1_000_000, steady=True) == (100_000, 900_000)
    assert window_bounds(1005, steady=True) == (101, 904)
    assert window_bounds(5000, steady=False) == (0, 5000)


def test_the_topic_is_sized_for_the_fastest_warm_up_copy():
    settings = Settings(window_s=10.0)
    warmups = [_run("c", 100_000, 1.0, warmup=True), _run("mm2-tuned", 20_000, 1.0, warmup=True),
               _run("ceiling", 900_000, None, warmup=True),  # not a copy: does not size the topic
               {"replicator": "python", "error": "boom"}]
    # 100,000 records/s × 10 s × 2.5 (a warm-up's rate) over the middle 80 % of the records
    assert records_for_window(warmups, 200_000, 1100.0, settings) == 3_125_000
    measured = warmups + [_run("c", 120_000, 1.0, run=1)]
    assert records_for_window(measured, 200_000, 1100.0, settings) == 1_950_000  # × 1.3 of a measured rate
    assert records_for_window(warmups, 4_000_000, 1100.0, settings) == 4_000_000  # never shrinks
    # the ceiling's load is sized by the ceiling's own rate
    assert records_for_window(warmups, 200_000, 100.0, settings, rows=("ceiling",)) == 28_125_000
    assert records_for_window(warmups, 10, 1e6, settings) == int(MAX_TOPIC_BYTES / 1e6)  # bounded by bytes
    assert records_for_window([], 200_000, 1100.0, settings) == 200_000
    assert records_for_window(warmups, 200_000, 1100.0, Settings(window_s=0)) == 200_000
    # the slowest copier gets 3× the time its warm-up rate needs
    assert copy_timeout(warmups, 5_000_000, settings) == pytest.approx(3 * 5_000_000 / 20_000)
    assert copy_timeout(warmups, 1000, settings) == settings.copy_timeout_s
    assert set(COPIERS) == {"mm2-defaults", "mm2-tuned", "franz", "python", "c"}


class _Offsets:
    """An AdminClient whose list_offsets answers with the next total of `totals`, on partition 0."""

    def __init__(self, totals):
        self.totals = list(totals)

    def list_offsets(self, request, request_timeout):
        from concurrent.futures import Future

        total = self.totals.pop(0) if len(self.totals) > 1 else self.totals[0]
        futures = {}
        for tp in request:
            future = Future()
            future.set_result(type("Offset", (), {"offset": total if tp.partition == 0 else 0})())
            futures[tp] = future
        return futures


class _Alive:
    def __init__(self):
        import os

        self.pid = os.getpid()
        self.name = "fake replicator"

    def alive(self):
        return True

    def tree(self):
        return [self.pid]


def test_measure_copy_opens_past_the_first_tenth_and_closes_past_nine_tenths(monkeypatch):
    from engine.bench import window

    monkeypatch.setattr(window, "POLL_S", 0)
    totals = [0, 0, 50, 120, 400, 700, 880, 950, 1000]
    measured = window.measure_copy(_Alive(), _Offsets(totals), "t", 2, 1000, 60.0, steady=True)
    assert (measured["window_first_record"], measured["window_last_record"]) == (120, 950)
    assert measured["window_records"] == 830


def test_measure_copy_of_a_quick_run_counts_the_whole_copy(monkeypatch):
    from engine.bench import window

    monkeypatch.setattr(window, "POLL_S", 0)
    measured = window.measure_copy(_Alive(), _Offsets([0, 0, 300, 1000]), "t", 2, 1000, 60.0, steady=False)
    assert (measured["window_first_record"], measured["window_last_record"],
            measured["window_records"]) == (0, 1000, 1000)


class _Clock:
    """time for the window: monotonic() advances one second a reading (one a poll), sleep() returns at once."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        self.now += 1.0
        return self.now

    def sleep(self, _seconds):
        pass

    def strftime(self, *args):
        return ""


def test_a_slow_replicators_window_opens_after_its_start_up_and_lasts_at_most_its_longest(monkeypatch):
    from engine.bench import window

    monkeypatch.setattr(window, "time", _Clock())
    # 10 records a poll (a second): 10 % of 10,000 records would take 100 s to reach
    totals = [0, 0] + [10 * i for i in range(1, 200)]
    measured = window.measure_copy(_Alive(), _Offsets(totals), "t", 2, 10_000, 600.0, steady=True, longest_s=4.0)
    # the first record at the third poll; the window opens 5 s later and closes 4 s after that
    assert measured["startup_s"] == pytest.approx(3.0)
    assert measured["window_first_record"] == 60 and measured["window_last_record"] == 100
    assert measured["window_s"] == pytest.approx(4.0) and measured["window_records"] == 40


def test_the_ceilings_window_is_steady_or_for_a_quick_run_the_whole_load(monkeypatch):
    from engine.bench import window

    monkeypatch.setattr(window, "POLL_S", 0)
    steady = window.measure_load([_Alive()], _Offsets([0, 50, 120, 500, 950, 1000]), "t", 2, 1000, 60.0, [])
    assert steady["window_records"] == 830 and steady["target_broker_cores"] is None
    assert steady["machine_busy"] is None or 0 <= steady["machine_busy"] <= 1  # None: no tick passed
    assert steady["generator_cores"] >= 0
    # a --quick load may be written between two polls: the window then starts at the last empty one
    whole = window.measure_load([_Alive()], _Offsets([0, 0, 1000]), "t", 2, 1000, 60.0, [], steady=False)
    assert whole["window_records"] == 1000


def test_an_error_without_a_message_is_named_by_its_type():
    from engine.bench.settings import error_text

    assert error_text(TimeoutError()) == "TimeoutError"
    assert error_text(RuntimeError("broker gone\nmore")) == "broker gone\nmore"


def test_a_window_without_copying_is_an_error(monkeypatch):
    from engine.bench import window

    monkeypatch.setattr(window, "POLL_S", 0)
    with pytest.raises(window.BenchError, match="no record copied"):
        window.measure_copy(_Alive(), _Offsets([0, 1000]), "t", 2, 1000, 60.0, steady=True)


# -- the floor ----------------------------------------------------------------------------------


def test_floor_settings_are_the_c_loops():
    props = {**bench_properties("A1", "B", "a:1", "b:2", ["t"], 2, "lz4"),
             "mirror.engine.metrics.listen": "", "mirror.engine.loop": "c"}
    clients = floor.engine_clients(props, max_message_bytes=1048588)
    consumer, producer = clients["consumer"], clients["producer"]
    assert consumer["bootstrap.servers"] == "a:1" and producer["bootstrap.servers"] == "b:2"
    # the harness's tuning, in librdkafka's names, and what the engine decides itself
    assert consumer["fetch.min.bytes"] == "65536" and consumer["fetch.wait.max.ms"] == "100"
    assert consumer["isolation.level"] == "read_committed" and consumer["enable.auto.commit"] == "false"
    assert consumer["group.id"] == "mirror-engine-A1->B"
    assert producer["linger.ms"] == "20" and producer["batch.size"] == "262144"
    assert producer["compression.type"] == "lz4" and producer["message.max.bytes"] == "1048588"
    assert producer["acks"] == "all" and producer["enable.idempotence"] == "true"
    assert (clients["batch_size"], clients["poll_ms"]) == (2000, 200)


def test_floor_figures_add_the_two_passes():
    consume = {"records": 1_000_000, "cpu_s": 1.0, "wall_s": 4.0}
    produce = {"records": 500_000, "cpu_s": 1.5, "wall_s": 5.0}
    figures = floor.floor_figures(consume, produce, bytes_per_record=1000.0)
    assert figures["consume_cpu_us_per_record"] == 1.0 and figures["produce_cpu_us_per_record"] == 3.0
    assert figures["cpu_us_per_record"] == 4.0
    assert figures["cpu_s_per_gb"] == pytest.approx(4.0)  # 4 µs per 1000-byte record
    assert figures["consume_records_per_s"] == 250_000 and figures["produce_records_per_s"] == 100_000


def test_the_produce_pass_holds_a_chunk_that_stays_in_the_cache():
    assert floor.chunk_records(1100.0) == floor.CHUNK_BYTES // 1100
    assert floor.chunk_records(11_000.0) == 2000  # never less than one batch of the C loop
    assert floor.CHUNK_BYTES <= 16 * 2**20


def test_floor_marks_add_up_every_measured_interval():
    readings = iter([(1.0, 10.0), (1.5, 11.0), (2.0, 20.0), (2.25, 20.5)])
    now = [None]

    def cpu():
        now[0] = next(readings)
        return now[0][0]

    marks = floor.Marks(clock=lambda: now[0][1], cpu=cpu)
    marks("start"), marks("end"), marks("start"), marks("end")
    assert (marks.cpu_s, marks.wall_s, marks.intervals) == (0.75, 1.5, 2)
    assert floor.Marks().cpu() > 0  # this process's threads, from /proc


def test_threads_cpu_time_adds_up_the_threads_schedstat(tmp_path):
    from engine.bench.procstat import threads_cpu_ns

    for tid, ns in ((7, 1_500_000_000), (8, 250_000_000)):
        (tmp_path / "7" / "task" / str(tid)).mkdir(parents=True)
        (tmp_path / "7" / "task" / str(tid) / "schedstat").write_text(f"{ns} 123 45\n")
    assert threads_cpu_ns(7, tmp_path) == 1_750_000_000
    assert threads_cpu_ns(99, tmp_path) is None


def test_a_floor_pass_with_a_bad_spec_says_so_in_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text('{"pass": "both"}')
    assert floor.main([str(spec)]) == 2
    assert floor.main([str(tmp_path / "missing.json")]) == 2
    assert floor.main([]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "pass must be one of consume, produce, load" in lines[0]


def test_the_sweep_plot_is_drawn(tmp_path):
    points = [{"record_size": 1000, "partitions": 4, "tasks_max": w, "mb_per_s": 10.0 * w} for w in (1, 2)]
    points.append({"record_size": 1000, "partitions": 4, "tasks_max": 3, "error": "refused"})
    assert sweep_plot(tmp_path / "sweep.png", points) == tmp_path / "sweep.png"
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sweep_plot(tmp_path / "none.png", points[2:]) is None and not (tmp_path / "none.png").exists()


def test_sweep_plan_leaves_out_idle_workers():
    assert sweep_plan([1, 4], [1, 2], [100]) == [(100, 1, 1), (100, 4, 1), (100, 4, 2)]


def test_sizing_answer():
    points = [
        {"record_size": 1024, "partitions": 4, "tasks_max": 1, "mb_per_s": 40.0, "cpu_s_per_gb": 25.0},
        {"record_size": 1024, "partitions": 4, "tasks_max": 2, "mb_per_s": 60.0, "cpu_s_per_gb": 30.0},
        {"record_size": 1024, "partitions": 2, "tasks_max": 2, "error": "boom"},
    ]
    [answer] = sizing(points, 100.0)
    assert answer["mb_per_s_per_worker"] == 40.0
    assert answer["cpu_s_per_gb"] == 25.0
    assert answer["cores"] == 3  # 100 MB/s × 25 CPU-s/GB = 2.5 cores
    assert answer["workers"] == 3  # 100 / 40 per worker = 2.5
    assert answer["best_measured_at"] == {"partitions": 4, "workers": 2}
    assert answer["answer"] == ("1 KiB records: 3 workers on 3 cores for 100 MB/s (measured 40.0 MB/s per "
                                "worker, 25.0 CPU-s/GB; give the topics at least 3 partitions)")
    assert sizing(points, 40.0)[0]["workers"] == 1


def test_command_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings, partitions, workers = settings_from(parser.parse_args(["--quick", "--record-size", "100,1k",
                                                                     "--record-size", "10k"]))
    assert (settings.records, settings.runs, settings.warmup, settings.window_s) == (20_000, 1, False, 0.0)
    assert settings.record_sizes == [100, 1024, 10240]
    assert settings.compressions == ["none", "lz4"]
    settings, partitions, workers = settings_from(parser.parse_args(["--sweep"]))
    assert (partitions, workers, settings.record_sizes, settings.runs) == ([2, 4], [1, 2], [100, 1024], 1)
    assert settings.latency is False
    with pytest.raises(ValueError):
        settings_from(parser.parse_args(["--partitions", "2,4"]))
    settings, _, _ = settings_from(parser.parse_args([]))
    assert (settings.window_s, settings.warmup, settings.runs) == (10.0, True, 3)
    assert settings.replicators == ["ceiling", "floor", "mm2-defaults", "mm2-tuned", "franz", "python", "c"]
    assert settings_from(parser.parse_args(["--replicators", "mm2,c"]))[0].replicators == [
        "mm2-defaults", "mm2-tuned", "c"]
    with pytest.raises(ValueError):
        settings_from(parser.parse_args(["--window-seconds", "-1"]))


# -- --compare ----------------------------------------------------------------------------------


def _report(path, summary, latency=()):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"summary": summary, "latency": list(latency)}))
    return path


def test_compare_gives_each_figure_as_a_ratio_to_the_earlier_run(tmp_path):
    from engine.bench import compare

    earlier = _report(tmp_path / "earlier", [
        {"record_size": 1024, "compression": "none", "replicator": "c", "records_per_s": 200.0, "mb_per_s": 2.0,
         "cpu_s_per_gb": 4.0, "cpu_vs_floor": 2.0, "cores_used": 0.5, "peak_rss_total_bytes": 100 * 2**20},
        {"record_size": 1024, "compression": "lz4", "replicator": "c", "records_per_s": 1.0},
        {"record_size": 1024, "compression": "none", "replicator": "mm2", "records_per_s": 50.0}],
        [{"record_size": 1024, "compression": "none", "replicator": "c", "p50_ms": 10.0, "p99_ms": 100.0,
          "max_ms": 200.0}])
    later = _report(tmp_path / "later", [
        # the same replicator at another record size is another row
        {"record_size": 100, "compression": "none", "replicator": "c", "records_per_s": 999.0},
        {"record_size": 1024, "compression": "none", "replicator": "c", "records_per_s": 300.0, "mb_per_s": 3.0,
         "cpu_s_per_gb": 3.0, "cpu_vs_floor": 1.5, "cores_used": 0.5, "peak_rss_total_bytes": 150 * 2**20},
        {"record_size": 1024, "compression": "none", "replicator": "mm2-tuned", "records_per_s": 60.0}],
        [{"record_size": 1024, "compression": "none", "replicator": "c", "p50_ms": 5.0, "p99_ms": 40.0,
          "max_ms": 50.0}])
    result = compare.compare(compare.load_results(earlier), compare.load_results(later))
    [row] = result["throughput"]["rows"]
    assert (row["record_size"], row["compression"], row["replicator"]) == (1024, "none", "c")
    assert row["ratios"] == {"records_per_s": 1.5, "mb_per_s": 1.5, "cpu_s_per_gb": 0.75, "cpu_vs_floor": 0.75,
                             "cores_used": 1.0, "peak_rss_total_bytes": 1.5}
    assert result["throughput"]["only_earlier"] == [(1024, "lz4", "c"), (1024, "none", "mm2")]
    assert result["throughput"]["only_later"] == [(100, "none", "c"), (1024, "none", "mm2-tuned")]
    [latency] = result["latency"]["rows"]
    assert latency["ratios"] == {"p50_ms": 0.5, "p99_ms": 0.4, "max_ms": 0.25}
    text = compare.compare_text(result, "earlier")
    assert "| 1 KiB | none | c | 1.50× (200 → 300) | 1.50× (2.00 → 3.00) | 0.75× (4.00 → 3.00) |" in text
    assert "1.50× (100 → 150) |" in text  # peak RSS in MiB
    assert "rows only in the earlier run: c 1 KiB lz4, mm2 1 KiB none" in text
    unrelated = compare.compare({"summary": [{"record_size": 10240, "compression": "none", "replicator": "c"}]},
                                compare.load_results(later))
    assert "No rows in common" in compare.compare_text(unrelated, "earlier")


def test_compare_of_a_missing_or_foreign_report_is_one_clear_error(tmp_path):
    from engine.bench import compare

    with pytest.raises(compare.CompareError, match="no results.json"):
        compare.load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(compare.CompareError, match="not readable as JSON"):
        compare.load_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"kind": "mirror-engine bench --sweep", "points": []}))
    with pytest.raises(compare.CompareError, match="no summary"):
        compare.load_results(tmp_path / "results.json")


def test_bench_compare_command_exits_2_with_one_line(tmp_path, capsys):
    from engine.bench.command import run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--compare", str(tmp_path / "nothing")])) == 2
    assert run(parser.parse_args(["--current", str(tmp_path)])) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("mirror-engine bench: ") for line in errors)
    summary = [{"record_size": 100, "compression": "none", "replicator": "c", "records_per_s": 10.0}]
    _report(tmp_path / "a", summary)
    _report(tmp_path / "b", [{**summary[0], "records_per_s": 20.0}])
    assert run(parser.parse_args(["--compare", str(tmp_path / "a"), "--current", str(tmp_path / "b")])) == 0
    assert "| 100 B | none | c | 2.00× (10.00 → 20.00) |" in capsys.readouterr().out


# -- the franz-go relay -------------------------------------------------------------------------


def test_the_relay_is_built_once_and_again_only_when_its_sources_change(tmp_path):
    from engine.bench import franz

    sources = tmp_path / "src"
    sources.mkdir()
    for name in franz.SOURCES:
        (sources / name).write_text(name)
    calls = []
    go = tmp_path / "go"
    # a stand-in `go build -o <binary> .` that records its environment and writes the binary
    go.write_text("#!/bin/sh\necho \"$GOPATH $GOCACHE $GOFLAGS\" >> " + str(tmp_path / "calls") + "\n"
                  "echo built > \"$3\"\n")
    go.chmod(0o755)
    cache = tmp_path / "cache"
    binary = franz.relay_binary(cache, sources, str(go))
    assert binary == cache / "franz-relay" / "franz-relay" and binary.read_text() == "built\n"
    assert franz.relay_binary(cache, sources, str(go)) == binary
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"{cache / 'go'} {cache / 'go' / 'build-cache'} -mod=readonly -modcacherw -buildvcs=false"]
    (sources / "main.go").write_text("changed")
    franz.relay_binary(cache, sources, str(go))
    assert len((tmp_path / "calls").read_text().splitlines()) == 2


def test_a_failed_relay_build_is_one_line_naming_go_builds_last_words(tmp_path):
    from engine.bench import franz

    sources = tmp_path / "src"
    sources.mkdir()
    for name in franz.SOURCES:
        (sources / name).write_text(name)
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\necho 'main.go:3: syntax error' >&2\nexit 1\n")
    go.chmod(0o755)
    with pytest.raises(franz.RelayUnavailable) as raised:
        franz.relay_binary(tmp_path / "cache", sources, str(go))
    assert str(raised.value) == ("building the franz-go relay failed (go build exit code 1): "
                                 "main.go:3: syntax error")


def test_without_go_the_franz_row_is_left_out_with_one_line(monkeypatch):
    from engine.bench import franz, harness

    monkeypatch.setattr(franz, "find_go", lambda: None)
    monkeypatch.setattr(harness, "kafka_libs", lambda: None)
    settings = Settings(replicators=["floor", "franz", "c"])
    said = []
    harness.fetch_tools(settings, said.append)
    assert settings.replicators == ["floor", "c"]
    assert said == ["mirror-engine bench: no Go toolchain found (`go` on PATH): the franz-go relay row is left out"]


def test_the_relay_spec_names_both_clusters_topics_and_compression():
    from engine.bench.franz import relay_spec

    assert relay_spec("s:1", "t:2", "topic", "A1.topic", "lz4", {"ca": "ca.pem"}) == {
        "source": {"bootstrap": "s:1", "security": {"ca": "ca.pem"}},
        "target": {"bootstrap": "t:2", "security": {}},
        "topic": "topic", "target_topic": "A1.topic", "compression": "lz4"}


# -- --security ---------------------------------------------------------------------------------


def test_one_sandbox_pair_serves_every_security_mode_asked_for():
    from engine.bench.security import sandbox_options

    assert sandbox_options(["plaintext"]) == {}
    assert sandbox_options(["plaintext", "tls"]) == {"tls": True}
    assert sandbox_options(["plaintext", "mtls"]) == {"tls": True, "mtls": True}
    # tls rows present no certificate, mtls rows do: the SSL listener asks for one without requiring it
    both = sandbox_options(["plaintext", "tls", "mtls", "sasl_ssl-scram"])
    assert both["broker_properties"] == {"listener.name.ssl.ssl.client.auth": "requested"}
    assert "mtls" not in both and both["sasl"].users["mebench"] == "mebench-sandbox-only"


def test_security_rows_get_their_listener_and_client_settings_for_both_clusters(tmp_path):
    from engine.bench.clusters import Clusters
    from engine.bench.security import client_security

    class _Cluster:
        bootstrap_servers, tls_bootstrap_servers, sasl_bootstrap_servers = "h:1", "h:2", "h:3"
        ca_file = tmp_path / "ca.pem"

    tls = client_security(_Cluster(), "tls")
    assert (tls.servers, tls.properties, tls.relay) == (
        "h:2", {"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(tmp_path / "ca.pem")}, {"ca": str(tmp_path / "ca.pem")})
    scram = client_security(_Cluster(), "sasl_ssl-scram")
    assert scram.servers == "h:3" and scram.properties["security.protocol"] == "SASL_SSL"
    assert scram.properties["sasl.mechanism"] == scram.relay["sasl_mechanism"] == "SCRAM-SHA-512"
    clusters = Clusters(say=lambda _: None, security_modes=["plaintext", "tls"])
    clusters.source_servers, clusters.target_servers = "h:1", "t:1"
    clusters.clients = {("source", "plaintext"): client_security(_Cluster(), "plaintext"),
                        ("target", "plaintext"): client_security(_Cluster(), "plaintext"),
                        ("source", "tls"): tls, ("target", "tls"): tls}
    props = clusters.properties(["t"], 2, "none", "A1", mode="tls")
    assert props["A1.bootstrap.servers"] == props["B.bootstrap.servers"] == "h:2"
    assert props["A1.security.protocol"] == props["B.security.protocol"] == "SSL"
    assert "A1.security.protocol" not in clusters.properties(["t"], 2, "none", "A1")


def test_security_rows_are_rows_of_their_own_with_their_own_floor():
    from engine.bench.report import row_name

    runs = [{**_run("floor", None, 1.0, run=1), "cpu_s_per_gb": 2.0},
            {**_run("c", 1000, 1.0, run=1), "cpu_s_per_gb": 4.0},
            {**_run("floor", None, 1.0, run=1), "cpu_s_per_gb": 4.0, "security": "tls"},
            {**_run("c", 1000, 1.0, run=1), "cpu_s_per_gb": 6.0, "security": "tls"}]
    summary = report.summarise(runs)
    assert [row_name(e) for e in summary] == ["floor", "c", "floor · tls", "c · tls"]
    assert [e["cpu_vs_floor"] for e in summary] == [1.0, 2.0, 1.0, 1.5]


def test_security_needs_the_sandbox_clusters():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings, _, _ = settings_from(parser.parse_args(["--security", "tls,mtls"]))
    assert settings.securities == ["plaintext", "tls", "mtls"]
    with pytest.raises(ValueError, match="--security runs on the benchmark's own sandbox clusters"):
        settings_from(parser.parse_args(["--security", "tls", "--source-bootstrap", "s:1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--security", "ssl"])


# -- schedule: steps, estimate, resume ------------------------------------------------------------


def test_steps_are_the_throughput_runs_then_the_latency_curve():
    from engine.bench.schedule import steps

    settings = Settings(record_sizes=[100, 1024], compressions=["none"], runs=1, replicators=["ceiling", "c"],
                        latency_loads=[0.25, 0.5], latency_record_sizes=[1024])
    planned = steps(settings)
    assert [s.key for s in planned] == [
        "100-none/plaintext/ceiling-0", "100-none/plaintext/c-0", "100-none/plaintext/ceiling-1",
        "100-none/plaintext/c-1", "1024-none/plaintext/ceiling-0", "1024-none/plaintext/c-0",
        "1024-none/plaintext/ceiling-1", "1024-none/plaintext/c-1", "latency/1024-none/c-25", "latency/1024-none/c-50"]


def test_the_estimate_adds_the_clusters_each_cases_preload_and_each_steps_window():
    from engine.bench.schedule import estimate_s, estimate_total_s, steps

    settings = Settings(record_sizes=[1024], compressions=["none"], runs=1, replicators=["mm2-tuned", "c"],
                        window_s=10.0, latency_seconds=15.0)
    planned = steps(settings)
    by_key = {s.key: estimate_s(s, settings) for s in planned}
    assert by_key["1024-none/plaintext/c-1"] == 10.0 + 1.5 * 10  # start-up + the fast window
    assert by_key["1024-none/plaintext/mm2-tuned-1"] == 45.0 + 2 * 10 + 5  # slow: cut off at 5 s + 2 windows
    assert by_key["latency/1024-none/c-50"] == 30.0 + 10.0 + 15.0
    assert estimate_total_s(planned, settings) == 40.0 + (10.0 + 3 * 10) + sum(by_key.values())


def test_make_bench_is_estimated_within_25_minutes():
    """`make bench`'s settings (Makefile BENCH_QUICK_ARGS) fit its 25 minutes, fast-path micro-benchmarks aside."""
    from engine.bench.schedule import estimate_total_s, steps

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    [line] = [line for line in makefile.splitlines() if line.startswith("BENCH_QUICK_ARGS")]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings, _, _ = settings_from(parser.parse_args(line.split(":=", 1)[1].split()))
    assert settings.record_sizes == [1024, 100] and settings.compressions == ["none"]
    assert set(settings.replicators) == {"ceiling", "floor", "mm2-defaults", "mm2-tuned", "franz", "python", "c"}
    assert settings.latency and settings.latency_loads == [0.5]
    assert estimate_total_s(steps(settings), settings) <= 23 * 60


def test_a_rerun_with_the_same_folder_skips_what_finished_and_warms_up_again(tmp_path):
    from engine.bench.schedule import Journal, JournalMismatch, steps

    settings = Settings(record_sizes=[1024], compressions=["none"], runs=2, replicators=["c"])
    planned = steps(settings)
    journal = Journal(tmp_path, settings)
    assert journal.pending(planned) == planned
    for step in planned[:2]:  # the warm-up and run 1
        journal.record(step, {"replicator": "c", "run": step.run})
    journal.record_case({"record_size": 1024, "compression": "none", "records": 10, "preload_s": 1.0})
    again = Journal(tmp_path, settings)
    assert [s.key for s in again.pending(planned)] == [
        "1024-none/plaintext/c-0", "1024-none/plaintext/c-2", "latency/1024-none/c-50"]
    assert again.results(planned, "throughput") == [{"replicator": "c", "run": 0}, {"replicator": "c", "run": 1}]
    assert list(again.cases.values()) == [{"record_size": 1024, "compression": "none", "records": 10,
                                            "preload_s": 1.0}]
    with pytest.raises(JournalMismatch, match=r"holds a run with other settings \(they differ in runs\)"):
        Journal(tmp_path, Settings(record_sizes=[1024], compressions=["none"], runs=3, replicators=["c"]))
