"""Runs the benchmark: the planned throughput runs of every case and row, then the latency phase.

The parts: settings.py (rows, settings), clusters.py (the two clusters), rows.py (one run of one
row on a case's preloaded topic), window.py (its measured window), latency.py (the latency phase),
report.py (the summary, the report and the plots).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from engine.bench import franz, report, rows, window
from engine.bench.clusters import Clusters
from engine.bench.engine_runner import honours_compression
from engine.bench.latency import LATENCY_METHOD, latency_rate, latency_run
from engine.bench.mm2 import MM2_VARIANTS, cpu_count, mirror_maker_libs
from engine.bench.security import PLAINTEXT
from engine.bench.rows import Case, copy_timeout, preload_case, records_for_window, relative, throughput_run
from engine.bench.settings import COPIERS, REPLICATORS, Settings, error_text, failure_log
from engine.sandbox.distribution import kafka_libs


def environment(settings: Settings) -> dict:
    return {
        "cpus": cpu_count(),
        "cpu_model": _cpu_model(),
        "kafka_version": "4.3.1",
        "python": sys.version.split()[0],
        "engine_honours_compression": honours_compression(),
        "settings": {k: v for k, v in vars(settings).items()},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def fetch_tools(settings: Settings, say: Callable[[str], None]) -> None:
    """The Kafka jars, MM2's when an MM2 row runs, the franz-go relay when its row runs: a row whose
    tool cannot be had here (no Go) is left out with one line saying why."""
    kafka_libs()
    if any(r in MM2_VARIANTS for r in settings.replicators):
        mirror_maker_libs()
    if "franz" in settings.replicators:
        try:
            franz.relay_binary()
        except franz.RelayUnavailable as error:
            say(f"mirror-engine bench: {error}")
            settings.replicators = [r for r in settings.replicators if r != "franz"]


def window_method() -> str:
    """How the topic is sized and the window read: the second paragraphs of rows.py and window.py."""
    return " ".join(module.__doc__.strip().split("\n\n")[1].replace("\n", " ") for module in (rows, window))


def plan(settings: Settings) -> list[tuple[int, str, int, str, str]]:
    """(record size, compression, run index, security mode, replicator) in execution order; run 0 is
    the warm-up. Rows take turns within each run so that drift of the machine spreads over all of them."""
    order = [r for r in REPLICATORS if r in settings.replicators]
    first_run = 0 if settings.warmup else 1
    return [(size, compression, run, mode, replicator)
            for size in settings.record_sizes for compression in settings.compressions
            for run in range(first_run, settings.runs + 1) for mode in settings.securities for replicator in order]


def run_line(result: dict) -> str:
    """One finished run on the console."""
    if result["replicator"] == "floor":
        return (f"consume-only {report.num_text(result['consume_cpu_us_per_record'], 2)} + produce-only "
                f"{report.num_text(result['produce_cpu_us_per_record'], 2)} CPU-µs/record = "
                f"{report.num_text(result['cpu_s_per_gb'])} CPU-s/GB")
    line = f"{report.num_text(result['records_per_s'], 0)} records/s, {report.num_text(result['mb_per_s'])} MB/s"
    if result.get("cpu_s") is not None:
        line += (f", {report.num_text(result['cpu_s_per_gb'])} CPU-s/GB, "
                 f"peak RSS {result['peak_rss_total_bytes'] / 2**20:,.0f} MiB, window {result['window_s']:.1f} s "
                 f"({result['window_records']:,} records)")
    return line


def run_benchmark(settings: Settings, clusters: Clusters, out: Path, say: Callable[[str], None]) -> dict:
    """Every planned throughput run, then the latency phase; returns the report document."""
    from tqdm import tqdm

    runs: list[dict] = []
    latency: list[dict] = []
    cases: list[Case] = []
    steps = plan(settings)
    latency_cases = [(size, settings.compressions[0], r) for size in settings.record_sizes
                     for r in REPLICATORS if r in settings.replicators and r in COPIERS] if settings.latency else []
    with tqdm(total=len(steps) + len(latency_cases), unit="run", dynamic_ncols=True) as bar:
        case: Case | None = None
        for step, (size, compression, run_index, mode, replicator) in enumerate(steps):
            if case is None or (case.record_size, case.compression) != (size, compression):
                case = Case(size, compression, f"{clusters.prefix}tp-{size}-{compression}-{uuid.uuid4().hex[:6]}")
                cases.append(case)
                bar.set_description(f"preloading {report.size_text(size)} {compression}")
                preload_case(clusters, case, settings.records, settings.partitions)
                bar.write(f"preloaded {case.records:,} records of {report.size_text(size)} ({compression}) "
                          f"in {case.preload_s:.0f} s")
            if settings.warmup and run_index > case.sized_for_round:
                # before each measured round: sized by the fastest copy seen so far (the warm-up, then
                # the measured rounds too), so a window the warm-up sized short is not repeated
                case.sized_for_round = run_index
                seen = [r for r in runs if (r["record_size"], r["compression"]) == (size, compression)]
                wanted = records_for_window(seen, case.records, case.bytes_per_record, settings)
                if wanted > case.records:
                    bar.set_description(f"topping up {report.size_text(size)} {compression}")
                    before = case.records
                    preload_case(clusters, case, wanted, settings.partitions)
                    bar.write(f"topped up to {case.records:,} records for a {settings.window_s:g} s steady window "
                              f"of the fastest copy so far: {case.records - before:,} more")
                case.timeout_s = copy_timeout(seen, case.records, settings)
                case.ceiling_records = records_for_window(seen, case.records, case.bytes_per_record, settings,
                                                          rows=("ceiling",))
            row = replicator if mode == PLAINTEXT else f"{replicator} {mode}"
            label = f"{row:<12} {report.size_text(size):>6} {compression:<4} " + (
                "warm-up" if run_index == 0 else f"run {run_index}/{settings.runs}")
            bar.set_description(label)
            folder = out / "runs" / f"{size}-{compression}" / f"{row.replace(' ', '-')}-{run_index}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = throughput_run(clusters, replicator, case, settings, folder, run_index,
                                        warmup=run_index == 0, mode=mode)
                line = run_line(result)
            except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
                failure_log(folder, error)
                result = {"replicator": replicator, "record_size": size, "compression": compression, "run": run_index,
                          "security": mode, "warmup": run_index == 0, "error": error_text(error),
                          "folder": relative(folder)}
                line = "FAILED: " + error_text(error).splitlines()[0]
            runs.append(result)
            bar.write(f"{label}: {line}")
            bar.update()
            last_of_case = step + 1 == len(steps) or steps[step + 1][:2] != (size, compression)
            if last_of_case:
                clusters.delete_topics(clusters.source_servers, [case.topic])
        for size, compression, replicator in latency_cases:
            rate, basis = latency_rate(runs, size, compression)
            label = f"latency {replicator:<7} {report.size_text(size):>6} {compression}"
            bar.set_description(label)
            try:
                result = latency_run(clusters, replicator, size, compression, settings, rate,
                                     out / "latency" / f"{replicator}-{size}")
                result["rate_basis"] = basis
                line = f"{rate:,.0f} records/s offered ({basis}): p50 {result['p50_ms']:.1f} ms, " \
                       f"p99 {result['p99_ms']:.1f} ms"
            except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
                failure_log(out / "latency", error)
                result = {"replicator": replicator, "record_size": size, "compression": compression,
                          "offered_records_per_s": rate, "rate_basis": basis, "error": error_text(error)}
                line = "FAILED: " + error_text(error).splitlines()[0]
            latency.append(result)
            bar.write(f"{label}: {line}")
            bar.update()
    summary = report.summarise(runs)
    return {"kind": "mirror-engine bench",
            "cases": [{"record_size": c.record_size, "compression": c.compression, "records": c.records,
                       "preload_s": c.preload_s} for c in cases], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "environment": environment(settings),
            "clusters": {"mode": "external" if clusters.external else "sandbox",
                         "source_alias": clusters.source_alias, "target_alias": clusters.target_alias},
            "units": {"MB": "10^6 bytes", "GB": "10^9 bytes",
                      "mb_per_s": "key + value + header bytes per second",
                      "value_mb_per_s": "value bytes per second (what MM2's byte-rate counts)",
                      "cpu_s_per_gb": "CPU-seconds (utime+stime of every replicator process) per GB of "
                                      "key+value+header bytes"},
            "method": {"window": window_method(),
                       "latency": LATENCY_METHOD},
            "summary": summary, "latency": latency, "runs": runs}
