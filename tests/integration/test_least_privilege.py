"""Least privilege: the engine runs with exactly the ACLs `mirror-engine acls` lists.

On clusters with StandardAuthorizer a dedicated SASL principal is granted exactly
required_acls(config) (through the super-user PLAINTEXT connection) and the engine runs one flow with
checkpoints, offset syncs, heartbeats, config sync, ACL sync, sync.group.offsets and the sampling
audit on; with one ACL taken away, the engine names what is missing. Each test uses aliases of its
own, so every internal topic is created by the engine under these ACLs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourcePatternType,
    ResourceType,
)

from engine.config.loading import from_properties
from engine.offsets import wire
from engine.security.acls import RequiredAcl, audit_acls, required_acls
from tests.helpers import wait_for
from tests.integration.conftest import MIRROR_PASSWORD, MIRROR_USER
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, produce, raw_records, read_all

PRINCIPAL = f"User:{MIRROR_USER}"
DAY_MS = 86_400_000
AUTHORIZATION = re.compile(r"authori[sz]", re.IGNORECASE)


@pytest.fixture
def grants(secured_source, secured_target):
    """grants(acls, {alias: cluster}) gives the principal exactly these ACLs; all go at teardown."""
    clusters: dict[str, object] = {}

    def grant(acls: list[RequiredAcl], by_alias: dict[str, object]) -> None:
        clusters.update(by_alias)
        for cluster in (secured_source, secured_target):
            _revoke_all(cluster)
        for alias, cluster in by_alias.items():
            bindings = [acl.binding(PRINCIPAL) for acl in acls if acl.cluster == alias]
            admin = cluster.admin()
            for future in admin.create_acls(bindings).values():
                future.result(timeout=30)
            # the broker authorises with what it describes
            wait_for(lambda: len(_principal_acls(cluster)) == len(bindings), 30, f"the ACLs on cluster {alias}")

    yield grant
    for cluster in (secured_source, secured_target):
        _revoke_all(cluster)


def _principal_filter() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, PRINCIPAL, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def _principal_acls(cluster) -> list:
    admin = cluster.admin()  # must outlive the future
    return admin.describe_acls(_principal_filter()).result(timeout=30)


def _revoke_all(cluster) -> None:
    admin = cluster.admin()
    admin.delete_acls([_principal_filter()])[_principal_filter()].result(timeout=30)
    wait_for(lambda: not _principal_acls(cluster), 30, "the principal's ACLs gone")


def flow_properties(source, target, token: str, topic: str, group: str) -> tuple[str, str, dict[str, str]]:
    """A flow source->target with every feature on, logging in as the least-privilege principal."""
    src, tgt = f"src{token}", f"tgt{token}"
    props = {
        "clusters": f"{src}, {tgt}",
        f"{src}.bootstrap.servers": source.cluster.sasl_bootstrap_servers,
        f"{tgt}.bootstrap.servers": target.cluster.sasl_bootstrap_servers,
        f"{src}->{tgt}.enabled": "true",
        f"{src}->{tgt}.topics": topic,
        "groups": group,
        "tasks.max": "1",
        "replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "offset.storage.partitions": "2",
        "heartbeats.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        f"{tgt}.offset.flush.interval.ms": "500",
        "refresh.topics.interval.seconds": "2",
        "offset.lag.max": "5",
        "emit.checkpoints.interval.seconds": "1",
        "sync.group.offsets.enabled": "true",
        "sync.group.offsets.interval.seconds": "1",
        "sync.topic.configs.interval.seconds": "1",
        "sync.topic.acls.interval.seconds": "1",
        "mirror.engine.audit.interval.seconds": "1",
        "mirror.engine.metrics.listen": "127.0.0.1:0",
    }
    for alias in (src, tgt):
        props.update({f"{alias}.security.protocol": "SASL_PLAINTEXT", f"{alias}.sasl.mechanism": "SCRAM-SHA-256",
                      f"{alias}.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                                                   f'required username="{MIRROR_USER}" password="{MIRROR_PASSWORD}";'})
    return src, tgt, props


def text(props: dict[str, str]) -> str:
    return "".join(f"{k} = {v}\n" for k, v in props.items())


def records(partition: int, count: int, first: int = 0) -> list[Record]:
    return [Record(partition, f"k{partition}-{i}".encode(), f"v{partition}-{i}".encode() * 3,
                   (("trace", f"t{i}".encode()), ("empty", None)), BASE_TIMESTAMP_MS + i)
            for i in range(first, first + count)]


def commit(servers: str, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def committed(cluster, group: str) -> dict[tuple[str, int], int]:
    admin = cluster.admin()
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def topic_config(cluster, topic: str, name: str) -> str | None:
    admin = cluster.admin()
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        return admin.describe_configs([resource])[resource].result(timeout=30)[name].value
    except Exception:
        return None  # not created yet


def topic_acls(cluster, topic: str) -> set[tuple[str, AclOperation]]:
    admin = cluster.admin()
    found = admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None, AclOperation.ANY,
        AclPermissionType.ANY)).result(timeout=30)
    return {(b.principal, b.operation) for b in found}


def exists(cluster, topic: str) -> bool:
    return topic in cluster.admin().list_topics(timeout=10).topics


def decoded(cluster, topic: str, kind):
    if not exists(cluster, topic):
        return []
    return [kind.decode(k, v) for k, v in raw_records(cluster.bootstrap_servers, topic) if k is not None and v]


def audit_verified(run, topic: str) -> dict[int, int]:
    """partition -> newest offset of `topic` the sampling audit found copied unchanged (its gauge)."""
    verified = {}
    for line in urllib.request.urlopen(run.metrics_url(), timeout=10).read().decode().splitlines():
        if line.startswith("mirror_engine_audit_verified_offset{") and f'topic="{topic}"' in line:
            partition = re.search(r'partition="(\d+)"', line)
            verified[int(partition.group(1))] = int(float(line.rsplit(" ", 1)[1]))
    return verified


def test_the_engine_runs_with_exactly_the_acls_it_lists(secured_source, secured_target, grants, engine,
                                                       unique_name):
    token = uuid.uuid4().hex[:6]
    topic = secured_source.create_topic(unique_name("lp-orders"), 2, {"retention.ms": str(DAY_MS)})
    group = unique_name("lp-app")
    src, tgt, props = flow_properties(secured_source, secured_target, token, topic, group)
    remote = f"{src}.{topic}"
    produced = {0: records(0, 30), 1: records(1, 20)}
    for batch in produced.values():
        produce(secured_source.bootstrap_servers, topic, batch)
    commit(secured_source.bootstrap_servers, group, [TopicPartition(topic, 0, 25), TopicPartition(topic, 1, 10)])
    source_admin = secured_source.admin()
    for future in source_admin.create_acls([AclBinding(
            ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ,
            AclPermissionType.ALLOW)]).values():
        future.result(timeout=30)
    config = from_properties(props)
    acls = required_acls(config)
    grants(acls, {src: secured_source, tgt: secured_target})

    run = engine(text(props))
    wait_for(lambda: exists(secured_target, remote), 60, "the remote topic", run.log)
    # configs come with the remote topic, then follow the source
    assert topic_config(secured_target, remote, "retention.ms") == str(DAY_MS)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", str(2 * DAY_MS), incremental_operation=AlterConfigOpType.SET)])
    source_admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    # a grown source topic grows its remote topic
    source_admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
    produced[2] = records(2, 10)
    produce(secured_source.bootstrap_servers, topic, produced[2])

    def copied():
        on_target = read_all(secured_target.bootstrap_servers, remote)
        return on_target if {p: len(r) for p, r in on_target.items()} == {p: len(r) for p, r in produced.items()} \
            else None

    on_target = wait_for(copied, 60, "every record copied", run.log)
    for partition, expected in produced.items():
        assert on_target[partition] == expected  # key, value, headers, timestamp, partition

    checkpoints_topic = wire.checkpoints_topic(src)
    wait_for(lambda: {(c.partition, c.upstream_offset, c.downstream_offset)
                      for c in decoded(secured_target, checkpoints_topic, wire.Checkpoint)
                      if c.group == group and c.topic == remote} >= {(0, 25, 25), (1, 10, 10)},
             30, "the group's checkpoints", run.log)
    wait_for(lambda: committed(secured_target, group) == {(remote, 0): 25, (remote, 1): 10}, 30,
             "the group's offsets committed on the target (sync.group.offsets)", run.log)
    wait_for(lambda: topic_config(secured_target, remote, "retention.ms") == str(2 * DAY_MS), 30,
             "the changed config synced", run.log)
    wait_for(lambda: ("User:alice", AclOperation.READ) in topic_acls(secured_target, remote), 30,
             "the topic ACL synced", run.log)
    wait_for(lambda: any(h.source_alias == src and h.target_alias == tgt
                         for h in decoded(secured_target, "heartbeats", wire.Heartbeat)), 30,
             "heartbeats emitted into the target", run.log)
    wait_for(lambda: any(h.source_alias == tgt and h.target_alias == src
                         for h in decoded(secured_source, "heartbeats", wire.Heartbeat)), 30,
             "heartbeats emitted into the source", run.log)
    wait_for(lambda: decoded(secured_target, f"{src}.heartbeats", wire.Heartbeat), 30,
             "the source's heartbeats replicated", run.log)
    assert {s.topic for s in decoded(secured_source, wire.offset_syncs_topic(tgt), wire.OffsetSync)} >= {topic}
    wait_for(lambda: audit_verified(run, topic) == {0: 29, 1: 19, 2: 9}, 30,
             "the sampling audit's verified copies", run.log)
    assert run.stop() == 0, run.log()
    log = run.log()
    assert not AUTHORIZATION.findall(log), [line for line in log.splitlines() if AUTHORIZATION.search(line)]

    # `mirror-engine audit` needs less: it reads both sides and the offset map, nothing else
    grants(audit_acls(config), {src: secured_source, tgt: secured_target})
    config_file = run.folder / "mm2.properties"
    audit = subprocess.run([sys.executable, "-m", "engine", "audit", str(config_file)], capture_output=True, text=True,
                           timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "AUDIT OK: 60 of 60 records verified in 3 partitions" in audit.stdout, audit.stdout


def test_without_read_on_the_source_topic_the_engine_names_topic_cluster_and_acl(
        secured_source, secured_target, grants, engine, unique_name):
    token = uuid.uuid4().hex[:6]
    topic = secured_source.create_topic(unique_name("lp-denied"), 1)
    produce(secured_source.bootstrap_servers, topic, records(0, 5))
    src, tgt, props = flow_properties(secured_source, secured_target, token, topic, unique_name("lp-app"))
    acls = required_acls(from_properties(props))
    read = [a for a in acls if a.cluster == src and a.resource_type == "TOPIC" and a.name == topic
            and a.operation == "READ"]
    assert len(read) == 1
    grants([a for a in acls if a not in read], {src: secured_source, tgt: secured_target})

    run = engine(text(props))
    expected = (f"source topic {topic} on cluster {src} is not replicated: not authorised: the engine's principal "
                f"needs an ALLOW READ ACL on topic {topic}")
    wait_for(lambda: expected in run.log(), 60, "the error naming the missing ACL", run.log)
    # the rest of the engine runs: its internal topics are there and heartbeats flow
    wait_for(lambda: any(h.source_alias == src for h in decoded(secured_target, "heartbeats", wire.Heartbeat)), 30,
             "heartbeats", run.log)
    assert not exists(secured_target, f"{src}.{topic}")
    assert run.stop() == 0, run.log()
    assert run.log().count(expected) == 1  # said once, not at every refresh
