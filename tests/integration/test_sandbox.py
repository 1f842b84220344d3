"""The sandbox's own promises: fault injection, SASL users with an authorizer, failure reports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, \
    ResourcePatternType, ResourceType

from engine.sandbox import KafkaCluster, SandboxError, SaslSettings
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


def test_tls_listener_and_sasl_over_tls(sandbox_dir):
    sasl = SaslSettings(users={"alice": "alice-secret"})
    with KafkaCluster("tls", nodes=1, sasl=sasl, tls=True, base_dir=sandbox_dir) as cluster:
        assert cluster.sasl_protocol == "SASL_SSL"
        tls = AdminClient({"bootstrap.servers": cluster.tls_bootstrap_servers, "security.protocol": "SSL",
                           "ssl.ca.location": str(cluster.ca_file)})
        assert len(tls.list_topics(timeout=15).brokers) == 1
        sasl_ssl = AdminClient({
            "bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(cluster.ca_file), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": "alice-secret",
        })
        assert len(sasl_ssl.list_topics(timeout=15).brokers) == 1
        untrusted = AdminClient({"bootstrap.servers": cluster.tls_bootstrap_servers,
                                 "security.protocol": "SSL", "log_level": 0})
        with pytest.raises(KafkaException):
            untrusted.list_topics(timeout=3)  # the system CAs do not trust the sandbox certificate
