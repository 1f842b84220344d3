"""How the engine starts a Python process of its own: a worker, `run` from the demo, a benchmark pass.

A child must import the engine its parent runs. `python -m` would put the working directory first on
`sys.path`: an engine installed on a host and started from inside a checkout of the project would then
start workers that import the checkout's `engine/` (whose fast path is not compiled there, or is of
another version) and die on `engine._fastpath`. So children run with `-P` (Python 3.11), which leaves
the working directory out: they import the installed engine, or the one PYTHONPATH or an editable
install names in development. A parent that itself found `engine` only through that working-directory
entry (`python -m engine` in an uninstalled checkout) hands the directory on in PYTHONPATH instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import engine


def python_module(module: str, *args: str) -> tuple[list[str], dict[str, str] | None]:
    """(argv, env) that run `module` as __main__ on the engine this process runs; env None: inherit ours."""
    argv = [sys.executable, "-P", "-m", module, *args]
    root = _root_only_on_the_working_directory_entry()
    if root is None:
        return argv, None
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return argv, {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _root_only_on_the_working_directory_entry() -> str | None:
    """The folder holding our `engine` package when sys.path[0], the entry `-P` leaves out, is the only
    entry that names it; else None."""
    if sys.flags.safe_path or not sys.path:
        return None  # started with -P ourselves: sys.path[0] is an ordinary entry, kept by children too
    root = str(Path(engine.__file__).resolve().parent.parent)
    entries = [str(Path(entry or os.curdir).resolve()) for entry in sys.path]
    return root if entries[0] == root and root not in entries[1:] else None
