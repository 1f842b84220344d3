"""Tools some tests run. Debian's (promtool, systemd-analyze, chromium): found on PATH, or installed with apt-get when
this user may, or a failure that names the package. The dev extra's (hadolint): beside this Python, as
`make install` puts them. Never a silent skip in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def debian_tool(command: str, package: str) -> str:
    """The path of command; installs Debian's package first when it is missing and apt-get may run
    (as root, or through sudo without a password). Outside CI a test without the tool is skipped with
    the reason; in CI (CI=true) it fails."""
    found = shutil.which(command)
    if found is None and shutil.which("apt-get") is not None:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        if not sudo or shutil.which("sudo") is not None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install = sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
            if subprocess.run(install, env=env, capture_output=True).returncode != 0:  # an old package list
                subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, capture_output=True)
                subprocess.run(install, env=env, capture_output=True)
            found = shutil.which(command)
    if found is None:
        message = f"{command} was not found on PATH and could not be installed: apt-get install {package}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def venv_tool(command: str, package: str) -> str:
    """The path of a command the dev extra installs into the venv running the tests (else on PATH);
    missing: skipped with the reason, failed in CI."""
    beside = Path(sys.executable).parent / command
    found = str(beside) if beside.is_file() else shutil.which(command)
    if found is None:
        message = f"{command} was not found beside {sys.executable} or on PATH: pip install {package} (make install)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found
