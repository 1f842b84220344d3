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
from engine.bench.report import write_json
from engine.bench.rows import Case, copy_timeout, preload_case, records_for_window, relative, throughput_run
from engine.bench.schedule import CLUSTERS_S, Journal, Step, case_estimate_s, estimate_s, estimate_total_s, steps
from engine.bench.security import PLAINTEXT
from engine.bench.settings import Settings, error_text, failure_log
from engine.progress import on_terminal
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
    return " ".join((module.__doc__ or "").strip().split("\n\n")[1].replace("\n", " ") for module in (rows, window))


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


def run_benchmark(settings: Settings, clusters: Clusters, out: Path, say: Callable[[str], None],
                  journal: Journal | None = None) -> dict:
    """Every pending step (schedule.py), each recorded in the journal and results.json as it ends;
    returns the report document. The progress bar counts estimated seconds."""
    from tqdm import tqdm

    journal = journal or Journal(out, settings)
    planned = steps(settings)
    pending = journal.pending(planned)
    estimate = estimate_total_s(pending, settings) - CLUSTERS_S  # the clusters run already
    started = time.monotonic()
    cases: dict[tuple[int, str], Case] = {}
    with tqdm(total=round(estimate), unit="s", dynamic_ncols=True, disable=not on_terminal(sys.stderr),
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} of ~{total_fmt} estimated") as bar:
        for index, step in enumerate(pending):
            label = step_label(step, settings)
            bar.set_description(label)
            step_started = time.monotonic()
            if step.kind == "throughput":
                case = prepare_case(cases, step, journal, planned, clusters, settings, bar)
                result = measured_run(clusters, step, case, settings, out)
                later = pending[index + 1:]
                if not any(s.kind == "throughput" and s.case == step.case for s in later):
                    clusters.delete_topics(clusters.source_servers, [case.topic])
            else:
                result = latency_step(clusters, step, settings, journal.results(planned, "throughput"), out)
            # what the step took, preload included: the estimate's constants are checked against it
            result["step_s"] = time.monotonic() - step_started
            journal.record(step, result)
            write_json(out / "results.json", document(settings, clusters, journal, planned))
            bar.write(f"{label}: {result_line(result)}")
            bar.update(round(estimate_s(step, settings)))
    say(f"the runs took {(time.monotonic() - started) / 60:.1f} min (estimated {estimate / 60:.0f} min)")
    return document(settings, clusters, journal, planned)


def step_label(step: Step, settings: Settings) -> str:
    size = report.size_text(step.record_size)
    if step.kind == "latency":
        return f"latency {step.replicator:<12} {size:>6} {step.compression} at {step.load_share:.0%} load"
    row = step.replicator if step.security == PLAINTEXT else f"{step.replicator} {step.security}"
    return f"{row:<12} {size:>6} {step.compression:<4} " + (
        "warm-up" if step.run == 0 else f"run {step.run}/{settings.runs}")


def prepare_case(cases: dict[tuple[int, str], Case], step: Step, journal: Journal, planned: list[Step],
                 clusters: Clusters, settings: Settings, bar) -> Case:
    """The step's case: preloaded on first use; before each measured round topped up so that the
    fastest copy seen so far (the warm-up, then the measured rounds too) gets its steady window."""
    size, compression = step.case
    case = cases.get(step.case)
    if case is None:
        case = cases[step.case] = Case(size, compression,
                                       f"{clusters.prefix}tp-{size}-{compression}-{uuid.uuid4().hex[:6]}")
        bar.set_description(f"preloading {report.size_text(size)} {compression}")
        preload_case(clusters, case, settings.records, settings.partitions)
        bar.write(f"preloaded {case.records:,} records of {report.size_text(size)} ({compression}) "
                  f"in {case.preload_s:.0f} s")
        bar.update(round(case_estimate_s(settings)))
        journal.record_case(case.entry())
    if settings.warmup and step.run > case.sized_for_round:
        case.sized_for_round = step.run
        seen = [r for r in journal.results(planned, "throughput") if (r["record_size"], r["compression"]) == step.case]
        wanted = records_for_window(seen, case.records, case.bytes_per_record, settings)
        if wanted > case.records:
            bar.set_description(f"topping up {report.size_text(size)} {compression}")
            before = case.records
            preload_case(clusters, case, wanted, settings.partitions)
            bar.write(f"topped up to {case.records:,} records for a {settings.window_s:g} s steady window "
                      f"of the fastest copy so far: {case.records - before:,} more")
            journal.record_case(case.entry())
        case.timeout_s = copy_timeout(seen, case.records, settings)
        case.ceiling_records = records_for_window(seen, case.records, case.bytes_per_record, settings,
                                                  rows=("ceiling",))
    return case


def measured_run(clusters: Clusters, step: Step, case: Case, settings: Settings, out: Path) -> dict:
    """One throughput run; a failed run is reported with its error, and the others still run."""
    row = step.replicator if step.security == PLAINTEXT else f"{step.replicator}-{step.security}"
    folder = out / "runs" / f"{step.record_size}-{step.compression}" / f"{row}-{step.run}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return throughput_run(clusters, step.replicator, case, settings, folder, step.run, warmup=step.run == 0,
                              mode=step.security)
    except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
        failure_log(folder, error)
        return {"replicator": step.replicator, "record_size": step.record_size, "compression": step.compression,
                "run": step.run, "security": step.security, "warmup": step.run == 0, "error": error_text(error),
                "folder": relative(folder)}


def latency_step(clusters: Clusters, step: Step, settings: Settings, runs: list[dict], out: Path) -> dict:
    rate, basis = latency_rate(runs, step.record_size, step.compression, step.load_share)
    folder = out / "latency" / f"{step.replicator}-{step.record_size}-{round(step.load_share * 100)}"
    try:
        result = latency_run(clusters, step.replicator, step.record_size, step.compression, settings, rate,
                             folder, step.load_share)
        return {**result, "rate_basis": basis}
    except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
        failure_log(out / "latency", error)
        return {"replicator": step.replicator, "record_size": step.record_size, "compression": step.compression,
                "offered_records_per_s": rate, "load_share": step.load_share, "rate_basis": basis,
                "error": error_text(error)}


def result_line(result: dict) -> str:
    """One finished step on the console."""
    if result.get("error"):
        return "FAILED: " + result["error"].splitlines()[0]
    if "p99_ms" in result:
        return (f"{result['offered_records_per_s']:,.0f} records/s offered ({result['rate_basis']}): "
                f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    return run_line(result)


def document(settings: Settings, clusters: Clusters, journal: Journal, planned: list[Step]) -> dict:
    """The report document of every step finished so far, in plan order."""
    runs = journal.results(planned, "throughput")
    return {"kind": "mirror-engine bench", "cases": list(journal.cases.values()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(settings),
            "clusters": {"mode": "external" if clusters.external else "sandbox",
                         "source_alias": clusters.source_alias, "target_alias": clusters.target_alias},
            "units": {"MB": "10^6 bytes", "GB": "10^9 bytes",
                      "mb_per_s": "key + value + header bytes per second",
                      "value_mb_per_s": "value bytes per second (what MM2's byte-rate counts)",
                      "cpu_s_per_gb": "CPU-seconds (utime+stime of every replicator process) per GB of "
                                      "key+value+header bytes"},
            "method": {"window": window_method(), "latency": LATENCY_METHOD},
            "summary": report.summarise(runs), "latency": journal.results(planned, "latency"), "runs": runs}
