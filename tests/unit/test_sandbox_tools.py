"""Sandbox prerequisites fail with an error that names the missing tool."""

import pytest

from engine.sandbox import KafkaCluster, SandboxError
from engine.sandbox.distribution import require_tool


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="'java' was not found on PATH"):
        require_tool("java")


def test_missing_maven_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("MIRROR_ENGINE_CACHE", str(tmp_path))  # an empty cache: Maven is needed
    from engine.sandbox.distribution import kafka_libs

    with pytest.raises(SandboxError, match="'mvn' was not found on PATH"):
        kafka_libs()


def test_node_count_is_checked(tmp_path):
    with pytest.raises(SandboxError, match="nodes must be 1 to 3"):
        KafkaCluster("X", nodes=4, base_dir=tmp_path)


def test_cluster_ids_never_start_with_a_dash():
    from engine.sandbox.cluster import _new_cluster_id

    ids = [_new_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
