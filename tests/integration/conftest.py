"""Real Kafka 4.3.1 KRaft clusters, started once per test session, named by role.

MIRROR_ENGINE_TEST_SOURCE / MIRROR_ENGINE_TEST_TARGET (bootstrap servers) point the tests at
existing clusters instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from engine.sandbox import KafkaCluster, SaslSettings
from tests.helpers import http_get


@dataclass
class ClusterHandle:
    alias: str
    bootstrap_servers: str
    cluster: KafkaCluster | None  # None when the tests use an existing cluster

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap_servers})

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None) -> str:
        admin = self.admin()  # must outlive the future, or librdkafka cancels the request
        futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
        futures[name].result(timeout=30)
        return name

    def delete_topic(self, name: str) -> None:
        admin = self.admin()
        admin.delete_topics([name])[name].result(timeout=30)

    def log_tail(self) -> str:
        if self.cluster is None:
            return ""
        return "\n".join(self.cluster.log_tail(n.node_id) for n in self.cluster.members)


def _cluster(alias: str, env: str, base: Path, nodes: int = 1):
    servers = os.environ.get(env)
    if servers:
        yield ClusterHandle(alias, servers, None)
        return
    cluster = KafkaCluster(f"{alias}{nodes if nodes > 1 else ''}-{os.getpid()}", nodes=nodes, base_dir=base).start()
    try:
        yield ClusterHandle(alias, cluster.bootstrap_servers, cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_engine_log(tmp_path_factory):
    """A grep of every engine log the run wrote (coordinators and workers) for the secrets it was given."""
    yield
    leaks = []
    for log in sorted(tmp_path_factory.getbasetemp().rglob("engine.log")):
        text = log.read_text(errors="replace")
        leaks += [f"{log}: {secret[:3]}..." for secret in sorted(GIVEN_SECRETS) if secret in text]
    assert not leaks, "engine logs print secrets:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def source_cluster(sandbox_dir):
    yield from _cluster("A", "MIRROR_ENGINE_TEST_SOURCE", sandbox_dir)


@pytest.fixture(scope="session")
def target_cluster(sandbox_dir):
    yield from _cluster("B", "MIRROR_ENGINE_TEST_TARGET", sandbox_dir)


@pytest.fixture(scope="session")
def source_cluster_3(sandbox_dir):
    """A 3-node source cluster, for broker restarts; started only by the tests that ask for it."""
    yield from _cluster("A", "MIRROR_ENGINE_TEST_SOURCE_3", sandbox_dir, nodes=3)


@pytest.fixture(scope="session")
def target_cluster_3(sandbox_dir):
    yield from _cluster("B", "MIRROR_ENGINE_TEST_TARGET_3", sandbox_dir, nodes=3)


@pytest.fixture(scope="session")
def third_cluster(sandbox_dir):
    """Cluster C, for chains and fan-in; started only by the tests that ask for it."""
    yield from _cluster("C", "MIRROR_ENGINE_TEST_THIRD", sandbox_dir)


LIMITED_USER, LIMITED_PASSWORD = "limited", "limited-secret"
# the engine's principal in the least-privilege tests: granted exactly what `mirror-engine acls` lists
MIRROR_USER, MIRROR_PASSWORD = "mirror", "mirror-secret"
# every secret the tests give the engine (modules add theirs): no engine log of the whole run may
# print one, checked when the session ends
GIVEN_SECRETS: set[str] = {LIMITED_PASSWORD, MIRROR_PASSWORD}


def _secured(alias: str, base: Path):
    cluster = KafkaCluster(f"{alias}-{os.getpid()}", nodes=1, base_dir=base, authorizer=True,
                           sasl=SaslSettings(users={"admin": "admin-secret", LIMITED_USER: LIMITED_PASSWORD,
                                               MIRROR_USER: MIRROR_PASSWORD}))
    cluster.start()
    try:
        yield ClusterHandle(alias, cluster.bootstrap_servers, cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secured_source(sandbox_dir):
    """A cluster with StandardAuthorizer; PLAINTEXT clients are super users, SASL users are not."""
    yield from _secured("SA", sandbox_dir)


@pytest.fixture(scope="session")
def secured_target(sandbox_dir):
    yield from _secured("SB", sandbox_dir)


@pytest.fixture
def unique_name(request):
    """unique_name('orders') -> 'orders-<test>-<random>': no two tests share a topic."""
    test = request.node.name.split("[")[0].removeprefix("test_")[:30].replace("_", "-")

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


class EngineProcess:
    """`mirror-engine run` as a child process, stopped by its pid."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.log_file = folder / "engine.log"

    def start(self, properties: str, command: list[str] | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> EngineProcess:
        """command: the engine to start, before `run <file>` (default: this Python's `-m engine`)."""
        config = self.folder / "mm2.properties"
        config.write_text(properties)
        with open(self.log_file, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [*(command or [sys.executable, "-m", "engine"]), "run", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
            )
        return self

    def worker_pids(self, flow: str = "A->B") -> dict[int, int]:
        """worker index -> pid of the newest start of each worker of a flow, from the engine log."""
        pids = {}
        for match in re.finditer(rf"started worker (\d+) of {re.escape(flow)} \(pid (\d+)", self.log()):
            pids[int(match.group(1))] = int(match.group(2))
        return pids

    def metrics_url(self) -> str:
        match = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", self.log())
        assert match, "the engine logged no metrics address:\n" + self.log()
        return match.group(1)

    def status(self) -> dict | None:
        """The engine's /status document; None until the engine says where it serves it."""
        if not re.search(r"metrics on http://", self.log()):
            return None
        code, body = http_get(self.metrics_url().replace("/metrics", "/status"))
        assert code in (200, 503), f"/status answered {code}: {body}"
        return json.loads(body)

    def stopped_partitions(self, flow: str = "A->B") -> dict[tuple[str, int], str] | None:
        """(topic, partition) -> reason, of the partitions /status shows stopped in a flow; None until
        /status is served."""
        status = self.status()
        if status is None:
            return None
        for entry in status["flows"]:
            if entry["flow"] == flow:
                return {(s["topic"], s["partition"]): s["reason"] for s in entry["stopped_partitions"]}
        return {}

    def flows(self) -> list[str] | None:
        """The flows /status shows running; None until /status is served."""
        status = self.status()
        return None if status is None else [entry["flow"] for entry in status["flows"]]

    def restarts(self, flow: str = "A->B") -> int | None:
        """Worker restarts of a flow, as /status counts them; None until /status is served."""
        status = self.status()
        if status is None:
            return None
        return next((entry["restarts"] for entry in status["flows"] if entry["flow"] == flow), 0)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait(self, timeout_s: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM: flush, store progress, exit."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def engine(tmp_path):
    """Factory of engine processes; each is killed at teardown if still running."""
    started: list[EngineProcess] = []

    def start(properties: str) -> EngineProcess:
        folder = tmp_path / f"engine-{len(started)}"
        folder.mkdir()
        process = EngineProcess(folder).start(properties)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
