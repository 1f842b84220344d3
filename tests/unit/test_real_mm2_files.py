"""The corpus of real mm2.properties files (tests/data/real-mm2/, sources in its README.md): the
engine reads each as MM2 would — the flows it enables, their filters, replication factors, policy
and separator, the client settings that reach each cluster (secrets hidden), where progress is
kept — or refuses it in one line naming the key, exit 2 (a Java-only class or store, or a file
MM2 itself would not run as written). No broker: `check-config` and the loader never connect.

Files the engine still refuses although MM2 accepts them are marked xfail(strict=True): once the
engine reads them, the mark must go.
"""

from __future__ import annotations

import datetime
import logging
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from engine.cli import main
from engine.config.loading import for_targets, load
from engine.coordinator.topology import FlowGraph, cycle_remarks
from engine.filters import TopicFilter, compile_list
from engine.offsets.policy import make_policy
from engine.security.secrets import masked

CORPUS = Path(__file__).resolve().parents[1] / "data" / "real-mm2"

DEFAULT_TOPICS_EXCLUDE = r"mm2.*\.internal, .*\.replica, __.*"
DEFAULT_GROUPS_EXCLUDE = "console-consumer-.*, connect-.*, __.*"
PLAINTEXT = {"security.protocol": "PLAINTEXT"}
# stand-ins for the PEM the test writes (tls_material), replaced before comparing
CA_PEM, CHAIN_PEM = "<the CA certificate>", "<the client certificate, then the CA>"
HIDDEN = "[hidden]"


def _sasl(mechanism: str, username: str, protocol: str = "SASL_SSL") -> dict[str, str]:
    return {"sasl.mechanisms": mechanism, "sasl.password": HIDDEN, "sasl.username": username,
            "security.protocol": protocol}


def _pairs(aliases: list[str]) -> set[tuple[str, str]]:
    return {(s, t) for s in aliases for t in aliases if s != t}


EVENT_HUBS_PASSWORD = ("Endpoint=sb://mirror-demo-ns.servicebus.windows.net/;"
                       "SharedAccessKeyName=RootManageSharedAccessKey;"
                       "SharedAccessKey=PLACEHOLDERnotArealKey0123456789abcdefXYZ=")
MULTI_DC = ["west-1", "west-2", "east-1", "east-2", "north-1", "north-2"]
MULTI_DC_FLOWS = {"west-1->west-2", "west-2->west-1", "east-1->east-2", "east-2->east-1", "north-1->north-2",
                  "north-2->north-1", "west-1->east-1", "west-1->north-1", "east-1->west-1", "east-1->north-1",
                  "north-1->west-1", "north-1->east-1"}

# Per file: what MM2 makes of it. Keys:
#   refused: (key, fragment)    check-config exits 2 with one line naming the key
#   flows: {name: {attribute: value}}   exactly these flows are enabled; FlowConfig attributes, plus
#                               "policy" (the class's short name) and "offsets_topic" (where progress is)
#   clusters: {alias: (bootstrap.servers, client settings as check-config shows them)}
#   secrets: {alias: {librdkafka key: the value it resolves to}}   never printed by check-config
#   heartbeats: {(source, target): replication factor}   MM2's heartbeat emitters
#   topics: {flow: ([names copied], [names not copied])}; groups likewise
#   remote: {flow: {source topic: its name on the target}}
#   targets: (`--clusters` aliases, the flows served)
#   report: lines check-config prints
EXPECTED: dict[str, dict] = {
    "kafka-connect-mirror-maker.properties": {
        "flows": {
            "A->B": {"topics": ".*", "topics_exclude": DEFAULT_TOPICS_EXCLUDE, "groups": ".*",
                     "groups_exclude": DEFAULT_GROUPS_EXCLUDE, "replication_factor": 1,
                     "checkpoints_topic_replication_factor": 1, "offset_syncs_topic_replication_factor": 1,
                     "offset_storage_replication_factor": 1, "separator": ".",
                     "policy": "DefaultReplicationPolicy", "offsets_topic": "mm2-offsets.A.internal",
                     "sync_topic_acls_enabled": True, "tasks_max": 0},
            "B->A": {"topics": ".*", "replication_factor": 1, "checkpoints_topic_replication_factor": 1,
                     "offset_syncs_topic_replication_factor": 1, "offset_storage_replication_factor": 1,
                     "separator": ".", "policy": "DefaultReplicationPolicy",
                     "offsets_topic": "mm2-offsets.B.internal"},
        },
        "clusters": {"A": ("A_host1:9092, A_host2:9092, A_host3:9092", PLAINTEXT),
                     "B": ("B_host1:9092, B_host2:9092, B_host3:9092", PLAINTEXT)},
        "heartbeats": {("A", "B"): 1, ("B", "A"): 1},
        "topics": {"A->B": (["orders", "B.orders"], ["__consumer_offsets", "mm2-offsets.B.internal"])},
        "remote": {"A->B": {"orders": "A.orders", "B.orders": "A.B.orders"}},
        "report": ["    progress = mm2-offsets.A.internal on B (the default; where MM2 keeps it too)",
                   "    progress = mm2-offsets.B.internal on A (the default; where MM2 keeps it too)"],
    },
    "kafka-mirror-readme-us-west-us-east.properties": {
        "flows": {"us-west->us-east": {"topics": ".*", "groups": "orders-service, billing-service",
                                       "emit_checkpoints_interval_s": 10.0, "replication_factor": 2,
                                       "policy": "DefaultReplicationPolicy",
                                       # us-west.offset.storage.topic is for the herders into us-west
                                       "offsets_topic": "mm2-offsets.us-west.internal"}},
        "clusters": {"us-west": ("kafka-w1.corp.example:9092", PLAINTEXT),
                     "us-east": ("kafka-e1.corp.example:9092", PLAINTEXT)},
        # `emit.heartbeats` is no MM2 key: both pairs still beat
        "heartbeats": {("us-west", "us-east"): 3, ("us-east", "us-west"): 3},
        "groups": {"us-west->us-east": (["orders-service", "billing-service"], ["orders-service-2", "audit"])},
        "unknown": ["us-west->us-east.emit.heartbeats is not a key MM2 or mirror-engine knows; did you mean "
                    "`us-west->us-east.emit.heartbeats.enabled`?"],
        "report": ["  us-west->us-east.emit.heartbeats is not a key MM2 or mirror-engine knows; did you mean "
                   "`us-west->us-east.emit.heartbeats.enabled`? (ignored, as MM2 ignores it)"],
    },
    "kafka-mirror-readme-inline-comment.properties": {
        "refused": ("us-west->us-east.enabled", "expected true or false, got 'true     # disabled by default'"),
    },
    "kafka-mirror-readme-multi-dc.properties": {
        "flows": {name: {"topics": ".*", "replication_factor": 2, "separator": ".",
                         "policy": "DefaultReplicationPolicy",
                         "offsets_topic": f"mm2-offsets.{name.split('->')[0]}.internal"}
                  for name in MULTI_DC_FLOWS},
        "clusters": {alias: (f"{alias[0]}{alias[-1]}-kafka-0.dc-{alias[:-2]}.example:9092,"
                             f"{alias[0]}{alias[-1]}-kafka-1.dc-{alias[:-2]}.example:9092", PLAINTEXT)
                     for alias in MULTI_DC},
        "heartbeats": {pair: 3 for pair in _pairs(MULTI_DC)},
        # `--clusters west-1 west-2`: only the flows into the west data centre
        "targets": (["west-1", "west-2"], {"west-1->west-2", "west-2->west-1", "east-1->west-1", "north-1->west-1"}),
        "remote": {"west-2->west-1": {"orders": "west-2.orders", "east-1.orders": "west-2.east-1.orders"}},
    },
    "kafka-mirror-readme-primary-backup-overrides.properties": {
        "flows": {"primary->backup": {"topics": ".*", "topics_exclude": "scratch-.*, .*-tmp",
                                      "sync_group_offsets_enabled": True, "tasks_max": 4,
                                      "producer_compression": "gzip",
                                      "target_producer": {"queue.buffering.max.kbytes": "32"},
                                      "source_consumer": {"isolation.level": "read_committed"},
                                      # primary.admin.*: the admin clients of primary, here the source's
                                      "source_admin": {"bootstrap.servers": "pri-admin-lb.example.org:9092"},
                                      "target_admin": {},
                                      "offsets_topic": "mm2-offsets.primary.internal"}},
        "clusters": {"primary": ("pri-broker-1.example.org:9092,pri-broker-2.example.org:9092", PLAINTEXT),
                     "backup": ("bak-broker-1.example.org:9092,bak-broker-2.example.org:9092", PLAINTEXT)},
        # primary->backup.emit.heartbeats.enabled = false; the disabled backup->primary flow still beats
        "heartbeats": {("backup", "primary"): 3},
        "topics": {"primary->backup": (["orders"], ["scratch-1", "orders-tmp"])},
    },
    "kafka-docs-geo-replication.properties": {
        "flows": {"us-west->us-east": {"topics": r"payments\..*, ledger-.*", "groups": "payments-.*",
                                       "separator": "_", "policy": "DefaultReplicationPolicy",
                                       "exactly_once": True, "producer_compression": "gzip",
                                       "source_consumer": {"isolation.level": "read_committed"},
                                       "target_producer": {"queue.buffering.max.kbytes": "32"},
                                       "offsets_topic": "mm2-offsets.us-west.internal"}},
        "clusters": {"us-west": ("broker3-west.example.com:9092", PLAINTEXT),
                     "us-east": ("broker5-east.example.com:9092", PLAINTEXT)},
        "heartbeats": {("us-west", "us-east"): 3, ("us-east", "us-west"): 3},
        "topics": {"us-west->us-east": (["payments.v1", "ledger-eu"], ["paymentsXv1", "orders"])},
        "groups": {"us-west->us-east": (["payments-eu"], ["ledger-consumers"])},
        "remote": {"us-west->us-east": {"payments.v1": "us-west_payments.v1"}},
        "report": ["    policy = DefaultReplicationPolicy; exactly-once = enabled; compression = gzip",
                   "| us-west->us-east | source isolation.level | read_uncommitted (aborted transactions are copied) | "
                   "read_committed (set by us-west.consumer.isolation.level) |"],
    },
    "kafka-docs-ssl-jks.properties": {
        "refused": ("us-east.ssl.truststore.location", "stores/us-east.truststore.jks is a JKS/JCEKS store, which "
                                                       "librdkafka cannot read"),
    },
    "azure-event-hubs.properties": {
        "flows": {"source->destination": {"topics": ".*", "replication_factor": 3,
                                          "checkpoints_topic_replication_factor": 3,
                                          "offset_syncs_topic_replication_factor": 3,
                                          "offset_storage_replication_factor": 3,
                                          "offsets_topic": "mm2-offsets.source.internal"}},
        "clusters": {"source": ("onprem-kafka-1.lab.example:9092", PLAINTEXT),
                     "destination": ("mirror-demo-ns.servicebus.windows.net:9093",
                                     _sasl("PLAIN", "$ConnectionString"))},
        "secrets": {"destination": {"sasl.password": EVENT_HUBS_PASSWORD}},
        "heartbeats": {("source", "destination"): 3, ("destination", "source"): 3},
    },
    "aws-msk-iam.properties": {
        "refused": ("msksource.sasl.client.callback.handler.class",
                    "cluster msksource: software.amazon.msk.auth.iam.IAMClientCallbackHandler is a Java class that "
                    "librdkafka cannot run"),
    },
    "aws-msk-scram-custom-policy.properties": {
        "refused": ("replication.policy.class",
                    "replication policy 'com.amazonaws.kafka.samples.CustomMM2ReplicationPolicy' is not supported"),
    },
    "aws-msk-scram-tuned-clients.properties": {
        "flows": {"prim->sec": {"topics": r"^ExampleTopic[\w]*", "tasks_max": 4, "replication_factor": 3,
                                "offset_syncs_topic_replication_factor": 1, "sync_topic_acls_interval_s": 20.0,
                                "sync_topic_configs_interval_s": 20.0, "refresh_topics_interval_s": 20.0,
                                "producer_compression": "gzip", "offsets_topic": "mm2-offsets.prim.internal",
                                "source_consumer": {"max.partition.fetch.bytes": "33554432",
                                                    "socket.receive.buffer.bytes": "33554432",
                                                    "socket.send.buffer.bytes": "33554432"},
                                "target_producer": {"batch.size": "524288", "message.max.bytes": "26214400",
                                                    "queue.buffering.max.kbytes": "512000",
                                                    "socket.receive.buffer.bytes": "33554432",
                                                    "socket.send.buffer.bytes": "33554432"}}},
        "clusters": {"prim": ("b-1.prim.msk.example.internal:9096,b-2.prim.msk.example.internal:9096",
                              _sasl("SCRAM-SHA-512", "mm2-prim")),
                     "sec": ("b-1.sec.msk.example.internal:9096,b-2.sec.msk.example.internal:9096",
                             _sasl("SCRAM-SHA-512", "mm2-sec"))},
        "secrets": {"prim": {"sasl.password": "corpus-tuned-prim-pw"}, "sec": {"sasl.password": "corpus-tuned-sec-pw"}},
        # [\w]: letters, digits and '_' (the file writes the backslash twice, as .properties needs)
        "topics": {"prim->sec": (["ExampleTopic", "ExampleTopic_eu1"], ["ExampleTopic-eu1", "OtherTopic"])},
        "report": ["  prim.consumer.max.poll.records is not used: the engine's batch is up to 2,000 records, "
                   "whatever is already fetched"],
    },
    "confluent-cloud-api-key.properties": {
        "flows": {"onprem->ccloud": {"topics": "orders, customers, inventory-.*", "groups": ".*",
                                     "replication_factor": 3, "sync_topic_acls_enabled": False,
                                     "offsets_topic": "mm2-offsets.onprem.internal"}},
        "clusters": {"onprem": ("kafka-a.dc1.example:9092,kafka-b.dc1.example:9092", PLAINTEXT),
                     "ccloud": ("pkc-00000.eu-central-1.aws.confluent.cloud:9092", _sasl("PLAIN", "CORPUSAPIKEY0001"))},
        "secrets": {"ccloud": {"sasl.password": "corpus+Api/Secret0001"}},
        "topics": {"onprem->ccloud": (["orders", "inventory-eu"], ["orders-archive", "payments"])},
    },
    "confluent-oauth-client-credentials.properties": {
        "flows": {"edge->hub": {"topics": r"telemetry\..*", "groups": "", "emit_checkpoints_enabled": False,
                                "offsets_topic": "mm2-offsets.edge.internal"}},
        "clusters": {"edge": ("edge-kafka.plant7.example:9092", PLAINTEXT),
                     "hub": ("hub-kafka-0.example.cloud:9095,hub-kafka-1.example.cloud:9095", {
                         "sasl.mechanisms": "OAUTHBEARER", "sasl.oauthbearer.client.id": "mm2-plant7",
                         "sasl.oauthbearer.client.secret": HIDDEN, "sasl.oauthbearer.method": "oidc",
                         "sasl.oauthbearer.scope": "kafka.write",
                         "sasl.oauthbearer.token.endpoint.url":
                             "https://idp.example.cloud/realms/kafka/protocol/openid-connect/token",
                         "security.protocol": "SASL_SSL"})},
        "secrets": {"hub": {"sasl.oauthbearer.client.secret": "corpus-oauth-client-secret-7"}},
        "topics": {"edge->hub": (["telemetry.line1"], ["telemetry", "telemetryXline1"])},
        "groups": {"edge->hub": ([], ["plant-consumers"])},
        "report": ["  hub.sasl.login.connect.timeout.ms is not used: librdkafka's token request has its own timeout"],
    },
    "aiven-ssl-pkcs12.properties": {
        "flows": {"aiven->dc": {"topics": ".*", "topics_exclude": r"_.*, .*\.internal", "replication_factor": 2,
                                "offsets_topic": "mm2-offsets.aiven.internal"}},
        "clusters": {"aiven": ("kafka-mirror-demo-project.aivencloud.com:24949",
                               {"security.protocol": "SSL", "ssl.ca.pem": CA_PEM, "ssl.certificate.pem": CHAIN_PEM,
                                "ssl.key.pem": HIDDEN}),
                     "dc": ("dc-kafka-1.example:9092", PLAINTEXT)},
        "topics": {"aiven->dc": (["orders"], ["_schemas", "mm2-status.internal"])},
        "report": ["    ssl.ca.pem = (PEM, 1 blocks)", "    ssl.certificate.pem = (PEM, 2 blocks)",
                   "    ssl.key.pem = [hidden]",
                   "  aiven.ssl.protocol is not used: OpenSSL negotiates the highest of TLS 1.2 and 1.3 that both "
                   "sides offer"],
    },
    "aiven-identity-migration.properties": {
        "flows": {"eu-kafka-prod->eu-kafka-dev": {"topics": "orders", "policy": "IdentityReplicationPolicy",
                                                  "sync_group_offsets_enabled": True,
                                                  "sync_group_offsets_interval_s": 1.0,
                                                  "offsets_topic": "mm2-offsets.eu-kafka-prod.internal"}},
        "clusters": {"eu-kafka-prod": ("prod-kafka-0.eu.example:9092,prod-kafka-1.eu.example:9092", PLAINTEXT),
                     "eu-kafka-dev": ("dev-kafka-0.eu.example:9092", PLAINTEXT)},
        "heartbeats": {("eu-kafka-prod", "eu-kafka-dev"): 3, ("eu-kafka-dev", "eu-kafka-prod"): 3},
        "topics": {"eu-kafka-prod->eu-kafka-dev": (["orders"], ["orders-v2", "payments"])},
        "remote": {"eu-kafka-prod->eu-kafka-dev": {"orders": "orders", "heartbeats": "eu-kafka-prod.heartbeats"}},
        "report": ["    policy = IdentityReplicationPolicy; exactly-once = disabled; compression = none"],
    },
    "kubedb-identity-sasl-plain.properties": {
        "flows": {"source->target": {
            "policy": "IdentityReplicationPolicy", "tasks_max": 2,
            # `\-`, `\.` unescaped by java.util.Properties: `.*\.replica` arrives as `.*.replica`
            "topics_exclude": ".*[-.]internal,.*.replica,__consumer_offsets,_internal_connectors.*,_schemas,"
                              "kafka-health",
            "replication_factor": -1, "offset_syncs_topic_replication_factor": -1,
            "checkpoints_topic_replication_factor": -1, "offset_lag_max": 100, "sync_topic_acls_enabled": False,
            "sync_topic_configs_enabled": True, "sync_group_offsets_enabled": True,
            "sync_group_offsets_interval_s": 10.0, "emit_checkpoints_interval_s": 10.0,
            "offsets_topic": "mm2-offsets.source.internal"}},
        "clusters": {"source": ("source-kafka-pods.migration.svc:9092", _sasl("PLAIN", "admin", "SASL_PLAINTEXT")),
                     "target": ("target-kafka-pods.migration.svc:9092", _sasl("PLAIN", "admin", "SASL_PLAINTEXT"))},
        "secrets": {"source": {"sasl.password": "corpus-kubedb-source-pw"},
                    "target": {"sasl.password": "corpus-kubedb-target-pw"}},
        "heartbeats": {("source", "target"): -1, ("target", "source"): -1},
        # `.*.replica` also excludes `orders-replica`, in MM2 too
        "topics": {"source->target": (["orders", "kafka-health-2"],
                                      ["orders-replica", "mm2-configs.target.internal", "_schemas", "kafka-health"])},
    },
    "strimzi-kubernetes-config-provider.properties": {
        "refused": ("config.providers.secrets.class",
                    "config provider 'secrets' needs one of the built-in classes"),
    },
    "kafka-config-providers-file-env-directory.properties": {
        "flows": {"left->right": {"topics": ".*", "offsets_topic": "mm2-offsets-right"},
                  "right->left": {"topics": "audit-.*", "offsets_topic": "mm2-offsets.right.internal"}},
        # a value that came from a provider is a secret wherever it appears, the user name too
        "clusters": {"left": ("left-kafka.example:9096", _sasl("SCRAM-SHA-256", HIDDEN)),
                     "right": ("right-kafka.example:9094", {"security.protocol": "SSL", "ssl.ca.pem": HIDDEN,
                                                            "ssl.certificate.pem": HIDDEN, "ssl.key.pem": HIDDEN})},
        "secrets": {"left": {"sasl.username": "mm2-left", "sasl.password": "corpus-env-scram-pw"},
                    "right": {"ssl.ca.pem": CA_PEM, "ssl.certificate.pem": CHAIN_PEM}},
        "report": ["    progress = mm2-offsets-right on right (set by right.offset.storage.topic; "
                   "where MM2 keeps it too)",
                   "    progress = mm2-offsets.right.internal on left (the default; where MM2 keeps it too)"],
    },
    "hdinsight-mismatched-aliases.properties": {
        "refused": ("source->destination.enabled", "cluster 'source' is not listed in clusters = src, dest"),
    },
    "identity-two-way-disjoint-filters.properties": {
        "flows": {"old->new": {"topics": "^(?!recommendations$).*", "policy": "IdentityReplicationPolicy",
                               "sync_group_offsets_enabled": True, "offsets_topic": "mm2-offsets.old.internal"},
                  "new->old": {"topics": "recommendations", "policy": "IdentityReplicationPolicy",
                               "sync_group_offsets_enabled": True, "offsets_topic": "mm2-offsets.new.internal"}},
        "clusters": {"old": ("kafka-legacy-1.example:9092,kafka-legacy-2.example:9092", PLAINTEXT),
                     "new": ("kafka-next-1.example:9092,kafka-next-2.example:9092", PLAINTEXT)},
        "topics": {"old->new": (["orders", "recommendations-v2"], ["recommendations"]),
                   "new->old": (["recommendations"], ["orders"])},
    },
    "empty-separator-keep-names.properties": {
        "flows": {"main->dr": {"topics": "invoices, shipments", "separator": "", "policy": "DefaultReplicationPolicy",
                               "offsets_topic": "mm2-offsets.main.internal"}},
        "clusters": {"main": ("main-kafka-1.example:9092", PLAINTEXT), "dr": ("dr-kafka-1.example:9092", PLAINTEXT)},
        "remote": {"main->dr": {"invoices": "maininvoices"}},
        "report": ["  replication.policy.separator is empty, as MM2 allows: main->dr names remote topics main<topic>"],
    },
    "java-regex-topic-filters.properties": {
        "flows": {"plant->central": {"topics": r"sensors-\p{Alpha}+, \Qlegacy.erp.v1\E, (?<line>line-[0-9]+)-events",
                                     "groups": r"\p{Lower}+-consumers"}},
        "clusters": {"plant": ("plant-kafka.example:9092", PLAINTEXT),
                     "central": ("central-kafka.example:9092", PLAINTEXT)},
        "topics": {"plant->central": (["sensors-Temp", "legacy.erp.v1", "line-7-events"],
                                      ["sensors-42", "legacyXerpXv1", "line-x-events"])},
        "groups": {"plant->central": (["billing-consumers"], ["Billing-consumers", "billing2-consumers"])},
    },
}

# Files MM2 accepts and the engine does not read yet (being fixed): the test fails until it does
XFAIL = {
}


def _case(name: str):
    marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
    return pytest.param(name, id=name.removesuffix(".properties"), marks=marks)


def test_every_file_of_the_corpus_has_its_expectations_and_a_source():
    files = sorted(p.name for p in CORPUS.glob("*.properties"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 15
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for name in files:
        head = (CORPUS / name).read_text(encoding="utf-8").splitlines()[0]
        assert head.startswith(("# Source: ", "# Sources: ")), name
        assert f"`{name}`" in readme, name


# -- what the files point at: stores, PEM files, a credentials file, an environment variable -----

class TlsMaterial:
    """A CA and a client certificate it signed, as PEM text."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        since, until = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corpus test CA")])
        self.ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(self.ca_key.public_key()).serial_number(1)
                   .not_valid_before(since).not_valid_after(until)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder()
                     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mirror-user")]))
                     .issuer_name(ca_name).public_key(self.key.public_key()).serial_number(2)
                     .not_valid_before(since).not_valid_after(until)
                     .sign(self.ca_key, hashes.SHA256()))
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM).decode()
        self.chain_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode() + self.ca_pem
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()

    def pkcs12(self, password: str, with_key: bool) -> bytes:
        encryption = serialization.BestAvailableEncryption(password.encode())
        if with_key:
            return pkcs12.serialize_key_and_certificates(b"mirror-user", self.key, self.cert, [self.ca], encryption)
        return pkcs12.serialize_key_and_certificates(b"ca", None, None, [self.ca], encryption)


def _provide(name: str, directory: Path, tls: TlsMaterial, monkeypatch) -> None:
    """Writes what the file refers to, relative to the working directory (the test's tmp_path)."""
    if name == "aiven-ssl-pkcs12.properties":
        (directory / "aiven-creds").mkdir()
        (directory / "aiven-creds/client.keystore.p12").write_bytes(tls.pkcs12("corpus-aiven-store-pw", True))
        (directory / "aiven-creds/client.truststore.p12").write_bytes(tls.pkcs12("corpus-aiven-store-pw", False))
    elif name == "kafka-docs-ssl-jks.properties":
        (directory / "stores").mkdir()
        for store in ("us-east.truststore.jks", "us-east.keystore.jks"):
            (directory / "stores" / store).write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02 a Java KeyStore")
    elif name == "kafka-config-providers-file-env-directory.properties":
        (directory / "secrets/right-tls").mkdir(parents=True)
        (directory / "secrets/mm2-credentials.properties").write_text("left.username = mm2-left\n")
        (directory / "secrets/right-tls/ca.crt").write_text(tls.ca_pem)
        (directory / "secrets/right-tls/user.crt").write_text(tls.chain_pem)
        (directory / "secrets/right-tls/user.key").write_text(tls.key_pem)
        monkeypatch.setenv("MM2_LEFT_SCRAM_PASSWORD", "corpus-env-scram-pw")


@pytest.fixture
def check_config(monkeypatch, capsys):
    """`mirror-engine check-config FILE`: (exit code, stdout, stderr), the process's logging kept."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    for variable in ("MIRROR_ENGINE_LOG_FORMAT", "MIRROR_ENGINE_LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)

    def run(path: Path, *options: str) -> tuple[int, str, str]:
        code = main(["check-config", str(path), *options])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def _stand_in(value, tls: TlsMaterial):
    if isinstance(value, dict):
        return {k: _stand_in(v, tls) for k, v in value.items()}
    return {CA_PEM: tls.ca_pem, CHAIN_PEM: tls.chain_pem}.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("name", [_case(name) for name in sorted(EXPECTED)])
def test_the_engine_reads_the_file_as_mm2_would(name, tmp_path, monkeypatch, check_config):
    expected = EXPECTED[name]
    tls = TlsMaterial()
    monkeypatch.chdir(tmp_path)
    _provide(name, tmp_path, tls, monkeypatch)
    path = CORPUS / name

    code, out, err = check_config(path)
    if "refused" in expected:
        key, fragment = expected["refused"]
        assert (code, out) == (2, "")
        assert err.endswith("\n") and err.count("\n") == 1, err  # one line, no traceback
        assert err.startswith(f"mirror-engine: error: {key}: "), err
        assert fragment in err
        return
    if "unknown" in expected:  # MM2 ignores unknown keys; check-config names them and exits 1 unless --lenient
        assert code == 1 and "Traceback" not in err
        assert err.splitlines() == [f"mirror-engine: error: {line}" for line in expected["unknown"]] + [
            f"mirror-engine: {len(expected['unknown'])} unknown keys; MM2 and `run` ignore them (--lenient accepts "
            "them here too)"]
        code, out, err = check_config(path, "--lenient")
    assert code == 0, err
    assert "Traceback" not in err

    loaded = load(path, quiet=True)
    # what `run` says of cycles before it connects anywhere (Coordinator.run), as check-config printed it
    for remark in cycle_remarks(loaded.all_flows):
        assert remark in out, remark
    graph = FlowGraph(loaded.all_flows)

    flows = {flow.name: flow for flow in loaded.flows}
    assert set(flows) == set(expected["flows"])
    for flow_name, attributes in expected["flows"].items():
        flow = flows[flow_name]
        for attribute, value in attributes.items():
            if attribute == "policy":
                actual = flow.policy_class.rsplit(".", 1)[1]
            else:
                actual = getattr(flow, attribute)
            assert actual == _stand_in(value, tls), f"{flow_name}.{attribute}"

    assert set(loaded.clusters) == set(expected["clusters"])
    for alias, (servers, client) in expected["clusters"].items():
        cluster = loaded.clusters[alias]
        assert cluster.bootstrap_servers == servers, alias
        assert masked(cluster.client) == _stand_in(client, tls), alias

    for alias, secrets in expected.get("secrets", {}).items():
        for key, value in secrets.items():
            value = _stand_in(value, tls)
            assert loaded.clusters[alias].client[key] == value, f"{alias} {key}"
            assert value not in out and value not in err, f"{alias} {key} printed"
    for password in ("corpus-msk-prim-pw", "corpus-jks-store-pw", "corpus-aiven-store-pw"):
        assert password not in out

    if "heartbeats" in expected:
        assert {(h.source, h.target): h.replication_factor for h in loaded.heartbeats} == expected["heartbeats"]

    for kind in ("topics", "groups"):
        for flow_name, (copied, not_copied) in expected.get(kind, {}).items():
            flow = flows[flow_name]
            if kind == "topics":
                selected = flow.topic_filter().matches
            else:
                selected = TopicFilter(include=compile_list(flow.groups, "groups"),
                                       exclude=compile_list(flow.groups_exclude, "groups.exclude")).matches
            assert [n for n in copied if not selected(n)] == [], f"{flow_name} {kind}"
            if kind == "topics":  # and no cycle of flows keeps them from being copied
                assert [n for n in copied if graph.loop(flow, n) is not None] == [], f"{flow_name} cycles"
            assert [n for n in not_copied if selected(n)] == [], f"{flow_name} {kind}"

    for flow_name, names in expected.get("remote", {}).items():
        flow = flows[flow_name]
        policy = make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)
        assert {topic: policy.format_remote_topic(flow.source, topic) for topic in names} == names, flow_name

    if "targets" in expected:
        targets, served = expected["targets"]
        assert {f.name for f in for_targets(loaded, targets).flows} == served

    lines = out.splitlines()
    for line in expected.get("report", []):
        assert any(printed.startswith(line) for printed in lines), line
