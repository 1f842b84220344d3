"""MM2's config-sync and ACL-sync rules (docs/config-sync.md; docs/security.md, 'ACL sync'), and reading
configs from lagging brokers."""

import asyncio
import concurrent.futures

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AlterConfigOpType,
    ConfigEntry,
    ConfigSource,
    ResourcePatternType,
    ResourceType,
)

from engine.config.model import DEFAULT_CONFIG_PROPERTIES_EXCLUDE
from engine.coordinator.acl_sync import remote_bindings
from engine.coordinator.config_sync import (
    create_config,
    describe_listed_topic_configs,
    sync_operations,
)
from engine.filters import compile_list

EXCLUDE = compile_list(DEFAULT_CONFIG_PROPERTIES_EXCLUDE, "config.properties.exclude")


def entry(name, value, source=ConfigSource.DYNAMIC_TOPIC_CONFIG, **flags):
    # describe_configs answers with ints; both forms must work
    return ConfigEntry(name, value, source=source.value, **flags)


SOURCE = [
    entry("retention.ms", "86400000"),
    entry("cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG, is_default=True),
    entry("segment.bytes", "1073741824", ConfigSource.STATIC_BROKER_CONFIG),
    entry("compression.type", "lz4", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
    entry("min.insync.replicas", "2"),
    entry("message.timestamp.type", "LogAppendTime"),
    entry("secret.thing", None, is_sensitive=True),
    entry("read.only", "x", is_read_only=True),
]


def test_create_mode_copies_non_defaults_and_dynamic_broker_settings():
    assert create_config(SOURCE, EXCLUDE, "target", {}) == {"retention.ms": "86400000", "compression.type": "lz4"}
    assert create_config(SOURCE, EXCLUDE, "source", {}) == {
        "retention.ms": "86400000", "compression.type": "lz4", "cleanup.policy": "delete"}


def test_overrides_win_at_creation():
    config = create_config(SOURCE, EXCLUDE, "target", {"retention.ms": "2592000000"})
    assert config["retention.ms"] == "2592000000"


def ops(operations):
    return {(o.name, o.value, o.incremental_operation) for o in operations}


def test_sync_mode_sets_and_deletes_as_use_defaults_from_says():
    set_, delete = AlterConfigOpType.SET, AlterConfigOpType.DELETE
    assert ops(sync_operations(SOURCE, EXCLUDE, "target", {})) == {
        ("retention.ms", "86400000", set_), ("compression.type", "lz4", set_), ("cleanup.policy", None, delete)}
    assert ops(sync_operations(SOURCE, EXCLUDE, "source", {})) == {
        ("retention.ms", "86400000", set_), ("compression.type", "lz4", set_), ("cleanup.policy", "delete", set_)}


def test_overrides_are_exempt_from_sync_but_always_set():
    overrides = {"retention.ms": "2592000000", "cleanup.policy": "compact"}
    operations = ops(sync_operations(SOURCE, EXCLUDE, "target", overrides))
    for_overridden = {op for op in operations if op[0] in overrides}
    assert for_overridden == {("retention.ms", "2592000000", AlterConfigOpType.SET),
                              ("cleanup.policy", "compact", AlterConfigOpType.SET)}


def test_exclude_list_uses_unescaped_dots_as_kafka_4_3_1_does():
    assert EXCLUDE.fullmatch("min.insync.replicas")
    assert EXCLUDE.fullmatch("minXinsyncXreplicas")  # '.' matches any character, as in Java
    assert not EXCLUDE.fullmatch("message.timestamp.before.max.ms")  # topic-level name still copied


def binding(name, operation, permission=AclPermissionType.ALLOW, pattern=ResourcePatternType.LITERAL,
            principal="User:alice"):
    return AclBinding(ResourceType.TOPIC, name, pattern, principal, "*", operation, permission)


def test_acl_rules():
    given = [
        binding("orders", AclOperation.READ),
        binding("orders", AclOperation.WRITE),
        binding("orders", AclOperation.ALL, principal="User:bob"),
        binding("orders", AclOperation.WRITE, AclPermissionType.DENY, principal="User:eve"),
        binding("orders", AclOperation.ALL, AclPermissionType.DENY, principal="User:eve"),
        binding("ord", AclOperation.READ, pattern=ResourcePatternType.PREFIXED),
        binding("secret", AclOperation.READ),
    ]
    result = remote_bindings(given, lambda t: t == "orders", lambda t: f"A.{t}")
    assert {(b.name, b.principal, b.operation, b.permission_type) for b in result} == {
        ("A.orders", "User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        ("A.orders", "User:bob", AclOperation.READ, AclPermissionType.ALLOW),
        ("A.orders", "User:eve", AclOperation.WRITE, AclPermissionType.DENY),
        ("A.orders", "User:eve", AclOperation.ALL, AclPermissionType.DENY),
    }


class LaggingAdmin:
    """describe_configs as brokers answer it while one of them has not read a topic's creation yet:
    the topic is unknown for the first `lag` requests that name it."""

    def __init__(self, configs: dict[str, dict[str, ConfigEntry]], lag: int):
        self.configs, self.lag, self.requests = configs, lag, []

    def describe_configs(self, resources, request_timeout):
        self.requests.append(sorted(r.name for r in resources))
        futures = {}
        for resource in resources:
            future = concurrent.futures.Future()
            if resource.name in self.configs and len(self.requests) > self.lag:
                future.set_result(self.configs[resource.name])
            else:
                future.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            futures[resource] = future
        return futures


def test_a_listed_topic_unknown_to_the_answering_broker_is_asked_for_again_until_it_is_known():
    configs = {"orders": {"retention.ms": entry("retention.ms", "1000")}}
    admin = LaggingAdmin(configs, lag=2)
    described = asyncio.run(describe_listed_topic_configs(admin, "A", ["orders"]))
    assert [(e.name, e.value) for e in described["orders"]] == [("retention.ms", "1000")]
    assert admin.requests == [["orders"], ["orders"], ["orders"]]


def test_a_listed_topic_that_stays_unknown_is_left_out_after_the_propagation_time():
    admin = LaggingAdmin({"kept": {"retention.ms": entry("retention.ms", "1000")}}, lag=0)
    ticks = iter(range(0, 1000, 2))  # seconds: the deadline passes after a few retries
    described = asyncio.run(describe_listed_topic_configs(admin, "A", ["deleted", "kept"], clock=lambda: next(ticks)))
    assert sorted(described) == ["kept"]
    assert admin.requests[0] == ["deleted", "kept"]
    assert set(map(tuple, admin.requests[1:])) == {("deleted",)}
    assert len(admin.requests) == 3  # asked at 0 s, again at 2 s and 4 s; at 6 s the 5 s have passed
