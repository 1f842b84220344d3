"""Topic-config sync from source topics to their remote topics (docs/config-sync.md).

A source entry is never copied when it is read-only, sensitive, set in a broker's static file, or
matches `config.properties.exclude`. Create mode copies every other non-default entry (and the
defaults too with `use.defaults.from = source`). Sync mode, with IncrementalAlterConfigs, SETs
non-default entries and, for entries at their default on the source, DELETEs the target override
(`use.defaults.from = target`, the default) or SETs the source default (`source`).

Beyond MM2: per-flow target overrides (`<s>-><t>.target.topic.config.<name> = <value>`) are set on
every remote topic of the flow and exempt from sync, so a sync never reverts them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from engine.config.values import ConfigError

log = logging.getLogger(__name__)

def source_of(entry: ConfigEntry) -> ConfigSource:
    # describe_configs answers with plain ints here, hand-made entries with the enum
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def copyable(entry: ConfigEntry, exclude: re.Pattern[str] | None) -> bool:
    return not (
        entry.is_read_only
        or entry.is_sensitive
        or source_of(entry) == ConfigSource.STATIC_BROKER_CONFIG
        or (exclude is not None and exclude.fullmatch(entry.name))
    )


def is_default(entry: ConfigEntry) -> bool:
    # dynamic broker-wide settings are not "default": they are copied as topic overrides
    return source_of(entry) == ConfigSource.DEFAULT_CONFIG


def create_config(source: Iterable[ConfigEntry], exclude: re.Pattern[str] | None, use_defaults_from: str,
                  overrides: dict[str, str]) -> dict[str, str]:
    """The configs a new remote topic is created with."""
    config = {
        e.name: e.value
        for e in source
        if e.value is not None and copyable(e, exclude) and e.name not in overrides
        and (not is_default(e) or use_defaults_from == "source")
    }
    config.update(overrides)
    return config


def sync_operations(source: Iterable[ConfigEntry], exclude: re.Pattern[str] | None, use_defaults_from: str,
                    overrides: dict[str, str]) -> list[ConfigEntry]:
    """IncrementalAlterConfigs operations that bring an existing remote topic in line."""
    operations = []
    for e in source:
        if not copyable(e, exclude) or e.name in overrides:
            continue
        if is_default(e) and use_defaults_from == "target":
            operations.append(ConfigEntry(e.name, None, incremental_operation=AlterConfigOpType.DELETE))
        elif e.value is not None:
            operations.append(ConfigEntry(e.name, e.value, incremental_operation=AlterConfigOpType.SET))
    operations += [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                   for name, value in overrides.items()]
    return operations


async def describe_topic_configs(admin: AdminClient, cluster: str, topics: list[str]) -> dict[str, list[ConfigEntry]]:
    """Source configs by topic; a topic that vanished meanwhile is left out."""
    if not topics:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics], request_timeout=30)
    result = {}
    for resource, future in futures.items():
        try:
            entries = await asyncio.wrap_future(future)
        except KafkaException as error:
            if error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise ConfigSyncError(f"cannot read the configs of topic {resource.name} on cluster {cluster}: "
                                  f"{_explain(error.args[0], 'DESCRIBE_CONFIGS', resource.name)}") from None
        result[resource.name] = list(entries.values())
    return result


# How long a topic that one broker listed may stay unknown to the broker answering for its configs.
# KRaft brokers apply the cluster metadata each at its own pace, some milliseconds apart (seen here:
# a DescribeConfigs right after an acknowledged alteration answered with the state before it in 17 of
# 40 tries on 3 brokers, 2 of 150 on 1 broker under load); seconds cover a slow broker.
METADATA_PROPAGATION_S = 5.0
RETRY_INTERVAL_S = 0.1


async def describe_listed_topic_configs(admin: AdminClient, cluster: str, topics: list[str],
                                        clock=time.monotonic) -> dict[str, list[ConfigEntry]]:
    """describe_topic_configs for topics the cluster has just listed: one still unknown to the broker that
    answers is asked for again for up to METADATA_PROPAGATION_S, and left out only if it stays unknown
    (deleted meanwhile). Without this, a remote topic would be created without its source configs."""
    result = await describe_topic_configs(admin, cluster, topics)
    deadline = clock() + METADATA_PROPAGATION_S
    missing = [t for t in topics if t not in result]
    while missing and clock() < deadline:
        await asyncio.sleep(RETRY_INTERVAL_S)
        result.update(await describe_topic_configs(admin, cluster, missing))
        missing = [t for t in missing if t not in result]
    if missing:
        log.info("cluster %s no longer knows topics %s (deleted after they were listed)", cluster, missing)
    return result


class ConfigSyncError(RuntimeError):
    """Configs could not be read or written; names the topic, the cluster and, if denied, the ACL."""


async def apply_operations(admin: AdminClient, cluster: str,
                           operations: dict[str, list[ConfigEntry]]) -> dict[str, ConfigSyncError]:
    """Alters each remote topic; returns the failures by topic (the others are applied)."""
    resources = [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=ops)
                 for topic, ops in operations.items() if ops]
    if not resources:
        return {}
    failures = {}
    for resource, future in admin.incremental_alter_configs(resources, request_timeout=30).items():
        try:
            await asyncio.wrap_future(future)
        except KafkaException as error:
            failures[resource.name] = ConfigSyncError(
                f"cannot alter the configs of topic {resource.name} on cluster {cluster}: "
                f"{_explain(error.args[0], 'ALTER_CONFIGS', resource.name)}")
    return failures


async def validate_overrides(admin: AdminClient, cluster: str, overrides: dict[str, str],
                             key_prefix: str) -> None:
    """Lets the target broker check override values, without creating anything."""
    if not overrides:
        return
    probe = "mirror-engine-override-check"
    futures = admin.create_topics([NewTopic(probe, 1, -1, config=overrides)], validate_only=True,
                                  request_timeout=30)
    try:
        await asyncio.wrap_future(futures[probe])
    except KafkaException as error:
        kafka_error = error.args[0]
        if kafka_error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
            return  # cannot check here; a real creation or alteration will report it by topic
        named = [name for name in overrides if name in kafka_error.str()] or sorted(overrides)
        raise ConfigError(f"{key_prefix}{named[0]}",
                          f"cluster {cluster} refuses the value {overrides[named[0]]!r}: {kafka_error.str()}") from None


def _explain(error: KafkaError, operation: str, topic: str) -> str:
    if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return (f"not authorised: the engine's principal needs an ALLOW {operation} ACL on topic {topic} "
                f"({error.str()})")
    return error.str()


class TopicConfigSync:
    """MM2's config sync of one flow: the configs of every replicated topic whose remote topic exists."""

    def __init__(self, flow_name: str, source_admin: AdminClient, target_admin: AdminClient, source_alias: str,
                 target_alias: str, remote_name: Callable[[str], str], exclude: re.Pattern[str] | None,
                 use_defaults_from: str, overrides: dict[str, str]):
        self.flow_name = flow_name
        self.source_admin, self.target_admin = source_admin, target_admin
        self.source_alias, self.target_alias = source_alias, target_alias
        self.remote_name = remote_name
        self.exclude = exclude
        self.use_defaults_from = use_defaults_from
        self.overrides = overrides
        self.failures = 0

    async def sync(self, topics: list[str]) -> None:
        source_configs = await describe_topic_configs(self.source_admin, self.source_alias, topics)
        operations = {
            self.remote_name(topic): sync_operations(entries, self.exclude, self.use_defaults_from, self.overrides)
            for topic, entries in source_configs.items()
        }
        failures = await apply_operations(self.target_admin, self.target_alias, operations)
        for failure in failures.values():
            log.error("%s: %s", self.flow_name, failure)
        self.failures += len(failures)
        log.info("%s: synced the configs of %d remote topics", self.flow_name, len(operations) - len(failures))
