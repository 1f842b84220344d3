"""Worker processes: start, talk to, stop, and restart when they die."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Callable

import msgspec

from engine import ipc

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 90.0
MAX_RESTART_DELAY_S = 30.0


class WorkerProcess:
    """One `python -m engine.worker` child; restarted with its last assignment if it dies."""

    def __init__(self, assignment: ipc.Assign, on_message: Callable[[ipc.Report | ipc.Failed], None]):
        self.assignment = assignment
        self.on_message = on_message
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._watch: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        await self._send(self.assignment)
        self._watch = asyncio.create_task(self._read_until_exit(), name=f"worker-{self.assignment.worker_index}")
        log.info("started worker %d of %s (pid %d, %d partitions)", self.assignment.worker_index,
                 self.assignment.flow, self.process.pid, len(self.assignment.partitions))

    async def reassign(self, assignment: ipc.Assign) -> None:
        self.assignment = assignment
        await self._send(assignment)

    async def stop(self) -> int | None:
        """Asks for a clean stop (flush, store progress); kills only after STOP_TIMEOUT_S."""
        self._stopping = True
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        try:
            await self._send(ipc.Stop())
            self.process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.error("worker %d (pid %d) did not stop within %.0fs; killing it",
                      self.assignment.worker_index, self.process.pid, STOP_TIMEOUT_S)
            self.process.kill()
            await self.process.wait()
        if self._watch is not None:
            await self._watch
        return self.process.returncode

    async def _send(self, message: ipc.Assign | ipc.Stop) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(ipc.encode_line(message))
        await self.process.stdin.drain()

    async def _read_until_exit(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                self.on_message(ipc.from_worker_decoder.decode(line))
            except msgspec.DecodeError:
                log.warning("worker %d wrote a line that is not a message: %r",
                            self.assignment.worker_index, line[:200])
        code = await self.process.wait()
        if self._stopping:
            return
        self.restarts += 1
        delay = min(MAX_RESTART_DELAY_S, 0.5 * 2 ** min(self.restarts, 6))
        log.error("worker %d of %s (pid %d) exited with code %s; restarting in %.1fs",
                  self.assignment.worker_index, self.assignment.flow, self.process.pid, code, delay)
        await asyncio.sleep(delay)
        if not self._stopping:
            await self.start()
