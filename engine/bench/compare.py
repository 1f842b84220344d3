"""`mirror-engine bench --compare <earlier results>`: each figure of a run as a ratio to an earlier one.

Rows are matched by record size, compression and replicator; a ratio above 1 means the figure grew
(better for records/s and MB/s, worse for CPU, memory and latency). A row that only one of the two
runs has is listed, not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.bench.report import num_text, row_name, size_text

# (summary field, column) of the throughput table
THROUGHPUT_FIGURES = (("records_per_s", "records/s"), ("mb_per_s", "MB/s"), ("cpu_s_per_gb", "CPU-s/GB"),
                      ("cpu_vs_floor", "× floor"), ("cores_used", "cores"), ("peak_rss_total_bytes", "peak RSS"))
LATENCY_FIGURES = (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max"))
LOWER_IS_BETTER = {"cpu_s_per_gb", "cpu_vs_floor", "cores_used", "peak_rss_total_bytes", "p50_ms", "p99_ms",
                   "max_ms"}


class CompareError(ValueError):
    """A results folder or file that cannot be compared; the message is one line."""


def load_results(path: Path) -> dict:
    """results.json of a `mirror-engine bench` folder (or the file itself)."""
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise CompareError(f"{path}: no results.json there (give a folder written by `mirror-engine bench`)")
    try:
        document = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CompareError(f"{file}: not readable as JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("summary"), list):
        raise CompareError(f"{file}: not a `mirror-engine bench` report (no summary); a --sweep cannot be compared")
    return document


def _key(entry: dict) -> tuple[int, str, str]:
    """(record size, compression, row): the row names the security mode where not plaintext and,
    for a latency row, the offered load where it is not half the ceiling."""
    name = row_name(entry)
    share = entry.get("load_share", 0.5)
    return entry["record_size"], entry["compression"], name if share == 0.5 else f"{name} at {share:.0%} load"


def _ratios(earlier: list[dict], later: list[dict], figures: tuple[tuple[str, str], ...]) -> dict:
    before = {_key(e): e for e in earlier if not e.get("error")}
    after = {_key(e): e for e in later if not e.get("error")}
    rows = []
    for key, entry in after.items():
        if key not in before:
            continue
        ratios = {}
        for name, _ in figures:
            old, new = before[key].get(name), entry.get(name)
            ratios[name] = new / old if old and new is not None else None
        rows.append({"record_size": key[0], "compression": key[1], "replicator": key[2], "ratios": ratios,
                     "earlier": {n: before[key].get(n) for n, _ in figures},
                     "later": {n: entry.get(n) for n, _ in figures}})
    return {"rows": rows, "only_earlier": sorted(k for k in before if k not in after),
            "only_later": sorted(k for k in after if k not in before)}


def compare(earlier: dict, later: dict) -> dict:
    """Ratios later ÷ earlier of every throughput and latency figure of the rows both runs have."""
    return {"throughput": _ratios(earlier["summary"], later["summary"], THROUGHPUT_FIGURES),
            "latency": _ratios(earlier.get("latency") or [], later.get("latency") or [], LATENCY_FIGURES)}


def _cell(row: dict, name: str) -> str:
    ratio = row["ratios"][name]
    if ratio is None:
        return "–"
    old, new = row["earlier"][name], row["later"][name]
    if name == "peak_rss_total_bytes":
        old, new = old / 2**20, new / 2**20
    digits = 0 if max(abs(old), abs(new)) >= 100 else 2
    return f"{ratio:.2f}× ({num_text(old, digits)} → {num_text(new, digits)})"


def _table(part: dict, figures: tuple[tuple[str, str], ...], what: str) -> list[str]:
    header = "| record | compression | replicator | " + " | ".join(label for _, label in figures) + " |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)] if part["rows"] else [
        f"No {what} in common (rows match by record size, compression and replicator)."]
    for row in part["rows"]:
        lines.append(f"| {size_text(row['record_size'])} | {row['compression']} | {row['replicator']} | "
                     + " | ".join(_cell(row, name) for name, _ in figures) + " |")
    for label, keys in (("only in the earlier run", part["only_earlier"]), ("only in this run", part["only_later"])):
        if keys:
            lines.append("")
            lines.append(f"{what} {label}: " + ", ".join(f"{r} {size_text(s)} {c}" for s, c, r in keys))
    return lines


def compare_text(comparison: dict, earlier_name: str) -> str:
    """Markdown: the ratio of each figure to the earlier run's, with both values."""
    parts = [f"## Compared with {earlier_name}", "",
             ("Each figure as this run ÷ the earlier run (earlier → this). Higher is better for records/s and MB/s, "
              "lower for CPU-s/GB, × floor, cores, peak RSS (MiB) and latency. On a shared machine, read changes "
              "within the runs' min–max spread as noise."), ""]
    parts += _table(comparison["throughput"], THROUGHPUT_FIGURES, "rows")
    if comparison["latency"]["rows"] or comparison["latency"]["only_earlier"] or comparison["latency"]["only_later"]:
        parts += ["", "Latency (ms):", ""] + _table(comparison["latency"], LATENCY_FIGURES, "latency rows")
    return "\n".join(parts) + "\n"
