"""One node of a sandbox cluster as an operating-system process: its folder and files, its JVM
started in a session of its own, signalled, stopped and reaped by the pid it wrote — never by name,
and never a reused pid (the process must show this node's config file on its command line)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.sandbox.distribution import SandboxError

# The default heap is a quarter of RAM per JVM; six brokers, the engine and a Java MM2 must fit
# on 2 cores and 24 GiB, so keep every broker small and on the serial collector.
JVM_OPTIONS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
STOP_TIMEOUT_S = 20.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def pid_runs(pid: int, config: Path) -> bool:
    """True when pid is alive and is the JVM started with this config file (not a reused pid)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return str(config).encode() in cmdline


@dataclass
class Node:
    node_id: int
    broker_port: int
    controller_port: int
    sasl_port: int | None
    folder: Path
    tls_port: int | None = None
    oauth_port: int | None = None
    process: subprocess.Popen | None = None

    @property
    def config_file(self) -> Path:
        return self.folder / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.folder / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "server.log"

    @property
    def console_file(self) -> Path:
        return self.folder / "logs" / "console.out"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_runs(pid, self.config_file)

    def launch(self, java: str, jars: str, jvm_options: tuple[str, ...] = ()) -> None:
        command = [
            java, *JVM_OPTIONS, *jvm_options,
            f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}",
            "-cp", jars, "kafka.Kafka", str(self.config_file),
        ]
        with open(self.console_file, "ab") as console:
            # a session of its own: the JVM outlives `sandbox up` and ignores the caller's Ctrl-C
            self.process = subprocess.Popen(
                command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self.process.pid))

    def signal(self, sig: signal.Signals, cluster: str) -> None:
        pid = self.pid()
        if pid is None or not pid_runs(pid, self.config_file):
            raise SandboxError(f"cluster {cluster}: node {self.node_id} is not running")
        os.kill(pid, sig)

    def stop(self, graceful: bool) -> None:
        pid = self.pid()
        if pid is None or not pid_runs(pid, self.config_file):
            if self.process is not None and self.process.poll() is None:
                self.process.kill()  # our own child, started but not yet showing its config file
            self.reap(block=self.process is not None)
            return
        os.kill(pid, signal.SIGCONT)  # a paused JVM cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.reap(block=True)
        self.pid_file.unlink(missing_ok=True)

    def reap(self, block: bool = False) -> None:
        """Collects our own child's exit status, so it does not linger as a zombie."""
        if self.process is not None:
            try:
                self.process.wait(timeout=10 if block else 0)
            except subprocess.TimeoutExpired:
                pass

    def log_tail(self, cluster: str, lines: int = 40) -> str:
        chunks = []
        for path in (self.console_file, self.log_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path.name} of {cluster} node {self.node_id} ---\n" + "\n".join(text))
        return "\n".join(chunks) or f"(no log for {cluster} node {self.node_id})"
