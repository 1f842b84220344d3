"""Topic configs and ACLs follow the source as MM2 syncs them; per-flow overrides stay put."""

from __future__ import annotations

import os
import re

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourcePatternType,
    ResourceType,
)

from tests.helpers import wait_for
from tests.integration.conftest import LIMITED_PASSWORD, LIMITED_USER
from tests.integration.kafka_io import mm2_properties

DAY_MS = 86_400_000


def topic_configs(cluster, topic: str) -> dict[str, ConfigEntry]:
    admin = cluster.admin()
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)


def alter(cluster, topic: str, *entries: ConfigEntry) -> None:
    admin = cluster.admin()
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def set_(name: str, value: str) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def delete(name: str) -> ConfigEntry:
    return ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)


def remote_exists(cluster, topic: str) -> bool:
    return topic in cluster.admin().list_topics(timeout=10).topics


def syncs(run) -> int:
    return len(re.findall(r"A->B: synced the configs of", run.log()))


def test_configs_come_with_the_topic_without_a_sync(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("cfg"), 2, {
        "retention.ms": str(DAY_MS), "max.message.bytes": "200000", "min.insync.replicas": "2",
        "cleanup.policy": "compact,delete",
    })
    run = engine(mm2_properties(source_cluster, target_cluster,
                                {"A->B.topics": topic, "sync.topic.configs.enabled": "false"}))
    wait_for(lambda: remote_exists(target_cluster, f"A.{topic}"), 60, "the remote topic", run.log)
    configs = topic_configs(target_cluster, f"A.{topic}")
    assert configs["retention.ms"].value == str(DAY_MS)
    assert configs["max.message.bytes"].value == "200000"
    assert configs["cleanup.policy"].value == "compact,delete"
    # excluded by config.properties.exclude: left at the target's default
    assert configs["min.insync.replicas"].value != "2"
    assert configs["min.insync.replicas"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert syncs(run) == 0
    assert run.stop() == 0, run.log()


def test_changes_sync_excluded_keys_stay_and_deleted_overrides_follow_use_defaults_from(
    source_cluster, target_cluster, engine, unique_name
):
    for use_defaults_from in ("target", "source"):
        topic = source_cluster.create_topic(unique_name(f"cfg-{use_defaults_from}"), 1,
                                            {"retention.ms": str(DAY_MS), "segment.ms": "3600000"})
        run = engine(mm2_properties(source_cluster, target_cluster, {
            "A->B.topics": topic, "sync.topic.configs.interval.seconds": "1",
            "use.defaults.from": use_defaults_from,
        }))
        remote = f"A.{topic}"
        wait_for(lambda: remote_exists(target_cluster, remote), 60, "the remote topic", run.log)

        alter(source_cluster, topic, set_("retention.ms", str(2 * DAY_MS)),
              set_("unclean.leader.election.enable", "true"))
        wait_for(lambda: topic_configs(target_cluster, remote)["retention.ms"].value == str(2 * DAY_MS), 30,
                 "the changed retention.ms on the target", run.log)
        assert topic_configs(target_cluster, remote)["unclean.leader.election.enable"].value == "false"

        alter(source_cluster, topic, delete("segment.ms"))
        if use_defaults_from == "target":
            # the target override is removed: the target's own default applies
            wait_for(lambda: topic_configs(target_cluster, remote)["segment.ms"].source
                     == ConfigSource.DEFAULT_CONFIG.value, 30, "segment.ms override deleted on the target", run.log)
        else:
            # the source default is written to the target as an override
            source_default = topic_configs(source_cluster, topic)["segment.ms"].value
            wait_for(lambda: (lambda e: e.value == source_default
                              and e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)(
                topic_configs(target_cluster, remote)["segment.ms"]), 30, "the source default set on the target",
                run.log)
        assert run.stop() == 0, run.log()


def test_a_flow_override_survives_every_sync(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("keep30"), 1, {"retention.ms": str(DAY_MS)})
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "sync.topic.configs.interval.seconds": "1",
        "A->B.target.topic.config.retention.ms": str(30 * DAY_MS),
    }))
    remote = f"A.{topic}"
    wait_for(lambda: remote_exists(target_cluster, remote), 60, "the remote topic", run.log)
    assert topic_configs(target_cluster, remote)["retention.ms"].value == str(30 * DAY_MS)  # from creation on
    alter(source_cluster, topic, set_("retention.ms", str(2 * DAY_MS)))
    already = syncs(run)
    wait_for(lambda: syncs(run) >= already + 3, 30, "three more config syncs", run.log)
    assert topic_configs(source_cluster, topic)["retention.ms"].value == str(2 * DAY_MS)
    assert topic_configs(target_cluster, remote)["retention.ms"].value == str(30 * DAY_MS)
    assert run.stop() == 0, run.log()


def test_an_invalid_override_is_refused_naming_the_key(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("bad"), 1)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.target.topic.config.retention.ms": "forever",
    }))
    assert run.wait(60) == 2, run.log()
    assert "A->B.target.topic.config.retention.ms: cluster B refuses the value 'forever'" in run.log()
    assert not remote_exists(target_cluster, f"A.{topic}")


def acls_on(cluster, topic: str) -> set[tuple]:
    admin = cluster.admin()
    found = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    return {(b.name, b.resource_pattern_type, b.principal, b.operation, b.permission_type) for b in found}


def test_acl_sync_follows_mm2_rules(secured_source, secured_target, engine, unique_name):
    topic = secured_source.create_topic(unique_name("acl"), 1)
    other = secured_source.create_topic(unique_name("not-replicated"), 1)
    literal = ResourcePatternType.LITERAL
    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    given = [
        AclBinding(ResourceType.TOPIC, topic, literal, "User:alice", "*", AclOperation.READ, allow),
        AclBinding(ResourceType.TOPIC, topic, literal, "User:alice", "*", AclOperation.WRITE, allow),
        AclBinding(ResourceType.TOPIC, topic, literal, "User:bob", "*", AclOperation.ALL, allow),
        AclBinding(ResourceType.TOPIC, topic, literal, "User:mallory", "*", AclOperation.WRITE, deny),
        AclBinding(ResourceType.TOPIC, topic[:10], ResourcePatternType.PREFIXED, "User:carol", "*",
                   AclOperation.READ, allow),
        AclBinding(ResourceType.TOPIC, other, literal, "User:alice", "*", AclOperation.READ, allow),
    ]
    admin = secured_source.admin()
    for future in admin.create_acls(given).values():
        future.result(timeout=30)
    properties = mm2_properties(secured_source, secured_target, {"A->B.topics": topic})
    run = engine(properties)
    remote = f"A.{topic}"
    expected = {
        (remote, literal, "User:alice", AclOperation.READ, allow),
        (remote, literal, "User:bob", AclOperation.READ, allow),  # ALL becomes READ
        (remote, literal, "User:mallory", AclOperation.WRITE, deny),  # DENY copied as is
    }
    wait_for(lambda: acls_on(secured_target, remote) == expected, 60, "the remote topic's ACLs", run.log)
    assert acls_on(secured_target, f"A.{other}") == set()
    assert run.stop() == 0, run.log()


def test_a_source_without_authorizer_is_reported_once(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("noauth"), 1)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "sync.topic.acls.interval.seconds": "1", "sync.topic.configs.interval.seconds": "1",
    }))
    wait_for(lambda: syncs(run) >= 3, 60, "three sync rounds", run.log)
    assert run.stop() == 0, run.log()
    assert run.log().count("cluster A has no authorizer: no topic ACLs to sync into B") == 1


def test_no_permission_to_create_on_the_target_names_topic_and_acl(source_cluster, secured_target, engine,
                                                                 unique_name):
    topic = source_cluster.create_topic(unique_name("denied"), 1)
    servers = secured_target.cluster.sasl_bootstrap_servers
    properties = mm2_properties(source_cluster, secured_target, {
        "A->B.topics": topic,
        "B.bootstrap.servers": servers,
        "B.security.protocol": "SASL_PLAINTEXT", "B.sasl.mechanism": "SCRAM-SHA-256",
        "B.sasl.username": LIMITED_USER, "B.sasl.password": LIMITED_PASSWORD,
        "emit.heartbeats.enabled": "false",
    })
    run = engine(properties)
    assert run.wait(60) == 2, run.log()
    log = run.log()
    assert "cannot create topic 'mm2-offsets.A.internal' on cluster B: not authorised" in log
    assert "needs CREATE on the topic or cluster" in log



SOAK = bool(os.environ.get("MIRROR_ENGINE_SOAK"))


@pytest.mark.parametrize("use_defaults_from", ["target", "source"])
def test_an_excluded_setting_changed_right_after_creation_stays(source_cluster_3, target_cluster_3, engine,
                                                               unique_name, use_defaults_from):
    """Kafka's MM2 integration scenario, on 3-node clusters: both flows on, the remote topic's excluded
    setting is changed the moment the topic appears, and no sync takes it away.

    A KRaft broker answers DescribeConfigs from its own copy of the cluster metadata, which can lag the
    acknowledged alteration by some milliseconds: a single read right after it may still show the state
    before it (the synced value and the excluded setting at its default). So the test waits for one read
    that shows both the synced value and the excluded setting, and reads again after two more syncs."""
    source, target = source_cluster_3, target_cluster_3
    source_overrides = {"delete.retention.ms": "1000", "retention.bytes": "1000"} \
        if use_defaults_from == "target" else {}
    for round_ in range(20 if SOAK else 2):
        topic = source.create_topic(unique_name(f"excl-{use_defaults_from}"), 1, source_overrides)
        remote = f"A.{topic}"
        run = engine(mm2_properties(source, target, {
            "A->B.topics": topic, "B->A.enabled": "true", "B->A.topics": topic,
            "config.properties.exclude": r"delete\.retention\..*",
            "sync.topic.configs.interval.seconds": "1", "refresh.topics.interval.seconds": "1",
            "use.defaults.from": use_defaults_from,
        }))
        wait_for(lambda: remote_exists(target, remote), 60, f"the remote topic {remote}", run.log, interval_s=0.02)
        alter(target, remote, set_("delete.retention.ms", "2000"), set_("retention.bytes", "2000"))
        synced = topic_configs(source, topic)["retention.bytes"].value
        wait_for(lambda: (lambda c: (c["retention.bytes"].value, c["delete.retention.ms"].value) == (synced, "2000"))(
            topic_configs(target, remote)), 30, f"retention.bytes of {remote} synced back to {synced} while "
            f"the excluded delete.retention.ms stays 2000", run.log)
        already = syncs(run)
        wait_for(lambda: syncs(run) >= already + 2, 30, "two more config syncs", run.log)
        configs = topic_configs(target, remote)
        assert (round_, configs["delete.retention.ms"].value, configs["delete.retention.ms"].source,
                configs["retention.bytes"].value) == (round_, "2000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, synced)
        assert run.stop() == 0, run.log()
