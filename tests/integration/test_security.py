"""Replication over SASL_SSL (SCRAM) and mutual TLS with Java stores, secrets from config providers,
a password rotated while the engine runs, and clear errors for wrong passwords and certificates.
Every test greps what the engine printed (logs, errors, check-config, metrics, worker command
lines) for the secrets it was given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from engine.sandbox import KafkaCluster, SaslSettings
from engine.sandbox.pki import STORE_PASSWORD
from tests.helpers import wait_for
from tests.integration.conftest import GIVEN_SECRETS, ClusterHandle
from tests.integration.kafka_io import end_offsets, mm2_properties, produce, read_all
from tests.integration.test_replicate_a_to_b import PARTITIONS, assert_same_records, by_partition, sample_records

SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
FIRST_PASSWORD, ROTATED_PASSWORD = "scram-pw-before-rotation-7f3a", "scram-pw-after-rotation-91c2"
WRONG_PASSWORD = "scram-pw-that-is-wrong-55d0"
TRUSTSTORE_PASSWORD_ENV = "MIRROR_ENGINE_TEST_TRUSTSTORE_PASSWORD"
# the broker asks every connection to log in again this often: a rotated password must be used
REAUTH_MS = 4000
GIVEN_SECRETS.update({FIRST_PASSWORD, ROTATED_PASSWORD, WRONG_PASSWORD, STORE_PASSWORD})


@pytest.fixture(scope="module")
def sasl_ssl_source(sandbox_dir):
    """SASL_SSL with SCRAM users (and PLAINTEXT for the tests' own clients)."""
    cluster = KafkaCluster(f"SSL-A-{os.getpid()}", base_dir=sandbox_dir, tls=True,
                           sasl=SaslSettings(users={"admin": "admin-secret", "mirror": FIRST_PASSWORD}),
                           broker_properties={"connections.max.reauth.ms": str(REAUTH_MS)}).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def mtls_target(sandbox_dir):
    """An SSL listener that requires a client certificate signed by the cluster's CA."""
    cluster = KafkaCluster(f"MTLS-B-{os.getpid()}", base_dir=sandbox_dir, mtls=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def handle(alias: str, cluster: KafkaCluster) -> ClusterHandle:
    return ClusterHandle(alias, cluster.bootstrap_servers, cluster)


def secured_properties(source: KafkaCluster, target: KafkaCluster, creds, topic: str, **extra: str) -> str:
    """A->B: SCRAM over TLS into A with a keytool truststore, mTLS into B with a keytool keystore."""
    client = target.pki.client_cert("mirror-engine")
    return mm2_properties(handle("A", source), handle("B", target), {
        "A->B.topics": topic,
        "config.providers": "file,env",
        "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "A.bootstrap.servers": source.sasl_bootstrap_servers,
        "A.security.protocol": "SASL_SSL",
        "A.sasl.mechanism": "SCRAM-SHA-512",
        "A.sasl.jaas.config": f'{SCRAM_MODULE} required username="mirror" password="${{file:{creds}:password}}";',
        "A.ssl.truststore.type": "PKCS12",
        "A.ssl.truststore.location": str(source.pki.java_truststore("PKCS12")),
        "A.ssl.truststore.password": f"${{env:{TRUSTSTORE_PASSWORD_ENV}}}",
        "B.bootstrap.servers": target.tls_bootstrap_servers,
        "B.security.protocol": "SSL",
        "B.ssl.truststore.type": "PEM",
        "B.ssl.truststore.location": str(target.ca_file),
        "B.ssl.keystore.type": "PKCS12",
        "B.ssl.keystore.location": str(target.pki.java_keystore(client, "PKCS12")),
        "B.ssl.keystore.password": f"${{file:{creds}:keystore.password}}",
        "B.ssl.key.password": f"${{file:{creds}:keystore.password}}",
        "mirror.engine.secrets.reload.interval.seconds": "0",
        **extra,
    })


def write_creds(path, password: str) -> None:
    path.write_text(f"password = {password}\nkeystore.password = {STORE_PASSWORD}\n")


def key_material_lines(target: KafkaCluster) -> list[str]:
    """The base64 lines of the client's private key, as the engine hands it to librdkafka."""
    p12 = target.pki.client_cert("mirror-engine").p12
    store = pkcs12.load_pkcs12(p12.read_bytes(), STORE_PASSWORD.encode())
    pem = store.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return [line for line in pem.splitlines() if not line.startswith("-----")]


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} prints a secret ({secret[:4]}...):\n{text[-3000:]}"


def check_config_output(properties_file) -> str:
    result = subprocess.run([sys.executable, "-m", "engine", "check-config", str(properties_file)],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_replicates_over_sasl_ssl_and_mtls_and_rotates_the_password_without_a_restart(
        sasl_ssl_source, mtls_target, engine, unique_name, tmp_path, monkeypatch):
    monkeypatch.setenv(TRUSTSTORE_PASSWORD_ENV, STORE_PASSWORD)
    creds = tmp_path / "creds.properties"
    write_creds(creds, FIRST_PASSWORD)
    topic = handle("A", sasl_ssl_source).create_topic(unique_name("secure"), PARTITIONS)
    remote = f"A.{topic}"
    first = sample_records(300)
    produce(sasl_ssl_source.bootstrap_servers, topic, first)
    run = engine(secured_properties(sasl_ssl_source, mtls_target, creds, topic))
    wait_for(lambda: sum(end_offsets(mtls_target.bootstrap_servers, remote).values()) >= 300 if remote in
             AdminClient({"bootstrap.servers": mtls_target.bootstrap_servers}).list_topics(timeout=10).topics
             else False, 90, "the first 300 records copied over SASL_SSL into mTLS", run.log)
    assert_same_records(by_partition(first), read_all(mtls_target.bootstrap_servers, remote))
    workers_before = run.worker_pids()

    # rotate: the broker gets the new password, then the secret file, then SIGHUP
    admin = AdminClient({"bootstrap.servers": sasl_ssl_source.bootstrap_servers})
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "mirror", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), ROTATED_PASSWORD.encode())])
    for future in futures.values():
        future.result(timeout=30)
    write_creds(creds, ROTATED_PASSWORD)
    run.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "restarted with the new settings of cluster A" in run.log(), 60,
             "the workers restarted with the rotated password", run.log)
    rotated_at = len(run.log())
    second = sample_records(300, first=300)
    produce(sasl_ssl_source.bootstrap_servers, topic, second)
    wait_for(lambda: sum(end_offsets(mtls_target.bootstrap_servers, remote).values()) >= 600, 90,
             "the next 300 records copied with the rotated password", run.log)
    # every connection of the coordinator logs in again within REAUTH_MS; its topic refreshes (every
    # 5 s) must go on working with the new password
    refreshes = run.log()[rotated_at:].count(": replicating ")
    wait_for(lambda: run.log()[rotated_at:].count(": replicating ") >= refreshes + 2, 60,
             "two topic refreshes after the re-authentication interval", run.log)
    assert_same_records(by_partition(first + second), read_all(mtls_target.bootstrap_servers, remote))
    after_rotation = run.log()[rotated_at:]
    assert "Authentication failed" not in after_rotation and "refresh failed" not in after_rotation, after_rotation
    assert run.process.poll() is None, "the engine itself kept running"
    workers_after = run.worker_pids()
    assert workers_after and set(workers_after.values()).isdisjoint(workers_before.values())

    secrets = [FIRST_PASSWORD, ROTATED_PASSWORD, STORE_PASSWORD, *key_material_lines(mtls_target)]
    for pid in workers_after.values():
        assert_no_secret(Path(f"/proc/{pid}/cmdline").read_text(), secrets, f"worker {pid}'s command line")
    metrics = urllib.request.urlopen(run.metrics_url(), timeout=10).read().decode()
    assert f'topic="{topic}"' in metrics
    assert_no_secret(metrics, secrets, "the metrics endpoint")
    checked = check_config_output(run.folder / "mm2.properties")
    assert "sasl.password = [hidden]" in checked and "ssl.key.pem = [hidden]" in checked, checked
    assert_no_secret(checked, secrets, "check-config")
    assert run.stop() == 0
    assert_no_secret(run.log(), secrets, "the engine's log")


def test_a_wrong_password_names_the_cluster_and_its_keys(sasl_ssl_source, mtls_target, engine, unique_name,
                                                         tmp_path, monkeypatch):
    monkeypatch.setenv(TRUSTSTORE_PASSWORD_ENV, STORE_PASSWORD)
    creds = tmp_path / "creds.properties"
    write_creds(creds, WRONG_PASSWORD)
    run = engine(secured_properties(sasl_ssl_source, mtls_target, creds, unique_name("never")))
    assert run.wait(60) == 2, run.log()
    log = run.log()
    assert f"cluster A ({sasl_ssl_source.sasl_bootstrap_servers}): SASL authentication failed: " in log, log
    assert "(config keys: A.sasl.jaas.config, A.sasl.mechanism)" in log, log
    assert_no_secret(log, [WRONG_PASSWORD, STORE_PASSWORD], "the engine's error")


def plain_source_properties(source: KafkaCluster, target: KafkaCluster, topic: str, **b_keys: str) -> str:
    return mm2_properties(handle("A", source), handle("B", target), {
        "A->B.topics": topic, "B.bootstrap.servers": target.tls_bootstrap_servers, "B.security.protocol": "SSL",
        **{f"B.{k}": v for k, v in b_keys.items()}})


def test_a_broker_certificate_from_an_untrusted_ca_names_the_cluster(sasl_ssl_source, mtls_target, engine,
                                                                      unique_name):
    client = mtls_target.pki.client_cert("mirror-engine")
    run = engine(plain_source_properties(
        sasl_ssl_source, mtls_target, unique_name("never"), **{
            # the source cluster's CA: a real CA, but not the one that signed B's brokers
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(sasl_ssl_source.ca_file),
            "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(client.p12),
            "ssl.keystore.password": STORE_PASSWORD}))
    assert run.wait(60) == 2, run.log()
    log = run.log()
    assert f"cluster B ({mtls_target.tls_bootstrap_servers}): the broker's certificate is not trusted: " in log, log
    assert "certificate verify failed" in log and "(config keys: B.ssl.truststore.location)" in log, log
    assert_no_secret(log, [STORE_PASSWORD], "the engine's error")


@pytest.mark.parametrize("kind, message", [
    # the engine reads the keystore itself: an expired certificate stops the start before connecting
    ("expired", "error: B.ssl.keystore.location: cluster B: the client certificate CN=mirror-engine expired on "),
    # a certificate from another CA: the broker refuses it (under TLS 1.3 after the handshake)
    ("untrusted", "cluster B ({servers}): the broker refused the client certificate: "),
])
def test_a_client_certificate_the_broker_would_refuse_names_the_cluster_and_key(
        sasl_ssl_source, mtls_target, engine, unique_name, kind, message):
    client = mtls_target.pki.client_cert("mirror-engine", **{kind: True})
    run = engine(plain_source_properties(
        sasl_ssl_source, mtls_target, unique_name("never"), **{
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(mtls_target.ca_file),
            "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(client.p12),
            "ssl.keystore.password": STORE_PASSWORD}))
    assert run.wait(60) == 2, run.log()
    log = run.log()
    assert message.format(servers=mtls_target.tls_bootstrap_servers) in log, log
    assert "B.ssl.keystore.location" in log, log
    assert_no_secret(log, [STORE_PASSWORD], "the engine's error")


# a password as cloud vendors' connection strings look: `;`, `=`, `/` and spaces (single-quoted in JAAS)
ROLE_PASSWORD = "Endpoint=sb://role.example/;Key Name=reader;Key=r0le=="
GIVEN_SECRETS.add(ROLE_PASSWORD)


def test_the_replication_consumer_logs_in_with_its_own_role_keys(sasl_ssl_source, mtls_target, engine,
                                                                  unique_name):
    """A's clients use its PLAINTEXT listener; only A.consumer.* names the SASL_SSL listener and a
    SCRAM login: the records arrive only if those keys reach the workers' consumer."""
    admin = AdminClient({"bootstrap.servers": sasl_ssl_source.bootstrap_servers})
    for future in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "role-reader", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), ROLE_PASSWORD.encode())]).values():
        future.result(timeout=30)
    topic = handle("A", sasl_ssl_source).create_topic(unique_name("role"), PARTITIONS)
    records = sample_records(200)
    produce(sasl_ssl_source.bootstrap_servers, topic, records)
    run = engine(mm2_properties(handle("A", sasl_ssl_source), handle("B", mtls_target), {
        "A->B.topics": topic,
        "A.consumer.bootstrap.servers": sasl_ssl_source.sasl_bootstrap_servers,
        "A.consumer.security.protocol": "SASL_SSL",
        "A.consumer.sasl.mechanism": "SCRAM-SHA-512",
        "A.consumer.sasl.jaas.config": f"{SCRAM_MODULE} required username='role-reader' password='{ROLE_PASSWORD}';",
        "A.consumer.ssl.truststore.type": "PEM",
        "A.consumer.ssl.truststore.location": str(sasl_ssl_source.ca_file),
    }))
    remote = f"A.{topic}"
    wait_for(lambda: sum(end_offsets(mtls_target.bootstrap_servers, remote).values()) >= 200 if remote in
             AdminClient({"bootstrap.servers": mtls_target.bootstrap_servers}).list_topics(timeout=10).topics
             else False, 90, "200 records read by a consumer with its own login", run.log)
    assert_same_records(by_partition(records), read_all(mtls_target.bootstrap_servers, remote))
    assert run.stop() == 0
    assert_no_secret(run.log(), [ROLE_PASSWORD, "r0le=="], "the engine's log")
