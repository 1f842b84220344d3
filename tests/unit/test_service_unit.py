"""deploy/systemd/mirror-engine.service: `systemd-analyze verify` finds nothing to say, its stop timeout
covers the engine's shutdown flush, reload sends SIGHUP, and it runs hardened.

systemd-analyze comes with Debian's `systemd` package (installed by the test when missing). verify
also checks that ExecStart's program exists, so it is given a copy whose /opt/mirror-engine/bin/mirror-engine
is the `mirror-engine` of the venv running the tests; nothing else is changed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import parser
from engine.coordinator.supervisor import STOP_TIMEOUT_S
from engine.worker.loop import SHUTDOWN_FLUSH_S
from tests.system_tools import debian_tool

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "mirror-engine.service"
INSTALLED = "/opt/mirror-engine/bin/mirror-engine"
CONFIG_DIR = "/etc/mirror-engine"


def settings(text: str) -> dict[str, list[str]]:
    """key -> its values in the order written (a unit may repeat a key)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(text: str, folder: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify of the unit, with ExecStart's program the one this venv holds."""
    here = Path(sys.executable).parent / "mirror-engine"
    assert here.is_file(), f"{here} is missing: the venv running the tests has no mirror-engine command"
    unit = folder / UNIT.name
    unit.write_text(text.replace(INSTALLED, str(here)))
    return subprocess.run([debian_tool("systemd-analyze", "systemd"), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    result = verify(UNIT.read_text(), tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_names_a_misspelt_key(tmp_path):
    """The check can fail: systemd ignores an unknown key with a warning, which the test above refuses."""
    result = verify(UNIT.read_text().replace("TimeoutStopSec=", "TimeoutStopSex="), tmp_path)
    assert "Unknown key 'TimeoutStopSex' in section [Service]" in result.stderr


def test_the_stop_timeout_covers_the_shutdown_flush():
    unit = settings(UNIT.read_text())
    # a worker flushes for up to SHUTDOWN_FLUSH_S; the coordinator kills one still running after STOP_TIMEOUT_S
    assert SHUTDOWN_FLUSH_S < STOP_TIMEOUT_S == 90
    assert unit["TimeoutStopSec"] == ["120"]
    assert int(unit["TimeoutStopSec"][0]) > STOP_TIMEOUT_S
    # SIGTERM to the coordinator alone: it stops its workers in order, the rest is killed only at the timeout
    assert unit["KillMode"] == ["mixed"]


def test_reload_sends_sighup_and_start_runs_the_file_under_the_read_only_folder():
    unit = settings(UNIT.read_text())
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    argv = shlex.split(unit["ExecStart"][0])
    assert argv[0] == INSTALLED
    args = parser().parse_args(argv[1:])
    assert (args.command, args.config) == ("run", f"{CONFIG_DIR}/mm2.properties")
    assert unit["ReadOnlyPaths"] == [CONFIG_DIR]
    assert unit["LoadCredential"] == [f"secrets.properties:{CONFIG_DIR}/secrets.properties"]


@pytest.mark.parametrize(("key", "value"), [
    ("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("CapabilityBoundingSet", ""), ("UMask", "0077"),
    ("SystemCallFilter", "@system-service"),
])
def test_the_service_runs_hardened(key, value):
    assert settings(UNIT.read_text())[key] == [value]


def test_systemd_rates_the_exposure_ok():
    result = subprocess.run([debian_tool("systemd-analyze", "systemd"), "security", "--offline=yes", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    level = re.search(r"Overall exposure level for mirror-engine\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert level, result.stdout[-2000:]
    assert float(level.group(1)) <= 2.0 and level.group(2) == "OK", level.group(0)
