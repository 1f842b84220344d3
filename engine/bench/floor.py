"""The floor row: librdkafka alone, with the engine's client settings, on the preloaded topic.

CPU per record of the floor = CPU per record of a consume-only pass over the source topic + CPU per
record of a produce-only pass of the same records to a fresh target topic (engine/bench/_floor.pyx).
Each pass runs in a process of its own: `python -m engine.bench.floor <spec.json>` (which also runs
the ceiling's librdkafka load generator, pass "load"). The process reads its threads' CPU time from
/proc (task/*/schedstat, in ns: the produce pass adds up one interval per chunk, so ticks would be
too coarse) at the start and end of each measured part, and prints one JSON line; the produce
pass's reading of each chunk into memory falls between its measured parts.

The settings are the engine's: the same mm2.properties the C loop gets, read by engine.config,
turned into librdkafka settings by engine.worker.relays as a worker does, the worker's batch of
2,000 records and its poll timeout.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from engine.bench.launch import launch, wait_exit
from engine.bench.procstat import CLOCK_TICKS, read_memory, read_stat, threads_cpu_ns
from engine.child_process import python_module

# the produce pass holds this many bytes of records at a time: well inside the CPU's last-level cache
# (32 MiB on the benchmark machine), as the C loop's freshly fetched records are
CHUNK_BYTES = 8 * 2**20
PASSES = ("consume", "produce", "load")


def engine_clients(props: dict[str, str], max_message_bytes: int | None) -> dict:
    """The consumer and producer settings, batch size and poll timeout of the engine's C loop
    for the benchmark flow in `props` (one flow)."""
    from engine.clients import connection
    from engine.config.loading import from_properties
    from engine.worker.relays import BATCH_SIZE, consumer_settings, producer_settings

    config = from_properties(props, quiet=True)
    [flow] = config.flows
    consumer = {**connection(config.cluster(flow.source)), **consumer_settings(flow.name, flow.source_consumer)}
    producer = {**connection(config.cluster(flow.target)),
                **producer_settings(flow.producer_compression, max_message_bytes=max_message_bytes,
                                    overrides=flow.target_producer)}
    consumer["client.id"] = "mebench-floor-consumer"
    producer["client.id"] = "mebench-floor-producer"
    return {"consumer": consumer, "producer": producer, "batch_size": BATCH_SIZE,
            "poll_ms": min(flow.consumer_poll_timeout_ms, 200)}


def chunk_records(bytes_per_record: float) -> int:
    """How many records the produce pass holds and produces at a time (at least one batch of 2,000)."""
    return max(2000, math.floor(CHUNK_BYTES / bytes_per_record))


def floor_figures(consume: dict, produce: dict, bytes_per_record: float) -> dict:
    """The floor's row from the two passes' outputs: CPU per record of each, their sum, CPU-s/GB."""
    consume_us = consume["cpu_s"] / consume["records"] * 1e6
    produce_us = produce["cpu_s"] / produce["records"] * 1e6
    per_record_s = (consume_us + produce_us) / 1e6
    return {
        "consume_records": consume["records"], "consume_s": consume["wall_s"], "consume_cpu_s": consume["cpu_s"],
        "consume_records_per_s": consume["records"] / consume["wall_s"] if consume["wall_s"] else None,
        "consume_cpu_us_per_record": consume_us,
        "produce_records": produce["records"], "produce_s": produce["wall_s"], "produce_cpu_s": produce["cpu_s"],
        "produce_records_per_s": produce["records"] / produce["wall_s"] if produce["wall_s"] else None,
        "produce_cpu_us_per_record": produce_us,
        "cpu_us_per_record": consume_us + produce_us,
        "cpu_s_per_gb": per_record_s / (bytes_per_record / 1e9),
        "duration_s": consume["wall_s"] + produce["wall_s"],
        "consume_hwm_bytes": consume.get("hwm_bytes"), "produce_hwm_bytes": produce.get("hwm_bytes"),
    }


def run_pass(kind: str, spec: dict, folder: Path, timeout_s: float) -> dict:
    """One pass in its own process; returns its JSON line."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / f"floor-{kind}.json"
    spec_file.write_text(json.dumps({**spec, "pass": kind}))
    out = folder / f"floor-{kind}.out"
    command, env = python_module("engine.bench.floor", str(spec_file))
    process = launch(f"floor {kind} pass", command, out, env)
    try:
        code = wait_exit(process, timeout_s)
    finally:
        process.stop(deadline_s=5)
    lines = [line for line in out.read_text(errors="replace").splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"floor {kind} pass failed (exit code {code})\n{process.log_tail()}")
    return json.loads(lines[-1])


def run_floor(spec: dict, folder: Path, timeout_s: float) -> tuple[dict, dict]:
    """The consume pass, then the produce pass; returns both outputs."""
    return run_pass("consume", spec, folder, timeout_s), run_pass("produce", spec, folder, timeout_s)


def cpu_seconds() -> float:
    """This process's CPU time, all threads: schedstat's nanoseconds, else utime+stime ticks."""
    ns = threads_cpu_ns(os.getpid())
    if ns is not None:
        return ns / 1e9
    stat = read_stat(os.getpid())
    return stat.cpu_ticks / CLOCK_TICKS if stat else 0.0


class Marks:
    """mark("start") ... mark("end"), once or many times: CPU and wall time summed over the intervals."""

    def __init__(self, clock=time.monotonic, cpu=cpu_seconds):
        self.clock, self.cpu = clock, cpu
        self.cpu_s = self.wall_s = 0.0
        self.intervals = 0
        self.open: tuple[float, float] | None = None

    def __call__(self, name: str) -> None:
        now = (self.cpu(), self.clock())
        if name == "start":
            self.open = now
        elif name == "end" and self.open is not None:
            self.cpu_s += now[0] - self.open[0]
            self.wall_s += now[1] - self.open[1]
            self.intervals += 1
            self.open = None

    def result(self, records: int) -> dict:
        return {"records": records, "cpu_s": self.cpu_s, "wall_s": self.wall_s, "intervals": self.intervals,
                "hwm_bytes": read_memory(os.getpid())[1]}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m engine.bench.floor <spec.json>", file=sys.stderr)
        return 2
    try:
        spec = json.loads(Path(argv[0]).read_text())
        kind = spec["pass"]
        if kind not in PASSES:
            raise ValueError(f"pass must be one of {', '.join(PASSES)}, got {kind!r}")
    except (OSError, ValueError, KeyError) as error:
        print(f"engine.bench.floor: bad spec {argv[0]}: {error}", file=sys.stderr)
        return 2
    import engine.librdkafka  # noqa: F401  (librdkafka's symbols, before the extension loads)
    from engine.bench import _floor

    marks = Marks()
    try:
        if kind == "consume":
            done = _floor.consume_pass(spec["consumer"], spec["source_topic"], spec["partitions"], spec["records"],
                                       spec["batch_size"], spec["poll_ms"], marks)
        elif kind == "produce":
            done = _floor.produce_pass(spec["consumer"], spec["producer"], spec["source_topic"], spec["target_topic"],
                                       spec["partitions"], spec["records"], spec["chunk_records"],
                                       spec["batch_size"], spec["poll_ms"], marks)
        else:  # the ceiling's librdkafka load generator (engine/bench/ceiling.py)
            from engine.bench.payload import value_pool

            done = _floor.load_pass(spec["producer"], spec["target_topic"], spec["partitions"], spec["records"],
                                    spec["first_index"], value_pool(spec["record_size"]), spec["batch_size"], marks)
    except (RuntimeError, ValueError) as error:
        print(f"engine.bench.floor: {kind} pass: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"pass": kind, **marks.result(done)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
