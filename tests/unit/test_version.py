"""`mirror-engine --version`: three lines, the hex versions read as their libraries define them."""

from __future__ import annotations

import re

import pytest

import engine
from engine import version
from engine.cli import main


@pytest.mark.parametrize(("hex_version", "release"), [
    (0x030301F0, "3.3.1"), (0x030100B2, "3.1.0b2"), (0x030200C1, "3.2.0rc1"), (0x03000AA3, "3.0.10a3"),
])
def test_cython_hex_versions(hex_version, release):
    assert version.cython_release(hex_version) == release


@pytest.mark.parametrize(("hex_version", "release"), [(0x021000FF, "2.16.0"), (0x020A0103, "2.10.1-pre3")])
def test_librdkafka_hex_versions(hex_version, release):
    assert version.librdkafka_release(hex_version) == release


def test_version_prints_three_lines(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"mirror-engine {engine.__version__}"
    assert re.fullmatch(r"librdkafka \d+\.\d+\.\d+ \(confluent-kafka \d+\.\d+\.\d+\)", lines[1])
    assert re.fullmatch(r"engine\._fastpath compiled by Cython 3\.\d+\.\d+\S*, "
                        r"loaded from /\S+/engine/_fastpath\.\S+\.so", lines[2])
    assert len(lines) == 3


def test_version_without_the_compiled_fast_path_names_it_and_exits_2(monkeypatch, capsys):
    def missing():
        raise ImportError("No module named 'engine._fastpath'")

    monkeypatch.setattr(version, "version_lines", missing)
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "mirror-engine: error: the compiled fast path does not load (No module named 'engine._fastpath'); build it "
        "(setup.py build_ext --inplace) or install the wheel (make wheel)"]
