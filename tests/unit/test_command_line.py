"""The command line's own parsing: options anywhere, checked values, MM2's `--clusters` habit."""

from __future__ import annotations

import logging

import pytest

from engine import cli
from engine.logs import RepeatedLines


def parse(*argv: str):
    command_line = cli.parser()
    args = command_line.parse_args(list(argv))
    if args.command == "run":
        cli._config_after_clusters(command_line, args)
    return args


def test_global_options_are_taken_after_the_sub_command_too():
    args = parse("check-config", "mm2.properties", "--log-level", "debug", "--log-format", "json")
    assert (args.log_level, args.log_format, args.config) == ("DEBUG", "json", "mm2.properties")
    args = parse("--log-level", "warning", "audit", "mm2.properties")
    assert (args.log_level, args.log_format) == ("WARNING", "text")


def test_an_unknown_log_level_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as stopped:
        parse("--log-level", "FOO", "check-config", "mm2.properties")
    assert stopped.value.code == 2
    assert "argument --log-level: invalid choice: 'FOO'" in capsys.readouterr().err


def test_run_clusters_before_the_file_leaves_the_file_alone(tmp_path):
    config_file = tmp_path / "mm2.properties"
    config_file.write_text("clusters = A, B\n")
    args = parse("run", "--clusters", "B", "C", str(config_file))
    assert (args.clusters, args.config) == (["B", "C"], str(config_file))
    args = parse("run", str(config_file), "--clusters", "B")
    assert (args.clusters, args.config) == (["B"], str(config_file))


def test_run_without_a_file_is_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        parse("run", "--clusters", "B", "C")
    assert stopped.value.code == 2
    assert "run: the path to mm2.properties is missing" in capsys.readouterr().err


def test_commands_that_talk_to_clusters_take_a_timeout():
    for argv in (["audit", "f"], ["skip", "f", "--flow", "A->B", "--topic", "t", "--partition", "0", "--past", "1"],
                 ["failover", "f", "--group", "g", "--from", "A", "--to", "B"]):
        assert parse(*argv).timeout == 15.0
        assert parse(*argv, "--timeout", "2.5").timeout == 2.5


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, message, None, None)


def test_a_repeated_line_is_shown_once_per_interval_with_the_count_held_back():
    now = [0.0]
    lines = RepeatedLines(30.0, clock=lambda: now[0])
    fail = ("FAIL [c#producer-1]: 127.0.0.1:1/bootstrap: Connect failed: Connection refused "
            "(after {}ms in state CONNECT)")
    shown = []
    for second in range(0, 65):
        now[0] = float(second)
        for attempt in range(5):
            r = record(fail.format(attempt))
            if lines.filter(r):
                shown.append((second, r.getMessage()))
        other = record("another cause")
        if lines.filter(other):
            shown.append((second, other.getMessage()))
    assert [s for s, _ in shown] == [0, 0, 30, 30, 60, 60]
    assert shown[0][1] == fail.format(0)
    assert shown[2][1] == fail.format(0) + " (149 more like it in the last 30s)"
    assert shown[3][1] == "another cause (29 more like it in the last 30s)"
