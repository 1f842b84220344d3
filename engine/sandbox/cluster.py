"""Local Apache Kafka KRaft clusters on 127.0.0.1, for tests, `make demo` and the benchmarks.

Each node is a combined broker+controller JVM started as `java -cp <jars> kafka.Kafka
server.properties` after `kafka.tools.StorageTool format`. A cluster owns one folder: node
configs, data, logs and one pid file per node. Processes are only ever signalled by the pid
this module recorded, after checking that the pid still runs this node's config.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.sandbox.distribution import SandboxError, cache_root, classpath, require_tool
from engine.sandbox.node import Node
from engine.sandbox.oauth import OAuthSettings
from engine.sandbox.pki import SandboxPki
from engine.sandbox.server_properties import SASL_MECHANISMS, log4j2_properties, server_properties

START_TIMEOUT_S = 90.0


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _new_cluster_id() -> str:
    # Kafka's Uuid string form: URL-safe base64 of 16 bytes without padding; like Kafka's own
    # Uuid.randomUuid, never one that starts with '-', which command lines take for an option
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class SaslSettings:
    """A SASL_PLAINTEXT listener with these users (name -> password), PLAIN and SCRAM enabled."""

    users: dict[str, str]
    # the broker-side user that the authorizer treats as super user
    admin_user: str = "admin"


START_ATTEMPTS = 3


@dataclass
class KafkaCluster:
    """One KRaft cluster of 1 to 3 combined nodes. Use as a context manager or start()/stop()."""

    name: str
    nodes: int = 1
    broker_properties: dict[str, str] = field(default_factory=dict)
    authorizer: bool = False
    sasl: SaslSettings | None = None
    # an SSL listener whose certificate the cluster's own CA (pki) signed; with sasl, SASL runs over
    # TLS too
    tls: bool = False
    # the SSL listener requires a client certificate signed by that CA; implies tls
    mtls: bool = False
    # a SASL_PLAINTEXT listener "OAUTH" that accepts OAUTHBEARER JWTs signed by a key of the JWKS
    # (engine.sandbox.oauth.OAuthServer.settings()); that server must answer before start()
    oauth: OAuthSettings | None = None
    base_dir: Path | None = None
    cluster_id: str = field(default_factory=_new_cluster_id)
    members: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 3:
            raise SandboxError(f"cluster {self.name}: nodes must be 1 to 3, got {self.nodes}")
        if self.base_dir is None:
            self.base_dir = cache_root() / "sandbox"
        self.folder = Path(self.base_dir) / self.name
        self.tls = self.tls or self.mtls

    # -- addresses ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.broker_port}" for n in self.members)

    @property
    def sasl_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self.members if n.sasl_port)

    @property
    def tls_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.tls_port}" for n in self.members if n.tls_port)

    @property
    def oauth_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.oauth_port}" for n in self.members if n.oauth_port)

    @property
    def pki(self) -> SandboxPki:
        """The cluster's CA: client_cert(cn) issues certificates its brokers trust."""
        return SandboxPki(self.folder / "tls")

    @property
    def ca_file(self) -> Path:
        """PEM certificate clients trust for the TLS listeners (ssl.ca.location)."""
        if not self.tls:
            # the CA is made on first use: a plaintext cluster's folder gets none
            raise SandboxError(f"cluster {self.name} has no TLS listener")
        return self.pki.ca.cert

    @property
    def sasl_protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    def admin_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KafkaCluster:
        java = require_tool("java")
        jars = classpath()
        if self.folder.exists():
            if self._load_state_running():
                raise SandboxError(f"cluster {self.name} is already running in {self.folder}")
            shutil.rmtree(self.folder)
        for attempt in range(START_ATTEMPTS):
            try:
                return self._start_on_free_ports(java, jars)
            except SandboxError as error:
                self.stop()
                # a free port picked here can be taken by another process before the JVM binds it
                if "exited during start-up" not in str(error) or attempt == START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_on_free_ports(self, java: str, jars: str) -> KafkaCluster:
        self.folder.mkdir(parents=True)
        ports = free_ports(self.nodes * (2 + bool(self.sasl) + self.tls + bool(self.oauth)))
        port_iter = iter(ports)
        self.members = []
        for node_id in range(1, self.nodes + 1):
            node = Node(
                node_id=node_id,
                broker_port=next(port_iter),
                controller_port=next(port_iter),
                sasl_port=next(port_iter) if self.sasl else None,
                tls_port=next(port_iter) if self.tls else None,
                oauth_port=next(port_iter) if self.oauth else None,
                folder=self.folder / f"node-{node_id}",
            )
            (node.folder / "logs").mkdir(parents=True)
            self.members.append(node)
        broker_keystore = self.pki.server_cert().p12 if self.tls else None
        for node in self.members:
            node.config_file.write_text(server_properties(self, node, broker_keystore))
            (node.folder / "log4j2.properties").write_text(log4j2_properties(node.log_file))
            self._format(java, jars, node)
        for node in self.members:
            node.launch(java, jars, self._jvm_options())
        self._save_state()
        self.wait_ready()
        return self

    def stop(self, remove_data: bool = True) -> None:
        """Stops every node by its recorded pid and removes the cluster folder."""
        for node in self.members:
            node.stop(graceful=False)
        if remove_data and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------

    def pause(self, node_id: int) -> None:
        """Freezes a node with SIGSTOP: connections stay open but nothing answers."""
        self.member(node_id).signal(signal.SIGSTOP, self.name)

    def resume(self, node_id: int) -> None:
        self.member(node_id).signal(signal.SIGCONT, self.name)

    def kill(self, node_id: int) -> None:
        """kill -9 of one node, keeping its data for a restart."""
        self.member(node_id).stop(graceful=False)

    def restart(self, node_id: int, graceful: bool = True) -> None:
        node = self.member(node_id)
        node.stop(graceful=graceful)
        node.launch(require_tool("java"), classpath(), self._jvm_options())
        self._save_state()
        self.wait_ready()

    def member(self, node_id: int) -> Node:
        for node in self.members:
            if node.node_id == node_id:
                return node
        raise SandboxError(f"cluster {self.name} has no node {node_id}")

    # -- readiness ---------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Waits until a metadata request sees every broker, or raises with the log tail."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        # log_level 0: connection refusals while the JVMs boot are expected, not news
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 5000, "log_level": 0}
        )
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            for node in self.members:
                if not node.running():
                    code = node.process.poll() if node.process is not None else None
                    raise SandboxError(
                        f"cluster {self.name}: node {node.node_id} (pid {node.pid()}) exited during start-up"
                        f"{'' if code is None else f' with exit code {code}'}\n"
                        + self.log_tail(node.node_id)
                    )
            try:
                metadata = admin.list_topics(timeout=2)
                if len(metadata.brokers) == self.nodes:
                    return
                last_error = f"{len(metadata.brokers)} of {self.nodes} brokers registered"
            except Exception as error:  # librdkafka raises KafkaException while brokers boot
                last_error = str(error)
            time.sleep(0.2)
        raise SandboxError(
            f"cluster {self.name} not ready after {timeout_s:.0f}s ({last_error})\n"
            + "\n".join(self.log_tail(n.node_id) for n in self.members)
        )

    def log_tail(self, node_id: int, lines: int = 40) -> str:
        return self.member(node_id).log_tail(self.name, lines)

    # -- internals ---------------------------------------------------------------------------

    def _jvm_options(self) -> tuple[str, ...]:
        return self.oauth.jvm_options() if self.oauth else ()

    def _format(self, java: str, jars: str, node: Node) -> None:
        command = [
            java, "-Xmx256m", "-XX:+UseSerialGC", f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
            "-cp", jars, "kafka.tools.StorageTool", "format",
            f"--cluster-id={self.cluster_id}", "--config", str(node.config_file),
        ]
        if self.sasl:
            for user, password in self.sasl.users.items():
                for mechanism in SASL_MECHANISMS[1:]:
                    command += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise SandboxError(
                f"cluster {self.name}: formatting storage of node {node.node_id} failed:\n"
                + (result.stdout + result.stderr)[-3000:]
            )

    # -- state file, so `sandbox down` in another process can stop what `sandbox up` started ----

    @property
    def state_file(self) -> Path:
        return self.folder / "cluster.json"

    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "nodes": self.nodes,
            "cluster_id": self.cluster_id,
            "tls": self.tls,
            "mtls": self.mtls,
            # restart() of an attached cluster must launch with the same JVM option
            "oauth": asdict(self.oauth) if self.oauth else None,
            "members": [
                {"node_id": m.node_id, "broker_port": m.broker_port,
                 "controller_port": m.controller_port, "sasl_port": m.sasl_port,
                 "tls_port": m.tls_port, "oauth_port": m.oauth_port}
                for m in self.members
            ],
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    def _load_state_running(self) -> bool:
        attached = KafkaCluster.attach(self.name, self.base_dir)
        return attached is not None and any(m.running() for m in attached.members)

    @classmethod
    def attach(cls, name: str, base_dir: Path | None = None) -> KafkaCluster | None:
        """The cluster a previous process started under base_dir/name, or None."""
        base = Path(base_dir) if base_dir else cache_root() / "sandbox"
        state_file = base / name / "cluster.json"
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        cluster = cls(name=name, nodes=state["nodes"], base_dir=base, cluster_id=state["cluster_id"],
                      tls=state.get("tls", False), mtls=state.get("mtls", False),
                      oauth=OAuthSettings(**state["oauth"]) if state.get("oauth") else None)
        cluster.members = [
            Node(m["node_id"], m["broker_port"], m["controller_port"], m["sasl_port"],
                 cluster.folder / f"node-{m['node_id']}", m.get("tls_port"), m.get("oauth_port"))
            for m in state["members"]
        ]
        return cluster
