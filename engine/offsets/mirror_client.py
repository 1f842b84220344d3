"""What MM2's MirrorClient infers from a cluster's topic names (docs/design.md, 'What MirrorClient reads')."""

from __future__ import annotations

from engine.offsets.policy import DefaultReplicationPolicy


def heartbeat_topics(topics: list[str], policy: DefaultReplicationPolicy) -> list[str]:
    return sorted(t for t in topics if policy.is_heartbeats_topic(t))


def upstream_clusters(topics: list[str], policy: DefaultReplicationPolicy) -> set[str]:
    """Every alias in the source chain of every heartbeats topic (`B.A.heartbeats` gives B and A)."""
    aliases: set[str] = set()
    for topic in heartbeat_topics(topics, policy):
        current: str | None = topic
        while current is not None:
            source = policy.topic_source(current)
            if source is None:
                break
            aliases.add(source)
            upstream = policy.upstream_topic(current)
            current = None if upstream == current else upstream
    return aliases


def replication_hops(topics: list[str], alias: str, policy: DefaultReplicationPolicy) -> int:
    """Fewest prefix steps to reach alias over all heartbeats topics; -1 when it never appears."""
    best = -1
    for topic in heartbeat_topics(topics, policy):
        hops, current = 0, topic
        while True:
            source = policy.topic_source(current)
            if source is None:
                break
            hops += 1
            if source == alias:
                best = hops if best < 0 else min(best, hops)
                break
            upstream = policy.upstream_topic(current)
            if upstream is None or upstream == current:
                break
            current = upstream
    return best
