"""Client overrides of mm2.properties: MM2's precedence, the Java -> librdkafka key table, values
checked by librdkafka itself, and the keys the engine decides."""

from __future__ import annotations

import logging

import pytest

from engine.cli import main
from engine.clients import client_config, connection, role_connection
from engine.config.loading import for_targets, from_properties
from engine.config.values import ConfigError
from engine.worker.relays import consumer_settings, producer_settings


def base(**extra: str) -> dict[str, str]:
    return {"clusters": "A, B, C", "A.bootstrap.servers": "127.0.0.1:1", "B.bootstrap.servers": "127.0.0.1:2",
            "C.bootstrap.servers": "127.0.0.1:3", "A->B.enabled": "true", "A->C.enabled": "true", **extra}


def flow(config, name: str = "A->B"):
    return next(f for f in config.flows if f.name == name)


def test_consumer_precedence_is_mm2s_cluster_beats_flow_and_source_consumer_beats_both():
    config = from_properties(base(**{
        "A->B.consumer.fetch.min.bytes": "10", "A->B.consumer.fetch.max.bytes": "20",
        "A->B.consumer.max.partition.fetch.bytes": "30",
        "A.consumer.fetch.max.bytes": "21", "A.consumer.max.partition.fetch.bytes": "31",
        "A->B.source.consumer.max.partition.fetch.bytes": "32",
    }))
    assert flow(config).source_consumer == {"fetch.min.bytes": "10", "fetch.max.bytes": "21",
                                            "max.partition.fetch.bytes": "32"}
    # the cluster's keys reach every flow out of A; the flow's only its own
    assert flow(config, "A->C").source_consumer == {"fetch.max.bytes": "21", "max.partition.fetch.bytes": "31"}


def test_data_producer_takes_the_target_cluster_keys_then_the_flow_override():
    config = from_properties(base(**{
        "B.producer.batch.size": "262144", "B.producer.linger.ms": "20",
        "A->B.producer.override.linger.ms": "50", "C.producer.linger.ms": "7",
    }))
    assert flow(config).target_producer == {"batch.size": "262144", "linger.ms": "50"}
    assert flow(config, "A->C").target_producer == {"linger.ms": "7"}


def test_java_names_are_mapped_onto_librdkafka():
    config = from_properties(base(**{
        "B.producer.buffer.memory": "67108864", "B.producer.max.request.size": "2097152",
        "B.producer.delivery.timeout.ms": "120000", "B.producer.send.buffer.bytes": "-1",
        "B.producer.compression.zstd.level": "3", "A.consumer.fetch.max.wait.ms": "100",
        "A.consumer.receive.buffer.bytes": "65536", "A.consumer.client.rack": "use1-az1",
        "A.admin.retry.backoff.ms": "500",
    }))
    assert flow(config).target_producer == {
        "queue.buffering.max.kbytes": "65536", "message.max.bytes": "2097152", "message.timeout.ms": "120000",
        "socket.send.buffer.bytes": "0", "compression.level": "3"}
    assert flow(config).source_consumer == {"fetch.wait.max.ms": "100", "socket.receive.buffer.bytes": "65536",
                                            "client.rack": "use1-az1"}
    assert flow(config).source_admin == {"retry.backoff.ms": "500"}


def test_keys_the_engine_decides_and_keys_librdkafka_lacks_are_noted_not_used(caplog):
    with caplog.at_level(logging.INFO, logger="engine.config"):
        config = from_properties(base(**{
            "B.producer.acks": "1", "A.consumer.auto.offset.reset": "latest", "A.consumer.max.poll.records": "4000",
            "B.producer.key.serializer": "org.apache.kafka.common.serialization.ByteArraySerializer",
            "A.consumer.unheard.of.setting": "1",
        }))
    assert flow(config).target_producer == {} and flow(config).source_consumer == {}
    assert "B.producer.acks is not used: all, always" in caplog.text
    assert "A.consumer.auto.offset.reset is not used: error, always" in caplog.text
    assert "A.consumer.max.poll.records is not used: the engine's batch" in caplog.text
    assert "A.consumer.unheard.of.setting is not used: librdkafka has no such setting" in caplog.text
    assert "serializer" not in caplog.text  # the byte serializers are what the engine does anyway


@pytest.mark.parametrize("extra, key, message", [
    ({"B.producer.linger.ms": "soon"}, "B.producer.linger.ms", "librdkafka refuses linger.ms='soon'"),
    ({"B.producer.interceptor.classes": "com.example.Audit"}, "B.producer.interceptor.classes",
     "com.example.Audit is a Java class that librdkafka cannot run"),
    ({"A.consumer.security.protocol": "SSL", "A.consumer.ssl.keystore.type": "PKCS12",
      "A.consumer.ssl.keystore.location": "/nonexistent/x.p12"}, "A.consumer.ssl.keystore.location",
     "cannot read /nonexistent/x.p12"),
    ({"B.admin.security.protocol": "SASL_SSL", "B.admin.sasl.mechanism": "GSSAPI"}, "B.admin.sasl.mechanism",
     "cluster B (admin clients): SASL mechanism GSSAPI is not supported"),
    ({"B.admin.security.protocol": "SASL_SSL", "B.admin.sasl.mechanism": "PLAIN"}, "B.admin.sasl.jaas.config",
     "cluster B (admin clients): security.protocol=SASL_SSL with PLAIN needs credentials"),
    ({"A.consumer.security.protocol": "TLS"}, "A.consumer.security.protocol",
     "cluster A (consumer clients): expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'"),
    ({"B.producer.bootstrap.servers": " "}, "B.producer.bootstrap.servers",
     "is empty; give host:port pairs, or leave the key out for B.bootstrap.servers"),
    ({"B.producer.buffer.memory": "lots"}, "B.producer.buffer.memory", "expected a number of bytes"),
    ({"A->B.topic.filter.class": "com.example.MyTopicFilter"}, "A->B.topic.filter.class",
     "com.example.MyTopicFilter is a Java class the engine cannot run; the built-in DefaultTopicFilter"),
    ({"forwarding.admin.class": "com.example.Admin"}, "forwarding.admin.class", "built-in ForwardingAdmin"),
])
def test_bad_overrides_name_the_key(extra, key, message):
    with pytest.raises(ConfigError) as caught:
        from_properties(base(**extra))
    assert caught.value.key == key and message in str(caught.value)


def test_built_in_classes_are_accepted_and_connect_worker_keys_noted(caplog):
    with caplog.at_level(logging.INFO, logger="engine.config"):
        from_properties(base(**{
            "topic.filter.class": "org.apache.kafka.connect.mirror.DefaultTopicFilter",
            "forwarding.admin.class": "org.apache.kafka.clients.admin.ForwardingAdmin",
            "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
            "B.config.storage.replication.factor": "3", "dedicated.mode.enable.internal.rest": "true",
            "frobnicate.everything": "yes"}))
    assert ("3 keys of MM2's Connect workers and driver are accepted and not used: B.config.storage.replication"
            ".factor, dedicated.mode.enable.internal.rest, key.converter") in caplog.text
    assert "frobnicate.everything is not a key MM2 or mirror-engine knows (ignored, as MM2 ignores it)" in caplog.text


PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SASL_B = {"B.security.protocol": "SASL_SSL", "B.sasl.mechanism": "PLAIN",
          "B.sasl.jaas.config": f'{PLAIN} required username="mirror" password="cluster-pw-B";'}


def test_a_role_may_override_bootstrap_servers_with_mm2s_precedence():
    # the same file given to Kafka 4.3.1's MirrorMakerConfig gives these bootstrap.servers to the
    # source consumer (A.consumer beats A->B.consumer), source admin and target admin of MirrorSourceConnector
    config = from_properties(base(**{
        "A->B.consumer.bootstrap.servers": "a-flow:9092", "A.consumer.bootstrap.servers": "a-consumer:9092",
        "A->B.source.admin.bootstrap.servers": "a-flow-admin:9092", "B.admin.bootstrap.servers": "b-admin:9092",
        "B.producer.bootstrap.servers": "b-producer:9092 , b-producer-2:9092",
    }))
    a_b = flow(config)
    assert (a_b.source_consumer, a_b.source_admin) == ({"bootstrap.servers": "a-consumer:9092"},
                                                       {"bootstrap.servers": "a-flow-admin:9092"})
    assert a_b.target_admin == {"bootstrap.servers": "b-admin:9092"}
    assert a_b.target_producer == {"bootstrap.servers": "b-producer:9092 , b-producer-2:9092"}
    assert flow(config, "A->C").source_admin == {}  # A->B.source.admin is that flow's own
    admin = client_config(config.cluster("B"), "A->B|MirrorSourceConnector|replication-target-admin",
                          **a_b.target_admin)
    assert (admin["bootstrap.servers"], admin["security.protocol"]) == ("b-admin:9092", "PLAINTEXT")


def test_a_role_may_log_in_with_its_own_security_which_replaces_the_clusters():
    config = from_properties(base(**SASL_B, **{
        "B.admin.sasl.jaas.config": f"{PLAIN} required username='mirror-admin' password='admin-pw;=x';",
        "B.producer.security.protocol": "SSL",
        "A.consumer.security.protocol": "SASL_PLAINTEXT", "A.consumer.sasl.mechanism": "SCRAM-SHA-512",
        "A.consumer.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                       'username="reader" password="reader-pw";',
    }))
    a_b = flow(config)
    # the admin keeps B's protocol and mechanism, with its own login
    assert a_b.target_admin == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
                                "sasl.username": "mirror-admin", "sasl.password": "admin-pw;=x"}
    # SSL without SASL: the cluster's login is not used by the data producer
    assert a_b.target_producer == {"security.protocol": "SSL"}
    producer = client_config(config.cluster("B"), "p", **a_b.target_producer)
    assert "sasl.username" not in producer and "sasl.password" not in producer
    assert (producer["bootstrap.servers"], producer["security.protocol"]) == ("127.0.0.1:2", "SSL")
    assert role_connection(connection(config.cluster("A")), a_b.source_consumer) == {"bootstrap.servers": "127.0.0.1:1"}
    assert a_b.source_consumer["sasl.username"] == "reader"
    # a role without security keys keeps the cluster's
    assert client_config(config.cluster("B"), "x")["sasl.password"] == "cluster-pw-B"
    assert flow(config, "A->C").target_producer == {}
    assert {"admin-pw;=x", "reader-pw", "cluster-pw-B"} <= config.secrets


def test_check_config_shows_a_roles_own_login_hidden(tmp_path, capsys):
    path = tmp_path / "mm2.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in base(**SASL_B, **{
        "B.admin.sasl.jaas.config": f'{PLAIN} required username="mirror-admin" password="admin-pw-77";',
        "B.admin.bootstrap.servers": "b-admin:9093"}).items()))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "    target admin overrides (librdkafka):\n      bootstrap.servers = b-admin:9093\n" \
           "      sasl.mechanisms = PLAIN\n      sasl.password = [hidden]\n      sasl.username = mirror-admin\n" \
           "      security.protocol = SASL_SSL\n" in out
    assert "admin-pw-77" not in out and "unused" not in out and "not used by mirror-engine" not in out


def test_engine_settings_win_over_overrides_and_a_user_client_id_leads():
    consumer = consumer_settings("A->B", {"isolation.level": "read_uncommitted", "client.rack": "r1"})
    assert consumer["isolation.level"] == "read_uncommitted" and consumer["auto.offset.reset"] == "error"
    producer = producer_settings("lz4", overrides={"linger.ms": "20", "batch.size": "2000000"},
                                 max_message_bytes=500_000)
    assert (producer["linger.ms"], producer["acks"], producer["enable.idempotence"]) == ("20", "all", "true")
    assert (producer["batch.size"], producer["message.max.bytes"]) == ("500000", "500000")
    settings = client_config({"bootstrap.servers": "x"}, "A->B|MirrorSourceConnector|replication-source-admin",
                             **{"client.id": "team-x"})
    assert settings["client.id"] == "team-x|A->B|MirrorSourceConnector|replication-source-admin"


def test_clusters_option_serves_only_flows_and_heartbeats_into_those_targets():
    config = for_targets(from_properties(base()), ["C"])
    assert [f.name for f in config.flows] == ["A->C"]
    assert {(h.source, h.target) for h in config.heartbeats} == {("A", "C"), ("B", "C")}
    with pytest.raises(ConfigError) as caught:
        for_targets(config, ["D"])
    assert caught.value.key == "--clusters" and "D not among the configured clusters" in str(caught.value)
