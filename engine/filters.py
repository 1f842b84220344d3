"""Topic filters: MM2's `topics` / `topics.exclude` lists (MM2-REFERENCE §3.1)."""

from __future__ import annotations

import re

import msgspec


def split_list(value: str) -> list[str]:
    """A Connect LIST value: trimmed, split on commas with surrounding whitespace; '' is []."""
    value = value.strip()
    return [item for item in re.split(r"\s*,\s*", value)] if value else []


def compile_list(value: str, key: str) -> re.Pattern[str] | None:
    """Entries joined with '|' into one regex matching whole names; None for an empty list."""
    items = split_list(value)
    if not items:
        return None
    try:
        return re.compile("|".join(items))
    except re.error as error:
        from engine.config import ConfigError

        raise ConfigError(key, f"invalid regular expression {value!r}: {error}") from None


class TopicFilter(msgspec.Struct, frozen=True):
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None

    def matches(self, topic: str) -> bool:
        if self.include is None or not self.include.fullmatch(topic):
            return False
        return self.exclude is None or not self.exclude.fullmatch(topic)
