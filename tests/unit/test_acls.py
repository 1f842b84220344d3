"""The ACLs the engine needs, derived from mm2.properties (engine.security.acls)."""

from __future__ import annotations

import logging

import pytest

from engine.config.loading import from_properties
from engine.security.acls import (
    RequiredAcl,
    audit_acls,
    heartbeats_topics,
    kafka_acls_commands,
    regex_patterns,
    required_acls,
    table,
)

BASE = {"clusters": "A, B", "A.bootstrap.servers": "a1:9092", "B.bootstrap.servers": "b1:9092", "A->B.enabled": "true"}
# the features that every flow of these tests has unless a test turns them on
QUIET = {"emit.heartbeats.enabled": "false", "mirror.engine.audit.interval.seconds": "0",
         "sync.topic.acls.enabled": "false", "sync.topic.configs.enabled": "false"}


@pytest.fixture(autouse=True)
def _quiet_config_warnings(caplog):
    caplog.set_level(logging.ERROR, logger="engine.config")


def keys(extra: dict[str, str], base: dict[str, str] = BASE) -> set[tuple[str, str, str, str, str]]:
    return {acl.key for acl in required_acls(from_properties({**base, **extra}))}


def topic(cluster, name, *operations, prefixed=False):
    return {(cluster, "TOPIC", name, "PREFIXED" if prefixed else "LITERAL", op) for op in operations}


def group(cluster, name, *operations, prefixed=False):
    return {(cluster, "GROUP", name, "PREFIXED" if prefixed else "LITERAL", op) for op in operations}


def replication(source="A", target="B", topics=("orders",), remote=("A.orders",)):
    """What every flow needs: read the source topics, create and write the remote ones, store progress."""
    flow = f"{source}->{target}"
    return (
        set().union(*(topic(source, t, "READ", "DESCRIBE_CONFIGS") for t in topics))
        | set().union(*(topic(target, r, "CREATE", "WRITE", "ALTER", "DESCRIBE_CONFIGS") for r in remote))
        | group(source, f"mirror-engine-{flow}", "DESCRIBE")
        | topic(target, f"mm2-offsets.{source}.internal", "CREATE", "WRITE", "READ")
        | group(target, f"mm2-offsets.{source}.internal-reader", "DESCRIBE")
        | topic(target, f"mm2-offset-map.{source}.internal", "CREATE", "WRITE", "READ")
        | group(target, "mirror-engine-", "DESCRIBE", prefixed=True)
    )


OFFSET_SYNCS = topic("A", "mm2-offset-syncs.B.internal", "CREATE", "WRITE")
CHECKPOINTS = topic("B", "A.checkpoints.internal", "CREATE", "WRITE")


def test_plain_flow_with_checkpoints_needs_offset_syncs_checkpoints_and_the_groups():
    expected = replication() | OFFSET_SYNCS | CHECKPOINTS | group("A", "app-", "DESCRIBE", prefixed=True)
    assert keys({**QUIET, "A->B.topics": "orders", "groups": "app-.*"}) == expected


def test_without_checkpoints_no_group_is_read_and_without_offset_syncs_neither_topic():
    no_checkpoints = {**QUIET, "A->B.topics": "orders", "emit.checkpoints.enabled": "false"}
    assert keys(no_checkpoints) == replication() | OFFSET_SYNCS
    # MM2's checkpoint connector needs offset syncs: neither is written without them
    assert keys({**QUIET, "A->B.topics": "orders", "emit.offset-syncs.enabled": "false"}) == replication()


def test_sync_group_offsets_reads_the_remote_topics_and_commits_to_the_groups_on_the_target():
    expected = (replication() | OFFSET_SYNCS | CHECKPOINTS | group("A", "app-", "DESCRIBE", prefixed=True)
                | topic("B", "A.orders", "READ") | group("B", "app-", "READ", prefixed=True))
    assert keys({**QUIET, "A->B.topics": "orders", "groups": "app-.*",
                 "sync.group.offsets.enabled": "true"}) == expected


def test_default_topics_and_groups_become_wildcards_and_cover_the_narrower_acls():
    expected = {
        ("A", "TOPIC", "*", "LITERAL", "READ"), ("A", "TOPIC", "*", "LITERAL", "DESCRIBE_CONFIGS"),
        # the workers' group mirror-engine-A->B is one of the groups `*` grants
        ("A", "GROUP", "*", "LITERAL", "DESCRIBE"),
        # remote topics and the checkpoints topic A.checkpoints.internal: every topic named A.*
        *topic("B", "A.", "CREATE", "WRITE", "ALTER", "DESCRIBE_CONFIGS", prefixed=True),
        *topic("B", "mm2-offsets.A.internal", "CREATE", "WRITE", "READ"),
        *group("B", "mm2-offsets.A.internal-reader", "DESCRIBE"),
        *topic("B", "mm2-offset-map.A.internal", "CREATE", "WRITE", "READ"),
        *group("B", "mirror-engine-", "DESCRIBE", prefixed=True),
        *OFFSET_SYNCS,
    }
    assert keys(QUIET) == expected


def test_every_default_feature_with_heartbeats_config_and_acl_sync_and_the_sampling_audit():
    expected = (
        replication(topics=("orders", "heartbeats"), remote=("A.orders", "A.heartbeats"))
        | OFFSET_SYNCS | CHECKPOINTS | group("A", "app-", "DESCRIBE", prefixed=True)
        # heartbeats are emitted into both clusters (one emitter per ordered pair)
        | topic("A", "heartbeats", "CREATE", "WRITE") | topic("B", "heartbeats", "CREATE", "WRITE")
        # config sync: ALTER_CONFIGS implies the DESCRIBE_CONFIGS the record size limit needs
        | topic("B", "A.orders", "ALTER_CONFIGS", "READ") | topic("B", "A.heartbeats", "ALTER_CONFIGS", "READ")
        | {("A", "CLUSTER", "kafka-cluster", "LITERAL", "DESCRIBE"),
           ("B", "CLUSTER", "kafka-cluster", "LITERAL", "ALTER")}
        | group("A", "mirror-engine-audit-", "DESCRIBE", prefixed=True)
    ) - topic("B", "A.orders", "DESCRIBE_CONFIGS") - topic("B", "A.heartbeats", "DESCRIBE_CONFIGS")
    assert keys({"A->B.topics": "orders", "groups": "app-.*"}) == expected


def test_exactly_once_adds_the_workers_transactional_ids():
    expected = replication() | OFFSET_SYNCS | {("B", "TRANSACTIONAL_ID", "mirror-engine-A->B-", "PREFIXED", "WRITE")}
    assert keys({**QUIET, "A->B.topics": "orders", "emit.checkpoints.enabled": "false",
                 "B.exactly.once.source.support": "enabled"}) == expected
    # `preparing` is not enabled
    assert keys({**QUIET, "A->B.topics": "orders", "emit.checkpoints.enabled": "false",
                 "exactly.once.source.support": "preparing"}) == replication() | OFFSET_SYNCS


def test_scale_out_joins_the_instances_group_on_the_target():
    expected = replication() | OFFSET_SYNCS | group("B", "mirrors", "READ")
    assert keys({**QUIET, "A->B.topics": "orders", "emit.checkpoints.enabled": "false",
                 "mirror.engine.group.id": "mirrors"}) == expected


def test_offset_syncs_on_the_target_are_named_after_the_source():
    expected = replication() | topic("B", "mm2-offset-syncs.A.internal", "CREATE", "WRITE") | CHECKPOINTS
    assert keys({**QUIET, "A->B.topics": "orders", "groups": "", "offset-syncs.topic.location": "target"}) == expected


def test_mm2_translation_reads_the_offset_syncs():
    expected = (replication() | OFFSET_SYNCS | CHECKPOINTS | topic("A", "mm2-offset-syncs.B.internal", "READ")
                | group("A", "mirror-engine-", "DESCRIBE", prefixed=True))
    # mirror-engine- (the offset-sync reader) covers the workers' group mirror-engine-A->B
    expected -= group("A", "mirror-engine-A->B", "DESCRIBE")
    assert keys({**QUIET, "A->B.topics": "orders", "groups": "", "offset.translation": "mm2"}) == expected


def test_identity_policy_keeps_the_names_but_not_for_heartbeats_and_honours_the_separator():
    identity = {**QUIET, "emit.heartbeats.enabled": "true", "A->B.topics": "orders.*",
                "emit.checkpoints.enabled": "false",
                "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
                "replication.policy.separator": "_"}
    assert keys(identity) == (
        topic("A", "orders", "READ", "DESCRIBE_CONFIGS", prefixed=True)
        | topic("B", "orders", "CREATE", "WRITE", "ALTER", "DESCRIBE_CONFIGS", prefixed=True)
        # heartbeats follow the default rules, with the flow's separator
        | topic("A", "heartbeats", "READ", "DESCRIBE_CONFIGS")
        | topic("B", "A_heartbeats", "CREATE", "WRITE", "ALTER", "DESCRIBE_CONFIGS")
        | topic("A", "heartbeats", "CREATE", "WRITE") | topic("B", "heartbeats", "CREATE", "WRITE")
        | group("A", "mirror-engine-A->B", "DESCRIBE")
        # the internal topics: offset syncs and checkpoints take the separator, MM2's Connect topics do not
        | topic("A", "mm2-offset-syncs_B_internal", "CREATE", "WRITE")
        | topic("B", "mm2-offsets.A.internal", "CREATE", "WRITE", "READ")
        | group("B", "mm2-offsets.A.internal-reader", "DESCRIBE")
        | topic("B", "mm2-offset-map.A.internal", "CREATE", "WRITE", "READ")
        | group("B", "mirror-engine-", "DESCRIBE", prefixed=True))


def test_topics_and_groups_regexes_become_the_narrowest_patterns_that_cover_them():
    assert regex_patterns("orders") == [("orders", "LITERAL")]
    assert regex_patterns(r"eu\.orders, orders.*") == [("eu.orders", "LITERAL"), ("orders", "PREFIXED")]
    # an unescaped dot matches any character: only the start before it is common to every match
    assert regex_patterns("eu.orders") == [("eu", "PREFIXED")]
    assert regex_patterns("orders|payments-.+") == [("orders", "LITERAL"), ("payments-", "PREFIXED")]
    assert regex_patterns("ordersx?") == [("orders", "PREFIXED")]
    assert regex_patterns(".*") == [("*", "LITERAL")]
    assert regex_patterns("(orders|payments)") == [("*", "LITERAL")]
    assert regex_patterns("") == []


def test_heartbeats_topics_follow_a_chain():
    chain = {"clusters": "A, B, C", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1",
             "C.bootstrap.servers": "c:1", "A->B.enabled": "true", "B->C.enabled": "true", "topics": "orders"}
    config = from_properties(chain)
    assert heartbeats_topics(config) == {"A": {"heartbeats"}, "B": {"heartbeats", "A.heartbeats"},
                                         "C": {"heartbeats", "B.heartbeats", "B.A.heartbeats"}}
    result = {a.key for a in required_acls(config)}
    assert topic("B", "A.heartbeats", "READ") <= result  # B->C reads the copy A->B made
    assert topic("C", "B.A.heartbeats", "CREATE", "WRITE") <= result


def test_two_flows_into_one_target_merge_their_reasons():
    fan_in = {"clusters": "A, B, C", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1",
              "C.bootstrap.servers": "c:1", "A->B.enabled": "true", "C->B.enabled": "true",
              "topics": "orders", "emit.checkpoints.enabled": "false", "mirror.engine.audit.interval.seconds": "0"}
    acls = required_acls(from_properties(fan_in))
    alter = [a for a in acls if a.cluster == "B" and a.resource_type == "CLUSTER"]
    assert [a.operation for a in alter] == ["ALTER"]
    assert "A->B ACL sync" in alter[0].why and "C->B ACL sync" in alter[0].why
    assert len({a.key for a in acls}) == len(acls)


def test_audit_only_reads():
    config = from_properties({**BASE, "A->B.topics": "orders"})
    assert {a.key for a in audit_acls(config)} == (
        topic("A", "orders", "READ") | topic("B", "A.orders", "READ") | topic("B", "mm2-offset-map.A.internal", "READ")
        | group("A", "mirror-engine-audit-", "DESCRIBE", prefixed=True)
        | group("B", "mirror-engine-", "DESCRIBE", prefixed=True))
    assert audit_acls(config, "B->A") == []


def test_covers_follows_kafkas_implications_and_patterns():
    read_prefixed = RequiredAcl("A", "TOPIC", "orders", "PREFIXED", "READ")
    assert read_prefixed.covers(RequiredAcl("A", "TOPIC", "orders-eu", "LITERAL", "DESCRIBE"))
    assert not read_prefixed.covers(RequiredAcl("A", "TOPIC", "orders-eu", "LITERAL", "WRITE"))
    assert not read_prefixed.covers(RequiredAcl("B", "TOPIC", "orders", "LITERAL", "READ"))
    assert not read_prefixed.covers(RequiredAcl("A", "TOPIC", "*", "LITERAL", "READ"))
    assert RequiredAcl("A", "TOPIC", "*", "LITERAL", "ALTER_CONFIGS").covers(
        RequiredAcl("A", "TOPIC", "x", "PREFIXED", "DESCRIBE_CONFIGS"))


def test_printed_as_a_table_and_as_kafka_acls_commands():
    config = from_properties({**BASE, **QUIET, "A->B.topics": "orders", "emit.checkpoints.enabled": "false",
                              "B.sasl.username": "mirror", "B.sasl.password": "secret"})
    acls = required_acls(config)
    lines = table(acls).splitlines()
    assert lines[0].split() == ["cluster", "resource", "name", "pattern", "operation", "why"]
    assert len(lines) == len(acls) + 1
    commands = kafka_acls_commands(config, acls).splitlines()
    assert "# cluster A (principal User:mirror-engine" in commands[0]
    assert ("kafka-acls.sh --bootstrap-server a1:9092 --add --allow-principal User:mirror-engine "
            "--operation Describe --group 'mirror-engine-A->B'") in commands
    # the principal of a cluster the engine logs into with SASL is its user name
    assert ("kafka-acls.sh --bootstrap-server b1:9092 --add --allow-principal User:mirror "
            "--operation Describe --group mirror-engine- --resource-pattern-type prefixed") in commands
    assert ("kafka-acls.sh --bootstrap-server b1:9092 --add --allow-principal User:mirror --operation Alter "
            "--operation Create --operation DescribeConfigs --operation Write --topic A.orders") in commands
    given = kafka_acls_commands(config, acls, principal="User:ops")
    assert "User:mirror " not in given and "--allow-principal User:ops" in given
