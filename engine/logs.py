"""Log set-up shared by the coordinator and the workers (stderr, one line per event)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "INFO", prefix: str = "coordinator") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s {prefix}[{os.getpid()}] %(name)s: %(message)s"
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
