"""The sandbox's own promises: fault injection, SASL users with an authorizer, failure reports,
TLS, SASL_SSL and mutual TLS with certificates of the cluster's own CA."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from engine.sandbox import KafkaCluster, SandboxError, SaslSettings
from engine.sandbox.pki import IssuedCert
from tests.helpers import wait_for


def _metadata_answers(servers: str) -> bool:
    admin = AdminClient({"bootstrap.servers": servers, "log_level": 0})
    try:
        admin.list_topics(timeout=1)
        return True
    except KafkaException:
        return False


def test_pause_resume_and_restart_a_node(sandbox_dir):
    with KafkaCluster("faults", nodes=1, base_dir=sandbox_dir) as cluster:
        pid = cluster.member(1).pid()
        cluster.pause(1)
        assert not _metadata_answers(cluster.bootstrap_servers)  # frozen: nothing answers
        cluster.resume(1)
        wait_for(lambda: _metadata_answers(cluster.bootstrap_servers), 30, "the resumed broker to answer")
        cluster.restart(1)
        assert cluster.member(1).pid() != pid
        assert _metadata_answers(cluster.bootstrap_servers)
        folder = cluster.folder
    assert not folder.exists()  # stop removes the data
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sasl_users_and_authorizer(sandbox_dir):
    sasl = SaslSettings(users={"admin": "admin-secret", "alice": "alice-secret"})
    with KafkaCluster("secured", nodes=1, authorizer=True, sasl=sasl, base_dir=sandbox_dir) as cluster:
        admin = AdminClient(cluster.admin_config())  # PLAINTEXT listener: super user
        admin.create_topics([NewTopic("guarded", 1, 1)])["guarded"].result(timeout=30)

        def producer(mechanism: str, user: str, password: str) -> Producer:
            return Producer({
                "bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                "message.timeout.ms": 10000, "log_level": 0,
            })

        errors: list = []
        alice = producer("SCRAM-SHA-256", "alice", "alice-secret")
        alice.produce("guarded", b"x", on_delivery=lambda err, _m: errors.append(err))
        alice.flush(15)
        assert errors and errors[0].code() == 29, errors  # TOPIC_AUTHORIZATION_FAILED

        binding = AclBinding(ResourceType.TOPIC, "guarded", ResourcePatternType.LITERAL, "User:alice", "*",
                             AclOperation.WRITE, AclPermissionType.ALLOW)
        admin.create_acls([binding])[binding].result(timeout=30)
        for mechanism in ("PLAIN", "SCRAM-SHA-512"):
            errors.clear()
            user = producer(mechanism, "alice", "alice-secret")
            user.produce("guarded", b"x", on_delivery=lambda err, _m: errors.append(err))
            user.flush(15)
            assert errors == [None], (mechanism, errors)


def test_a_failed_start_shows_the_broker_log(sandbox_dir):
    cluster = KafkaCluster("broken", nodes=1, base_dir=sandbox_dir,
                           broker_properties={"num.network.threads": "not-a-number"})
    with pytest.raises(SandboxError) as caught:
        cluster.start()
    message = str(caught.value)
    assert "cluster broken" in message
    assert "num.network.threads" in message  # the tail of the broker's own output


def test_cli_up_and_down(tmp_path):
    env = dict(os.environ, MIRROR_ENGINE_CACHE=str(tmp_path))
    env.pop("CI", None)
    jars = tmp_path / "kafka-4.3.1"
    # reuse the project cache's jars instead of fetching again
    from engine.sandbox.distribution import cache_root
    jars.symlink_to(cache_root() / "kafka-4.3.1", target_is_directory=True)
    up = subprocess.run([sys.executable, "-m", "engine", "sandbox", "up", "--clusters", "P,Q"],
                        env=env, capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert [line.split(" = ")[0] for line in lines] == ["P.bootstrap.servers", "Q.bootstrap.servers"]
        for line in lines:
            assert _metadata_answers(line.split(" = ")[1])
    finally:
        down = subprocess.run([sys.executable, "-m", "engine", "sandbox", "down"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert sorted(down.stdout.split()) == sorted(["P:", "stopped", "Q:", "stopped"])
    for line in lines:
        assert not _metadata_answers(line.split(" = ")[1])


def _create_topic(cluster: KafkaCluster, name: str) -> str:
    admin = AdminClient(cluster.admin_config())  # must outlive the future
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    return name


def _round_trip(client: dict[str, str], topic: str) -> None:
    """Produces one record with this client configuration and reads it back with the same one."""
    value = uuid.uuid4().bytes
    delivered: list = []
    producer = Producer({**client, "message.timeout.ms": 15000})
    producer.produce(topic, value, on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(20)
    assert delivered == [None], delivered
    # assign, no subscribe: the read needs no consumer group
    consumer = Consumer({**client, "group.id": f"reader-{topic}", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        record = wait_for(lambda: consumer.poll(0.5), 20, f"the record of {topic}")
        assert record.error() is None, record.error()
        assert record.value() == value
    finally:
        consumer.close()


def test_tls_listener_and_sasl_over_tls(sandbox_dir, unique_name):
    sasl = SaslSettings(users={"alice": "alice-secret"})
    with KafkaCluster("tls", nodes=1, sasl=sasl, tls=True, base_dir=sandbox_dir) as cluster:
        assert cluster.sasl_protocol == "SASL_SSL"
        tls = AdminClient({"bootstrap.servers": cluster.tls_bootstrap_servers, "security.protocol": "SSL",
                           "ssl.ca.location": str(cluster.ca_file)})
        assert len(tls.list_topics(timeout=15).brokers) == 1
        _round_trip({
            "bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(cluster.ca_file), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": "alice-secret",
        }, _create_topic(cluster, unique_name("sasl-ssl")))
        untrusted = AdminClient({"bootstrap.servers": cluster.tls_bootstrap_servers,
                                 "security.protocol": "SSL", "log_level": 0})
        with pytest.raises(KafkaException):
            untrusted.list_topics(timeout=3)  # the system CAs do not trust the sandbox certificate


# -- mutual TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_cluster(sandbox_dir):
    """Client certificates required on the SSL listener, an authorizer, and alice allowed everything."""
    sasl = SaslSettings(users={"admin": "admin-secret", "alice": "alice-secret"})
    with KafkaCluster("mtls", mtls=True, authorizer=True, sasl=sasl, base_dir=sandbox_dir) as cluster:
        admin = AdminClient(cluster.admin_config())
        bindings = [AclBinding(resource, "*", ResourcePatternType.LITERAL, "User:alice", "*",
                               AclOperation.ALL, AclPermissionType.ALLOW)
                    for resource in (ResourceType.TOPIC, ResourceType.GROUP)]
        for future in admin.create_acls(bindings).values():
            future.result(timeout=30)
        yield cluster


def _ssl_client(cluster: KafkaCluster, **overrides: str) -> dict[str, str]:
    return {"bootstrap.servers": cluster.tls_bootstrap_servers, "security.protocol": "SSL",
            "ssl.ca.location": str(cluster.ca_file), "log_level": "0", **overrides}


def _pem_identity(issued: IssuedCert) -> dict[str, str]:
    return {"ssl.certificate.location": str(issued.cert), "ssl.key.location": str(issued.key)}


@pytest.mark.parametrize("key_format", ["pem", "encrypted pem", "pkcs12"])
def test_mtls_client_with_a_ca_signed_certificate_produces_and_reads(mtls_cluster, unique_name,
                                                                     key_format):
    pki = mtls_cluster.pki
    if key_format == "pkcs12":
        alice = pki.client_cert("alice")
        identity = {"ssl.keystore.location": str(alice.p12), "ssl.keystore.password": pki.password}
    elif key_format == "encrypted pem":
        alice = pki.client_cert("alice", key_password="key-secret")
        identity = {**_pem_identity(alice), "ssl.key.password": "key-secret"}
    else:
        identity = _pem_identity(pki.client_cert("alice"))
    # the ACLs name User:alice, so this also proves the principal mapping rule (CN=alice -> alice)
    topic = _create_topic(mtls_cluster, unique_name("mtls"))
    _round_trip(_ssl_client(mtls_cluster, **identity), topic)


def test_mtls_principal_is_the_certificate_cn(mtls_cluster, unique_name):
    topic = _create_topic(mtls_cluster, unique_name("mtls-bob"))
    bob = mtls_cluster.pki.client_cert("bob")  # trusted, but no ACL names User:bob
    delivered: list = []
    producer = Producer({**_ssl_client(mtls_cluster, **_pem_identity(bob)), "message.timeout.ms": 15000})
    producer.produce(topic, b"x", on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(20)
    assert [e.code() for e in delivered] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], delivered


def _first_connection_error(client: dict[str, str]) -> KafkaError:
    """The first failed broker connection librdkafka reports through error_cb for this client."""
    errors: list[KafkaError] = []
    producer = Producer({**client, "error_cb": errors.append})

    def reported() -> KafkaError | None:
        producer.poll(0.1)
        return next((e for e in errors if e.code() in (KafkaError._TRANSPORT, KafkaError._SSL)), None)

    return wait_for(reported, 20, "librdkafka to report the failed connection", lambda: repr(errors))


@pytest.mark.parametrize("certificate, alert", [
    ("none", "alert bad certificate: SSL alert number 42"),
    ("untrusted", "alert bad certificate: SSL alert number 42"),
    ("expired", "alert certificate unknown: SSL alert number 46"),
])
def test_mtls_refuses_a_client_without_a_valid_certificate(mtls_cluster, certificate, alert):
    identity = {}
    if certificate != "none":
        identity = _pem_identity(mtls_cluster.pki.client_cert(
            "alice", expired=certificate == "expired", untrusted=certificate == "untrusted"))
    error = _first_connection_error(_ssl_client(mtls_cluster, **identity))
    # TLS 1.3: the client has finished its handshake before the broker checks the certificate, so
    # the broker's alert arrives as a failed read of the first request, not as a handshake error
    assert error.code() == KafkaError._TRANSPORT, error
    assert "Receive failed" in error.str() and alert in error.str(), error.str()
    assert "in state APIVERSION_QUERY" in error.str(), error.str()


def test_a_client_trusting_another_ca_refuses_the_broker(mtls_cluster):
    client = _ssl_client(mtls_cluster, **_pem_identity(mtls_cluster.pki.client_cert("alice")))
    client["ssl.ca.location"] = str(mtls_cluster.pki.untrusted_ca.cert)
    error = _first_connection_error(client)
    # usually _SSL "SSL handshake failed: ...", but _TRANSPORT when the broker has already closed
    # the socket after the client's alert: only the text tells what failed
    assert error.code() in (KafkaError._SSL, KafkaError._TRANSPORT), error
    assert "certificate verify failed" in error.str(), error.str()
    assert "in state SSL_HANDSHAKE" in error.str(), error.str()


def test_sasl_ssl_needs_no_client_certificate_on_an_mtls_cluster(mtls_cluster, unique_name):
    # ssl.client.auth without a listener prefix applies to SSL listeners only (KIP-684)
    _round_trip({
        "bootstrap.servers": mtls_cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(mtls_cluster.ca_file), "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": "alice-secret",
    }, _create_topic(mtls_cluster, unique_name("mtls-sasl")))
