"""Every worked mm2.properties under examples/ loads, with the flows and the settings its use case is about,
and docs/use-cases.md links each of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config.loading import load
from engine.offsets.policy import IDENTITY_POLICY_CLASS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
USE_CASES = ROOT / "docs" / "use-cases.md"
EXPECTED_FLOWS = {
    "dr-pair": ["primary->dr"],
    "active-active": ["eu->us", "us->eu"],
    "migration-identity": ["onprem->cloud"],
    "fan-in": ["edge1->central", "edge2->central", "edge3->central"],
    "geo-tls": ["eu->apac"],
    "scale-out": ["A->B"],
    "isolation": ["live->archive"],
    "fan-out": ["hq->apac", "hq->emea"],
}


@pytest.fixture
def loaded(monkeypatch):
    monkeypatch.setenv("CLOUD_KAFKA_PASSWORD", "example-only")
    return lambda name: load(EXAMPLES / f"{name}.properties", quiet=True)


def test_every_example_is_listed_here():
    assert sorted(p.stem for p in EXAMPLES.glob("*.properties")) == sorted(EXPECTED_FLOWS)


def test_the_use_cases_page_links_every_example():
    linked = re.findall(r"\]\(\.\./examples/([\w-]+)\.properties\)", USE_CASES.read_text())
    assert sorted(set(linked)) == sorted(EXPECTED_FLOWS)


@pytest.mark.parametrize("name", sorted(EXPECTED_FLOWS))
def test_each_example_loads_with_its_flows(name, loaded):
    config = loaded(name)
    assert sorted(f.name for f in config.flows) == sorted(EXPECTED_FLOWS[name])
    assert not [r for r in config.remarks if "not used by mirror-engine" in r], config.remarks
    assert config.unknown_keys == []


def test_the_dr_pair_translates_group_offsets(loaded):
    (flow,) = loaded("dr-pair").flows
    assert (flow.sync_group_offsets_enabled, flow.emit_checkpoints_interval_s, flow.groups) == (True, 10.0, ".*")


def test_active_active_prefixes_remote_topics_both_ways(loaded):
    flows = loaded("active-active").flows
    assert {f.name: f.policy_class for f in flows} == {
        "us->eu": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        "eu->us": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
    }


def test_the_migration_keeps_topic_names_exactly_once_over_scram(loaded):
    config = loaded("migration-identity")
    (flow,) = config.flows
    assert (flow.policy_class, flow.exactly_once) == (IDENTITY_POLICY_CLASS, True)
    cloud = config.cluster("cloud").client
    assert (cloud["security.protocol"], cloud["sasl.mechanisms"], cloud["sasl.username"], cloud["sasl.password"]) == (
        "SASL_SSL", "SCRAM-SHA-512", "migrator", "example-only")


def test_fan_in_puts_every_edge_under_its_alias(loaded):
    flows = loaded("fan-in").flows
    assert {(f.source, f.target, f.topics, f.tasks_max) for f in flows} == {
        (edge, "central", "metrics, logs", 2) for edge in ("edge1", "edge2", "edge3")}


def test_geo_replication_is_tls_compressed_and_held_to_a_bandwidth(loaded):
    config = loaded("geo-tls")
    (flow,) = config.flows
    assert (flow.producer_compression, flow.bandwidth_limit_bytes_per_s) == ("zstd", 40_000_000)
    for alias in ("eu", "apac"):
        client = config.cluster(alias).client
        assert (client["security.protocol"], client["ssl.ca.location"]) == (
            "SSL", f"/etc/mirror-engine/tls/{alias}-ca.pem")


def test_the_scale_out_group_shares_the_work_and_is_scraped(loaded):
    config = loaded("scale-out")
    assert (config.group_id, config.group_session_timeout_ms, config.metrics_listen) == (
        "mirrors-a-to-b", 10000, "0.0.0.0:9464")
    assert config.flows[0].tasks_max == 4
