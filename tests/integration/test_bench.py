"""`mirror-engine bench --quick` end to end on its own sandbox clusters: the ceiling, the floor and the
Python loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_quick_bench_writes_a_complete_report(tmp_path):
    out = tmp_path / "results"
    existing = [os.environ.get("MIRROR_ENGINE_TEST_SOURCE"), os.environ.get("MIRROR_ENGINE_TEST_TARGET")]
    clusters = ["--source-bootstrap", existing[0], "--target-bootstrap", existing[1]] if all(existing) else []
    result = subprocess.run(
        [sys.executable, "-m", "engine", "bench", "--quick", "--records", "5000", "--replicators", "ceiling,floor,python",
         "--compression", "none", "--latency-seconds", "3", "--out", str(out), *clusters],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    assert set(document) >= {"environment", "method", "summary", "latency", "runs", "units"}
    assert document["clusters"]["mode"] == ("external" if clusters else "sandbox")
    by_replicator = {e["replicator"]: e for e in document["summary"]}
    assert set(by_replicator) == {"ceiling", "floor", "python"}
    python = by_replicator["python"]
    assert python["records_per_s"] > 0 and python["mb_per_s"] > 0 and python["cpu_s_per_gb"] > 0
    assert python["peak_rss_total_bytes"] > 0
    assert python["throughput_vs_ceiling"] > 0
    floor = by_replicator["floor"]
    assert floor["consume_cpu_us_per_record"] >= 0 and floor["produce_cpu_us_per_record"] > 0
    assert python["cpu_vs_floor"] == python["cpu_s_per_gb"] / floor["cpu_s_per_gb"]
    [floor_run] = [r for r in document["runs"] if r["replicator"] == "floor"]
    assert floor_run["consume_records"] == floor_run["produce_records"] == 5000
    assert by_replicator["ceiling"]["records_per_s"] > 0
    [run] = [r for r in document["runs"] if r["replicator"] == "python"]
    assert run["records"] == 5000 and run["window_records"] > 0
    assert [p["role"] for p in run["processes"]].count("root") == 1
    [latency] = document["latency"]
    assert latency["replicator"] == "python" and latency["samples"] > 0 and latency["p99_ms"] >= latency["p50_ms"]
    for name in ("results.md", "throughput.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| 1 KiB | none | python |" in (out / "results.md").read_text()
