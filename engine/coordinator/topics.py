"""Topic discovery on the source and remote-topic creation on the target (docs/design.md, 'Topic
selection and remote topics')."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from engine.clients import ClusterUnreachable
from engine.config.model import FlowConfig
from engine.filters import TopicFilter
from engine.offsets.policy import DefaultReplicationPolicy

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 15.0


class TopicCreationError(RuntimeError):
    """A topic could not be created on the target; names the topic, the cluster and the config key."""

    def __init__(self, topic: str, cluster: str, key: str, reason: str):
        super().__init__(f"cannot create topic {topic!r} on cluster {cluster}: {reason} (config key: {key})")
        self.topic = topic
        self.cluster = cluster
        self.key = key


async def topic_partition_counts(admin: AdminClient, alias: str, servers: str) -> dict[str, int]:
    """Every topic the cluster lists (broker-internal ones excepted) with its partition count."""
    try:
        metadata = await asyncio.to_thread(admin.list_topics, timeout=METADATA_TIMEOUT_S)
    except KafkaException as error:
        raise ClusterUnreachable(
            f"cluster {alias} ({servers}) did not answer within {METADATA_TIMEOUT_S:.0f}s: {error.args[0].str()} "
            f"(config key: {alias}.bootstrap.servers)"
        ) from None
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and not name.startswith("__")
    }


def replicated_topics(flow: FlowConfig, policy: DefaultReplicationPolicy, topics: dict[str, int]) -> dict[str, int]:
    """Source topics the flow copies (MM2's shouldReplicateTopic, docs/design.md, 'Replication policies')."""
    topic_filter = flow.topic_filter()
    return {name: count for name, count in sorted(topics.items()) if copies(flow, policy, topic_filter, name)}


def copies(flow: FlowConfig, policy: DefaultReplicationPolicy, topic_filter: TopicFilter, name: str) -> bool:
    """Whether the flow copies a source topic of this name: the filter passes (or it is a heartbeats
    topic and heartbeats.replication.enabled), the topic is not internal, and its name's source chain
    does not contain the target."""
    selected = topic_filter.matches(name) or (flow.heartbeats_replication_enabled and policy.is_heartbeats_topic(name))
    return selected and not policy.is_internal_topic(name) and not policy.is_cycle(name, flow.target)


class TopicSpec(NamedTuple):
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]
    rf_key: str  # the config key that set replication_factor, named in errors


async def ensure_topics(admin: AdminClient, cluster: str, specs: list[TopicSpec],
                        existing: dict[str, int]) -> dict[str, TopicCreationError]:
    """Creates missing topics and grows short ones in one request each; never shrinks.

    Returns the failures by topic; the other topics are ready.
    """
    failures: dict[str, TopicCreationError] = {}
    create = [s for s in specs if s.name not in existing]
    grow = [s for s in specs if s.name in existing and existing[s.name] < s.partitions]
    if create:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor,
                      config=s.config) for s in create],
            operation_timeout=30,
        )
        for spec in create:
            try:
                await asyncio.wrap_future(futures[spec.name])
                log.info("created topic %s on cluster %s (%d partitions)", spec.name, cluster, spec.partitions)
            except KafkaException as error:
                kafka_error: KafkaError = error.args[0]
                if kafka_error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    failures[spec.name] = TopicCreationError(
                        spec.name, cluster, spec.rf_key, _explain(kafka_error, spec.replication_factor))
    if grow:
        futures = admin.create_partitions([NewPartitions(s.name, s.partitions) for s in grow], operation_timeout=30)
        for spec in grow:
            try:
                await asyncio.wrap_future(futures[spec.name])
                log.info("grew topic %s on cluster %s from %d to %d partitions", spec.name, cluster,
                         existing[spec.name], spec.partitions)
            except KafkaException as error:
                failures[spec.name] = TopicCreationError(
                    spec.name, cluster, spec.rf_key, f"growing it from {existing[spec.name]} to "
                    f"{spec.partitions} partitions failed: {error.args[0].str()}")
    for spec in specs:
        if existing.get(spec.name, 0) > spec.partitions:
            log.warning("topic %s on cluster %s has %d partitions, its source %d: partition numbers are kept, "
                        "the extra partitions receive nothing", spec.name, cluster, existing[spec.name],
                        spec.partitions)
    return failures


async def ensure_topic(admin: AdminClient, cluster: str, spec: TopicSpec, existing: dict[str, int]) -> None:
    """ensure_topics for one topic, raising its failure."""
    failures = await ensure_topics(admin, cluster, [spec], existing)
    if failures:
        raise failures[spec.name]


def _explain(error: KafkaError, replication_factor: int) -> str:
    if error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
        return (f"replication factor {replication_factor} is larger than the cluster's broker count "
                f"({error.str()}); lower it or use -1 for the broker default")
    if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return f"not authorised: the engine's principal needs CREATE on the topic or cluster ({error.str()})"
    return error.str()
