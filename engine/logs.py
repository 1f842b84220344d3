"""Log set-up shared by the coordinator and the workers (stderr, one line per event).

Every line, tracebacks included, passes the process's redactor: a secret of the configuration
(engine/security/secrets.py) is printed as [hidden], whichever library or error message held it.

Two formats, chosen by `--log-format` or the environment variable MIRROR_ENGINE_LOG_FORMAT
(the workers inherit it from the coordinator):
  text  `2026-01-01 12:00:00,123 INFO coordinator[4242] engine.coordinator: message` (default)
  json  one JSON object per line: {"ts": "2026-01-01T12:00:00.123Z", "level": "INFO",
        "process": "coordinator" or "worker", "pid": 4242, "logger": "engine.coordinator",
        "message": "...", "exception": "Traceback ..." when there is one}
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from engine.security.secrets import redact

LOG_FORMAT_ENV = "MIRROR_ENGINE_LOG_FORMAT"
LOG_FORMATS = ("text", "json")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Each text is redacted before it is encoded — JSON escapes a quote
    or a backslash, and an escaped secret no longer matches the redactor — and the line again."""

    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "process": self.process,
            "pid": record.process if record.process is not None else os.getpid(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            document["exception"] = redact(record.exc_text)
        if record.stack_info:
            document["stack"] = redact(self.formatStack(record.stack_info))
        return redact(json.dumps(document, ensure_ascii=False))


class RepeatedLines(logging.Filter):
    """Lets each distinct line through once per interval; the next one that passes says how many
    like it were held back. Lines differing only in durations ("after 12ms") count as the same."""

    _DURATION = re.compile(r"\d+ ?ms\b")

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self.last_shown: dict[tuple[int, str], float] = {}
        self.held: dict[tuple[int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, self._DURATION.sub("", record.getMessage()))
        now = self.clock()
        shown = self.last_shown.get(key)
        if shown is not None and now - shown < self.interval_s:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        self.last_shown[key] = now
        held = self.held.pop(key, 0)
        if held and shown is not None:  # lines are held only after one was shown
            record.msg, record.args = f"{record.getMessage()} ({held} more like it in the last " \
                                      f"{now - shown:.0f}s)", None
        if len(self.last_shown) > 1000:  # bounded: forget lines not seen for an interval
            for old in [k for k, t in self.last_shown.items() if now - t >= self.interval_s]:
                self.last_shown.pop(old)
                self.held.pop(old, None)
        return True


def log_format(requested: str | None = None) -> str:
    chosen = (requested or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"{LOG_FORMAT_ENV}: expected one of {', '.join(LOG_FORMATS)}, got {chosen!r}")
    return chosen


def setup_logging(level: str = "INFO", prefix: str = "coordinator", format: str | None = None) -> None:  # noqa: A002
    """Logs to stderr in the chosen format (default: MIRROR_ENGINE_LOG_FORMAT, else text)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format(format) == "json":
        handler.setFormatter(JsonFormatter(prefix))
        sys.excepthook = _json_excepthook
    else:
        handler.setFormatter(RedactingFormatter(
            f"%(asctime)s %(levelname)s {prefix}[{os.getpid()}] %(name)s: %(message)s"
        ))
        sys.excepthook = _redacting_excepthook
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _redacting_excepthook(kind, error, trace) -> None:
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))


def _json_excepthook(kind, error, trace) -> None:
    """An uncaught exception is one more JSON line, not a bare traceback among them."""
    logging.getLogger("engine").critical("uncaught %s: %s", kind.__name__, error, exc_info=(kind, error, trace))
