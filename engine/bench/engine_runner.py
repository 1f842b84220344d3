"""mirror-engine as the benchmark runs it: `<this python> -P -m engine run mm2.properties --loop <c|python>`."""

from __future__ import annotations

import inspect
from pathlib import Path

from engine.bench.launch import Launched, launch
from engine.child_process import python_module

LOOPS = ("python", "c")


def engine_properties(loop: str) -> dict[str, str]:
    """The engine's own keys added to the shared mm2.properties: no metrics endpoint, the loop."""
    return {"mirror.engine.metrics.listen": "", "mirror.engine.loop": loop}


def start_engine(config: Path, loop: str, folder: Path) -> Launched:
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    command, env = python_module("engine", "--log-level", "INFO", "run", str(config), "--loop", loop)
    return launch(f"mirror-engine ({loop} loop)", command, folder / f"engine-{loop}.log", env)


def honours_compression() -> bool:
    """Whether this checkout's config reader knows the target producer's compression key yet.

    Looked up in the source, not assumed: the key is being added while this harness is written;
    until then the engine's producer compresses nothing whatever the file says, and the report
    says so."""
    from engine.config import flows

    return "producer.compression.type" in inspect.getsource(flows)
