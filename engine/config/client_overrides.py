"""Client overrides of mm2.properties (`A.consumer.*`, `B.producer.*`, `A.admin.*` and their per-flow
forms) mapped from Java client keys onto librdkafka's, with MM2's precedence.

| Java key | librdkafka | |
|---|---|---|
| `buffer.memory` | `queue.buffering.max.kbytes` | bytes → KiB |
| `max.request.size` | `message.max.bytes` | |
| `delivery.timeout.ms` | `message.timeout.ms` | |
| `fetch.max.wait.ms` | `fetch.wait.max.ms` | |
| `send.buffer.bytes`, `receive.buffer.bytes` | `socket.send.buffer.bytes`, `socket.receive.buffer.bytes` | −1 (OS default) → 0 |
| `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level` | `compression.level` | |
| `client.id` | a prefix of the engine's client ids | `<yours>\\|A->B\\|MirrorSourceConnector-0\\|replication-consumer`, as MM2 |
| `batch.size`, `linger.ms`, `compression.type`, `retries`, `fetch.min.bytes`, `fetch.max.bytes`, `max.partition.fetch.bytes`, `isolation.level`, `client.rack`, ... | the same | every key librdkafka knows by its Java name |

Connection and security keys (`bootstrap.servers`, `security.protocol`, `ssl.*`, `sasl.*`) may be
overridden per role as well, as MM2 allows: role_overrides maps them with the cluster's security keys
(engine/security/client_keys.py) into a complete set for that role.

Every value is checked against librdkafka itself when the file is loaded, so a bad one names its
key. Keys the engine decides (`acks`, `enable.idempotence`, `enable.auto.commit`, `auto.offset.reset`,
`group.id`, `transactional.id`, `partitioner.class`, serializers) are noted and dropped, as are Java
keys librdkafka has no use for; a key that names a Java class of its own (interceptors, metric
reporters other than JMX) is refused.
"""  # noqa: E501 (a Markdown table: its rows cannot wrap)

from __future__ import annotations

import ctypes
import logging

from engine.config.precedence import CONNECTION_PREFIXES, security_keys
from engine.config.read_keys import mark_read, remark_once
from engine.config.values import ConfigError
from engine.librdkafka import _library
from engine.security.client_keys import cluster_security

RENAMED = {
    "buffer.memory": "queue.buffering.max.kbytes",
    "max.request.size": "message.max.bytes",
    "delivery.timeout.ms": "message.timeout.ms",
    "fetch.max.wait.ms": "fetch.wait.max.ms",
    "send.buffer.bytes": "socket.send.buffer.bytes",
    "receive.buffer.bytes": "socket.receive.buffer.bytes",
    "compression.gzip.level": "compression.level",
    "compression.lz4.level": "compression.level",
    "compression.zstd.level": "compression.level",
}
# the engine's own guarantees: ordered acks, no silent jumps, progress only where MM2 keeps it
ENGINE_DECIDES = {
    "acks": "all, always: progress is stored only after every replica has the records",
    "enable.idempotence": "true, always: ordered, duplicate-free retries",
    "enable.auto.commit": "false, always: progress goes to mm2-offsets.<source>.internal",
    "auto.offset.reset": "error, always: a position outside the log stops the partition instead of a silent jump",
    "group.id": "the engine assigns partitions itself and commits nothing to the source",
    "transactional.id": "exactly-once mode names its own ids, mirror-engine-<flow>-<worker>",
    "partitioner.class": "every copy keeps its source partition",
    "key.serializer": "records are copied as bytes", "value.serializer": "records are copied as bytes",
    "key.deserializer": "records are copied as bytes", "value.deserializer": "records are copied as bytes",
}
# Java settings librdkafka has no use for
NOT_USED = {
    "max.poll.records": "the engine's batch is up to 2,000 records, whatever is already fetched",
    "max.poll.interval.ms": "the engine polls without a consumer group",
    "auto.commit.interval.ms": "nothing is committed to the source",
    "partition.assignment.strategy": "the engine assigns partitions itself",
    "max.block.ms": "the engine waits for buffer space itself",
    "default.api.timeout.ms": "each engine request has its own timeout",
    "metric.reporters": "the engine exports Prometheus metrics",
    "metrics.num.samples": "the engine exports Prometheus metrics",
    "metrics.sample.window.ms": "the engine exports Prometheus metrics",
    "metrics.recording.level": "the engine exports Prometheus metrics",
    "exclude.internal.topics": "the engine reads only the topics it selected",
    "allow.auto.create.topics": "the engine creates every topic it writes",
    "security.providers": "a Java security provider",
}
_BYTE_SERIALIZERS = ("org.apache.kafka.common.serialization.ByteArraySerializer",
                     "org.apache.kafka.common.serialization.ByteArrayDeserializer")
_JMX_REPORTER = "org.apache.kafka.common.metrics.JmxReporter"


def librdkafka_setting(written: str, java_key: str, value: str, notes: list[str]) -> tuple[str, str] | None:
    """(librdkafka key, value) for one Java client key, or None when it is dropped (with a note)."""
    value = value.strip()
    if java_key in ENGINE_DECIDES:
        if java_key.endswith("serializer") and value in _BYTE_SERIALIZERS:
            return None
        notes.append(f"{written} is not used: {ENGINE_DECIDES[java_key]}")
        return None
    if java_key in NOT_USED:
        if java_key == "metric.reporters" and value not in ("", _JMX_REPORTER):
            raise ConfigError(written, f"{value} is a Java class that librdkafka cannot run")
        notes.append(f"{written} is not used: {NOT_USED[java_key]}")
        return None
    if java_key.endswith((".class", ".classes")):
        raise ConfigError(written, f"{value} is a Java class that librdkafka cannot run")
    key = RENAMED.get(java_key, java_key)
    if java_key == "buffer.memory":
        value = str(max(1, _number(written, value) // 1024))
    elif java_key in ("send.buffer.bytes", "receive.buffer.bytes") and value == "-1":
        value = "0"  # Java's -1 and librdkafka's 0 both leave the OS default
    problem = _librdkafka_refuses(key, value)
    if problem == "unknown":
        notes.append(f"{written} is not used: librdkafka has no such setting")
        return None
    if problem:
        raise ConfigError(written, f"librdkafka refuses {key}={value!r}: {problem}")
    return key, value


def _number(written: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(written, f"expected a number of bytes, got {value!r}") from None


def _librdkafka_refuses(key: str, value: str) -> str | None:
    """None when librdkafka takes the setting, "unknown" for a key it does not have, else its reason."""
    conf = _library.rd_kafka_conf_new()
    try:
        reason = ctypes.create_string_buffer(512)
        result = _library.rd_kafka_conf_set(conf, key.encode(), value.encode(), reason, len(reason))
    finally:
        _library.rd_kafka_conf_destroy(conf)
    if result == 0:  # RD_KAFKA_CONF_OK
        return None
    if result == -2:  # RD_KAFKA_CONF_UNKNOWN
        return "unknown"
    return reason.value.decode("utf-8", "replace")



# (flow attribute, cluster, role, keys from lowest to highest precedence) as MM2's dedicated driver
# builds them (docs/design.md, 'How the file becomes settings'): a cluster's `A.consumer.x` beats the
# flow's `A->B.consumer.x`,
# and `A->B.source.consumer.x` beats both; the data producer is Connect's, `B.producer.*` then
# `A->B.producer.override.*`
def _override_scopes(source: str, target: str) -> list[tuple[str, str, str, list[str]]]:
    flow = f"{source}->{target}."
    return [
        ("source_consumer", source, "consumer", [f"{flow}consumer.", f"{source}.consumer.", f"{flow}source.consumer."]),
        ("target_producer", target, "producer", [f"{target}.producer.", f"{flow}producer.override."]),
        ("source_admin", source, "admin", [f"{flow}admin.", f"{source}.admin.", f"{flow}source.admin."]),
        ("target_admin", target, "admin", [f"{flow}admin.", f"{target}.admin.", f"{flow}target.admin."]),
    ]


# keys of these scopes that are engine settings of their own, not client overrides
_NOT_CLIENT_KEYS = ("compression.type", "poll.timeout.ms")


def role_overrides(props: dict[str, str], source: str, target: str) -> dict[str, dict[str, str]]:
    """Each client role's overrides in librdkafka's names. Connection and security keys may be
    overridden too, as in MM2 (`B.admin.bootstrap.servers`, `A.consumer.sasl.jaas.config`): a role's
    security keys go over the cluster's, key by key, and the result is mapped as a whole, so the
    role's settings then hold a complete security set (with its security.protocol) that replaces the
    cluster's for that role's clients (engine.clients.role_connection)."""
    resolved: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for attribute, alias, role, scopes in _override_scopes(source, target):
        settings: dict[str, str] = {}
        connection: dict[str, tuple[str, str]] = {}
        for scope in scopes:
            for key, value in props.items():
                if not key.startswith(scope) or key[len(scope):] in _NOT_CLIENT_KEYS:
                    continue
                mark_read(props, key)
                java_key = key[len(scope):]
                if java_key == "bootstrap.servers" or java_key.startswith(CONNECTION_PREFIXES):
                    connection[java_key] = (key, value)
                    continue
                setting = librdkafka_setting(key, java_key, value, notes)
                if setting is not None:
                    settings[setting[0]] = setting[1]
        if "bootstrap.servers" in connection:
            written, servers = connection.pop("bootstrap.servers")
            if not servers.strip():
                raise ConfigError(written, "is empty; give host:port pairs, or leave the key out for "
                                           f"{alias}.bootstrap.servers")
            settings["bootstrap.servers"] = servers.strip()
        if connection:
            security = cluster_security(f"{alias} ({role} clients)", {**security_keys(props, alias), **connection},
                                        missing=f"{alias}.{role}.")
            settings.update(security.settings)
            notes += [n for n in security.notes if n not in notes]
        resolved[attribute] = settings
    for note in notes:
        remark_once(props, logging.INFO, note)
    return resolved


def _declare() -> None:
    _library.rd_kafka_conf_new.restype = ctypes.c_void_p
    _library.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.c_size_t]
    _library.rd_kafka_conf_set.restype = ctypes.c_int
    _library.rd_kafka_conf_destroy.argtypes = [ctypes.c_void_p]


_declare()
