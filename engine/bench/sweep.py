"""Capacity planning: mirror-engine (C loop) over partitions × workers × record size, and a sizing answer.

The answer per record size is read off the best measured points: MB/s one worker moved
(max over points of MB/s ÷ workers) and CPU per GB (min over points). For a wanted rate X MB/s:
cores = ⌈X × CPU-s/GB ÷ 1000⌉, workers = max(⌈X ÷ MB/s per worker⌉, cores), partitions ≥ workers
(a worker owns whole partitions). On a machine that also runs the brokers, both are pessimistic.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.bench import plots, report
from engine.bench.clusters import Clusters
from engine.bench.harness import environment
from engine.bench.rows import Case, preload_case, throughput_run
from engine.bench.settings import Settings, error_text, failure_log
from engine.progress import on_terminal

SWEEP_REPLICATOR = "c"


def sweep_plan(partitions: list[int], workers: list[int], record_sizes: list[int]) -> list[tuple[int, int, int]]:
    """(record size, partitions, workers) points; a point with more workers than partitions is left out,
    since the extra workers would own nothing."""
    return [(size, p, w) for size in record_sizes for p in partitions for w in workers if w <= p]


def sizing(points: list[dict], target_mb_per_s: float) -> list[dict]:
    """The sizing answer per record size from measured points (see the module docstring)."""
    answers = []
    for size in sorted({p["record_size"] for p in points}):
        measured = [p for p in points if p["record_size"] == size and not p.get("error")
                    and p.get("mb_per_s") and p.get("cpu_s_per_gb")]
        if not measured:
            continue
        best = max(measured, key=lambda p: p["mb_per_s"] / p["tasks_max"])
        per_worker = best["mb_per_s"] / best["tasks_max"]
        cpu_per_gb = min(p["cpu_s_per_gb"] for p in measured)
        cores = max(1, math.ceil(target_mb_per_s * cpu_per_gb / 1000 - 1e-9))
        workers = max(math.ceil(target_mb_per_s / per_worker - 1e-9), cores)
        fastest = max(measured, key=lambda p: p["mb_per_s"])
        answers.append({
            "record_size": size, "target_mb_per_s": target_mb_per_s,
            "mb_per_s_per_worker": per_worker, "cpu_s_per_gb": cpu_per_gb,
            "cores": cores, "workers": workers, "min_partitions": workers,
            "best_measured_mb_per_s": fastest["mb_per_s"],
            "best_measured_at": {"partitions": fastest["partitions"], "workers": fastest["tasks_max"]},
            "answer": (f"{report.size_text(size)} records: {workers} workers on {cores} cores for "
                       f"{target_mb_per_s:g} MB/s (measured {per_worker:.1f} MB/s per worker, "
                       f"{cpu_per_gb:.1f} CPU-s/GB; give the topics at least {workers} partitions)"),
        })
    return answers


def sweep_table(points: list[dict]) -> str:
    lines = [("| record | partitions | workers | records/s | MB/s | MB/s per worker | CPU-s/GB | cores | "
             "peak RSS total MiB |"), "|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        if p.get("error"):
            lines.append(f"| {report.size_text(p['record_size'])} | {p['partitions']} | {p['tasks_max']} "
                         f"| failed | | | | | |")
            continue
        lines.append(
            f"| {report.size_text(p['record_size'])} | {p['partitions']} | {p['tasks_max']} "
            f"| {report.num_text(p['records_per_s'], 0)} | {report.num_text(p['mb_per_s'])} "
            f"| {report.num_text(p['mb_per_s'] / p['tasks_max'])} | {report.num_text(p['cpu_s_per_gb'])} "
            f"| {report.num_text(p['cores_used'], 2)} | {p['peak_rss_total_bytes'] / 2**20:,.0f} |")
    return "\n".join(lines)


def sweep_plot(path: Path, points: list[dict]) -> Path | None:
    measured = [p for p in points if not p.get("error")]
    if not measured:
        return None
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for size in sorted({p["record_size"] for p in measured}):
        for partitions in sorted({p["partitions"] for p in measured}):
            line = sorted((p["tasks_max"], p["mb_per_s"]) for p in measured
                          if p["record_size"] == size and p["partitions"] == partitions)
            if line:
                ax.plot([x for x, _ in line], [y for _, y in line], marker="o",
                        label=f"{report.size_text(size)}, {partitions} partitions")
    ax.set_xlabel("workers (tasks.max)")
    ax.set_ylabel("MB/s (key+value+headers)")
    ax.set_title("mirror-engine (C loop): throughput by workers")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_sweep(settings: Settings, partitions: list[int], workers: list[int], clusters: Clusters, out: Path,
              target_mb_per_s: float, say: Callable[[str], None]) -> dict:
    from tqdm import tqdm

    points = sweep_plan(partitions, workers, settings.record_sizes)
    compression = settings.compressions[0]
    results: list[dict] = []
    steps = ([("warm-up", points[0])] if settings.warmup and points else []) + [
        (f"run {r}/{settings.runs}", point) for point in points for r in range(1, settings.runs + 1)]
    measured: dict[tuple[int, int, int], list[dict]] = {}
    cases: dict[tuple[int, int], Case] = {}  # (record size, partitions): one preloaded topic each
    with tqdm(total=len(steps), unit="run", dynamic_ncols=True, disable=not on_terminal(sys.stderr)) as bar:
        for index, (what, (size, p, w)) in enumerate(steps):
            label = f"sweep {report.size_text(size):>6} P={p} workers={w} {what}"
            bar.set_description(label)
            # the sweep sizes no topic: each point's window is its whole copy of --records, as before
            point_settings = replace(settings, partitions=p, tasks_max=w, window_s=0.0)
            folder = out / "runs" / f"{size}-p{p}-w{w}-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                case = cases.get((size, p))
                if case is None:
                    case = cases[(size, p)] = Case(size, compression, f"{clusters.prefix}sweep-{size}-p{p}")
                    preload_case(clusters, case, settings.records, p)
                run = throughput_run(clusters, SWEEP_REPLICATOR, case, point_settings, folder,
                                     index, warmup=what == "warm-up")
                line = (f"{run['mb_per_s']:,.1f} MB/s, {run['cpu_s_per_gb']:,.1f} CPU-s/GB, "
                        f"{run['cores_used']:.2f} cores")
            except Exception as error:  # noqa: BLE001 - one failed point is reported, the others still run
                failure_log(folder, error)
                run = {"record_size": size, "partitions": p, "tasks_max": w, "error": error_text(error),
                       "warmup": what == "warm-up"}
                line = "FAILED: " + error_text(error).splitlines()[0]
            results.append(run)
            if what != "warm-up":
                measured.setdefault((size, p, w), []).append(run)
            bar.write(f"{label}: {line}")
            bar.update()
    clusters.delete_topics(clusters.source_servers, [case.topic for case in cases.values()])
    summary = []
    for (size, p, w), runs in measured.items():
        ok = [r for r in runs if not r.get("error")]
        if not ok:
            summary.append({"record_size": size, "partitions": p, "tasks_max": w, "error": runs[0]["error"]})
            continue
        entry: dict[str, Any] = {"record_size": size, "partitions": p, "tasks_max": w, "runs": len(ok)}
        for name in report.MEDIAN_FIELDS:
            values = [r[name] for r in ok if r.get(name) is not None]
            entry[name] = statistics.median(values) if values else None
        summary.append(entry)
    return {"kind": "mirror-engine bench --sweep", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "environment": environment(settings), "replicator": SWEEP_REPLICATOR, "compression": compression,
            "points": summary, "sizing": sizing(summary, target_mb_per_s), "runs": results}


def write_sweep_report(folder: Path, document: dict) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": report.write_json(folder / "sweep.json", document)}
    plot = sweep_plot(folder / "sweep.png", document["points"])
    env = document["environment"]
    parts = ["# mirror-engine bench --sweep", "",
             (f"{document['created']} · {env['cpus']} CPUs ({env['cpu_model']}) · mirror-engine "
             f"{document['replicator']} loop · compression {document['compression']} · "
             f"{env['settings']['records']:,} records per run, median of {env['settings']['runs']} run(s)"), "",
             sweep_table(document["points"]), "", "## Sizing", ""]
    parts += [f"- {a['answer']}" for a in document["sizing"]] or ["- no point was measured"]
    parts += ["", __doc__.strip().split("\n\n", 1)[1].replace("\n", " ")]
    if plot is not None:
        parts += ["", f"![sweep]({plot.name})"]
        written["plot"] = plot
    markdown = folder / "sweep.md"
    markdown.write_text("\n".join(parts) + "\n")
    written["markdown"] = markdown
    return written
