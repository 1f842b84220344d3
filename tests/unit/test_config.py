"""mm2.properties parsing: Java .properties syntax, MM2 keys, precedence and clear errors."""

import pytest

from engine.config.loading import from_properties, load
from engine.config.properties import parse_properties
from engine.config.values import ConfigError


def test_java_properties_syntax():
    text = (
        "# comment\n"
        "! another comment\n"
        "a = 1\n"
        "b:2\n"
        "c 3\n"
        "  d   =   spaced value  \n"
        "long = one, \\\n"
        "       two, \\\n"
        "       three\n"
        "escaped\\ key = tab\\there\n"
        "unicode = caf\\u00e9\n"
        "colon\\:key = v\n"
        "empty =\n"
        "a = last wins\n"
    )
    props = parse_properties(text)
    assert props == {
        "a": "last wins",
        "b": "2",
        "c": "3",
        "d": "spaced value  ",
        "long": "one, two, three",
        "escaped key": "tab\there",
        "unicode": "café",
        "colon:key": "v",
        "empty": "",
    }


def test_even_backslashes_do_not_continue():
    assert parse_properties("path = c:\\\\\nnext = 1\n") == {"path": "c:\\", "next": "1"}


BASE = {
    "clusters": "A, B",
    "A.bootstrap.servers": "127.0.0.1:9092",
    "B.bootstrap.servers": "127.0.0.1:9093",
    "A->B.enabled": "true",
}


def test_flow_defaults_follow_mm2():
    engine_config = from_properties(dict(BASE))
    (flow,) = engine_config.flows
    assert (flow.source, flow.target, flow.name) == ("A", "B", "A->B")
    assert flow.topics == ".*"
    assert flow.topics_exclude == r"mm2.*\.internal, .*\.replica, __.*"
    assert flow.replication_factor == 2
    assert flow.offset_storage_replication_factor == 3
    assert flow.offset_storage_partitions == 25
    assert flow.refresh_topics_interval_s == 600
    assert engine_config.cluster("A").bootstrap_servers == "127.0.0.1:9092"


def test_flow_key_beats_top_level_and_target_cluster_keys_set_worker_settings():
    props = dict(BASE, **{
        "topics": "x.*", "A->B.topics": "orders.*", "replication.factor": "3",
        "offset.flush.interval.ms": "60000", "B.offset.flush.interval.ms": "2000",
        "B.offset.storage.replication.factor": "1", "tasks.max": "4",
    })
    (flow,) = from_properties(props).flows
    assert flow.topics == "orders.*"
    assert flow.replication_factor == 3
    assert flow.offset_flush_interval_ms == 2000
    assert flow.offset_storage_replication_factor == 1
    assert flow.tasks_max == 4
    assert flow.topic_filter().matches("orders.eu")
    assert not flow.topic_filter().matches("x.1")


def test_disabled_flows_are_not_run():
    props = dict(BASE, **{"A->B.enabled": "false", "B->A.enabled": "true"})
    flows = from_properties(props).flows
    assert [f.name for f in flows] == ["B->A"]


def test_security_keys_reach_every_cluster_and_cluster_keys_win():
    props = dict(BASE, **{"security.protocol": "SSL", "B.security.protocol": "PLAINTEXT"})
    engine_config = from_properties(props)
    assert engine_config.cluster("A").client == {"security.protocol": "SSL"}
    assert engine_config.cluster("B").client == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"clusters": None}, "clusters", "missing"),
        ({"clusters": "A, A"}, "clusters", "twice"),
        ({"A.bootstrap.servers": None}, "A.bootstrap.servers", "missing for cluster A"),
        ({"A->C.enabled": "true"}, "A->C.enabled", "'C' is not listed"),
        ({"A->B.enabled": "yes"}, "A->B.enabled", "true or false"),
        ({"replication.factor": "0"}, "replication.factor", "-1"),
        ({"A->B.replication.factor": "two"}, "A->B.replication.factor", "integer"),
        ({"tasks.max": "0"}, "tasks.max", "at least 1"),
        ({"A->B.topics": "orders[", }, "A->B.topics",
         "invalid Java regular expression: the character class opened at character 6 is not closed ('orders[')"),
        ({"refresh.topics.interval.seconds": "-5"}, "refresh.topics.interval.seconds", "at least 1"),
        ({"replication.policy.class": "com.example.Custom"}, "replication.policy.class", "not supported"),
    ],
)
def test_invalid_config_names_the_key(changes, key, message):
    props = dict(BASE)
    for k, v in changes.items():
        if v is None:
            props.pop(k)
        else:
            props[k] = v
    with pytest.raises(ConfigError) as caught:
        from_properties(props)
    assert caught.value.key == key
    assert message in str(caught.value)


def test_unreadable_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.properties"
    with pytest.raises(ConfigError, match="cannot read the config file") as caught:
        load(missing)
    assert caught.value.key == str(missing)


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "mm2.properties"
    path.write_text("clusters = A, B\nA.bootstrap.servers = h:1\nB.bootstrap.servers = h:2\nA->B.enabled = true\n")
    assert [f.name for f in load(path).flows] == ["A->B"]


def test_heartbeats_for_every_ordered_pair_unless_disabled():
    props = {
        "clusters": "A, B, C",
        "A.bootstrap.servers": "h:1", "B.bootstrap.servers": "h:2", "C.bootstrap.servers": "h:3",
        "A->B.enabled": "true",
        "emit.heartbeats.interval.seconds": "5",
        "C->A.emit.heartbeats.enabled": "false",
        "B->C.heartbeats.topic.replication.factor": "1",
    }
    beats = {(h.source, h.target): h for h in from_properties(props).heartbeats}
    # a herder per pair, whether or not the flow is enabled (docs/design.md, 'Heartbeat'), minus C->A
    assert sorted(beats) == [("A", "B"), ("A", "C"), ("B", "A"), ("B", "C"), ("C", "B")]
    assert all(h.interval_s == 5 for h in beats.values())
    assert beats[("B", "C")].replication_factor == 1
    assert beats[("A", "B")].replication_factor == 3
    assert from_properties(dict(props, **{"emit.heartbeats.enabled": "false"})).heartbeats == []


def test_metrics_listen_is_checked():
    props = dict(BASE, **{"mirror.engine.metrics.listen": "nowhere"})
    with pytest.raises(ConfigError, match="host:port") as caught:
        from_properties(props)
    assert caught.value.key == "mirror.engine.metrics.listen"
    assert from_properties(dict(BASE)).metrics_listen == "127.0.0.1:9464"
    assert from_properties(dict(BASE, **{"mirror.engine.metrics.listen": ""})).metrics_listen == ""


def test_replication_policy_classes():
    identity = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
    (flow,) = from_properties(dict(BASE, **{"replication.policy.class": identity})).flows
    assert flow.policy_class == identity


def test_record_filter_keys_and_connect_transforms():
    props = dict(BASE, **{
        "A->B.record.filter.key.prefix": "eu-, uk-",
        "record.filter.header.equals": "region=eu",
        "A->B.record.filter.partitions": "2, 0",
        "transforms": "f", "transforms.f.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.f.predicate": "p", "transforms.f.negate": "true",
        "predicates.p.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.p.name": "trace",
    })
    (flow,) = from_properties(props).flows
    f = flow.record_filter
    assert f.key_prefixes == [b"eu-", b"uk-"]
    assert f.header_equals == [("region", b"eu")]
    assert f.partitions == [0, 2]
    assert f.header_present == ["trace"]  # negate: drop the records without it
    assert f.per_record()


@pytest.mark.parametrize(("extra", "key", "message"), [
    ({"A->B.record.filter.header.typo": "x"}, "A->B.record.filter.header.typo", "unknown record filter"),
    ({"record.filter.header.equals": "novalue"}, "record.filter.header.equals", "HEADER=value"),
    ({"record.filter.python": "nocolon"}, "record.filter.python", "module:function"),
    ({"transforms": "r", "transforms.r.type": "org.apache.kafka.connect.transforms.RegexRouter"},
     "transforms.r.type", "not supported"),
    ({"transforms": "f", "transforms.f.type": "org.apache.kafka.connect.transforms.Filter",
      "transforms.f.predicate": "p",
      "predicates.p.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"},
     "predicates.p.type", "not supported"),
    ({"use.defaults.from": "both"}, "use.defaults.from", "source or target"),
    ({"A->B.config.properties.exclude": "x["}, "A->B.config.properties.exclude", "invalid Java regular expression"),
])
def test_bad_filter_and_sync_keys_are_named(extra, key, message):
    with pytest.raises(ConfigError) as caught:
        from_properties(dict(BASE, **extra))
    assert caught.value.key == key
    assert message in str(caught.value)


def test_target_overrides_flow_beats_top_level():
    props = dict(BASE, **{"target.topic.config.retention.ms": "1", "A->B.target.topic.config.retention.ms": "2",
                          "target.topic.config.cleanup.policy": "compact"})
    (flow,) = from_properties(props).flows
    assert flow.target_topic_overrides == {"retention.ms": "2", "cleanup.policy": "compact"}


def test_loop_compression_provenance_and_bandwidth_keys():
    base = {"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
            "A->B.enabled": "true", "B->A.enabled": "true"}
    defaults = from_properties(base)
    assert defaults.loop == "c"
    assert [(f.producer_compression, f.provenance_header_enabled, f.bandwidth_limit_bytes_per_s)
            for f in defaults.flows] == [("none", False, 0), ("none", False, 0)]

    tuned = from_properties({**base, "mirror.engine.loop": "python", "producer.compression.type": "zstd",
                             "A.producer.compression.type": "gzip", "A->B.producer.compression.type": "lz4",
                             "A->B.mirror.engine.provenance.header.enabled": "true",
                             "mirror.engine.bandwidth.limit.bytes.per.second": "1048576"})
    flows = {f.name: f for f in tuned.flows}
    assert tuned.loop == "python"
    # flow key first, then the target cluster's producer key, then the top-level one
    assert flows["A->B"].producer_compression == "lz4"
    assert flows["B->A"].producer_compression == "gzip"
    assert (flows["A->B"].provenance_header_enabled, flows["B->A"].provenance_header_enabled) == (True, False)
    assert flows["B->A"].bandwidth_limit_bytes_per_s == 1048576

    with pytest.raises(ConfigError, match=r"mirror.engine.loop: 'jit': expected one of c, python"):
        from_properties({**base, "mirror.engine.loop": "jit"})
    with pytest.raises(ConfigError,
                       match=r"B.producer.compression.type.*expected one of none, gzip, snappy, lz4, zstd"):
        from_properties({**base, "B.producer.compression.type": "brotli"})
    with pytest.raises(ConfigError, match=r"mirror.engine.bandwidth.limit.bytes.per.second"):
        from_properties({**base, "mirror.engine.bandwidth.limit.bytes.per.second": "-1"})


def test_exactly_once_source_support_is_read_from_the_target_cluster():
    base = {"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
            "A->B.enabled": "true", "B->A.enabled": "true"}
    flows = {f.name: f for f in from_properties({**base, "B.exactly.once.source.support": "enabled",
                                                  "exactly.once.source.support": "disabled"}).flows}
    assert (flows["A->B"].exactly_once, flows["B->A"].exactly_once) == (True, False)
    assert all(f.exactly_once for f in from_properties({**base, "exactly.once.source.support": "enabled"}).flows)
    assert not any(f.exactly_once for f in from_properties({**base, "exactly.once.source.support": "preparing"}).flows)
    with pytest.raises(ConfigError, match=r"A.exactly.once.source.support: expected enabled, disabled or preparing"):
        from_properties({**base, "A.exactly.once.source.support": "yes"})
    assert from_properties({**base, "mirror.engine.worker.timeout.ms": "5000"}).flows[0].worker_timeout_ms == 5000


def test_keys_the_engine_does_not_use_are_named_in_warnings_never_an_error(caplog):
    import logging

    base = {"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
            "A->B.enabled": "true", "B->A.enabled": "false", "A->B.topics": "orders",
            "A->B.target.topic.config.retention.ms": "1000", "security.protocol": "PLAINTEXT",
            "B.sasl.mechanism": "PLAIN"}
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        config = from_properties({**base, "A->B.replication.speed": "fast", "frobnicate": "1", "A.acks": "1",
                                  "config.storage.replication.factor": "1"})
    assert [r.getMessage() for r in caplog.records] == [
        "1 keys of the configuration are not used by mirror-engine (ignored): A.acks",
        "A->B.replication.speed is not a key MM2 or mirror-engine knows (ignored, as MM2 ignores it)",
        "frobnicate is not a key MM2 or mirror-engine knows (ignored, as MM2 ignores it)"]
    assert config.remarks[-3:] == [r.getMessage() for r in caplog.records]
    assert config.unknown_keys == [("A->B.replication.speed", None), ("frobnicate", None)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        quiet = from_properties({**base, "frobnicate": "1"}, quiet=True)  # a reload says nothing again
    assert caplog.records == [] and quiet.remarks
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        from_properties(base)
    assert caplog.records == []


def test_an_empty_separator_is_accepted_as_mm2_accepts_it_with_a_remark(tmp_path, capsys):
    from engine.cli import main

    props = {**BASE, "replication.policy.separator": "", "B->A.enabled": "true",
             "B->A.replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
             "B->A.replication.policy.internal.topic.separator.enabled": "false"}
    config = from_properties(props, quiet=True)
    assert [(f.name, f.separator) for f in config.flows] == [("A->B", ""), ("B->A", "")]
    assert config.remarks == [
        "replication.policy.separator is empty, as MM2 allows: A->B names remote topics A<topic> (e.g. Aorders), "
        "its offset syncs mm2-offset-syncsBinternal and its checkpoints Acheckpointsinternal; as in MM2, a name is "
        "then read back one character at a time, so no topic counts as a heartbeats topic, and a topic with the "
        "letter B before its last character counts as coming from B and is not copied there (a cycle)",
        "replication.policy.separator is empty, as MM2 allows: B->A keeps topic names but names heartbeats "
        "Bheartbeats, its offset syncs mm2-offset-syncs.A.internal and its checkpoints B.checkpoints.internal; as "
        "in MM2, a name is then read back one character at a time, so no topic counts as a heartbeats topic",
    ]
    path = tmp_path / "mm2.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
    assert main(["check-config", str(path)]) == 0
    assert "replication.policy.separator is empty, as MM2 allows: A->B names" in capsys.readouterr().out


@pytest.mark.parametrize("key, meant", [
    ("A->B.enabeld", "A->B.enabled"),
    ("A->B.topcis", "A->B.topics"),
    ("A->B.emit.heartbeats", "A->B.emit.heartbeats.enabled"),
    ("A->B.sync.group.offset.enabled", "A->B.sync.group.offsets.enabled"),
    ("A->B.producer.lingr.ms", "A->B.producer.linger.ms"),
    ("B.bootstrap.server", "B.bootstrap.servers"),
    ("mirror.engine.metric.listen", "mirror.engine.metrics.listen"),
    ("replication.factr", "replication.factor"),
    ("A.replication.factor", None),  # a flow setting given per cluster: MM2 ignores it
])
def test_an_unknown_key_fails_check_config_with_the_key_it_likely_meant(tmp_path, capsys, key, meant):
    from engine.cli import main

    path = tmp_path / "mm2.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in {**BASE, key: "true"}.items()))
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    hint = f"; did you mean `{meant}`?" if meant else ""
    assert err == (f"mirror-engine: error: {key} is not a key MM2 or mirror-engine knows{hint}\n"
                   "mirror-engine: 1 unknown keys; MM2 and `run` ignore them (--lenient accepts them here too)\n")
    assert main(["check-config", "--lenient", str(path)]) == 0
    assert f"  {key} is not a key MM2 or mirror-engine knows{hint} (ignored, as MM2 ignores it)" in \
        capsys.readouterr().out


def test_known_keys_of_every_scope_pass():
    props = {**BASE, "A->B.sync.group.offsets.enabled": "false", "A.client.dns.lookup": "use_all_dns_ips",
             "A->B.transforms": "", "A->B.errors.tolerance": "none", "B.status.storage.topic": "s",
             "A->B.source.cluster.client.dns.lookup": "use_all_dns_ips", "A->B.topic.creation.default.partitions": "3",
             "config.providers.vault.param.address": "x", "replication.policy.my.own": "y", "A->B.tasks.max": "2",
             "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
             "dedicated.mode.enable.internal.rest": "true"}
    assert from_properties(props).unknown_keys == []
    # the default config-property filter's own key (its ConfigDef, not the connector's)
    from engine.config.unknown_keys import unknown_keys

    assert unknown_keys(["use.defaults.from", "A->B.use.defaults.from"], ["A", "B"]) == []
