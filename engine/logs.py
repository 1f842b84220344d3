"""Log set-up shared by the coordinator and the workers (stderr, one line per event).

Every line, tracebacks included, passes the process's redactor: a secret of the configuration
(engine/security/secrets.py) is printed as [hidden], whichever library or error message held it.
"""

from __future__ import annotations

import logging
import os
import sys

from engine.security.secrets import redact


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", prefix: str = "coordinator") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(
        f"%(asctime)s %(levelname)s {prefix}[{os.getpid()}] %(name)s: %(message)s"
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    sys.excepthook = _redacting_excepthook


def _redacting_excepthook(kind, error, trace) -> None:
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))
