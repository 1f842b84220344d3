"""What a benchmark runs, in which order, how long that should take, and what an earlier session of
the same results folder already finished.

The steps: every throughput run (record size × compression × run round × security mode × row; run 0
is the warm-up), then the latency runs (record size × offered load × copier, plaintext, the first
compression). The duration estimate adds up, per step, the start-up its row was seen to need on
this 2-core class of machine and the window the settings ask for (rows.py sizes the topic so the
fastest copy's window lasts --window-seconds; a slower copy's closes after at most twice that).

The journal (`progress.jsonl` in the results folder) gets a line per finished step; a rerun with
the same folder and settings skips what is in it, except the warm-up of a case that still has
runs to do (the clusters, the topic and the caches are new, so it warms up again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.bench.security import PLAINTEXT
from engine.bench.settings import COPIERS, REPLICATORS, Settings

JOURNAL = "progress.jsonl"
# seconds a row needs beyond its window: start-up until the first copy (MM2's Connect herders take
# 15-35 s on 2 shared cores), stopping, creating and deleting the topics; the ceiling runs two
# flavours of load generators, the floor two passes over the whole topic
OVERHEAD_S = {"ceiling": 20.0, "floor": 12.0, "mm2-defaults": 45.0, "mm2-tuned": 45.0, "franz": 4.0,
              "python": 14.0, "c": 10.0}
# the window's length over --window-seconds: the fastest copies finish 90 % of a topic sized for
# them with a 1.3 margin (1.46), the slow ones are cut off after 5 s plus twice the window
WINDOW_FACTOR = {"ceiling": 3.0, "floor": 2.0, "mm2-defaults": 2.0, "mm2-tuned": 2.0, "franz": 1.5,
                 "python": 2.0, "c": 1.5}
SLOW_START_S = 5.0
CLUSTERS_S = 40.0
# a case's preload and its top-up before the first measured round: a topic for 2.5 × the window
PRELOAD_S, PRELOAD_FACTOR = 10.0, 3.0
# a latency run: start-up, primer, the load itself, draining and reading both topics back
LATENCY_OVERHEAD_S = 30.0


@dataclass(frozen=True)
class Step:
    kind: str  # "throughput" or "latency"
    record_size: int
    compression: str
    replicator: str
    run: int = 0  # throughput: 0 is the warm-up
    security: str = PLAINTEXT
    load_share: float = 0.5  # latency: the offered load as a share of the ceiling

    @property
    def key(self) -> str:
        """The step's name in the journal."""
        if self.kind == "latency":
            return f"latency/{self.record_size}-{self.compression}/{self.replicator}-{round(self.load_share * 100)}"
        return f"{self.record_size}-{self.compression}/{self.security}/{self.replicator}-{self.run}"

    @property
    def case(self) -> tuple[int, str]:
        return self.record_size, self.compression


def plan(settings: Settings) -> list[tuple[int, str, int, str, str]]:
    """(record size, compression, run index, security mode, replicator) in execution order; run 0 is
    the warm-up. Rows take turns within each run so that drift of the machine spreads over all of them."""
    order = [r for r in REPLICATORS if r in settings.replicators]
    first_run = 0 if settings.warmup else 1
    return [(size, compression, run, mode, replicator)
            for size in settings.record_sizes for compression in settings.compressions
            for run in range(first_run, settings.runs + 1) for mode in settings.securities for replicator in order]


def steps(settings: Settings) -> list[Step]:
    """Every step of the benchmark in execution order: the throughput runs, then the latency runs."""
    throughput = [Step("throughput", size, compression, replicator, run, mode)
                  for size, compression, run, mode, replicator in plan(settings)]
    if not settings.latency:
        return throughput
    sizes = settings.latency_record_sizes or settings.record_sizes
    latency = [Step("latency", size, settings.compressions[0], replicator, load_share=share)
               for size in sizes for share in settings.latency_loads
               for replicator in REPLICATORS if replicator in settings.replicators and replicator in COPIERS]
    return throughput + latency


def estimate_s(step: Step, settings: Settings) -> float:
    """The step's expected seconds (module docstring)."""
    if step.kind == "latency":
        return LATENCY_OVERHEAD_S + OVERHEAD_S[step.replicator] + settings.latency_seconds
    window = settings.window_s * WINDOW_FACTOR[step.replicator]
    if WINDOW_FACTOR[step.replicator] >= 2.0 and step.replicator not in ("ceiling", "floor"):
        window += SLOW_START_S
    return OVERHEAD_S[step.replicator] + window


def case_estimate_s(settings: Settings) -> float:
    """A case's preload and top-up."""
    return PRELOAD_S + PRELOAD_FACTOR * settings.window_s


def estimate_total_s(pending: list[Step], settings: Settings) -> float:
    """The clusters' start, each pending case's preload and every pending step."""
    cases = {s.case for s in pending if s.kind == "throughput"}
    return CLUSTERS_S + len(cases) * case_estimate_s(settings) + sum(estimate_s(s, settings) for s in pending)


def estimate_line(planned: list[Step], pending: list[Step], settings: Settings) -> str:
    """The plan and its estimated duration, as the benchmark prints it at the start."""
    throughput = sum(1 for s in pending if s.kind == "throughput")
    done = len(planned) - len(pending)
    return (f"{throughput} throughput and {len(pending) - throughput} latency runs to do"
            + (f" (kept from an earlier session: {done})" if done else "")
            + f": estimated {estimate_total_s(pending, settings) / 60:.0f} min from the configured windows")


class JournalMismatch(ValueError):
    """The results folder holds a run with other settings."""


class Journal:
    """progress.jsonl: the settings on its first line, then one line per finished step."""

    def __init__(self, folder: Path, settings: Settings):
        self.path = folder / JOURNAL
        self.settings = _comparable(settings)
        self.done: dict[str, dict] = {}
        self.cases: dict[str, dict] = {}
        if not self.path.exists():
            return
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        earlier = lines[0].get("settings") if lines else None
        if earlier != self.settings:
            differ = sorted(k for k in set(earlier or {}) | set(self.settings)
                            if (earlier or {}).get(k) != self.settings.get(k))
            raise JournalMismatch(f"{folder} holds a run with other settings (they differ in "
                                  f"{', '.join(differ)}): rerun with the same settings or give a new --out")
        for line in lines[1:]:
            if "step" in line:
                self.done[line["step"]] = line["result"]
            elif "case" in line:
                self.cases[f"{line['case']['record_size']}-{line['case']['compression']}"] = line["case"]

    def pending(self, planned: list[Step]) -> list[Step]:
        """The steps still to run: those not in the journal, and the warm-up of a case with any."""
        todo = [s for s in planned if s.key not in self.done]
        unfinished = {s.case for s in todo if s.kind == "throughput"}
        warmups = {s.key for s in planned if s.kind == "throughput" and s.run == 0 and s.case in unfinished}
        return [s for s in planned if s.key not in self.done or s.key in warmups]

    def record(self, step: Step, result: dict) -> None:
        self.done[step.key] = result
        self._append({"step": step.key, "result": result})

    def record_case(self, case: dict) -> None:
        self.cases[f"{case['record_size']}-{case['compression']}"] = case
        self._append({"case": case})

    def results(self, planned: list[Step], kind: str) -> list[dict]:
        """The journal's results of `kind`, in plan order."""
        return [self.done[s.key] for s in planned if s.kind == kind and s.key in self.done]

    def _append(self, line: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n")
        with open(self.path, "a") as file:
            file.write(json.dumps(line, default=str) + "\n")


def _comparable(settings: Settings) -> dict:
    """The settings as the journal keeps them (JSON types)."""
    return json.loads(json.dumps(vars(settings), default=str))
