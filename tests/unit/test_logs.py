"""Log formats: text (default) and JSON, both redacted line by line."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from engine import logs
from engine.security import secrets
from engine.security.secrets import hide


@pytest.fixture
def setup(monkeypatch):
    """setup_logging(...) onto a StringIO standing for stderr; handlers and excepthook restored after.
    (sys.stderr is patched in the test's own phase: pytest's capture resets it between phases.)"""
    monkeypatch.setattr(secrets, "REDACTOR", secrets.Redactor())  # this test's secrets stay its own
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook

    def start(*args, **kwargs) -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        logs.setup_logging(*args, **kwargs)
        return stream

    yield start
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook = hook


def test_json_lines_carry_time_level_process_logger_and_message(setup, monkeypatch):
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "json")
    captured = setup("INFO", prefix="worker")
    logging.getLogger("engine.worker.loop").warning("worker %d of %s assigned %d partitions", 0, "A->B", 3)
    logging.getLogger("engine").debug("below the level")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "WARNING" and line["process"] == "worker" and line["logger"] == "engine.worker.loop"
    assert line["message"] == "worker 0 of A->B assigned 3 partitions"
    assert isinstance(line["pid"], int) and line["ts"].endswith("Z") and "T" in line["ts"]


def test_json_lines_hide_secrets_even_ones_json_would_escape(setup):
    secret = 'pa"ss\\word-é-1234'
    hide([secret])
    captured = setup("INFO", format="json")
    log = logging.getLogger("engine.test")
    log.error("login with %s failed", secret)
    try:
        raise RuntimeError(f"broker refused {secret}")
    except RuntimeError:
        log.exception("connecting")
    text = captured.getvalue()
    assert secret not in text and json.dumps(secret, ensure_ascii=False)[1:-1] not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "login with [hidden] failed"
    assert second["message"] == "connecting"
    assert "RuntimeError: broker refused [hidden]" in second["exception"]
    assert "Traceback" in second["exception"]


def test_an_uncaught_exception_is_one_more_json_line(setup):
    captured = setup("INFO", format="json")
    try:
        raise ValueError("boom")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    line = json.loads(captured.getvalue())
    assert line["level"] == "CRITICAL" and line["message"] == "uncaught ValueError: boom"
    assert "ValueError: boom" in line["exception"]


def test_text_stays_the_default_and_redacts(setup, monkeypatch):
    monkeypatch.delenv(logs.LOG_FORMAT_ENV, raising=False)
    hide(["text-secret-9876"])
    captured = setup("INFO", prefix="coordinator")
    logging.getLogger("engine").info("token text-secret-9876 in a text line")
    line = captured.getvalue()
    assert " INFO coordinator[" in line and "token [hidden] in a text line" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="MIRROR_ENGINE_LOG_FORMAT: expected one of text, json"):
        logs.log_format("xml")


def test_the_command_line_passes_the_format_to_the_workers(monkeypatch):
    from engine import cli

    monkeypatch.delenv(logs.LOG_FORMAT_ENV, raising=False)
    assert cli.parser().parse_args(["--log-format", "json", "status"]).log_format == "json"
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "json")
    assert cli.parser().parse_args(["status"]).log_format == "json"
