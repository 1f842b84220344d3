"""Java MirrorMaker 2 4.3.1 in dedicated mode as a test's child process, stopped by its pid.

The benchmark's launcher starts it (engine/bench/mm2.py: connect-mirror fetched with Maven into
.cache/, `org.apache.kafka.connect.mirror.MirrorMaker mm2.properties --clusters <target>`, log4j2
into a file), so tests run the very MM2 the benchmarks measure.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.bench.launch import Launched
from engine.bench.mm2 import exact_topic_regex, render, start_mm2


class JavaMirrorMaker:
    """One MM2 process; `folder` holds its log (mm2.log) and its console output (mm2.console)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.launched: Launched | None = None

    def start(self, config: Path, target_alias: str) -> JavaMirrorMaker:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.launched = start_mm2(config, target_alias, self.folder)
        return self

    @property
    def pid(self) -> int:
        assert self.launched is not None
        return self.launched.pid

    def alive(self) -> bool:
        return self.launched is not None and self.launched.alive()

    def log(self) -> str:
        path = self.folder / "mm2.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        """For failure messages: whether it runs, the end of its log and of its console output."""
        if self.launched is None:
            return "(Java MM2 was not started)"
        state = "running" if self.alive() else f"exited with code {self.launched.process.returncode}"
        console = self.folder / "mm2.console"
        console_tail = console.read_text(errors="replace").splitlines()[-10:] if console.exists() else []
        return (f"--- Java MM2 (pid {self.pid}) {state}; last lines of {self.folder / 'mm2.log'} ---\n"
                + "\n".join(self.log().splitlines()[-lines:])
                + "\n--- console ---\n" + "\n".join(console_tail))

    def errors(self) -> list[str]:
        """MM2's ERROR lines (the log pattern is `[time] LEVEL message (logger)`)."""
        return [line for line in self.log().splitlines() if re.match(r"\[[^]]+\] ERROR ", line)]

    def check_running(self) -> None:
        """For wait_for predicates: an MM2 that died fails the wait at once, with its log."""
        assert self.alive(), "Java MM2 exited early:\n" + self.log_tail()

    def stop(self, deadline_s: float = 45.0) -> int | None:
        """SIGTERM to our own child (its shutdown hook stops the herders, whose tasks commit their
        offsets); SIGKILL only after the deadline."""
        if self.launched is None:
            return None
        return self.launched.stop(deadline_s)


def mm2_file(source_alias: str, target_alias: str, source_servers: str, target_servers: str, topic: str,
             extra: dict[str, str] | None = None) -> str:
    """One mm2.properties for flow source->target that Java MM2 and mirror-engine both read.

    One-node clusters: every topic either creates has one replica. The Connect worker keys
    (`config.storage.*`, `status.storage.*`) are MM2's alone; the engine notes them as unused.
    """
    props = {
        "clusters": f"{source_alias}, {target_alias}",
        f"{source_alias}.bootstrap.servers": source_servers,
        f"{target_alias}.bootstrap.servers": target_servers,
        f"{source_alias}->{target_alias}.enabled": "true",
        f"{source_alias}->{target_alias}.topics": exact_topic_regex(topic),
        f"{target_alias}->{source_alias}.enabled": "false",
        # `--clusters <target>` gives MM2 no herder into the source; the engine's heartbeats into
        # the source are switched off to match
        f"{target_alias}->{source_alias}.emit.heartbeats.enabled": "false",
        "tasks.max": "2",
        "replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "config.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        # the worker config of herder source->target comes from `<target>.*` (docs/design.md, 'How the
        # file becomes settings')
        f"{target_alias}.offset.flush.interval.ms": "1000",
        "emit.checkpoints.interval.seconds": "1",
        "sync.topic.acls.enabled": "false",  # the test brokers have no authorizer
        # Connect's plugin scan by reflection takes ~10 s on 2 cores; MM2's jars all carry
        # ServiceLoader manifests (KIP-898), so the quick discovery finds the same plugins
        "plugin.discovery": "service_load",
        "mirror.engine.metrics.listen": "127.0.0.1:0",
    }
    props.update(extra or {})
    return render(props)
