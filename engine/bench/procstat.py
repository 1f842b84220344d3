"""CPU time and memory of a process and all its descendants, read from /proc (Linux only).

CPU is utime + stime of each process itself (never cutime/cstime, which would count a waited-for
child twice). A process tree is followed across a window: a process that starts inside the window
counts from zero, one that exits inside it counts up to its last sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime_ticks: int
    stime_ticks: int
    start_ticks: int  # since boot; with pid it names one process even if the pid is reused

    @property
    def cpu_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks


def parse_stat(line: str) -> ProcStat:
    """Parses one /proc/<pid>/stat line (proc(5)); comm may hold spaces and parentheses."""
    head, _, rest = line.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5): utime is field 14, stime 15, starttime 22
    return ProcStat(pid=int(pid_text), comm=comm, state=fields[0], ppid=int(fields[1]),
                    utime_ticks=int(fields[11]), stime_ticks=int(fields[12]), start_ticks=int(fields[19]))


def parse_status_memory(text: str) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes from /proc/<pid>/status text; 0 for a field that is absent."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in values:
            values[name] = int(value.split()[0]) * 1024  # always kB
    return values["VmRSS"], values["VmHWM"]


def machine_ticks(proc: Path = Path("/proc")) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from the `cpu` line of /proc/stat; idle and
    iowait are not busy."""
    fields = [int(v) for v in (proc / "stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - fields[3] - fields[4], total


def threads_cpu_ns(pid: int, proc: Path = Path("/proc")) -> int | None:
    """CPU time of all the process's threads in nanoseconds: the sum of the first field (time on a
    CPU) of /proc/<pid>/task/*/schedstat; None where the kernel has no schedstat."""
    total = 0
    try:
        for task in (proc / str(pid) / "task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except FileNotFoundError:  # the thread ended meanwhile: its time is in none of them now
                continue
    except FileNotFoundError:
        return None
    return total


def read_stat(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def read_memory(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    try:
        return parse_status_memory((proc / str(pid) / "status").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0


def children_of(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Direct children: /proc/<pid>/task/*/children when the kernel has it, else a scan for ppid."""
    found: set[int] = set()
    try:
        for task in (proc / str(pid) / "task").iterdir():
            found.update(int(p) for p in (task / "children").read_text().split())
        return sorted(found)
    except FileNotFoundError:  # the process is gone, or the kernel lacks CONFIG_PROC_CHILDREN
        found.clear()
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None and stat.ppid == pid:
                found.add(stat.pid)
    return sorted(found)


def process_tree(root: int, proc: Path = Path("/proc")) -> list[int]:
    """root and every descendant that is alive now, root first."""
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        if read_stat(pid, proc) is None:
            continue
        tree.append(pid)
        pending.extend(children_of(pid, proc))
    return tree


@dataclass
class _Tracked:
    comm: str
    first_ticks: int  # at the window start, or 0 for a process born inside the window
    last_ticks: int
    peak_rss: int = 0  # largest VmRSS seen
    hwm: int = 0  # VmHWM: the kernel's own peak over the process's life


@dataclass
class TreeMeter:
    """Samples a process tree; cpu_seconds() is the CPU used between start_window() and the last sample."""

    root: int
    proc: Path = Path("/proc")
    tracked: dict[tuple[int, int], _Tracked] = field(default_factory=dict)
    other_roots: tuple[int, ...] = ()  # more trees counted as one (the ceiling's load generators)
    window_open: bool = False
    peak_total_rss: int = 0  # the largest total resident memory sampled since start_window()
    last_total_rss: int = 0

    def sample(self) -> None:
        total_rss = 0
        for pid in [p for root in (self.root, *self.other_roots) for p in process_tree(root, self.proc)]:
            stat = read_stat(pid, self.proc)
            if stat is None:
                continue
            rss, hwm = read_memory(pid, self.proc)
            total_rss += rss
            key = (pid, stat.start_ticks)
            entry = self.tracked.get(key)
            if entry is None:
                # born before the window: counts from its first sample, which start_window() resets
                entry = self.tracked[key] = _Tracked(stat.comm, 0 if self.window_open else stat.cpu_ticks,
                                                     stat.cpu_ticks)
            entry.last_ticks = stat.cpu_ticks
            entry.peak_rss = max(entry.peak_rss, rss)
            entry.hwm = max(entry.hwm, hwm)
        self.last_total_rss = total_rss
        self.peak_total_rss = max(self.peak_total_rss, total_rss)

    def start_window(self) -> None:
        """Samples now and makes this sample the zero of cpu_seconds() and of peak_total_rss."""
        self.sample()
        for entry in self.tracked.values():
            entry.first_ticks = entry.last_ticks
        self.peak_total_rss = self.last_total_rss
        self.window_open = True

    def cpu_seconds(self) -> float:
        return sum(e.last_ticks - e.first_ticks for e in self.tracked.values()) / CLOCK_TICKS

    def processes(self) -> list[dict]:
        """Per process: pid, root (the process started) or child, command name, CPU seconds in the window,
        peak RSS and VmHWM in bytes."""
        return [
            {"pid": pid, "role": "root" if pid in (self.root, *self.other_roots) else "child", "comm": e.comm,
             "cpu_s": (e.last_ticks - e.first_ticks) / CLOCK_TICKS,
             "peak_rss_bytes": e.peak_rss, "hwm_bytes": e.hwm}
            for (pid, _), e in sorted(self.tracked.items())
        ]
