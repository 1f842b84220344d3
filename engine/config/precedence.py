"""Which key of an mm2.properties sets a setting, as MM2 reads it: `<source>-><target>.<key>` beats the
top-level `<key>` for a flow; `<alias>.` security keys beat the top-level ones for a cluster; a Connect
worker setting of the herders into `<target>` comes from `<target>.` or the top level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.config.read_keys import mark_read

# connection keys that a top-level entry applies to every cluster (docs/design.md, 'How the file becomes settings')
CONNECTION_PREFIXES = ("security.protocol", "ssl.", "sasl.")


def flow_lookup(props: Mapping[str, str], source: str, target: str) -> Callable[..., tuple[str, str | None]]:
    """get(key, default=None) -> (the key as found, its value or default): the flow's
    `<source>-><target>.<key>` beats the top-level `<key>`."""
    prefix = f"{source}->{target}."

    def get(key: str, default: str | None = None) -> tuple[str, str | None]:
        if prefix + key in props:
            return prefix + key, props[prefix + key]
        return key, props.get(key, default)

    return get


# Top-level keys MM2's dedicated driver copies into every herder's worker config over the target
# cluster's `<target>.` keys (MirrorMakerConfig.workerConfig: `<target>.*` first, then these top-level
# prefixes, then the defaults such as `mm2-offsets.<source>.internal`)
WORKER_TOP_LEVEL_PREFIXES = ("offset.storage", "config.storage", "status.storage")


def worker_key(props: Mapping[str, str], target: str, key: str) -> str | None:
    """The key of the file that sets Connect worker setting `key` of the herders into `target`, as
    MM2 reads it; None when the file sets none.

    For the prefixes MM2 copies from the top level (`offset.storage.*`, …) the top-level key wins over
    `<target>.<key>`; other worker settings are MM2's from `<target>.` only, and the engine also takes
    the top-level key when `<target>.` does not set one.
    """
    top_level_wins = key.startswith(WORKER_TOP_LEVEL_PREFIXES)
    for name in ((key, f"{target}.{key}") if top_level_wins else (f"{target}.{key}", key)):
        if name in props:
            return name
    return None


def security_keys(props: dict[str, str], alias: str) -> dict[str, tuple[str, str]]:
    """The cluster's security keys (top level, then `<alias>.`, which wins): Java key -> (the key as
    written, value)."""
    keys: dict[str, tuple[str, str]] = {}
    for scope in ("", f"{alias}."):
        for key, value in props.items():
            if key.startswith(scope) and key[len(scope):].startswith(CONNECTION_PREFIXES):
                keys[key[len(scope):]] = (key, value)
                mark_read(props, key)
    return keys
