"""Install on a replication host: `make wheel`, the wheel in a fresh venv, and that installed engine run
from inside a folder holding another `engine/` (as a checkout does).

The wheel is built by `make wheel` into a temporary folder and installed with the fresh venv's own pip
(the runtime dependencies come from the package registry). Whatever PYTHONPATH this test session runs
with is left out of the installed engine's environment: it runs on what the venv holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import http_get, wait_for
from tests.integration.conftest import EngineProcess
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, mm2_properties, produce, read_all

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# what a venv holds before anything is installed into it
VENV_SEED = {"pip", "setuptools"}
STUB_ENGINE = 'raise ImportError("the engine/ of the working directory was imported, not the installed engine")\n'


@pytest.fixture(scope="module")
def host_venv(tmp_path_factory) -> Path:
    """A fresh venv with only the wheel `make wheel` built (and what the wheel requires)."""
    folder = tmp_path_factory.mktemp("host")
    dist = folder / "dist"
    # -o install: the venv running this test is the build's pip; `make install` is not redone
    built = subprocess.run(["make", "--no-print-directory", "-o", "install", "wheel", f"PY={sys.executable}",
                            f"DIST={dist}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(dist.glob("mirror_engine-*.whl"))
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform_tag = sysconfig.get_platform().replace("-", "_").replace(".", "_")  # linux_x86_64: compiled
    expected = f"mirror_engine-{PROJECT['version']}-{python_tag}-{python_tag}-{platform_tag}.whl"
    assert [w.name for w in wheels] == [expected]
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", str(wheels[0])],
                               capture_output=True, text=True, timeout=600, env=_host_env())
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def _host_env() -> dict[str, str]:
    """This session's environment without PYTHONPATH: a host's engine sees only its venv."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _in_venv(venv: Path, code: str) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60,
                          env=_host_env(), cwd=venv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _runtime_closure(requires: dict[str, list[str]], root: str) -> set[str]:
    """The distributions `root` needs without extras, following each requirement whose marker holds."""
    needed, pending = set(), [root]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        for line in requires.get(name, []):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return needed


def test_the_wheel_brings_the_runtime_dependencies_and_nothing_else(host_venv):
    listing = json.loads(_in_venv(host_venv, "import importlib.metadata as m, json; print(json.dumps("
                                              "{d.metadata['Name']: d.requires or [] for d in m.distributions()}))"))
    requires = {canonicalize_name(name): lines for name, lines in listing.items()}
    installed = set(requires) - VENV_SEED
    assert installed == _runtime_closure(requires, "mirror-engine")
    # the dependencies pyproject declares, and none of the dev or bench extras
    declared = {canonicalize_name(Requirement(line).name) for line in PROJECT["dependencies"]}
    assert declared <= installed
    for extra in ("pytest", "pytest-benchmark", "cython", "matplotlib", "tqdm", "pyyaml"):
        assert extra not in installed, extra


def test_version_names_the_engine_librdkafka_and_the_installed_fast_path(host_venv, tmp_path):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text(STUB_ENGINE)
    shown = subprocess.run([str(host_venv / "bin" / "mirror-engine"), "--version"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path, env=_host_env())
    assert (shown.returncode, shown.stderr) == (0, "")
    engine_line, librdkafka_line, fastpath_line = shown.stdout.splitlines()
    assert engine_line == f"mirror-engine {PROJECT['version']}"

    librdkafka = re.fullmatch(r"librdkafka (\d+\.\d+\.\d+(?:-pre\d+)?) \(confluent-kafka (\S+)\)", librdkafka_line)
    assert librdkafka, librdkafka_line
    pinned = next(Requirement(line) for line in PROJECT["dependencies"] if line.startswith("confluent-kafka"))
    assert f"=={librdkafka.group(2)}" == str(pinned.specifier)
    assert librdkafka.group(1) == _in_venv(host_venv, "import confluent_kafka; print(confluent_kafka.libversion()[0])"
                                           ).strip()

    fastpath = re.fullmatch(r"engine\._fastpath compiled by Cython (\d+)\.\d+\.\d+(?:(?:a|b|rc|\.dev)\d+)?, "
                            r"loaded from (/\S+\.so)", fastpath_line)
    assert fastpath, fastpath_line
    assert fastpath.group(1) == "3"  # pyproject's build requirement: Cython>=3.0,<4
    site_packages = _in_venv(host_venv, "import sysconfig; print(sysconfig.get_paths()['platlib'])").strip()
    assert Path(fastpath.group(2)).parent == Path(site_packages) / "engine"


def _records(count: int, partitions: int) -> list[Record]:
    return [Record(partition=i % partitions, key=f"key-{i}".encode(), value=f"value-{i}".encode(),
                   headers=(("n", str(i).encode()),), timestamp=BASE_TIMESTAMP_MS + i) for i in range(count)]


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("working_directory", ["stub", "checkout"])
def test_the_installed_engine_run_inside_a_checkout_copies_with_its_own_workers(
        host_venv, source_cluster, target_cluster, unique_name, tmp_path, working_directory):
    """Workers started with `python -m` imported the working directory's engine/ first: inside a checkout
    whose fast path is not built (the stub fails any import), they died on start and were restarted for
    ever. They import the installed engine now, as the coordinator does."""
    if working_directory == "stub":
        cwd = tmp_path / "checkout"
        (cwd / "engine" / "worker").mkdir(parents=True)
        (cwd / "engine" / "__init__.py").write_text(STUB_ENGINE)
        (cwd / "engine" / "worker" / "__main__.py").write_text(STUB_ENGINE)
    else:
        cwd = ROOT
    topic = source_cluster.create_topic(unique_name("host"), 2)
    records = _records(2_000, 2)
    produce(source_cluster.bootstrap_servers, topic, records)
    folder = tmp_path / "engine"
    folder.mkdir()
    run = EngineProcess(folder).start(mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic}),
                                      command=[str(host_venv / "bin" / "mirror-engine")], cwd=cwd, env=_host_env())
    try:
        remote = f"A.{topic}"
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= len(records),
                 90, f"{len(records)} records in {remote}", run.log)
        status, metrics = http_get(run.metrics_url())
        assert status == 200
        assert _metric(metrics, "mirror_engine_worker_restarts_total", flow="A->B") == 0
        # each worker mapped the installed fast path, not the one of the folder it was started in
        site_packages = (host_venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                         / "site-packages").resolve()
        pids = run.worker_pids()
        assert pids, run.log()
        for pid in pids.values():
            mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                      if "_fastpath" in line}
            assert mapped == {str(site_packages / "engine" / f"_fastpath{sysconfig.get_config_var('EXT_SUFFIX')}")}
        assert run.stop() == 0, run.log()
    finally:
        run.kill()
    copied = read_all(target_cluster.bootstrap_servers, remote)
    for partition in (0, 1):
        assert copied[partition] == [r for r in records if r.partition == partition], f"partition {partition}"
