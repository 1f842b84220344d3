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
                 "cpu_us_per_record", "cores_used", "peak_rss_total_bytes", "max_rss_process_bytes", "duration_s",
                 "consume_cpu_us_per_record", "produce_cpu_us_per_record",
                 "machine_busy", "generator_cores", "target_broker_cores")
REPLICATOR_ORDER = ("ceiling", "floor", "mm2-defaults", "mm2-tuned", "mm2", "franz", "python", "c")
REPLICATOR_LABELS = {"ceiling": "ceiling (Kafka perf tools)", "floor": "floor (librdkafka alone)",
                     "mm2-defaults": "Java MM2 4.3.1, defaults", "mm2-tuned": "Java MM2 4.3.1, tuned",
                     "mm2": "Java MM2 4.3.1", "franz": "franz-go relay (Go client library)",
                     "python": "mirror-engine, Python loop", "c": "mirror-engine, C loop"}
MM2_ROWS = ("mm2-defaults", "mm2-tuned")


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
        "cpu_us_per_record": None if cpu_s is None or not records else cpu_s / records * 1e6,
        "cores_used": None if cpu_s is None else cpu_s / seconds,
    }


def security_of(entry: dict) -> str:
    """A run's or row's security mode; reports from before --security have plaintext rows only."""
    return entry.get("security", "plaintext")


def row_name(entry: dict) -> str:
    """The row as the tables name it: the replicator, and its security mode where not plaintext."""
    mode = security_of(entry)
    return entry["replicator"] if mode == "plaintext" else f"{entry['replicator']} · {mode}"


def case_key(run: dict) -> tuple[int, str, str, str]:
    return run["record_size"], run["compression"], security_of(run), run["replicator"]


def summarise(runs: list[dict]) -> list[dict]:
    """Median, min and max (`<field>_min`, `<field>_max`) of every measured (non-warm-up) run per
    record size, compression and replicator."""
    groups: dict[tuple[int, str, str, str], list[dict]] = {}
    for run in runs:
        if not run.get("warmup") and run.get("error") is None:
            groups.setdefault(case_key(run), []).append(run)
    compressions = list(dict.fromkeys(run["compression"] for run in runs))  # in the order they ran
    summary = []
    modes = list(dict.fromkeys(security_of(run) for run in runs))
    for (size, compression, mode, replicator), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], compressions.index(kv[0][1]), modes.index(kv[0][2]),
                                            order_of(kv[0][3]))):
        entry: dict = {"record_size": size, "compression": compression, "replicator": replicator,
                       "runs": len(members)}
        if mode != "plaintext":
            entry["security"] = mode
        for name in MEDIAN_FIELDS:
            values = [m[name] for m in members if m.get(name) is not None]
            entry[name] = statistics.median(values) if values else None
            entry[f"{name}_min"] = min(values) if values else None
            entry[f"{name}_max"] = max(values) if values else None
        notes = sorted({note for m in members for note in m.get("notes", [])})
        if notes:
            entry["notes"] = notes
        flavours = [m["ceiling_flavour"] for m in members if m.get("ceiling_flavour")]
        if flavours:
            entry["ceiling_flavour"] = max(set(flavours), key=flavours.count)
            entry["ceiling_flavour_runs"] = flavours.count(entry["ceiling_flavour"])
            entry["ceiling_processes"] = max((f.get("processes", 0) for m in members
                                              for f in m.get("ceiling_flavours", [])), default=0)
        summary.append(entry)
    add_ratios(summary)
    return summary


def order_of(replicator: str) -> int:
    return REPLICATOR_ORDER.index(replicator) if replicator in REPLICATOR_ORDER else len(REPLICATOR_ORDER)


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def add_ratios(summary: list[dict]) -> None:
    """Adds, in place, per row of the same record size, compression and security mode: records/s
    and CPU-s/GB relative to each MM2 row, CPU-s/GB as a multiple of the floor, records/s relative
    to the ceiling (None where the reference was not measured)."""
    by_case = {case_key(e): e for e in summary}
    for entry in summary:
        size, compression, mode = entry["record_size"], entry["compression"], security_of(entry)
        for mm2 in MM2_ROWS:
            reference = by_case.get((size, compression, mode, mm2), {})
            suffix = mm2.replace("-", "_")
            entry[f"throughput_vs_{suffix}"] = _ratio(entry["records_per_s"], reference.get("records_per_s"))
            entry[f"cpu_per_gb_vs_{suffix}"] = _ratio(entry["cpu_s_per_gb"], reference.get("cpu_s_per_gb"))
        floor = by_case.get((size, compression, mode, "floor"), {})
        ceiling = by_case.get((size, compression, mode, "ceiling"), {})
        entry["cpu_vs_floor"] = _ratio(entry["cpu_s_per_gb"], floor.get("cpu_s_per_gb"))
        entry["throughput_vs_ceiling"] = _ratio(entry["records_per_s"], ceiling.get("records_per_s"))
        entry["above_ceiling"] = entry["replicator"] != "ceiling" and (entry["throughput_vs_ceiling"] or 0) > 1


def latency_summary(latencies_ms: list[float]) -> dict[str, float | int]:
    return {"samples": len(latencies_ms), "p50_ms": percentile(latencies_ms, 50),
            "p99_ms": percentile(latencies_ms, 99), "p999_ms": percentile(latencies_ms, 99.9),
            "max_ms": max(latencies_ms),
            "mean_ms": statistics.fmean(latencies_ms)}


# -- presentation --------------------------------------------------------------------------------

def num_text(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def _spread(entry: dict, name: str, digits: int = 0, scale: float = 1.0) -> str:
    """`median (min–max)`, or the median alone for one run."""
    median, low, high = entry.get(name), entry.get(f"{name}_min"), entry.get(f"{name}_max")
    if median is None:
        return "–"
    if entry.get("runs", 1) < 2 or low is None or high is None:
        return num_text(median * scale, digits)
    return f"{num_text(median * scale, digits)} ({num_text(low * scale, digits)}–{num_text(high * scale, digits)})"


def _pair(entry: dict, name: str) -> str:
    """The two MM2 ratios of one figure as `defaults / tuned`."""
    values = [entry.get(f"{name}_vs_{mm2.replace('-', '_')}") for mm2 in MM2_ROWS]
    if all(v is None for v in values):
        return "–"
    return " / ".join(_ratio_text(v) for v in values)


def markdown_table(summary: list[dict]) -> str:
    header = ("| record | compression | replicator | runs | records/s (min–max) | MB/s | CPU-s/GB (min–max) "
              "| CPU µs/record | × floor | cores (min–max) | peak RSS MiB (min–max) | window s (min–max) "
              "| records/s ÷ MM2 defaults / tuned "
              "| CPU/GB ÷ MM2 defaults / tuned | ÷ ceiling |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for e in summary:
        floor = e["replicator"] == "floor"
        lines.append(
            f"| {size_text(e['record_size'])} | {e['compression']} | {row_name(e)} | {e['runs']} "
            f"| {'–' if floor else _spread(e, 'records_per_s')} | {'–' if floor else num_text(e['mb_per_s'])} "
            f"| {_spread(e, 'cpu_s_per_gb', 1)} | {num_text(e.get('cpu_us_per_record'), 2)} "
            f"| {_ratio_text(e.get('cpu_vs_floor'))} | {_spread(e, 'cores_used', 2)} "
            f"| {_spread(e, 'peak_rss_total_bytes', 0, 1 / 2**20)} | {_spread(e, 'duration_s', 1)} "
            f"| {'–' if floor else _pair(e, 'throughput')} | {_pair(e, 'cpu_per_gb')} "
            f"| {'–' if floor else _ratio_text(e['throughput_vs_ceiling'])}{' ▲' if e.get('above_ceiling') else ''} |")
    return "\n".join(lines)


def ceiling_lines(summary: list[dict]) -> list[str]:
    """Per case, how the ceiling was measured and what held it; then every row above it (flagged ▲)."""
    from engine.bench.ceiling import limit_text
    from engine.bench.mm2 import cpu_count

    lines = []
    for e in summary:
        if e["replicator"] != "ceiling" or not e.get("ceiling_flavour"):
            continue
        limit = limit_text(e["ceiling_flavour"], e.get("ceiling_processes", 0), e.get("machine_busy"),
                           e.get("generator_cores"), e.get("target_broker_cores"), cpu_count())
        lines.append(f"- {size_text(e['record_size'])} {e['compression']}{_mode_text(e)}: best flavour "
                     f"{e['ceiling_flavour']} "
                     f"({e['ceiling_flavour_runs']} of {e['runs']} runs), medians over its windows: {limit}.")
        for row in summary:
            if row.get("above_ceiling") and case_key(row)[:3] == case_key(e)[:3]:
                lines.append(f"  - ▲ {row_name(row)} copied {row['throughput_vs_ceiling']:.2f}× the ceiling's "
                             "records/s: the ceiling understates the target here (see above).")
    return lines


def floor_lines(summary: list[dict]) -> list[str]:
    """What the floor is made of, per case."""
    return [f"- {size_text(e['record_size'])} {e['compression']}{_mode_text(e)}: consume-only "
            f"{num_text(e.get('consume_cpu_us_per_record'), 2)} + produce-only "
            f"{num_text(e.get('produce_cpu_us_per_record'), 2)} CPU-µs per record"
            for e in summary if e["replicator"] == "floor"]


def _mode_text(entry: dict) -> str:
    return "" if security_of(entry) == "plaintext" else f" over {security_of(entry)}"


def mm2_settings_lines() -> list[str]:
    """The mm2-tuned settings and where each is recommended."""
    from engine.bench.mm2 import CONFLUENT_PRODUCER_THROUGHPUT, MM2_TUNED

    where = {"producer": "`<target>.producer.` and `producer.`", "consumer": "`<source>.consumer.` and `consumer.`",
             "worker": "top level (Connect worker)"}
    sources = list(dict.fromkeys(source for t in MM2_TUNED for source in t.sources))
    lines = ["| setting | value | set as | recommended by |", "|---|---|---|---|"]
    for t in MM2_TUNED:
        cited = ", ".join(f"[{sources.index(source) + 1}]" for source in t.sources)
        lines.append(f"| `{t.key}` | {t.value} | {where[t.role]} | {cited}{f' ({t.note})' if t.note else ''} |")
    confluent = sources.index(CONFLUENT_PRODUCER_THROUGHPUT) + 1
    lines += ["", f"Not taken: acks=1 [{confluent}], since a replicator that may lose acknowledged copies is "
              "not comparable (Connect's source tasks and the engine use acks=all); compression, which every "
              "row gets from the case.", ""]
    lines += [f"{i}. {source}" for i, source in enumerate(sources, 1)]
    return lines


def latency_table(latency: list[dict]) -> str:
    lines = ["| record | compression | replicator | load | offered records/s | samples | p50 ms | p99 ms "
             "| p99.9 ms | max ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in latency:
        head = (f"| {size_text(e['record_size'])} | {e['compression']} | {e['replicator']} "
                f"| {e.get('load_share', 0.5):.0%} | {num_text(e.get('offered_records_per_s'), 0)} ")
        if e.get("error"):
            lines.append(head + f"| failed: {e['error'][:80]} | | | | |")
            continue
        lines.append(head + f"| {e['samples']:,} | {num_text(e['p50_ms'])} | {num_text(e['p99_ms'])} "
                     f"| {num_text(e.get('p999_ms'))} | {num_text(e['max_ms'])} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    return path


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
        (f"{_cases_text(document)} over {settings['partitions']} partitions, tasks.max = "
        f"{settings['tasks_max']}, median of {settings['runs']} runs"
        + (" after a discarded warm-up run" if settings.get("warmup", True) else " (no warm-up run)")
        + ". Brokers, replicator and load tools share this machine, so absolute numbers are this machine's; "
        "read the ratios."),
        "",
        "## Throughput, CPU and memory",
        "",
        markdown_table(document["summary"]),
        "",
        ("MB = 10^6 bytes of key + value + headers. CPU-s/GB: CPU-seconds of all the replicator's processes per "
        "10^9 key+value+header bytes; CPU µs/record the same per record; × floor: CPU-s/GB as a multiple of "
        "the floor's, so (× floor − 1) is the replicator's own work beyond librdkafka's; cores = CPU-seconds "
        "per second of the window. Peak RSS: the largest sum of resident memory over the replicator's "
        "processes in the window. ÷ MM2 and ÷ ceiling: ratios to those rows (CPU/GB below 1: less CPU per "
        "byte). Every figure is the median of the runs; (min–max) where it shows. value MB/s (MM2's "
        "`byte-rate`) and the largest process's VmHWM are in results.json."),
        "",
        f"Window: {document['method']['window']}",
    ]
    ceilings = ceiling_lines(document["summary"])
    if ceilings:
        parts += ["", ("The ceiling: several producer processes at once write the case's records to a fresh target "
                       "topic, librdkafka (engine/bench/_floor.pyx's load generator, the engine's producer "
                       "settings) and Kafka's ProducerPerformance (the harness's producer tuning; values only, "
                       "no key or header) in turn; its rate is read like a replicator's, over the steady window "
                       "of the target's end offsets, and the better flavour counts:"), ""] + ceilings
    floors = floor_lines(document["summary"])
    if floors:
        parts += ["", ("The floor: librdkafka alone on the same topic with the C loop's consumer and producer "
                       "settings, driven from Cython (engine/bench/_floor.pyx), each pass in a process of its "
                       "own with CPU from /proc: a consume-only pass over the topic plus a produce-only pass of "
                       "its records to a fresh target topic, read 8 MiB at a time and produced from memory "
                       "(only the producing measured, as the NativeRelay produces: no copy, headers moved, "
                       "batched delivery reports). Its CPU per record is the sum:"),
                  ""] + floors
    if any(e["replicator"] == "franz" for e in document["summary"]):
        parts += ["", ("The franz row: a relay of about 150 lines on the Go client library franz-go "
                       "(benchmarks/peers/franz-relay/), what a user could write themselves: no consumer group, "
                       "acks=all, idempotent, linger 5 ms, 1 MB batches, each copy in its source partition; "
                       "measured like the replicators.")]
    if any(e["replicator"] in MM2_ROWS for e in document["summary"]):
        parts += ["", "## MM2's settings", "",
                  ("`mm2-defaults` gets only what a user's mm2.properties must say: clusters, the flow, its "
                   "topics, tasks.max = the CPU count, replication factors 1 (one-node clusters) and the case's "
                   "compression. Every row, MM2's and the engine's, also gets the benchmark's measurement "
                   "scope: topic config, ACL and group offset sync and checkpoints off, topic refresh every 5 s. "
                   "`mm2-tuned` adds the published MM2 tuning below; the engine's rows get the harness's client "
                   "tuning (batch.size 262144, linger.ms 20, fetch.min.bytes 65536, fetch.max.wait.ms 100; "
                   "engine/bench/mm2.py)."), ""] + mm2_settings_lines()
    if notes:
        parts += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    failures = [r for r in document["runs"] if r.get("error")]
    if failures:
        parts += ["", "Failed runs:", ""] + [
            f"- {r['replicator']} {size_text(r['record_size'])} {r['compression']} run {r['run']}: "
            f"{r['error'].splitlines()[0]}" for r in failures]
    if document["latency"]:
        parts += ["", "## Latency", "", latency_table(document["latency"]), "",
                  f"Method: {document['method']['latency']}"]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(parts) + "\n"


def _cases_text(document: dict) -> str:
    cases = document.get("cases") or []
    if not cases:
        return f"{document['environment']['settings']['records']:,} records per run"
    return "Preloaded topics of " + ", ".join(
        f"{c['records']:,} records ({size_text(c['record_size'])}, {c['compression']})" for c in cases)


def write_report(folder: Path, document: dict, plots: list[Path]) -> dict[str, Path]:
    """results.json and results.md into folder, the latter showing `plots` (plots.write_plots)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(folder / "results.json", document)}
    markdown = folder / "results.md"
    markdown.write_text(markdown_document(document, plots))
    written["markdown"] = markdown
    for plot in plots:
        written[plot.stem] = plot
    return written
