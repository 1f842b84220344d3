"""Processes the benchmark starts (replicators, Kafka's perf tools), stopped only by their pids."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.bench.procstat import process_tree, read_stat
from engine.sandbox.distribution import require_tool

STOP_DEADLINE_S = 45.0




def java_command(jars: Path, main_class: str, args: list[str], log_config: Path,
                 jvm_options: tuple[str, ...]) -> list[str]:
    """`java <options> -cp <jars>/* <main> <args>`, as the sandbox starts its brokers."""
    return [require_tool("java"), *jvm_options, f"-Dlog4j2.configurationFile={log_config}",
            "-cp", str(jars / "*"), main_class, *args]


@dataclass
class Launched:
    """One started process; its descendants are remembered whenever `tree()` is called."""

    name: str
    process: subprocess.Popen
    log_file: Path
    seen: dict[int, int] = field(default_factory=dict)  # pid -> start ticks, of the tree we started

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree(self) -> list[int]:
        pids = process_tree(self.pid) if self.alive() else []
        for pid in pids:
            stat = read_stat(pid)
            if stat is not None:
                self.seen.setdefault(pid, stat.start_ticks)
        return pids

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return f"(no log at {self.log_file})"
        text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {self.log_file} ---\n" + "\n".join(text)

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> int | None:
        """SIGTERM to the root, SIGKILL after the deadline; then SIGKILL to any descendant we saw
        that is still the same process (pid and start time) and still running."""
        self.tree()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        for pid, start_ticks in self.seen.items():
            if pid == self.pid:
                continue
            stat = read_stat(pid)
            if stat is not None and stat.start_ticks == start_ticks and stat.state != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return self.process.returncode


def launch(name: str, command: list[str], log_file: Path, env: dict[str, str] | None = None) -> Launched:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})})
    return Launched(name, process, log_file)


def wait_exit(launched: Launched, timeout_s: float) -> int:
    """Waits for a process that ends by itself (a perf tool); kills it after the timeout."""
    deadline = time.monotonic() + timeout_s
    while launched.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if launched.alive():
        launched.stop(deadline_s=5)
        raise RuntimeError(f"{launched.name} did not finish within {timeout_s:.0f}s\n{launched.log_tail()}")
    return launched.process.returncode
