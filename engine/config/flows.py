"""One flow's settings (`<source>-><target>.enabled = true`) read into a FlowConfig."""

from __future__ import annotations

import logging
import re

from engine.config.client_overrides import role_overrides
from engine.config.keys import BY_NAME, HEARTBEAT_KEYS, KEYS
from engine.config.model import TARGET_TOPIC_CONFIG_PREFIX, FlowConfig
from engine.config.precedence import flow_lookup, worker_key
from engine.config.read_keys import mark_read, remark, remark_once
from engine.config.values import ConfigError
from engine.filters import RECORD_FILTER_PREFIX, compile_list, record_filter
from engine.offsets import wire
from engine.offsets.policy import IDENTITY_POLICY_CLASS, POLICY_CLASSES

# keys of the table read by their own code below: a longer lookup, or a message of their own
READ_APART = ("replication.policy.class", "producer.compression.type", "offset.storage.topic")
RECORD_FILTER_OPTIONS = ("header.present", "header.absent", "header.equals", "key.prefix", "partitions", "python")


def flow_config(props: dict[str, str], source: str, target: str) -> FlowConfig:
    """The flow source->target; every bad value raises ConfigError naming its key."""
    prefix = f"{source}->{target}."
    get = flow_lookup(props, source, target)
    settings: dict[str, object] = {"source": source, "target": target}
    # the flow's keys by the key table: `<source>-><target>.` or the top level, and the Connect worker
    # settings of the herder source->target from the target cluster's keys, as MM2 reads them
    for setting in KEYS:
        if not setting.attr or setting.name in READ_APART + HEARTBEAT_KEYS or setting.scope not in ("flow", "worker"):
            continue
        if setting.scope == "flow":
            name, value = get(setting.name)
        else:
            found = worker_key(props, target, setting.name)
            name, value = (found, props[found]) if found is not None else (setting.name, None)
        if value is None:
            if setting.default is not None:
                settings[setting.attr] = setting.default_value()
            continue
        if setting.kind == "regex-list":
            compile_list(value, name)  # fail now, naming the key
        settings[setting.attr] = setting.value(name, value)
    settings.update(_offset_storage_topic(props, source, target))
    # a Connect worker setting of the herder source->target: the target cluster's key, as MM2 reads it
    for name in (f"{target}.exactly.once.source.support", "exactly.once.source.support"):
        if name in props:
            modes = BY_NAME["exactly.once.source.support"].choices
            if props[name].strip().lower() not in modes:
                raise ConfigError(name, f"expected {', '.join(modes[:-1])} or {modes[-1]}, got {props[name]!r}")
            settings["exactly_once"] = props[name].strip().lower() == "enabled"
            break
    # the target producer's key, also per target cluster and as MM2's connector override
    compression = BY_NAME["producer.compression.type"]
    for name in (f"{prefix}producer.override.compression.type", f"{prefix}producer.compression.type",
                 f"{target}.producer.compression.type", "producer.compression.type"):
        if name in props:
            if props[name].strip() not in compression.choices:
                raise ConfigError(name, f"expected one of {', '.join(compression.choices)}, got {props[name]!r}")
            settings[compression.attr] = props[name].strip()
            break
    name, policy = get("replication.policy.class")
    if policy is not None:
        if policy.strip() not in POLICY_CLASSES:
            raise ConfigError(name, f"replication policy {policy!r} is not supported; use one of "
                                    + ", ".join(POLICY_CLASSES))
        settings["policy_class"] = policy.strip()
    if settings["offset_translation"] == "mm2" and settings["emit_offset_syncs_enabled"] is False:
        raise ConfigError(get("offset.translation")[0],
                          "mm2 translation reads offset syncs, but emit.offset-syncs.enabled is false")
    overrides = {}
    for scope in (TARGET_TOPIC_CONFIG_PREFIX, prefix + TARGET_TOPIC_CONFIG_PREFIX):
        for key, value in props.items():
            if key.startswith(scope) and len(key) > len(scope):
                overrides[key[len(scope):]] = value.strip()
                mark_read(props, key)
    settings["target_topic_overrides"] = overrides
    for key in props:
        for scope in (RECORD_FILTER_PREFIX, prefix + RECORD_FILTER_PREFIX):
            option = key[len(scope):] if key.startswith(scope) else None
            if option is not None and option not in RECORD_FILTER_OPTIONS:
                raise ConfigError(key, f"unknown record filter; use one of {', '.join(RECORD_FILTER_OPTIONS)}")
    settings["record_filter"] = record_filter(get, prefix)
    settings.update(role_overrides(props, source, target))
    for key, built_in in BUILT_IN_CLASSES.items():
        name, value = get(key)
        if value is not None and value.strip() not in built_in:
            raise ConfigError(name, f"{value.strip()} is a Java class the engine cannot run; the built-in "
                                    f"{built_in[0].rsplit('.', 1)[1]} is supported (leave the key out for it)")
    flow = FlowConfig(**settings)  # type: ignore[arg-type]
    if flow.separator == "":
        remark(props, logging.WARNING, _empty_separatorremark(get("replication.policy.separator")[0], flow))
    return flow


def _empty_separatorremark(key: str, flow: FlowConfig) -> str:
    """What an empty separator does, as MM2's policies do it (engine.offsets.policy._java_split): accepted,
    but seldom what the file's author meant."""
    source, target = flow.source, flow.target
    identity = flow.policy_class == IDENTITY_POLICY_CLASS
    internal = "" if flow.internal_separator_enabled else "."
    syncs = wire.offset_syncs_topic(target if flow.offset_syncs_topic_location == "source" else source, internal)
    names = (f"keeps topic names but names heartbeats {source}heartbeats" if identity else
             f"names remote topics {source}<topic> (e.g. {source}orders)")
    remark = (f"{key} is empty, as MM2 allows: {flow.name} {names}, its offset syncs {syncs} and its checkpoints "
              f"{wire.checkpoints_topic(source, internal)}; as in MM2, a name is then read back one character at "
              "a time, so no topic counts as a heartbeats topic")
    if len(target) == 1 and not identity:
        remark += (f", and a topic with the letter {target} before its last character counts as coming from "
                   f"{target} and is not copied there (a cycle)")
    return remark


# Kafka's topic name rule (org.apache.kafka.common.internals.Topic.validate)
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _offset_storage_topic(props: dict[str, str], source: str, target: str) -> dict[str, str]:
    """`offset.storage.topic` of herder source->target: where MM2 stores this flow's progress.

    A switch from MM2 must find MM2's progress, so the engine reads and writes the same topic. Keys
    MM2 would not read for this flow are named in a remark.
    """
    flow_key = f"{source}->{target}.offset.storage.topic"
    name = worker_key(props, target, "offset.storage.topic")
    topic = props[name].strip() if name is not None else wire.connect_offsets_topic(source)
    if name is not None and (not _TOPIC_NAME.fullmatch(topic) or topic in (".", "..")):
        raise ConfigError(name, f"{props[name]!r} is not a topic name: 1 to 249 characters of a-z, A-Z, 0-9, "
                                f"'.', '_' and '-'")
    shadowed = f"{target}.offset.storage.topic"
    if name == "offset.storage.topic" and shadowed in props:
        mark_read(props, shadowed)
        remark_once(props, logging.WARNING, f"{shadowed} = {props[shadowed].strip()} is overridden by the top-level "
                                            f"offset.storage.topic = {topic}, as in MM2: the progress of flows into "
                                            f"{target} is in {topic}")
    if flow_key in props:
        mark_read(props, flow_key)
        remark_once(props, logging.WARNING, f"{flow_key} is not read, as in MM2 (a Connect worker setting comes "
                                             f"from {target}.offset.storage.topic or the top level, never from a "
                                             f"flow): the progress of {source}->{target} is in {topic}")
    return {"offset_storage_topic": topic} if name is not None else {}


# MM2's pluggable classes: only their built-in defaults, whose behaviour the engine implements
BUILT_IN_CLASSES = {
    "topic.filter.class": ("org.apache.kafka.connect.mirror.DefaultTopicFilter",),
    "group.filter.class": ("org.apache.kafka.connect.mirror.DefaultGroupFilter",),
    "config.property.filter.class": ("org.apache.kafka.connect.mirror.DefaultConfigPropertyFilter",),
    "forwarding.admin.class": ("org.apache.kafka.clients.admin.ForwardingAdmin",),
}
