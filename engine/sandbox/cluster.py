"""Local Apache Kafka KRaft clusters on 127.0.0.1, for tests, `make demo` and the benchmarks.

Each node is a combined broker+controller JVM started as `java -cp <jars> kafka.Kafka
server.properties` after `kafka.tools.StorageTool format`. A cluster owns one folder: node
configs, data, logs and one pid file per node. Processes are only ever signalled by the pid
this module recorded, after checking that the pid still runs this node's config.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.sandbox.distribution import SandboxError, cache_root, classpath, log4j2_file_config, require_tool
from engine.sandbox.oauth import OAuthSettings
from engine.sandbox.pki import STORE_PASSWORD, SandboxPki

# The default heap is a quarter of RAM per JVM; six brokers, the engine and a Java MM2 must fit
# on 2 cores and 24 GiB, so keep every broker small and on the serial collector.
JVM_OPTIONS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# protects only the throw-away keys of the cluster's own CA, inside its folder
TLS_STORE_PASSWORD = STORE_PASSWORD
# an SSL client's principal is User:<CN> of its certificate (sandbox subjects are "CN=<name>")
SSL_PRINCIPAL_MAPPING_RULES = "RULE:^CN=([^,]+)$/$1/,DEFAULT"


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _pid_runs(pid: int, config: Path) -> bool:
    """True when pid is alive and is the JVM started with this config file (not a reused pid)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return str(config).encode() in cmdline


@dataclass
class SaslSettings:
    """A SASL_PLAINTEXT listener with these users (name -> password), PLAIN and SCRAM enabled."""

    users: dict[str, str]
    # the broker-side user that the authorizer treats as super user
    admin_user: str = "admin"


@dataclass
class Node:
    node_id: int
    broker_port: int
    controller_port: int
    sasl_port: int | None
    folder: Path
    tls_port: int | None = None
    oauth_port: int | None = None
    process: subprocess.Popen | None = None

    @property
    def config_file(self) -> Path:
        return self.folder / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.folder / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "server.log"

    @property
    def console_file(self) -> Path:
        return self.folder / "logs" / "console.out"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _pid_runs(pid, self.config_file)


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

    def start(self) -> "KafkaCluster":
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

    def _start_on_free_ports(self, java: str, jars: str) -> "KafkaCluster":
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
            node.config_file.write_text(self._server_properties(node, broker_keystore))
            (node.folder / "log4j2.properties").write_text(_log4j2_properties(node.log_file))
            self._format(java, jars, node)
        for node in self.members:
            self._launch(java, jars, node)
        self._save_state()
        self.wait_ready()
        return self

    def stop(self, remove_data: bool = True) -> None:
        """Stops every node by its recorded pid and removes the cluster folder."""
        for node in self.members:
            self._stop_node(node, graceful=False)
        if remove_data and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------

    def pause(self, node_id: int) -> None:
        """Freezes a node with SIGSTOP: connections stay open but nothing answers."""
        self._signal(self.member(node_id), signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self._signal(self.member(node_id), signal.SIGCONT)

    def kill(self, node_id: int) -> None:
        """kill -9 of one node, keeping its data for a restart."""
        self._stop_node(self.member(node_id), graceful=False)

    def restart(self, node_id: int, graceful: bool = True) -> None:
        node = self.member(node_id)
        self._stop_node(node, graceful=graceful)
        self._launch(require_tool("java"), classpath(), node)
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
        node = self.member(node_id)
        chunks = []
        for path in (node.console_file, node.log_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path.name} of {self.name} node {node_id} ---\n" + "\n".join(text))
        return "\n".join(chunks) or f"(no log for {self.name} node {node_id})"

    # -- internals ---------------------------------------------------------------------------

    def _server_properties(self, node: Node, broker_keystore: Path | None) -> str:
        n = self.nodes
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.members)
        listeners = [f"PLAINTEXT://127.0.0.1:{node.broker_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{node.broker_port}"]
        protocol_map = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        if node.sasl_port:
            listeners.append(f"SASL://127.0.0.1:{node.sasl_port}")
            advertised.append(f"SASL://127.0.0.1:{node.sasl_port}")
            protocol_map.append(f"SASL:{self.sasl_protocol}")
        if node.tls_port:
            listeners.append(f"SSL://127.0.0.1:{node.tls_port}")
            advertised.append(f"SSL://127.0.0.1:{node.tls_port}")
            protocol_map.append("SSL:SSL")
        if node.oauth_port:
            listeners.append(f"OAUTH://127.0.0.1:{node.oauth_port}")
            advertised.append(f"OAUTH://127.0.0.1:{node.oauth_port}")
            protocol_map.append("OAUTH:SASL_PLAINTEXT")
        listeners.append(f"CONTROLLER://127.0.0.1:{node.controller_port}")
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocol_map),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.folder / "data"),
            "num.partitions": "1",
            # the engine must create every topic it writes; a typo must not create one silently
            "auto.create.topics.enable": "false",
            # internal topics sized to the node count, so one-node clusters work
            "offsets.topic.replication.factor": str(min(3, n)),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(min(3, n)),
            "transaction.state.log.min.isr": str(min(2, n)),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(min(3, n)),
            "share.coordinator.state.topic.min.isr": str(min(2, n)),
            "default.replication.factor": str(min(3, n)),
            "min.insync.replicas": str(min(2, n)),
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        }
        if self.authorizer:
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            # the PLAINTEXT listeners (inter-broker, controller, the tests' admin) act as ANONYMOUS
            admin = self.sasl.admin_user if self.sasl else "admin"
            props["super.users"] = f"User:ANONYMOUS;User:{admin}"
        if self.sasl:
            props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl.users.items())
            props["listener.name.sasl.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            )
            for mechanism in SASL_MECHANISMS[1:]:
                props[f"listener.name.sasl.{mechanism.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if broker_keystore:
            props["ssl.keystore.location"] = str(broker_keystore)
            props["ssl.keystore.password"] = TLS_STORE_PASSWORD
            props["ssl.keystore.type"] = "PKCS12"
            props["ssl.truststore.location"] = str(self.ca_file)
            props["ssl.truststore.type"] = "PEM"
            props["ssl.principal.mapping.rules"] = SSL_PRINCIPAL_MAPPING_RULES
        if self.mtls:
            # applies to the SSL listener only: SASL_SSL takes it from a listener prefix (KIP-684)
            props["ssl.client.auth"] = "required"
        if self.oauth:
            props.update(self.oauth.listener_properties("OAUTH"))
        props.update(self.broker_properties)
        return "".join(f"{k}={v}\n" for k, v in props.items())

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

    def _launch(self, java: str, jars: str, node: Node) -> None:
        command = [
            java, *JVM_OPTIONS, *(self.oauth.jvm_options() if self.oauth else ()),
            f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
            "-cp", jars, "kafka.Kafka", str(node.config_file),
        ]
        with open(node.console_file, "ab") as console:
            # a session of its own: the JVM outlives `sandbox up` and ignores the caller's Ctrl-C
            node.process = subprocess.Popen(
                command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node.pid_file.write_text(str(node.process.pid))

    def _signal(self, node: Node, sig: signal.Signals) -> None:
        pid = node.pid()
        if pid is None or not _pid_runs(pid, node.config_file):
            raise SandboxError(f"cluster {self.name}: node {node.node_id} is not running")
        os.kill(pid, sig)

    def _stop_node(self, node: Node, graceful: bool) -> None:
        pid = node.pid()
        if pid is None or not _pid_runs(pid, node.config_file):
            if node.process is not None and node.process.poll() is None:
                node.process.kill()  # our own child, started but not yet showing its config file
            self._reap(node, block=node.process is not None)
            return
        os.kill(pid, signal.SIGCONT)  # a paused JVM cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid) and time.monotonic() < deadline:
            self._reap(node)
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._reap(node, block=True)
        node.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _reap(node: Node, block: bool = False) -> None:
        if node.process is not None:
            try:
                node.process.wait(timeout=10 if block else 0)
            except subprocess.TimeoutExpired:
                pass

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
    def attach(cls, name: str, base_dir: Path | None = None) -> "KafkaCluster | None":
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


def _log4j2_properties(log_file: Path) -> str:
    return log4j2_file_config(log_file) + """logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""
