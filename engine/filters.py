"""Topic filters: MM2's `topics` / `topics.exclude` lists (docs/design.md, 'Topic selection and remote topics')."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from engine.config.values import ConfigError, boolean, split_list
from engine.java_regex import JavaRegexError, compile_java


def compile_list(value: str, key: str) -> re.Pattern[str] | None:
    """Entries joined with '|' into one regex matching whole names, as MM2's filters compile them:
    a Java regex, translated (engine.java_regex); None for an empty list."""
    items = split_list(value)
    if not items:
        return None
    pattern = "|".join(items)
    try:
        return compile_java(pattern)
    except JavaRegexError as error:
        joined = f" (the list joined with |, as MM2 compiles it: {pattern!r})" if len(items) > 1 else f" ({pattern!r})"
        raise ConfigError(key, f"invalid Java regular expression: {error}{joined}") from None


class TopicFilter(msgspec.Struct, frozen=True):
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None

    def matches(self, topic: str) -> bool:
        if self.include is None or not self.include.fullmatch(topic):
            return False
        return self.exclude is None or not self.exclude.fullmatch(topic)


class RecordFilterConfig(msgspec.Struct, frozen=True):
    """Which records of a flow are copied: every condition given must hold.

    Keys, per flow (`A->B.record.filter.…`) or top level:
      header.present = H[, H2]   the record carries each of these headers
      header.absent = H[, H2]    the record carries none of these headers
      header.equals = H=value    header H is present with exactly this (UTF-8) value
      key.prefix = p[, p2]       the key starts with one of these prefixes (a null key never does)
      partitions = 0, 2          only these source partitions are replicated at all
      python = module:function   function(topic, partition, key, value, headers) -> bool, per
                                 record in Python: the slow path, opt-in
    """

    header_present: list[str] = []
    header_absent: list[str] = []
    header_equals: list[tuple[str, bytes]] = []
    key_prefixes: list[bytes] = []
    partitions: list[int] | None = None
    python: str | None = None

    def per_record(self) -> bool:
        """True when records must be looked at one by one (partitions alone need no look)."""
        return bool(self.header_present or self.header_absent or self.header_equals or self.key_prefixes
                    or self.python)


RECORD_FILTER_PREFIX = "record.filter."
_FILTER_TRANSFORM = "org.apache.kafka.connect.transforms.Filter"
_HAS_HEADER_KEY = "org.apache.kafka.connect.transforms.predicates.HasHeaderKey"


def record_filter(get, prefix: str) -> RecordFilterConfig | None:
    """Reads the built-in keys and maps Connect `transforms` onto them, or refuses them by key.

    get(key) returns (the name the key was found under, its value or None), applying the
    flow-beats-top-level precedence; prefix is the flow's `A->B.`.
    """
    settings: dict[str, Any] = {}
    for option in ("header.present", "header.absent", "header.equals", "key.prefix", "partitions", "python"):
        name, value = get(RECORD_FILTER_PREFIX + option)
        if value is None:
            continue
        items = split_list(value)
        if option == "header.present":
            settings["header_present"] = items
        elif option == "header.absent":
            settings["header_absent"] = items
        elif option == "header.equals":
            pairs = []
            for item in items:
                header, sep, wanted = item.partition("=")
                if not sep or not header:
                    raise ConfigError(name, f"expected HEADER=value, got {item!r}")
                pairs.append((header, wanted.encode()))
            settings["header_equals"] = pairs
        elif option == "key.prefix":
            settings["key_prefixes"] = [item.encode() for item in items]
        elif option == "partitions":
            try:
                settings["partitions"] = sorted({int(item) for item in items})
            except ValueError:
                raise ConfigError(name, f"expected partition numbers, got {value!r}") from None
        elif option == "python":
            module, sep, function = value.strip().partition(":")
            if not sep or not module or not function:
                raise ConfigError(name, f"expected module:function, got {value!r}")
            settings["python"] = value.strip()
    _map_connect_transforms(get, settings)
    return RecordFilterConfig(**settings) if settings else None


def _map_connect_transforms(get, settings: dict[str, Any]) -> None:
    """Connect's Filter SMT with a HasHeaderKey predicate maps onto header.present / absent."""
    name, transforms = get("transforms")
    for alias in split_list(transforms or ""):
        type_key, kind = get(f"transforms.{alias}.type")
        if kind is None:
            raise ConfigError(f"transforms.{alias}.type", f"missing for transform {alias!r}")
        if kind.strip() != _FILTER_TRANSFORM:
            raise ConfigError(type_key, f"transform {kind.strip()!r} is not supported; only {_FILTER_TRANSFORM} "
                                        f"with a HasHeaderKey predicate maps onto a built-in record filter")
        predicate_key, predicate = get(f"transforms.{alias}.predicate")
        if predicate is None:
            raise ConfigError(f"transforms.{alias}.predicate", "a Filter without a predicate drops every record")
        predicate_type_key, predicate_type = get(f"predicates.{predicate.strip()}.type")
        if predicate_type is None or predicate_type.strip() != _HAS_HEADER_KEY:
            raise ConfigError(predicate_type_key, f"predicate {predicate_type!r} is not supported; only "
                                                  f"{_HAS_HEADER_KEY} maps onto a built-in record filter")
        header_key, header = get(f"predicates.{predicate.strip()}.name")
        if not header:
            raise ConfigError(header_key, "HasHeaderKey needs the header name")
        negate_key, negate = get(f"transforms.{alias}.negate")
        # Filter drops the records its predicate matches; negate drops the others
        if negate is not None and boolean(negate_key, negate):
            settings["header_present"] = list(settings.get("header_present", [])) + [header.strip()]
        else:
            settings["header_absent"] = list(settings.get("header_absent", [])) + [header.strip()]


def load_python_filter(spec: str, key: str = RECORD_FILTER_PREFIX + "python"):
    """Imports `module:function`; an error names the key."""
    import importlib

    module_name, _, function_name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(key, f"cannot load record filter {spec!r}: {error}") from None
    if not callable(function):
        raise ConfigError(key, f"{spec!r} is not callable")
    return function
