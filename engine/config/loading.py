"""mm2.properties → typed msgspec structs.

The file is a Java `.properties` file; keys and defaults follow MirrorMaker 2 (docs/design.md, 'How the
file becomes settings'; docs/configuration.md).
Precedence for a flow setting: `<source>-><target>.<key>` beats the top-level `<key>` beats the
default. Keys this engine does not know yet are kept in `raw` and ignored.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import msgspec

from engine.config.flows import flow_config
from engine.config.keys import BY_NAME, HEARTBEAT_KEYS, KEYS, Key
from engine.config.model import DEFAULT_LOOP, LOOP_KEY, LOOPS, ClusterConfig, EngineConfig, HeartbeatConfig
from engine.config.precedence import flow_lookup, security_keys
from engine.config.properties import parse_properties
from engine.config.read_keys import ReadKeys, remark
from engine.config.unknown_keys import unknown_key_message, unknown_keys
from engine.config.values import ConfigError, boolean
from engine.security.client_keys import cluster_security
from engine.security.secrets import held_secret, hide, resolve_references, revealed, secret_values


def load(path: str | os.PathLike, quiet: bool = False) -> EngineConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(file), f"cannot read the config file: {error.strerror}") from None
    return from_properties(parse_properties(text), quiet)



def from_properties(props: dict[str, str], quiet: bool = False) -> EngineConfig:
    resolved, provided = resolve_references(props)
    props = ReadKeys(held_secret(resolved))  # a message that quotes a secret's value prints [hidden]
    props.read.update(k for k in props if k.startswith("config.providers"))
    config = _with_plain_clients(_from_properties(props))
    secrets = provided | secret_values(resolved)
    for cluster in config.clusters.values():
        secrets |= secret_values(cluster.client)
    for flow in config.flows:  # a client role's own login (`B.admin.sasl.jaas.config`)
        for role in CLIENT_ROLES:
            secrets |= secret_values(getattr(flow, role))
    hide(secrets)  # from here on, no log line or error of this process prints them
    config = msgspec.structs.replace(config, secrets=frozenset(secrets))
    unused = props.unused()
    worker_keys = [k for k in unused if _is_connect_worker_key(k, config.clusters)]
    if worker_keys:
        remark(props, logging.INFO, f"{len(worker_keys)} keys of MM2's Connect workers and driver are accepted and not "
                                f"used: {', '.join(worker_keys)}")
    unused = [k for k in unused if k not in worker_keys]
    unknown = unknown_keys(unused, [a.strip() for a in props.get("clusters", "").split(",") if a.strip()])
    unused = [k for k in unused if k not in dict(unknown)]
    if unused:
        remark(props, logging.WARNING, f"{len(unused)} keys of the configuration are not used by mirror-engine "
                                        f"(ignored): {', '.join(unused)}")
    for key, meant in unknown:  # MM2 ignores them, and so does run; check-config refuses them
        remark(props, logging.WARNING, unknown_key_message(key, meant) + " (ignored, as MM2 ignores it)")
    config = msgspec.structs.replace(config, unknown_keys=unknown)
    if not quiet:
        for level, message in props.remarks:
            logging.getLogger("engine.config").log(level, "%s", message)
    return msgspec.structs.replace(config, remarks=[message for _, message in props.remarks])


def _from_properties(props: ReadKeys) -> EngineConfig:
    if "clusters" not in props:
        raise ConfigError("clusters", "missing: list the cluster aliases, e.g. clusters = A, B")
    aliases = [a.strip() for a in props["clusters"].split(",") if a.strip()]
    if not aliases:
        raise ConfigError("clusters", "is empty")
    if len(set(aliases)) != len(aliases):
        raise ConfigError("clusters", f"lists an alias twice: {props['clusters']!r}")

    flows = []
    for key, value in props.items():
        match = re.fullmatch(r"([^.]+?)->([^.]+)\.enabled", key)  # not A->B.emit.*.enabled
        if match:
            props.read.add(key)
        if not match or not boolean(key, value):
            continue
        source, target = match.groups()
        for alias in (source, target):
            if alias not in aliases:
                raise ConfigError(key, f"cluster {alias!r} is not listed in clusters = {props['clusters']}")
        if source == target:
            raise ConfigError(key, "a flow needs two different clusters")
        flows.append(flow_config(props, source, target))

    clusters = {}
    for alias in aliases:
        servers = props.get(f"{alias}.bootstrap.servers", "").strip()
        if not servers:
            if any(alias in (f.source, f.target) for f in flows):
                raise ConfigError(f"{alias}.bootstrap.servers", f"missing for cluster {alias}, used by an enabled flow")
            continue
        clusters[alias] = ClusterConfig(alias=alias, bootstrap_servers=servers, client=_client(props, alias))
    top: dict[str, Any] = {setting.attr: _top_level(props, setting) for setting in KEYS
           if setting.scope == "top" and setting.attr and setting.name != LOOP_KEY}
    loop = props.get(LOOP_KEY, DEFAULT_LOOP).strip()  # a message of its own, as the command line's --loop
    if loop not in LOOPS:
        raise ConfigError(LOOP_KEY, f"{loop!r}: expected one of {', '.join(LOOPS)}")
    return EngineConfig(clusters=clusters, flows=flows, all_flows=flows, raw=dict(props),
                        heartbeats=_heartbeats(props, aliases, clusters),
                        metrics_listen=top["metrics_listen"].strip(), loop=loop,
                        secrets_reload_interval_s=float(top["secrets_reload_interval_s"]),
                        heartbeat_alert_s=top["heartbeat_alert_s"], group_id=top["group_id"].strip(),
                        group_session_timeout_ms=top["group_session_timeout_ms"])


def _top_level(props: dict[str, str], setting: Key) -> object:
    """A top-level key's value by the key table, or its default."""
    if setting.name in props:
        return setting.value(setting.name, props[setting.name])
    return setting.default_value()


def _with_plain_clients(config: EngineConfig) -> EngineConfig:
    """The clients' settings as plain strings: the clients and the workers need the values themselves."""
    replace = msgspec.structs.replace
    clusters = {alias: replace(cluster, client=revealed(cluster.client)) for alias, cluster in config.clusters.items()}
    flows = [replace(flow, **{role: revealed(getattr(flow, role)) for role in CLIENT_ROLES}) for flow in config.flows]
    return replace(config, clusters=clusters, flows=flows, all_flows=flows)


# the client settings of a flow's roles (FlowConfig), in librdkafka's names
CLIENT_ROLES = ("source_consumer", "target_producer", "source_admin", "target_admin")


def for_targets(config: EngineConfig, targets: list[str]) -> EngineConfig:
    """Only the flows and heartbeats into these clusters, as MM2's driver serves `--clusters B C`."""
    unknown = [t for t in targets if t not in config.clusters]
    if unknown:
        raise ConfigError("--clusters", f"{', '.join(unknown)} not among the configured clusters "
                                        f"({', '.join(config.clusters)})")
    return msgspec.structs.replace(config, flows=[f for f in config.flows if f.target in targets],
                                   heartbeats=[h for h in config.heartbeats if h.target in targets])


def _heartbeats(props: dict[str, str], aliases: list[str], clusters: dict[str, ClusterConfig]) -> list[HeartbeatConfig]:
    """One heartbeat emitter per ordered pair of configured clusters, as MM2's herders do.

    MM2 runs a herder, and so a heartbeat connector, for every pair unless
    `emit.heartbeats.enabled = false` (top level or per pair); the flow's `enabled` does not matter.
    """
    pairs = []
    for source in aliases:
        for target in aliases:
            if source == target or source not in clusters or target not in clusters:
                continue
            get = flow_lookup(props, source, target)
            name, enabled = get("emit.heartbeats.enabled")
            if enabled is not None and not boolean(name, enabled):
                continue
            settings: dict[str, object] = {"source": source, "target": target}
            for setting in (BY_NAME[k] for k in HEARTBEAT_KEYS[1:]):
                name, value = get(setting.name)
                settings[setting.attr] = setting.value(name, value) if value is not None else setting.default_value()
            pairs.append(HeartbeatConfig(**settings))  # type: ignore[arg-type]
    return pairs


def _client(props: dict[str, str], alias: str) -> dict[str, str]:
    """The cluster's security keys in librdkafka's names."""
    security = cluster_security(alias, security_keys(props, alias))
    for note in security.notes:
        remark(props, logging.INFO, note)
    return security.settings


# Connect worker settings of MM2's herders (the key table's "worker" scope), each name also standing for
# the keys that begin with it: those the engine does not read (a cluster no flow goes into, a setting of
# a Connect worker the engine does not run) are accepted and not used
CONNECT_WORKER_PREFIXES = tuple(k.name for k in KEYS if k.scope == "worker")


def _is_connect_worker_key(key: str, clusters: dict[str, ClusterConfig]) -> bool:
    alias, _, rest = key.partition(".")
    return key.startswith(CONNECT_WORKER_PREFIXES) or (alias in clusters and rest.startswith(CONNECT_WORKER_PREFIXES))
