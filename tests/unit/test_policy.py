"""DefaultReplicationPolicy edge cases, as the Java class answers them (docs/design.md, 'Replication policies')."""

import pytest

from engine.offsets.policy import DefaultReplicationPolicy, IdentityReplicationPolicy

DOT = DefaultReplicationPolicy(".")
UNDERSCORES = DefaultReplicationPolicy("__")
# `replication.policy.separator =` (empty), which MM2 accepts: Java splits on the empty pattern
EMPTY = DefaultReplicationPolicy("")
EMPTY_IDENTITY = IdentityReplicationPolicy("east", "")


@pytest.mark.parametrize(
    ("policy", "topic", "source", "upstream", "original"),
    [
        (DOT, "orders", None, None, "orders"),
        (DOT, "B.A.orders", "B", "A.orders", "orders"),
        (DOT, "foo.", None, None, "foo."),
        (DOT, "foo..", None, None, "foo.."),
        (DOT, "A..b", "A", ".b", "b"),
        (DOT, ".foo", "", "foo", "foo"),
        (DOT, ".", None, None, "."),
        (DOT, "", None, None, ""),
        (DOT, "A.checkpoints.internal", "A", "checkpoints.internal", "internal"),
        (UNDERSCORES, "A.orders", None, None, "A.orders"),
        (UNDERSCORES, "A__B__orders", "A", "B__orders", "orders"),
        (UNDERSCORES, "__consumer_offsets", "", "consumer_offsets", "consumer_offsets"),
        # the empty separator, each row as Kafka 4.3.1's DefaultReplicationPolicy answers it
        (EMPTY, "orders", "o", "rders", "s"),
        (EMPTY, "Aorders", "A", "orders", "s"),
        (EMPTY, "BAheartbeats", "B", "Aheartbeats", "s"),
        (EMPTY, "x", None, None, "x"),
        (EMPTY, "", None, None, ""),
        (EMPTY, "__consumer_offsets", "_", "_consumer_offsets", "s"),
        # ... and IdentityReplicationPolicy (source alias east)
        (EMPTY_IDENTITY, "orders", "east", "orders", "orders"),
        (EMPTY_IDENTITY, "", "east", "", ""),
        (EMPTY_IDENTITY, "heartbeats", "h", "eartbeats", "eartbeats"),
        (EMPTY_IDENTITY, "Aheartbeats", "A", "heartbeats", "eartbeats"),
    ],
)
def test_java_edge_cases(policy, topic, source, upstream, original):
    assert policy.topic_source(topic) == source
    assert policy.upstream_topic(topic) == upstream
    assert policy.original_topic(topic) == original


def test_format_remote_topic():
    assert DOT.format_remote_topic("A", "orders") == "A.orders"
    assert UNDERSCORES.format_remote_topic("A", "orders") == "A__orders"


def test_internal_topics():
    for name in ("mm2-offsets.A.internal", "mm2-offset-syncs.B.internal", "A.checkpoints.internal",
                 "__consumer_offsets", ".hidden"):
        assert DOT.is_internal_topic(name), name
    # 4.0+: an ordinary name ending in .internal or -internal is replicated
    for name in ("orders", "orders.internal", "orders-internal", "mm2-not-internal"):
        assert not DOT.is_internal_topic(name), name


def test_cycles():
    assert DOT.is_cycle("B.orders", "B")
    assert DOT.is_cycle("C.B.orders", "B")
    assert not DOT.is_cycle("C.orders", "B")
    assert not DOT.is_cycle("orders", "B")


def test_heartbeats_topics():
    assert DOT.is_heartbeats_topic("heartbeats")
    assert DOT.is_heartbeats_topic("B.A.heartbeats")
    assert DOT.is_heartbeats_topic("foo.heartbeats")
    assert not DOT.is_heartbeats_topic("myheartbeats")


def test_identity_policy_keeps_names_except_heartbeats():
    from engine.offsets.policy import IdentityReplicationPolicy

    identity = IdentityReplicationPolicy("A")
    assert identity.format_remote_topic("A", "orders") == "orders"
    assert identity.format_remote_topic("A", "heartbeats") == "A.heartbeats"
    assert identity.format_remote_topic("A", "myheartbeats") == "A.myheartbeats"
    assert identity.topic_source("orders") == "A"
    assert identity.topic_source("B.heartbeats") == "B"
    assert identity.upstream_topic("orders") == "orders"
    assert identity.original_topic("x.orders") == "x.orders"
    assert IdentityReplicationPolicy(None).topic_source("orders") is None
    # no protection: a topic never looks like it came from the target
    assert not identity.is_cycle("orders", "B")
    assert identity.is_cycle("B.heartbeats", "B")


def test_mirror_client_topology_from_heartbeat_names():
    from engine.offsets.mirror_client import replication_hops, upstream_clusters

    topics = ["heartbeats", "B.heartbeats", "B.A.heartbeats", "orders", "B.A.orders"]
    assert upstream_clusters(topics, DOT) == {"A", "B"}
    assert replication_hops(topics, "B", DOT) == 1
    assert replication_hops(topics, "A", DOT) == 2
    assert replication_hops(topics, "Z", DOT) == -1


def test_an_empty_separator_as_mm2_has_it():
    assert EMPTY.format_remote_topic("east", "orders") == "eastorders"
    assert EMPTY_IDENTITY.format_remote_topic("east", "orders") == "orders"
    assert EMPTY_IDENTITY.format_remote_topic("A", "heartbeats") == "Aheartbeats"
    # no name reads back to `heartbeats`
    for policy in (EMPTY, EMPTY_IDENTITY):
        assert not any(policy.is_heartbeats_topic(t) for t in ("heartbeats", "Aheartbeats", "BAheartbeats"))
    # internal topics of the separator (internal separator on)
    assert EMPTY.is_checkpoints_topic("Acheckpointsinternal") \
        and EMPTY.is_mm2_internal_topic("mm2-offset-syncsBinternal")
    assert EMPTY.is_internal_topic("__consumer_offsets") and not EMPTY.is_internal_topic("internal")
    # MirrorSourceConnector.isCycle for A->B, as the Java class answers: a B before the last character
    assert [EMPTY.is_cycle(t, "B") for t in ("Bob", "oBb", "obB", "orders")] == [True, True, False, False]
    assert not EMPTY.is_cycle("Bob", "east") and not EMPTY_IDENTITY.is_cycle("Bob", "B")
