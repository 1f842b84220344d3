"""The batch relay (`mirror.engine.loop = batch`) on the sandbox's secured listeners: SASL_SSL with PLAIN
and SCRAM, mutual TLS, re-authentication when the broker ends sessions, and one-line refusals that name
the cluster and its config keys (docs/batch-relay.md, "Security"). The clusters are test_security.py's
fixtures, imported: pytest then starts this module's own (module scope), and the tests name them as
arguments, which ruff takes for redefinitions."""
# ruff: noqa: F811

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from engine._fastpath import PartitionFailed
from engine.batch import protocol
from engine.batch.connection import BrokerConnection
from engine.batch.security import ClusterRefused, cluster_security
from engine.sandbox import KafkaCluster
from engine.sandbox.pki import STORE_PASSWORD
from engine.worker.batch_loop import open_batch_loop
from tests.helpers import wait_for
from tests.integration.conftest import GIVEN_SECRETS
from tests.integration.kafka_io import end_offsets, produce, read_all
from tests.integration.test_replicate_a_to_b import PARTITIONS, assert_same_records, by_partition, sample_records
from tests.integration.test_security import (  # noqa: F401 (the fixtures, for this module's own clusters)
    REAUTH_MS,
    SCRAM_MODULE,
    TRUSTSTORE_PASSWORD_ENV,
    WRONG_PASSWORD,
    assert_no_secret,
    handle,
    key_material_lines,
    mtls_target,
    sasl_ssl_source,
    secured_properties,
    write_creds,
)

BATCH_USER, BATCH_PASSWORD = "batch-relay", "scram-pw-of-the-batch-relay-3e8b"
GIVEN_SECRETS.add(BATCH_PASSWORD)


def add_scram_user(cluster: KafkaCluster, user: str, password: str,
                   mechanism: ScramMechanism = ScramMechanism.SCRAM_SHA_512) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            user, ScramCredentialInfo(mechanism, 4096), password.encode())]).values():
        future.result(timeout=30)


def test_the_batch_loop_copies_over_sasl_ssl_scram_into_mutual_tls(sasl_ssl_source, mtls_target, engine,
                                                                    unique_name, tmp_path, monkeypatch):
    """The Java keys of secured_properties (a PKCS12 truststore, a PKCS12 keystore, SCRAM-SHA-512 from a
    file) reach the batch relay as the engine derives them for librdkafka."""
    monkeypatch.setenv(TRUSTSTORE_PASSWORD_ENV, STORE_PASSWORD)
    add_scram_user(sasl_ssl_source, BATCH_USER, BATCH_PASSWORD)
    creds = tmp_path / "creds.properties"
    write_creds(creds, BATCH_PASSWORD)
    topic = handle("A", sasl_ssl_source).create_topic(unique_name("batch-secure"), PARTITIONS)
    remote, records = f"A.{topic}", sample_records(300)
    produce(sasl_ssl_source.bootstrap_servers, topic, records)
    run = engine(secured_properties(sasl_ssl_source, mtls_target, creds, topic, **{
        "mirror.engine.loop": "batch",
        "A.sasl.jaas.config": f'{SCRAM_MODULE} required username="{BATCH_USER}" password="${{file:{creds}:password}}";',
    }))
    wait_for(lambda: sum(end_offsets(mtls_target.bootstrap_servers, remote).values()) >= 300 if remote in
             AdminClient({"bootstrap.servers": mtls_target.bootstrap_servers}).list_topics(timeout=10).topics
             else False, 90, "300 records copied by the batch loop over SASL_SSL into mTLS", run.log)
    loops = wait_for(lambda: run.status()["flows"][0]["loops"], 30, "the flow's loops in /status", run.log)
    assert {(entry["loop"], entry["reason"]) for entry in loops} == {("batch", "mirror.engine.loop = batch")}
    assert_same_records(by_partition(records), read_all(mtls_target.bootstrap_servers, remote))
    assert run.stop() == 0
    assert_no_secret(run.log(), [BATCH_PASSWORD, STORE_PASSWORD, *key_material_lines(mtls_target)], "the log")


def batch_source_settings(source: KafkaCluster, password: str) -> dict[str, str]:
    return {"bootstrap.servers": source.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": BATCH_USER, "sasl.password": password,
            "ssl.ca.location": str(source.ca_file)}


def test_a_batch_connection_logs_in_again_before_its_session_expires(sasl_ssl_source):
    """The source's broker ends a SASL session after REAUTH_MS: the connection logs in again on the same
    socket (KIP-368) and its requests go on being answered."""
    add_scram_user(sasl_ssl_source, BATCH_USER, BATCH_PASSWORD)
    security = cluster_security("A", batch_source_settings(sasl_ssl_source, BATCH_PASSWORD))
    host, _, port = sasl_ssl_source.sasl_bootstrap_servers.split(",")[0].rpartition(":")
    connection = BrokerConnection(host, int(port), security=security)
    try:
        first_session_ends = connection._reauth_at
        assert first_session_ends is not None  # the broker gave the session a lifetime
        socket_before = connection.fileno()
        for _ in range(3):  # three sessions: each login happens before the broker's deadline
            session_ends = connection._reauth_at
            wait_for(lambda ends=session_ends: time.monotonic() >= ends, REAUTH_MS / 1000 + 5,
                     "the session's re-authentication time")
            metadata = protocol.read_metadata(connection.call(protocol.API_METADATA, protocol.metadata_request([])))
            assert metadata.brokers and connection._reauth_at is not None and connection._reauth_at > session_ends
        assert connection.fileno() == socket_before
    finally:
        connection.close()


def test_a_wrong_password_of_the_batch_loop_names_the_cluster_and_its_keys(sasl_ssl_source, mtls_target):
    add_scram_user(sasl_ssl_source, BATCH_USER, BATCH_PASSWORD)
    target = {"bootstrap.servers": mtls_target.bootstrap_servers}
    loop = open_batch_loop(batch_source_settings(sasl_ssl_source, WRONG_PASSWORD), target, "c", "p",
                           source_alias="A", target_alias="B")
    try:
        loop.add_partition("never-read", "A.never-read", 0)
        loop.assign([("never-read", 0, -2)])
        with pytest.raises(PartitionFailed) as refused:  # the worker stops and prints this line
            loop.pump(1000)
    finally:
        loop.close()
    line = str(refused.value)
    servers = sasl_ssl_source.sasl_bootstrap_servers
    assert line.startswith(f"batch loop: cluster A ({servers}): SASL authentication failed: "), line
    assert line.endswith("(config keys: A.sasl.jaas.config, A.sasl.mechanism)") and "\n" not in line, line
    assert_no_secret(line, [WRONG_PASSWORD, BATCH_PASSWORD], "the batch loop's error")


def first_broker(servers: str) -> tuple[str, int]:
    host, _, port = servers.split(",")[0].rpartition(":")
    return host, int(port)


def metadata_brokers(connection: BrokerConnection) -> int:
    """How many brokers the cluster's Metadata lists (the sandbox's clusters have one)."""
    try:
        return len(protocol.read_metadata(connection.call(protocol.API_METADATA,
                                                          protocol.metadata_request([]))).brokers)
    finally:
        connection.close()


@pytest.mark.parametrize("mechanism, user, password", [
    ("PLAIN", "admin", "admin-secret"),  # the sandbox's JAAS users
    ("SCRAM-SHA-256", BATCH_USER, BATCH_PASSWORD),
    ("SCRAM-SHA-512", BATCH_USER, BATCH_PASSWORD),
])
def test_a_batch_connection_logs_in_with_each_mechanism(sasl_ssl_source, mechanism, user, password):
    if mechanism.startswith("SCRAM"):
        add_scram_user(sasl_ssl_source, BATCH_USER, BATCH_PASSWORD,
                       getattr(ScramMechanism, mechanism.replace("-", "_")))
    security = cluster_security("A", {**batch_source_settings(sasl_ssl_source, password),
                                      "sasl.mechanisms": mechanism, "sasl.username": user})
    assert metadata_brokers(BrokerConnection(*first_broker(sasl_ssl_source.sasl_bootstrap_servers),
                                             security=security)) == 1


def test_a_batch_connection_presents_a_client_certificate_from_files(mtls_target):
    client = mtls_target.pki.client_cert("mirror-engine")
    security = cluster_security("B", {"bootstrap.servers": mtls_target.tls_bootstrap_servers,
                                      "security.protocol": "SSL", "ssl.ca.location": str(mtls_target.ca_file),
                                      "ssl.certificate.location": str(client.cert),
                                      "ssl.key.location": str(client.key)})
    assert metadata_brokers(BrokerConnection(*first_broker(mtls_target.tls_bootstrap_servers),
                                             security=security)) == 1


@pytest.mark.parametrize("case, meaning, keys", [
    ("untrusted CA", "the broker's certificate is not trusted", "B.ssl.truststore.location"),
    ("no client certificate", "the broker refused the client certificate", "B.ssl.keystore.location"),
])
def test_a_refused_tls_connection_of_the_batch_loop_names_the_cluster_and_key(sasl_ssl_source, mtls_target,
                                                                              case, meaning, keys):
    servers = mtls_target.tls_bootstrap_servers
    ca = sasl_ssl_source.ca_file if case == "untrusted CA" else mtls_target.ca_file
    security = cluster_security("B", {"bootstrap.servers": servers, "security.protocol": "SSL",
                                      "ssl.ca.location": str(ca)})
    with pytest.raises(ClusterRefused) as refused:
        BrokerConnection(*first_broker(servers), security=security)
    line = str(refused.value)
    assert line.startswith(f"cluster B ({servers}): {meaning}: ") and line.endswith(f"(config keys: {keys})"), line


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_batch_connection_logs_in_over_sasl_plaintext(secured_source, mechanism):
    """SASL without TLS: the session's cluster with StandardAuthorizer, as its super user `admin`."""
    cluster = secured_source.cluster
    add_scram_user(cluster, "admin", "admin-secret")  # PLAIN's users live in the broker's JAAS config
    security = cluster_security("SA", {"bootstrap.servers": cluster.sasl_bootstrap_servers,
                                       "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mechanism,
                                       "sasl.username": "admin", "sasl.password": "admin-secret"})
    assert security.tls is None
    assert metadata_brokers(BrokerConnection(*first_broker(cluster.sasl_bootstrap_servers), security=security)) == 1
