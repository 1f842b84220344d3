"""The report's plots (PNG, matplotlib): throughput, CPU per GB as a multiple of the floor, peak RSS,
latency at half load and latency against offered load."""

from __future__ import annotations

from pathlib import Path

from engine.bench.report import REPLICATOR_LABELS, order_of, row_name, size_text


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
    replicators = sorted({row_name(e) for e in summary}, key=lambda name: order_of(name.split(" · ")[0]))
    values = {(e["record_size"], e["compression"], row_name(e)): e.get(field) for e in summary}
    if not cases or all(v is None for v in values.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(cases) * max(1, len(replicators)) / 2), 4.5))
    width = 0.8 / max(1, len(replicators))
    for i, replicator in enumerate(replicators):
        xs = [c + (i - (len(replicators) - 1) / 2) * width for c in range(len(cases))]
        ys = [(values.get((s, comp, replicator)) or 0) * scale for s, comp in cases]
        replicator_name, _, mode = replicator.partition(" · ")
        label = REPLICATOR_LABELS.get(replicator_name, replicator_name)
        ax.bar(xs, ys, width, label=f"{label}, {mode}" if mode else label)
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


def latency_curve_plot(path: Path, latency: list[dict]) -> Path | None:
    """p99 against the offered load (share of the ceiling), a line per replicator and record size;
    only when more than one load was offered."""
    rows = [e for e in latency if not e.get("error")]
    if len({e.get("load_share", 0.5) for e in rows}) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for replicator, size in sorted({(e["replicator"], e["record_size"]) for e in rows},
                                   key=lambda key: (key[1], order_of(key[0]))):
        points = sorted((e.get("load_share", 0.5), e["p99_ms"]) for e in rows
                        if (e["replicator"], e["record_size"]) == (replicator, size))
        ax.plot([100 * x for x, _ in points], [y for _, y in points], marker="o",
                label=f"{REPLICATOR_LABELS.get(replicator, replicator)}, {size_text(size)}")
    ax.set_xlabel("offered load, % of the ceiling's records/s")
    ax.set_ylabel("p99 latency, ms")
    ax.set_title("Replication latency against offered load")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(folder: Path, summary: list[dict], latency: list[dict]) -> list[Path]:
    copiers = [e for e in summary if e["replicator"] not in ("ceiling", "floor")]
    if any(e.get("cpu_vs_floor") for e in copiers):
        cpu_plot = bar_plot(folder / "cpu_per_gb.png", copiers, "cpu_vs_floor",
                            "CPU per GB copied as a multiple of the floor (median)", "× the floor (librdkafka alone)")
    else:
        cpu_plot = bar_plot(folder / "cpu_per_gb.png", [e for e in summary if e["replicator"] != "ceiling"],
                            "cpu_s_per_gb", "CPU per GB copied (median, all processes)", "CPU-seconds / GB")
    made = [
        bar_plot(folder / "throughput.png", [e for e in summary if e["replicator"] != "floor"], "mb_per_s",
                 "Throughput (median)", "MB/s (key+value+headers)"),
        cpu_plot,
        bar_plot(folder / "rss.png", copiers, "peak_rss_total_bytes",
                 "Peak resident memory (median, all processes)", "MiB", scale=1 / 2**20),
        latency_plot(folder / "latency.png", [e for e in latency if e.get("load_share", 0.5) == 0.5]),
        latency_curve_plot(folder / "latency_curve.png", latency),
    ]
    return [p for p in made if p is not None]
