"""`mirror-engine bench --quick` end to end on its own sandbox clusters: the ceiling, the floor, the
Python loop and, where Go is installed, the franz-go relay."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.bench.franz import find_go

# the first build of the franz-go relay fetches its modules and compiles franz-go: about a minute
TIMEOUT_S = 420


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    """One --quick run shared by the tests below: (its output folder, its JSON document, whether it has Go)."""
    out = tmp_path_factory.mktemp("bench") / "results"
    existing = [os.environ.get("MIRROR_ENGINE_TEST_SOURCE"), os.environ.get("MIRROR_ENGINE_TEST_TARGET")]
    clusters = ["--source-bootstrap", existing[0], "--target-bootstrap", existing[1]] if all(existing) else []
    rows = "ceiling,floor,python" + (",franz" if find_go() else "")
    result = subprocess.run(
        [sys.executable, "-m", "engine", "bench", "--quick", "--records", "5000", "--replicators", rows,
         "--compression", "none", "--latency-seconds", "3", "--out", str(out), *clusters],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), bool(clusters)


def test_quick_bench_writes_a_complete_report(quick_bench):
    out, document, external = quick_bench
    assert set(document) >= {"environment", "method", "summary", "latency", "runs", "units"}
    assert document["clusters"]["mode"] == ("external" if external else "sandbox")
    by_replicator = {e["replicator"]: e for e in document["summary"]}
    assert set(by_replicator) - {"franz"} == {"ceiling", "floor", "python"}
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
    [latency] = [e for e in document["latency"] if e["replicator"] == "python"]
    assert latency["samples"] > 0 and latency["p99_ms"] >= latency["p50_ms"]
    for name in ("results.md", "throughput.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| 1 KiB | none | python |" in (out / "results.md").read_text()


def test_quick_bench_runs_the_franz_go_relay_as_a_row(quick_bench):
    if find_go() is None:
        pytest.skip("no Go toolchain (`go` on PATH): the franz-go relay row is left out")
    out, document, _ = quick_bench
    [franz] = [e for e in document["summary"] if e["replicator"] == "franz"]
    floor = next(e for e in document["summary"] if e["replicator"] == "floor")
    # CPU is read in clock ticks (10 ms): the Go relay may copy a --quick window's 5 MB within one tick
    assert franz["records_per_s"] > 0 and franz["cpu_s_per_gb"] >= 0 and franz["peak_rss_total_bytes"] > 0
    assert franz["cpu_vs_floor"] == franz["cpu_s_per_gb"] / floor["cpu_s_per_gb"]
    [run] = [r for r in document["runs"] if r["replicator"] == "franz"]
    assert run["records"] == 5000 and run["window_records"] > 0 and run["exit_code"] == 0
    assert [p["comm"] for p in run["processes"] if p["role"] == "root"] == ["franz-relay"]
    [latency] = [e for e in document["latency"] if e["replicator"] == "franz"]
    assert latency["samples"] > 0 and latency["missing_copies"] == 0
    assert "| 1 KiB | none | franz |" in (out / "results.md").read_text()


def test_quick_bench_over_tls_gives_each_row_a_tls_row(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "bench", "--quick", "--records", "5000", "--replicators", "floor,c",
         "--compression", "none", "--security", "tls", "--skip-latency", "--out", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    rows = {(e["replicator"], e.get("security", "plaintext")): e for e in document["summary"]}
    assert set(rows) == {("floor", "plaintext"), ("c", "plaintext"), ("floor", "tls"), ("c", "tls")}
    assert rows[("c", "tls")]["records_per_s"] > 0 and rows[("floor", "tls")]["cpu_s_per_gb"] > 0
    assert rows[("c", "tls")]["cpu_vs_floor"] \
        == rows[("c", "tls")]["cpu_s_per_gb"] / rows[("floor", "tls")]["cpu_s_per_gb"]
    [c_tls] = [r for r in document["runs"] if r["replicator"] == "c" and r["security"] == "tls"]
    config = (out / c_tls["folder"] / "mm2.properties").read_text()
    alias = c_tls["source_alias"]
    assert f"{alias}.security.protocol = SSL" in config and "B.security.protocol = SSL" in config, config
    assert "| 1 KiB | none | c · tls |" in (out / "results.md").read_text()
