"""The benchmark's rows, its settings and its one error type."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

from engine.bench.mm2 import cpu_count

REPLICATORS = ("ceiling", "floor", "mm2-defaults", "mm2-tuned", "franz", "python", "c")
# the rows that copy the topic through a replicator (the ceiling and the floor only read or write it)
COPIERS = ("mm2-defaults", "mm2-tuned", "franz", "python", "c")


class BenchError(RuntimeError):
    """A run could not be measured; the message says what and where its log is."""


@dataclass
class Settings:
    records: int = 200_000
    record_sizes: list[int] = field(default_factory=lambda: [1024])
    partitions: int = 4
    runs: int = 3
    compressions: list[str] = field(default_factory=lambda: ["none", "lz4"])
    replicators: list[str] = field(default_factory=lambda: list(REPLICATORS))
    tasks_max: int = field(default_factory=cpu_count)
    latency: bool = True
    latency_seconds: float = 15.0
    # the latency runs' offered loads as shares of the ceiling, and their record sizes (empty: all)
    latency_loads: list[float] = field(default_factory=lambda: [0.5])
    latency_record_sizes: list[int] = field(default_factory=list)
    warmup: bool = True
    copy_timeout_s: float = 600.0
    # the fastest replicator's steady window at least this long; 0: no sizing, whole-copy windows
    window_s: float = 10.0
    # the client security modes whose rows run (engine/bench/security.py); plaintext first
    securities: list[str] = field(default_factory=lambda: ["plaintext"])


def error_text(error: BaseException) -> str:
    """An error's message, or its type where it has none (a TimeoutError): never empty."""
    return str(error).strip() or type(error).__name__


def failure_log(folder: Path, error: BaseException) -> None:
    """The failed run's traceback, next to its logs."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "error.txt", "a") as file:
        file.write("".join(traceback.format_exception(error)))
