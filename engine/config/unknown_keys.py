"""Keys of an mm2.properties that neither MM2 nor the engine knows: typos such as `A->B.enabeld` or
`A->B.topcis`, the most expensive mistakes a file can hold (nothing enabled, every topic copied).

MM2 ignores such keys; so does `run`, with a warning. `check-config` refuses them (exit 1) unless
`--lenient`. A key is known when Kafka 4.3.1's classes define it for its scope (engine/config/known_keys.py,
read from the jars), when it belongs to a family MM2 passes on (`config.providers.*`,
`replication.policy.*`, `transforms.*`, ...), or when the key table (engine/config/keys.py) has it. Only keys the
engine did not read are checked: the ones it reads it knows.
"""

from __future__ import annotations

import difflib
import re

from engine.config.keys import KEYS
from engine.config.known_keys import CLIENT_KEYS, CONNECTOR_KEYS, DRIVER_KEYS, WORKER_KEYS

# the keys of the key table (engine.config.keys), by where they may be written; its families' members
# are open-ended (config providers' parameters, a policy's own settings, Connect transforms, predicates
# and topic creation groups, the engine's topic configs and record filter), except a client role's,
# whose keys are the Java client's
_TABLE = frozenset(k.name for k in KEYS if k.kind != "family")
# (the engine's own top-level keys too: written per flow they are not read, and said so, but not refused)
_TABLE_FLOW = frozenset(k.name for k in KEYS if k.kind != "family" and (k.scope == "flow" or k.mm2 is None))
_TABLE_CLUSTER = frozenset(k.name for k in KEYS if k.kind != "family" and k.scope in ("cluster", "worker", "client"))
FAMILIES = tuple(k.name for k in KEYS if k.kind == "family" and k.scope in ("top", "flow"))
# client roles: `<role>.<client key>` at the top level or per cluster; per flow also these
ROLES = ("consumer.", "producer.", "admin.")
FLOW_ROLES = ROLES + ("source.consumer.", "target.consumer.", "source.producer.", "target.producer.",
                      "source.admin.", "target.admin.", "producer.override.", "consumer.override.", "admin.override.",
                      "source.cluster.", "target.cluster.")
_FLOW_KEY = re.compile(r"([^.]+?)->([^.]+)\.(.+)")

_TOP = DRIVER_KEYS | CONNECTOR_KEYS | WORKER_KEYS | CLIENT_KEYS | _TABLE
_CLUSTER = CLIENT_KEYS | WORKER_KEYS | _TABLE_CLUSTER
_FLOW = CONNECTOR_KEYS | _TABLE_FLOW


def unknown_keys(keys: list[str], aliases: list[str]) -> list[tuple[str, str | None]]:
    """(key, the known key it most likely meant, or None) for each key no scope knows."""
    unknown = []
    for key in keys:
        scope, rest, names, roles = _scope(key, aliases)
        if not _known(rest, names, roles):
            unknown.append((key, _suggestion(scope, rest, names, roles)))
    return unknown


def _scope(key: str, aliases: list[str]) -> tuple[str, str, frozenset[str], tuple[str, ...]]:
    """(the prefix, the key without it, the names known there, the client role prefixes there)."""
    flow = _FLOW_KEY.fullmatch(key)
    if flow is not None:
        return f"{flow.group(1)}->{flow.group(2)}.", flow.group(3), _FLOW, FLOW_ROLES
    alias, _, rest = key.partition(".")
    if alias in aliases and rest:
        return f"{alias}.", rest, _CLUSTER, ROLES
    return "", key, _TOP, ROLES


def _known(rest: str, names: frozenset[str], roles: tuple[str, ...]) -> bool:
    if rest in names or rest.startswith(FAMILIES):
        return True
    return any(rest.startswith(role) and rest[len(role):] in CLIENT_KEYS for role in roles)


def _suggestion(scope: str, rest: str, names: frozenset[str], roles: tuple[str, ...]) -> str | None:
    for role in roles:  # `A.consumer.fetch.min.byte` -> `A.consumer.fetch.min.bytes`
        if rest.startswith(role):
            match = _closest(rest[len(role):], CLIENT_KEYS)
            if match is not None:
                return scope + role + match
    match = _closest(rest, names)
    return scope + match if match is not None else None


def _closest(name: str, names: frozenset[str]) -> str | None:
    longer = sorted(n for n in names if n.startswith(name + "."))  # `emit.heartbeats` -> `emit.heartbeats.enabled`
    if longer:
        return longer[0]
    matches = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.75)
    return matches[0] if matches else None


def unknown_key_message(key: str, meant: str | None) -> str:
    return f"{key} is not a key MM2 or mirror-engine knows" + (f"; did you mean `{meant}`?" if meant else "")
