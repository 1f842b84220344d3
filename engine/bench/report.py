"""Statistics, ratios, JSON, Markdown and plots of benchmark runs.

Units: MB = 10^6 bytes, GB = 10^9 bytes. "Bytes" are key + value + header bytes of the records
(what a replicator moves); "value bytes" count values only, as MM2's `byte-rate` metric does.
Ratios are reported, never asserted.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

MB = 1e6
GB = 1e9
# the throughput metrics a summary keeps the median of
MEDIAN_FIELDS = ("records_per_s", "mb_per_s", "value_mb_per_s", "cpu_s", "cpu_s_per_gb", "cpu_s_per_value_gb",
                 "cores_used", "peak_rss_total_bytes", "max_rss_process_bytes", "duration_s")
REPLICATOR_ORDER = ("ceiling", "mm2", "python", "c")
REPLICATOR_LABELS = {"ceiling": "ceiling (Kafka perf tools)", "mm2": "Java MM2 4.3.1",
                     "python": "mirror-engine, Python loop", "c": "mirror-engine, C loop"}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cpu_seconds_per_gb(cpu_s: float, moved_bytes: float) -> float:
    """CPU-seconds spent per 10^9 bytes moved."""
    return cpu_s / (moved_bytes / GB)


def window_metrics(records: int, record_bytes: float, value_bytes: float, seconds: float,
                   cpu_s: float | None) -> dict[str, float | None]:
    """Rates of one measured window: `records` copied, holding these bytes, in `seconds`, using `cpu_s`."""
    return {
        "window_records": records,
        "duration_s": seconds,
        "records_per_s": records / seconds,
        "mb_per_s": record_bytes / MB / seconds,
        "value_mb_per_s": value_bytes / MB / seconds,
        "cpu_s": cpu_s,
        "cpu_s_per_gb": None if cpu_s is None else cpu_seconds_per_gb(cpu_s, record_bytes),
        "cpu_s_per_value_gb": None if cpu_s is None else cpu_seconds_per_gb(cpu_s, value_bytes),
        "cores_used": None if cpu_s is None else cpu_s / seconds,
    }


def case_key(run: dict) -> tuple[int, str, str]:
    return run["record_size"], run["compression"], run["replicator"]


def summarise(runs: list[dict]) -> list[dict]:
    """Median of every measured (non-warm-up) run per record size, compression and replicator."""
    groups: dict[tuple[int, str, str], list[dict]] = {}
    for run in runs:
        if not run.get("warmup") and run.get("error") is None:
            groups.setdefault(case_key(run), []).append(run)
    compressions = list(dict.fromkeys(run["compression"] for run in runs))  # in the order they ran
    summary = []
    for (size, compression, replicator), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], compressions.index(kv[0][1]), _order(kv[0][2]))):
        entry: dict = {"record_size": size, "compression": compression, "replicator": replicator,
                       "runs": len(members)}
        for name in MEDIAN_FIELDS:
            values = [m[name] for m in members if m.get(name) is not None]
            entry[name] = statistics.median(values) if values else None
        notes = sorted({note for m in members for note in m.get("notes", [])})
        if notes:
            entry["notes"] = notes
        summary.append(entry)
    add_ratios(summary)
    return summary


def _order(replicator: str) -> int:
    return REPLICATOR_ORDER.index(replicator) if replicator in REPLICATOR_ORDER else len(REPLICATOR_ORDER)


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def add_ratios(summary: list[dict]) -> None:
    """Adds, in place, records/s and CPU-s/GB relative to MM2 and records/s relative to the ceiling
    of the same record size and compression (None where the reference was not measured)."""
    by_case = {(e["record_size"], e["compression"], e["replicator"]): e for e in summary}
    for entry in summary:
        size, compression = entry["record_size"], entry["compression"]
        mm2 = by_case.get((size, compression, "mm2"), {})
        ceiling = by_case.get((size, compression, "ceiling"), {})
        entry["throughput_vs_mm2"] = _ratio(entry["records_per_s"], mm2.get("records_per_s"))
        entry["cpu_per_gb_vs_mm2"] = _ratio(entry["cpu_s_per_gb"], mm2.get("cpu_s_per_gb"))
        entry["throughput_vs_ceiling"] = _ratio(entry["records_per_s"], ceiling.get("records_per_s"))


def latency_summary(latencies_ms: list[float]) -> dict[str, float | int]:
    return {"samples": len(latencies_ms), "p50_ms": percentile(latencies_ms, 50),
            "p99_ms": percentile(latencies_ms, 99), "max_ms": max(latencies_ms),
            "mean_ms": statistics.fmean(latencies_ms)}


# -- presentation --------------------------------------------------------------------------------

def num_text(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f}"


def size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def markdown_table(summary: list[dict]) -> str:
    header = ("| record | compression | replicator | runs | records/s | MB/s | value MB/s | CPU-s/GB | cores "
              "| peak RSS total MiB | max RSS/process MiB | window s | vs MM2 | CPU/GB vs MM2 | vs ceiling |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for e in summary:
        lines.append(
            f"| {size_text(e['record_size'])} | {e['compression']} | {e['replicator']} | {e['runs']} "
            f"| {num_text(e['records_per_s'], 0)} | {num_text(e['mb_per_s'])} | {num_text(e['value_mb_per_s'])} "
            f"| {num_text(e['cpu_s_per_gb'])} | {num_text(e['cores_used'], 2)} | {_mib(e['peak_rss_total_bytes'])} "
            f"| {_mib(e['max_rss_process_bytes'])} | {num_text(e['duration_s'], 2)} "
            f"| {_ratio_text(e['throughput_vs_mm2'])} | {_ratio_text(e['cpu_per_gb_vs_mm2'])} "
            f"| {_ratio_text(e['throughput_vs_ceiling'])} |")
    return "\n".join(lines)


def latency_table(latency: list[dict]) -> str:
    lines = ["| record | compression | replicator | offered records/s | samples | p50 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|---|"]
    for e in latency:
        if e.get("error"):
            lines.append(f"| {size_text(e['record_size'])} | {e['compression']} | {e['replicator']} "
                         f"| {num_text(e.get('offered_records_per_s'), 0)} | failed: {e['error'][:80]} | | | |")
            continue
        lines.append(f"| {size_text(e['record_size'])} | {e['compression']} | {e['replicator']} "
                     f"| {num_text(e['offered_records_per_s'], 0)} | {e['samples']:,} | {num_text(e['p50_ms'])} "
                     f"| {num_text(e['p99_ms'])} | {num_text(e['max_ms'])} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    return path


def _pyplot():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_plot(path: Path, summary: list[dict], field: str, title: str, ylabel: str, scale: float = 1.0) -> Path | None:
    """Grouped bars: one group per (record size, compression), one bar per replicator."""
    cases = sorted({(e["record_size"], e["compression"]) for e in summary})
    replicators = sorted({e["replicator"] for e in summary}, key=_order)
    values = {(e["record_size"], e["compression"], e["replicator"]): e.get(field) for e in summary}
    if not cases or all(v is None for v in values.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(cases) * max(1, len(replicators)) / 2), 4.5))
    width = 0.8 / max(1, len(replicators))
    for i, replicator in enumerate(replicators):
        xs = [c + (i - (len(replicators) - 1) / 2) * width for c in range(len(cases))]
        ys = [(values.get((s, comp, replicator)) or 0) * scale for s, comp in cases]
        ax.bar(xs, ys, width, label=REPLICATOR_LABELS.get(replicator, replicator))
    ax.set_xticks(range(len(cases)), [f"{size_text(s)}\n{comp}" for s, comp in cases])
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_plot(path: Path, latency: list[dict]) -> Path | None:
    rows = [e for e in latency if not e.get("error")]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{e['replicator']}\n{size_text(e['record_size'])} {e['compression']}" for e in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [e["p50_ms"] for e in rows], 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [e["p99_ms"] for e in rows], 0.4, label="p99")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("ms (target LogAppendTime − source CreateTime)")
    ax.set_title("Replication latency at half the ceiling's rate")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(folder: Path, summary: list[dict], latency: list[dict]) -> list[Path]:
    made = [
        bar_plot(folder / "throughput.png", summary, "mb_per_s", "Throughput (median)", "MB/s (key+value+headers)"),
        bar_plot(folder / "cpu_per_gb.png", [e for e in summary if e["replicator"] != "ceiling"], "cpu_s_per_gb",
                 "CPU per GB copied (median, all processes)", "CPU-seconds / GB"),
        bar_plot(folder / "rss.png", [e for e in summary if e["replicator"] != "ceiling"], "peak_rss_total_bytes",
                 "Peak resident memory (median, all processes)", "MiB", scale=1 / 2**20),
        latency_plot(folder / "latency.png", latency),
    ]
    return [p for p in made if p is not None]


def markdown_document(document: dict, plots: list[Path]) -> str:
    env = document["environment"]
    settings = env["settings"]
    notes = sorted({n for e in document["summary"] for n in e.get("notes", [])})
    parts = [
        "# mirror-engine bench",
        "",
        (f"{document['created']} · {env['cpus']} CPUs ({env['cpu_model']}) · Kafka {env['kafka_version']} · "
        f"Python {env['python']} · clusters: {document['clusters']['mode']}"),
        "",
        (f"{settings['records']:,} records per run over {settings['partitions']} partitions, "
        f"tasks.max = {settings['tasks_max']}, median of {settings['runs']} runs after a discarded warm-up "
        "run. Brokers, replicator and load tools share this machine, so absolute numbers are this machine's; "
        "read the ratios."),
        "",
        "## Throughput, CPU and memory",
        "",
        markdown_table(document["summary"]),
        "",
        ("MB = 10^6 bytes of key + value + headers; value MB/s counts values only (MM2's `byte-rate`). "
        "CPU-s/GB: CPU-seconds of all the replicator's processes per 10^9 key+value+header bytes; cores = "
        "CPU-seconds per second of the window. Peak RSS total: the largest sum of resident memory over the "
        "replicator's processes; per process: the largest VmHWM. vs MM2 / vs ceiling: records/s ratios; "
        "CPU/GB vs MM2 below 1 means less CPU per byte than MM2."),
        "",
        f"Window: {document['method']['window']}",
    ]
    if notes:
        parts += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    failures = [r for r in document["runs"] if r.get("error")]
    if failures:
        parts += ["", "Failed runs:", ""] + [
            f"- {r['replicator']} {size_text(r['record_size'])} {r['compression']} run {r['run']}: "
            f"{r['error'].splitlines()[0]}" for r in failures]
    if document["latency"]:
        parts += ["", "## Latency at half load", "", latency_table(document["latency"]), "",
                  f"Method: {document['method']['latency']}"]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(parts) + "\n"


def write_report(folder: Path, document: dict) -> dict[str, Path]:
    """results.json, results.md and the PNG plots into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(folder, document["summary"], document["latency"])
    written = {"json": write_json(folder / "results.json", document)}
    markdown = folder / "results.md"
    markdown.write_text(markdown_document(document, plots))
    written["markdown"] = markdown
    for plot in plots:
        written[plot.stem] = plot
    return written
