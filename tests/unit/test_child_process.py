"""A child process of the engine (worker, demo engine, benchmark pass) imports the engine its parent
imported, never the `engine/` of the folder it was started in."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import engine
from engine.child_process import python_module

ROOT = str(Path(engine.__file__).resolve().parent.parent)


def test_a_child_leaves_the_working_directory_off_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", ["/srv/elsewhere", ROOT, "/usr/lib/python3.11"])
    argv, env = python_module("engine.worker")
    assert argv == [sys.executable, "-P", "-m", "engine.worker"]
    assert env is None  # ROOT is an entry of its own: the child finds it without help


def test_an_engine_found_only_through_the_working_directory_is_handed_on_in_pythonpath(monkeypatch):
    """`python -m engine` in an uninstalled checkout: -P would drop the entry the engine came from."""
    monkeypatch.setattr(sys, "path", [ROOT, "/usr/lib/python3.11"])
    monkeypatch.setenv("PYTHONPATH", "/opt/plugins")
    argv, env = python_module("engine", "run", "mm2.properties")
    assert argv == [sys.executable, "-P", "-m", "engine", "run", "mm2.properties"]
    assert env is not None and env["PYTHONPATH"] == os.pathsep.join([ROOT, "/opt/plugins"])
    assert {k: v for k, v in env.items() if k != "PYTHONPATH"} == {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_a_parent_started_with_safe_path_hands_nothing_on(monkeypatch):
    """Under -P, sys.path[0] is an ordinary entry, which the child gets as well."""
    monkeypatch.setattr(sys, "path", [ROOT, "/usr/lib/python3.11"])
    monkeypatch.setattr(sys, "flags", SimpleNamespace(safe_path=True))
    assert python_module("engine.worker")[1] is None
