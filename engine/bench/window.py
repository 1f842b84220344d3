"""The measured window of a copy (measure_copy) and of the ceiling's load (measure_load).

A throughput run starts the replicator and polls the target's end offsets every POLL_S. The window
is the steady state: it opens at the first poll that sees at least 10 % of the records copied (or
5 s after the first record, whichever comes first) and closes at the first poll that sees at least
90 % (or once it lasted twice --window-seconds: a slow replicator need not copy the whole topic),
so the start-up (connections, JIT, the first fetches) and the tail (partitions finishing one by
one) are left out. Rates count the records copied between those two polls; CPU is the utime+stime
of every process of the replicator (the JVM; the engine's coordinator and its workers) between
them, and peak RSS the largest sum of their resident memory sampled in between. A --quick run
instead measures from the last poll that sees no record to the first that sees them all.
"""

from __future__ import annotations

import math
import time

from confluent_kafka.admin import AdminClient

from engine.bench.clusters import end_offsets
from engine.bench.launch import Launched
from engine.bench.procstat import CLOCK_TICKS, TreeMeter, machine_ticks, read_stat
from engine.bench.settings import BenchError

POLL_S = 0.1
FIRST_RECORD_TIMEOUT_S = 180.0
# the steady window: from this share of the records copied to that share
WINDOW_START_SHARE, WINDOW_END_SHARE = 0.10, 0.90
# ... or, for a replicator much slower than the fastest (whose rate sized the topic), from this many
# seconds after its first record, for at most this many times --window-seconds
WINDOW_OPENS_AFTER_S = 5.0
WINDOW_LONGEST = 2.0


def window_bounds(records: int, steady: bool) -> tuple[int, int]:
    """(copied records that open the window, copied records that close it)."""
    if not steady:
        return 0, records
    return max(1, math.ceil(records * WINDOW_START_SHARE)), max(1, math.floor(records * WINDOW_END_SHARE))


def measure_copy(process: Launched, admin: AdminClient, remote_topic: str, partitions: int, records: int,
                 timeout_s: float, steady: bool = True, longest_s: float = float("inf")) -> dict:
    """Polls the target until the window closes; returns the window's numbers (module docstring).
    A steady window also opens WINDOW_OPENS_AFTER_S after the first record and closes after longest_s."""
    meter = TreeMeter(process.pid)
    opens_at, closes_at = window_bounds(records, steady)
    started = last_empty = time.monotonic()
    opened: tuple[float, int] | None = None
    first_record_at: float | None = None
    while True:
        offsets = end_offsets(admin, remote_topic, partitions)
        now = time.monotonic()
        copied = sum(offsets.values()) if offsets else 0
        if copied and first_record_at is None:
            first_record_at = now
        if opened is None:
            # the window's zero moves with every poll before it opens: in a steady window to the
            # first poll past 10 %, in a whole-copy window to the last poll that sees no record
            if steady:
                meter.start_window()
                if copied >= opens_at or (first_record_at is not None and copied > 0
                                          and now - first_record_at >= WINDOW_OPENS_AFTER_S):
                    opened = (now, copied)
            elif copied == 0:
                meter.start_window()
                last_empty = now
            else:
                meter.sample()
                opened = (last_empty, 0)
        else:
            meter.sample()
        if opened is not None and (copied >= closes_at or now - opened[0] >= longest_s) \
                and (now > opened[0] or not steady):
            break
        if not process.alive():
            raise BenchError(f"{process.name} exited with code {process.process.returncode} after copying "
                             f"{copied:,} of {records:,} records\n{process.log_tail()}")
        limit = FIRST_RECORD_TIMEOUT_S if first_record_at is None else timeout_s
        if now - (started if first_record_at is None else first_record_at) > limit:
            what = "the first record" if first_record_at is None else f"all {records:,} records ({copied:,} copied)"
            raise BenchError(f"{process.name}: no {what} on {remote_topic} within {limit:.0f}s\n{process.log_tail()}")
        process.tree()  # remembers every descendant, so a stop can reach them
        time.sleep(POLL_S)
    assert opened is not None and first_record_at is not None
    if copied <= opened[1]:
        raise BenchError(f"{process.name}: the window saw no record copied ({records:,} records were copied "
                         f"between two polls {POLL_S} s apart); give more --records")
    window_s = max(now - opened[0], POLL_S)
    return {"startup_s": first_record_at - started, "window_s": window_s,
            "window_records": copied - opened[1], "window_first_record": opened[1], "window_last_record": copied,
            "cpu_s": meter.cpu_seconds(), "peak_rss_total_bytes": meter.peak_total_rss,
            "processes": meter.processes()}


def measure_load(processes: list[Launched], admin: AdminClient, topic: str, partitions: int, records: int,
                 timeout_s: float, broker_pids: list[int], longest_s: float = float("inf"),
                 steady: bool = True) -> dict:
    """The ceiling's window: like measure_copy's (steady, or a --quick run's whole load), over load
    generators that exit when done; also the generators' cores, the target broker's cores and how
    busy the machine was."""
    meter = TreeMeter(processes[0].pid, other_roots=tuple(p.pid for p in processes[1:]))
    opens_at, closes_at = window_bounds(records, steady)
    started = time.monotonic()
    opened: tuple[float, int, tuple[int, int], int] | None = None
    last_empty: tuple[float, int, tuple[int, int], int] | None = None
    while True:
        offsets = end_offsets(admin, topic, partitions)
        now = time.monotonic()
        copied = sum(offsets.values()) if offsets else 0
        if opened is None:
            if steady or copied == 0:
                meter.start_window()
                last_empty = (now, copied, machine_ticks(), _ticks(broker_pids))
            if steady and copied >= opens_at:
                opened = last_empty
            elif not steady and copied > 0:
                meter.sample()
                opened = last_empty or (started, 0, machine_ticks(), _ticks(broker_pids))
        else:
            meter.sample()
        if opened is not None and (copied >= closes_at or now - opened[0] >= longest_s) and now > opened[0]:
            break
        failed = [p for p in processes if not p.alive() and p.process.returncode != 0]
        if failed:
            raise BenchError(f"{failed[0].name} exited with code {failed[0].process.returncode}\n"
                             f"{failed[0].log_tail()}")
        if all(not p.alive() for p in processes) and copied < closes_at:
            raise BenchError(f"the load generators ended with {copied:,} of {records:,} records on {topic}")
        if now - started > timeout_s:
            raise BenchError(f"the ceiling's load: {copied:,} of {records:,} records on {topic} after {timeout_s:.0f}s")
        for process in processes:
            process.tree()
        time.sleep(POLL_S)
    if copied <= opened[1]:
        raise BenchError(f"the ceiling's window saw no record written to {topic}")
    busy, total = (a - b for a, b in zip(machine_ticks(), opened[2], strict=True))
    window_s = now - opened[0]
    broker_ticks = _ticks(broker_pids)
    return {"window_s": window_s, "window_records": copied - opened[1], "cpu_s": meter.cpu_seconds(),
            "generator_cores": meter.cpu_seconds() / window_s,
            "target_broker_cores": (broker_ticks - opened[3]) / CLOCK_TICKS / window_s if broker_pids else None,
            "machine_busy": busy / total if total else None}


def _ticks(pids: list[int]) -> int:
    return sum(stat.cpu_ticks for stat in (read_stat(pid) for pid in pids) if stat is not None)
