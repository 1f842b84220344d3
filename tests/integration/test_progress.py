"""`mirror-engine audit` and `cutover` draw a progress line on a terminal (stderr on a pseudo-terminal
here) and write nothing of it into a pipe; what they print on stdout is the same either way."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from tests.helpers import wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, mm2_properties, produce
from tests.integration.test_observability import committed

RUN_TIMEOUT_S = 120


def on_terminal(command: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal on stderr showed) of command."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 24 rows, 200 columns
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            shown += data
        out = process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.returncode, out.decode(), shown.decode(errors="replace")


def lines_of(report: str, topic: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith(f"{topic} ")]


def in_pipes(command: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def test_audit_and_cutover_show_progress_on_a_terminal_and_not_in_a_pipe(source_cluster, target_cluster, engine,
                                                                         unique_name):
    topic = source_cluster.create_topic(unique_name("progress"), 2)
    produce(source_cluster.bootstrap_servers, topic,
            [Record(i % 2, f"k-{i}".encode(), b"v", (), BASE_TIMESTAMP_MS + i) for i in range(100)])
    group = unique_name("group")
    wait_for(lambda: committed(source_cluster, group, topic, {0: 20, 1: 30}), 60, "the group's commit")
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic,
        "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"}))
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, topic) == {0: 50, 1: 50}, 60, "the copy", run.log)
    config = str(run.folder / "mm2.properties")

    audit = [sys.executable, "-m", "engine", "audit", config, "--flow", "A->B"]
    code, out, shown = on_terminal(audit)
    assert code == 0, out + shown
    # one line rewritten in place per partition read, then erased
    assert re.search(r"\r\x1b\[Kaudit A->B: \[\.{20}\] 0/(\d+) partitions, reading \S+\[\d\]\r", shown), shown
    total = int(re.search(r"0/(\d+) partitions", shown).group(1))
    assert total >= 2 and shown.endswith("\r\x1b[K")
    piped = in_pipes(audit)
    assert piped[0] == 0 and "audit A->B:" not in piped[2] and "\x1b[K" not in piped[2]
    # the same report (the heartbeats topic's counts aside: the engine goes on copying heartbeats)
    assert len(lines_of(out, topic)) == 2 and lines_of(piped[1], topic) == lines_of(out, topic)

    cutover = [sys.executable, "-m", "engine", "cutover", config, "--from", "A", "--to", "B", "--groups", group,
               "--timeout", "60"]
    code, out, shown = on_terminal(cutover)
    assert code == 0, out + shown
    assert f"\r\x1b[Kcutover A->B: groups: [....................] 0/1 {group}" in shown, shown
    assert f"group {group}: 2 offsets committed on B" in out
    code, piped_out, piped_err = in_pipes(cutover)
    assert code == 0 and piped_out == out and "cutover A->B:" not in piped_err and "\x1b[K" not in piped_err
    assert run.stop() == 0, run.log()
