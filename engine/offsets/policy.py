"""Replication policies: how remote topics are named and traced back (docs/design.md, 'Replication policies')."""

from __future__ import annotations

HEARTBEATS_TOPIC = "heartbeats"


def _java_split(text: str, separator: str) -> list[str]:
    """Java's String.split on a literal: trailing empty pieces are dropped, a leading one kept.

    An empty separator (`replication.policy.separator =`, which MM2 accepts) is an empty pattern:
    Java splits between every two characters, so a name's "source" is its first character.
    """
    if separator == "":
        return list(text) or [""]
    pieces = text.split(separator)
    while pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


class DefaultReplicationPolicy:
    """`<source><sep><topic>` names, as MM2's DefaultReplicationPolicy."""

    def __init__(self, separator: str = ".", internal_separator_enabled: bool = True):
        self.separator = separator
        self.internal_separator = separator if internal_separator_enabled else "."

    def format_remote_topic(self, source_alias: str, topic: str) -> str:
        return f"{source_alias}{self.separator}{topic}"

    def topic_source(self, topic: str) -> str | None:
        pieces = _java_split(topic, self.separator)
        return pieces[0] if len(pieces) >= 2 else None

    def upstream_topic(self, topic: str) -> str | None:
        source = self.topic_source(topic)
        if source is None:
            return None
        return topic[len(source) + len(self.separator) :]

    def original_topic(self, topic: str) -> str:
        current = topic
        while True:
            upstream = self.upstream_topic(current)
            if upstream is None or upstream == current:
                return current
            current = upstream

    def is_heartbeats_topic(self, topic: str) -> bool:
        return self.original_topic(topic) == HEARTBEATS_TOPIC

    def is_checkpoints_topic(self, topic: str) -> bool:
        sep = self.internal_separator
        return topic.endswith(f"{sep}checkpoints{sep}internal")

    def is_mm2_internal_topic(self, topic: str) -> bool:
        return (
            topic.startswith("mm2") and topic.endswith(f"{self.internal_separator}internal")
        ) or self.is_checkpoints_topic(topic)

    def is_internal_topic(self, topic: str) -> bool:
        return self.is_mm2_internal_topic(topic) or topic.startswith(("__", "."))

    def is_cycle(self, topic: str, target_alias: str) -> bool:
        """MM2's rule: a topic whose source chain contains the target never goes there."""
        current: str | None = topic
        while current is not None:
            source = self.topic_source(current)
            if source is None:
                return False
            if source == target_alias:
                return True
            upstream = self.upstream_topic(current)
            if upstream is None or upstream == current:
                return False
            current = upstream
        return False


class IdentityReplicationPolicy(DefaultReplicationPolicy):
    """Remote topics keep their names (MM2's IdentityReplicationPolicy).

    Only names ending in `heartbeats` follow the default rules, so heartbeats still show the path.
    Every other topic on the target counts as coming from the configured source alias.
    """

    def __init__(self, source_alias: str | None, separator: str = ".", internal_separator_enabled: bool = True):
        super().__init__(separator, internal_separator_enabled)
        self.source_alias = source_alias

    @staticmethod
    def _looks_like_heartbeats(topic: str) -> bool:
        return topic.endswith(HEARTBEATS_TOPIC)

    def format_remote_topic(self, source_alias: str, topic: str) -> str:
        if self._looks_like_heartbeats(topic):
            return super().format_remote_topic(source_alias, topic)
        return topic

    def topic_source(self, topic: str) -> str | None:
        if self._looks_like_heartbeats(topic):
            return super().topic_source(topic)
        return self.source_alias

    def upstream_topic(self, topic: str) -> str | None:
        if self._looks_like_heartbeats(topic):
            return super().upstream_topic(topic)
        return topic


DEFAULT_POLICY_CLASS = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
IDENTITY_POLICY_CLASS = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
POLICY_CLASSES = (DEFAULT_POLICY_CLASS, IDENTITY_POLICY_CLASS)


def make_policy(policy_class: str, source_alias: str | None, separator: str = ".",
                internal_separator_enabled: bool = True) -> DefaultReplicationPolicy:
    if policy_class == IDENTITY_POLICY_CLASS:
        return IdentityReplicationPolicy(source_alias, separator, internal_separator_enabled)
    return DefaultReplicationPolicy(separator, internal_separator_enabled)
