"""The progress line of `audit`, `cutover` and `bench`: drawn on a terminal (a pseudo-terminal here),
nothing into a pipe."""

from __future__ import annotations

import os
import pty

from engine.progress import CLEAR, Progress, on_terminal


def drawn(fd_pair: tuple[int, int], total: int | None = 4) -> bytes:
    """What three updates and the end of a Progress wrote into the writing end of fd_pair."""
    reading, writing = fd_pair
    with os.fdopen(writing, "w") as stream:
        with Progress("audit A->B", total, stream=stream) as progress:
            progress.update(1, "orders[1]", force=True)
            progress.update(2, "orders[2]")  # within MIN_INTERVAL_S of the last: not drawn
            progress.update(3, "orders[3]", force=True)
    # every writer is closed: read to the end (a pipe's EOF, or a pseudo-terminal's EIO)
    written = b""
    try:
        while chunk := os.read(reading, 65536):
            written += chunk
    except OSError:
        pass
    finally:
        os.close(reading)
    return written


def test_a_terminal_sees_the_line_rewritten_in_place_then_cleared():
    master, slave = pty.openpty()
    shown = drawn((master, slave)).decode()
    assert shown == (f"{CLEAR}audit A->B: [#####...............] 1/4 orders[1]"
                     f"{CLEAR}audit A->B: [###############.....] 3/4 orders[3]{CLEAR}")


def test_a_pipe_gets_nothing():
    assert drawn(os.pipe()) == b""


def test_without_a_total_it_counts():
    master, slave = pty.openpty()
    assert "audit A->B: 3 orders[3]" in drawn((master, slave), total=None).decode()


def test_on_terminal_tells_a_terminal_from_a_pipe_and_a_closed_stream():
    """What bench's tqdm bars are switched on by."""
    master, slave = pty.openpty()
    reading, writing = os.pipe()
    with os.fdopen(slave, "w") as terminal, os.fdopen(writing, "w") as pipe:
        assert on_terminal(terminal) and not on_terminal(pipe)
    assert not on_terminal(terminal)  # closed
    os.close(master)
    os.close(reading)
