"""Where a flow's source progress lives: MM2's `offset.storage.topic` with MM2's precedence.

MM2's dedicated driver builds the worker config of herder source->target from the target cluster's
`<target>.*` keys, then copies the top-level `offset.storage*` keys over them, then fills in the
default `mm2-offsets.<source>.internal` (MirrorMakerConfig.workerConfig). A switch from MM2 resumes
only if the engine reads the same topic, so the engine resolves the name the same way.
"""

from __future__ import annotations

import logging

import pytest

from engine.config.loading import from_properties
from engine.config.precedence import worker_key
from engine.config.report import DEVIATIONS, report
from engine.config.values import ConfigError
from engine.security.acls import required_acls

BASE = {"clusters": "A, B, C", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
        "C.bootstrap.servers": "c:9092", "A->B.enabled": "true", "C->B.enabled": "true", "B->A.enabled": "true"}


def topics(extra: dict[str, str]) -> dict[str, str]:
    return {flow.name: flow.offsets_topic for flow in from_properties({**BASE, **extra}, quiet=True).flows}


def test_without_the_key_each_flow_uses_mm2_s_default_named_after_its_source():
    assert topics({}) == {"A->B": "mm2-offsets.A.internal", "C->B": "mm2-offsets.C.internal",
                          "B->A": "mm2-offsets.B.internal"}


def test_the_target_cluster_s_key_sets_the_topic_of_the_flows_into_that_cluster_only():
    assert topics({"B.offset.storage.topic": "progress-on-b"}) == {
        "A->B": "progress-on-b", "C->B": "progress-on-b", "B->A": "mm2-offsets.B.internal"}
    # the source cluster's key is the worker setting of the herders into the source, not of A->B
    assert topics({"A.offset.storage.topic": "progress-on-a"}) == {
        "A->B": "mm2-offsets.A.internal", "C->B": "mm2-offsets.C.internal", "B->A": "progress-on-a"}


def test_a_top_level_key_sets_every_flow_and_beats_the_target_cluster_s_key_as_in_mm2():
    assert topics({"offset.storage.topic": " mirror-progress "}) == {
        "A->B": "mirror-progress", "C->B": "mirror-progress", "B->A": "mirror-progress"}
    config = from_properties({**BASE, "offset.storage.topic": "mirror-progress", "B.offset.storage.topic": "on-b"},
                             quiet=True)
    assert {f.name: f.offsets_topic for f in config.flows} == {
        "A->B": "mirror-progress", "C->B": "mirror-progress", "B->A": "mirror-progress"}
    # one remark for the two flows into B, and the shadowed key is not reported unused on top of it
    assert config.remarks == [
        "B.offset.storage.topic = on-b is overridden by the top-level offset.storage.topic = mirror-progress, as in "
        "MM2: the progress of flows into B is in mirror-progress"]


def test_a_flow_key_is_not_read_as_in_mm2_and_a_remark_says_where_the_progress_is(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        config = from_properties({**BASE, "A->B.offset.storage.topic": "per-flow"})
    assert {f.name: f.offsets_topic for f in config.flows}["A->B"] == "mm2-offsets.A.internal"
    assert [r.getMessage() for r in caplog.records] == [
        "A->B.offset.storage.topic is not read, as in MM2 (a Connect worker setting comes from "
        "B.offset.storage.topic or the top level, never from a flow): the progress of A->B is in "
        "mm2-offsets.A.internal"]


def test_the_other_offset_storage_keys_follow_the_same_precedence_and_the_flush_interval_its_own():
    (flow, _, _) = from_properties({**BASE, "offset.storage.replication.factor": "2",
                                    "B.offset.storage.replication.factor": "1", "B.offset.storage.partitions": "5",
                                    "offset.flush.interval.ms": "60000", "B.offset.flush.interval.ms": "2000"},
                                   quiet=True).flows
    assert (flow.name, flow.offset_storage_replication_factor, flow.offset_storage_partitions,
            flow.offset_flush_interval_ms) == ("A->B", 2, 5, 2000)
    raw = {"offset.storage.topic": "top", "B.offset.storage.topic": "b", "B.offset.flush.interval.ms": "1",
           "offset.flush.interval.ms": "2"}
    assert worker_key(raw, "B", "offset.storage.topic") == "offset.storage.topic"
    assert worker_key(raw, "B", "offset.flush.interval.ms") == "B.offset.flush.interval.ms"
    assert worker_key({"B.status.storage.topic": "s"}, "B", "status.storage.topic") == "B.status.storage.topic"
    assert worker_key(raw, "B", "config.storage.topic") is None


@pytest.mark.parametrize(("key", "value"), [
    ("offset.storage.topic", ""), ("B.offset.storage.topic", "my progress"), ("offset.storage.topic", "a/b"),
    ("B.offset.storage.topic", ".."), ("offset.storage.topic", "x" * 250),
])
def test_a_value_that_is_no_topic_name_is_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError) as caught:
        from_properties({**BASE, key: value}, quiet=True)
    assert caught.value.key == key
    assert str(caught.value) == (f"{key}: {value!r} is not a topic name: 1 to 249 characters of a-z, A-Z, 0-9, "
                                 f"'.', '_' and '-'")


def test_check_config_shows_each_flow_s_progress_topic_and_notes_the_connect_status_and_config_topics():
    config = from_properties({**BASE, "B.offset.storage.topic": "progress-on-b", "B.status.storage.topic": "st",
                              "config.storage.topic": "cfg"}, quiet=True)
    text = report(config)
    assert "  A->B:\n" in text and "    progress = progress-on-b on B (set by B.offset.storage.topic; where MM2 " \
                                  "keeps it too)\n" in text
    assert "    progress = mm2-offsets.B.internal on A (the default; where MM2 keeps it too)\n" in text
    assert "| A->B, C->B | Connect status and config topics | " \
           "mm2-status.<source>.internal, mm2-configs.<source>.internal " \
           "on the target (or status.storage.topic, config.storage.topic) | none kept; B.status.storage.topic = st, " \
           "config.storage.topic = cfg noted, not used |" in text
    # the herder into A reads A.status.storage.topic, which the file does not set
    assert "| B->A | Connect status and config topics | mm2-status.<source>.internal, mm2-configs.<source>.internal " \
           "on the target (or status.storage.topic, config.storage.topic) | none kept; config.storage.topic = cfg " \
           "noted, not used |" in text
    # the other settings are the same for both flows: one row each
    assert (text.count("| A->B, C->B |"), text.count("| every flow |")) == (1, len(DEVIATIONS) - 1)
    assert "  2 keys of MM2's Connect workers and driver are accepted and not used: B.status.storage.topic, " \
           "config.storage.topic" in text


def test_acls_name_the_configured_progress_topic_and_its_reader_group():
    # no flow reads every topic or group of a cluster, which would cover the progress topic's and group's
    acls = {acl.key for acl in required_acls(from_properties({**BASE, "topics": "orders", "groups": "app-.*",
                                                              "B.offset.storage.topic": "progress-on-b"}, quiet=True))}
    for op in ("CREATE", "WRITE", "READ"):
        assert ("B", "TOPIC", "progress-on-b", "LITERAL", op) in acls
        assert ("A", "TOPIC", "mm2-offsets.B.internal", "LITERAL", op) in acls
    assert ("B", "GROUP", "progress-on-b-reader", "LITERAL", "DESCRIBE") in acls
    assert not [key for key in acls if key[0] == "B" and key[2].startswith("mm2-offsets.")]
