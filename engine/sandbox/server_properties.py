"""What a sandbox node is configured with: its server.properties (listeners for PLAINTEXT, SASL, TLS
and OAuth, KRaft quorum, internal topics sized to the cluster) and its log4j2 file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from engine.sandbox.distribution import log4j2_file_config
from engine.sandbox.node import Node
from engine.sandbox.oauth import OAuthSettings
from engine.sandbox.pki import STORE_PASSWORD

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# protects only the throw-away keys of the cluster's own CA, inside its folder
TLS_STORE_PASSWORD = STORE_PASSWORD
# an SSL client's principal is User:<CN> of its certificate (sandbox subjects are "CN=<name>")
SSL_PRINCIPAL_MAPPING_RULES = "RULE:^CN=([^,]+)$/$1/,DEFAULT"


class SaslUsers(Protocol):
    users: dict[str, str]
    admin_user: str


class BrokerSettings(Protocol):
    """What of a cluster its nodes' settings depend on (engine.sandbox.cluster.KafkaCluster)."""

    nodes: int
    members: list[Node]
    authorizer: bool
    mtls: bool
    oauth: OAuthSettings | None
    broker_properties: dict[str, str]

    @property
    def sasl(self) -> SaslUsers | None: ...  # read-only: a cluster's own settings class satisfies it

    @property
    def sasl_protocol(self) -> str: ...

    @property
    def ca_file(self) -> Path: ...


def server_properties(cluster: BrokerSettings, node: Node, broker_keystore: Path | None) -> str:
    """The server.properties of one combined broker and controller node of `cluster`."""
    n = cluster.nodes
    voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in cluster.members)
    listeners = [f"PLAINTEXT://127.0.0.1:{node.broker_port}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{node.broker_port}"]
    protocol_map = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    if node.sasl_port:
        listeners.append(f"SASL://127.0.0.1:{node.sasl_port}")
        advertised.append(f"SASL://127.0.0.1:{node.sasl_port}")
        protocol_map.append(f"SASL:{cluster.sasl_protocol}")
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
    if cluster.authorizer:
        props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        # the PLAINTEXT listeners (inter-broker, controller, the tests' admin) act as ANONYMOUS
        admin = cluster.sasl.admin_user if cluster.sasl else "admin"
        props["super.users"] = f"User:ANONYMOUS;User:{admin}"
    if cluster.sasl:
        props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in cluster.sasl.users.items())
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
        props["ssl.truststore.location"] = str(cluster.ca_file)
        props["ssl.truststore.type"] = "PEM"
        props["ssl.principal.mapping.rules"] = SSL_PRINCIPAL_MAPPING_RULES
    if cluster.mtls:
        # applies to the SSL listener only: SASL_SSL takes it from a listener prefix (KIP-684)
        props["ssl.client.auth"] = "required"
    if cluster.oauth:
        props.update(cluster.oauth.listener_properties("OAUTH"))
    props.update(cluster.broker_properties)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def log4j2_properties(log_file: Path) -> str:
    return log4j2_file_config(log_file) + """logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""
