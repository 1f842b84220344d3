"""Worker process entry: `python -m engine.worker`, driven by its coordinator over stdin/stdout."""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading

from engine import ipc
from engine.logs import setup_logging
from engine.security.secrets import hide
from engine.worker.loop import open_worker


class LineReader:
    """Lines from a file descriptor through os.read: no buffered-stream lock that a blocked
    daemon thread could hold while the interpreter shuts down (a fatal error at exit)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def _read_inbox(reader: LineReader, inbox: queue.Queue[ipc.ToWorker | None]) -> None:
    while line := reader.readline():
        message = ipc.to_worker_decoder.decode(line)
        if isinstance(message, ipc.Assign):
            hide(message.secrets)
        inbox.put(message)
    inbox.put(None)  # the coordinator is gone: stop rather than run orphaned


def main() -> int:
    setup_logging(os.environ.get("MIRROR_ENGINE_LOG_LEVEL", "INFO"), prefix="worker")
    reader = LineReader(sys.stdin.fileno())
    first = reader.readline()
    if not first:
        return 0
    assignment = ipc.to_worker_decoder.decode(first)
    if not isinstance(assignment, ipc.Assign):
        return 0
    hide(assignment.secrets)
    inbox: queue.Queue[ipc.ToWorker | None] = queue.Queue()
    # Ctrl-C in a terminal reaches the whole process group: treat it as a clean stop
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: inbox.put(ipc.Stop()))
    threading.Thread(target=_read_inbox, args=(reader, inbox), daemon=True, name="inbox").start()
    out = sys.stdout.buffer
    lock = threading.Lock()

    def report(message: ipc.Report | ipc.Failed) -> None:
        with lock:
            try:
                out.write(ipc.encode_line(message))
                out.flush()
            except BrokenPipeError:
                pass  # the coordinator is gone; the inbox reader already asked us to stop

    return open_worker(assignment, inbox, report).run()


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
