"""A one-line progress indicator for commands that take a while (`audit`, `cutover`, `bench`).

Shown only when its stream (stderr) is a terminal: rewritten in place, at most every MIN_INTERVAL_S,
and cleared when the work ends, so what the command prints for good stays as it was. Into a pipe
or a file it writes nothing: logs and scripts get the results, not the animation. The engine's
runtime needs no progress-bar package for this.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO

MIN_INTERVAL_S = 0.1
CLEAR = "\r\x1b[K"  # back to the line's start, erase to its end


def on_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """`with Progress("audit A->B", total) as progress: progress.update(done, "orders[2]")`."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO | None = None):
        self.what = what
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.shown = on_terminal(self.stream)
        self._last_at = 0.0
        self._drawn = False

    def update(self, done: int, detail: str = "", force: bool = False) -> None:
        if not self.shown:
            return
        now = time.monotonic()
        if not force and now - self._last_at < MIN_INTERVAL_S:
            return
        self._last_at = now
        self.stream.write(CLEAR + self.line(done, detail))
        self.stream.flush()
        self._drawn = True

    def line(self, done: int, detail: str = "") -> str:
        """The text shown, cut to the terminal's width."""
        if self.total:
            filled = min(20, 20 * done // self.total)
            text = f"{self.what}: [{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total}"
        else:
            text = f"{self.what}: {done}"
        if detail:
            text += f" {detail}"
        return text[: max(20, self._columns() - 1)]

    def _columns(self) -> int:
        """The width of the stream's own terminal (not stdout's, which may be a pipe)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns or shutil.get_terminal_size().columns

    def close(self) -> None:
        if self._drawn:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
