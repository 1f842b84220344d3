"""Worker processes: start, talk to, stop, restart when they die, replace when they fall silent.

A worker reports every second. One silent for longer than `mirror.engine.worker.timeout.ms` is
hung (stopped, swapped out, stuck in a call) and replaced by a new process with the same
assignment. The silent one is killed in at-least-once mode. In exactly-once mode it is left as it
is, as a hung process on another host would be: when it wakes it goes on, and the first record or
commit it sends is refused, because the replacement fenced its transactional id; it then exits.
One still alive when the coordinator stops is killed then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from engine import ipc
from engine.child_process import python_module

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 90.0
MAX_RESTART_DELAY_S = 30.0


class WorkerProcess:
    """One `python -P -m engine.worker` child (engine/child_process.py); restarted with its last
    assignment if it dies."""

    def __init__(self, assignment: ipc.Assign, on_message: Callable[[ipc.Report | ipc.Failed], None],
                 silence_timeout_s: float = 120.0, kill_when_silent: bool = True):
        self.assignment = assignment
        self.on_message = on_message
        self.silence_timeout_s = silence_timeout_s
        self.kill_when_silent = kill_when_silent
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._abandoned: list[asyncio.subprocess.Process] = []  # replaced while silent
        self._stopping = False
        self._watch: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._last_heard = time.monotonic()
        # the current process's latest report and when it came (None: none since its start)
        self.last_report: ipc.Report | None = None
        self.last_report_at: float | None = None
        # scale-out: whether the coordinator's membership holds now (an Assign then starts the lease)
        self.lease_granted: Callable[[], bool] = lambda: True

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        argv, env = python_module("engine.worker")  # the coordinator's engine, wherever it runs
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        self._last_heard = time.monotonic()
        self.last_report = self.last_report_at = None
        await self._send(self.assignment)
        self._watch = asyncio.create_task(self._read_until_exit(self.process),
                                          name=f"worker-{self.assignment.worker_index}")
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._replace_when_silent())
        log.info("started worker %d of %s (pid %d, %d partitions)", self.assignment.worker_index,
                 self.assignment.flow, self.process.pid, len(self.assignment.partitions))

    async def reassign(self, assignment: ipc.Assign) -> None:
        """Sends the new partitions and returns once the worker reports them: by then it has drained
        the old ones and stored their progress (or it died, and its restart starts with these)."""
        self.assignment = msgspec.structs.replace(assignment, generation=self.assignment.generation + 1)
        if not self.alive:
            return
        try:
            await self._send(self.assignment)
        except (BrokenPipeError, ConnectionResetError):
            return  # exiting: the restart starts with the new assignment
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.alive and (self.last_report is None or self.last_report.generation < self.assignment.generation):
            if time.monotonic() > deadline:
                log.error("worker %d of %s (pid %d) did not take its new assignment within %.0fs",
                          self.assignment.worker_index, self.assignment.flow, self.pid, STOP_TIMEOUT_S)
                return
            await asyncio.sleep(0.02)

    async def renew_lease(self) -> None:
        if self.alive and self.assignment.lease_s > 0:
            try:
                await self._send(ipc.Lease())
            except (BrokenPipeError, ConnectionResetError):
                pass  # exiting; the watch restarts it

    async def replace(self, assignment: ipc.Assign) -> None:
        """A clean stop (progress stored), then a new process with this assignment: new client settings."""
        await self.stop()
        self._stopping = False
        self._watchdog = None
        self.assignment = assignment
        await self.start()

    async def stop(self) -> int | None:
        """Asks for a clean stop (flush, store progress); kills only after STOP_TIMEOUT_S."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for process in self._abandoned:  # still asleep at shutdown: ours to end
            if process.returncode is None:
                process.kill()
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        try:
            await self._send(ipc.Stop())
            assert self.process.stdin is not None  # started with a pipe to its stdin
            self.process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("worker %d (pid %d) did not stop within %.0fs; killing it",
                      self.assignment.worker_index, self.process.pid, STOP_TIMEOUT_S)
            self.process.kill()
            await self.process.wait()
        if self._watch is not None:
            await self._watch
        return self.process.returncode

    async def _send(self, message: ipc.ToWorker) -> None:
        assert self.process is not None and self.process.stdin is not None
        if isinstance(message, ipc.Assign) and message.lease_s > 0:
            message = msgspec.structs.replace(message, leased=self.lease_granted())
        self.process.stdin.write(ipc.encode_line(message))
        await self.process.stdin.drain()

    async def _read_until_exit(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            if process is not self.process:
                continue  # a replaced process: nothing it says counts any more
            self._last_heard = time.monotonic()
            try:
                message = ipc.from_worker_decoder.decode(line)
            except msgspec.DecodeError:
                log.warning("worker %d wrote a line that is not a message: %r",
                            self.assignment.worker_index, line[:200])
                continue
            if isinstance(message, ipc.Report):
                self.last_report, self.last_report_at = message, self._last_heard
            self.on_message(message)
        code = await process.wait()
        if self._stopping or process is not self.process:
            return
        self.restarts += 1
        delay = min(MAX_RESTART_DELAY_S, 0.5 * 2 ** min(self.restarts, 6))
        log.error("worker %d of %s (pid %d) exited with code %s; restarting in %.1fs",
                  self.assignment.worker_index, self.assignment.flow, self.process.pid, code, delay)
        await asyncio.sleep(delay)
        if not self._stopping:
            await self.start()

    async def _replace_when_silent(self) -> None:
        while not self._stopping:
            await asyncio.sleep(min(1.0, self.silence_timeout_s / 4))
            process = self.process
            silent_s = time.monotonic() - self._last_heard
            if process is None or process.returncode is not None or silent_s < self.silence_timeout_s:
                continue
            self.restarts += 1
            self._abandoned.append(process)
            log.error("worker %d of %s (pid %d) silent for %.0fs; %s and replacing it",
                      self.assignment.worker_index, self.assignment.flow, process.pid, silent_s,
                      "killing it" if self.kill_when_silent else "fencing it out")
            if self.kill_when_silent:
                try:
                    process.kill()
                except ProcessLookupError:
                    pass
            await self.start()
