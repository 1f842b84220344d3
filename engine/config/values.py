"""The values of an mm2.properties and the error that names a bad one.

Every reader of the file (the model's loader, the filters, the security keys, the client overrides)
converts through these and raises ConfigError, so a bad value is one line naming its key. Nothing
here imports the rest of the engine: everything config-facing imports downward from this module.
"""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """An invalid mm2.properties; the message names the key (and the file)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def boolean(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigError(key, f"expected true or false, got {value!r}")


def integer(key: str, value: str, minimum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(key, f"expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(key, f"must be at least {minimum}, got {number}")
    return number


def replication_factor(key: str, value: str) -> int:
    number = integer(key, value)
    if number == 0 or number < -1:
        raise ConfigError(key, f"must be -1 (broker default) or a positive count, got {number}")
    return number


def non_negative_seconds(key: str, value: str) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        raise ConfigError(key, f"expected a number of seconds, got {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise ConfigError(key, f"must be 0 (off) or more seconds, got {value!r}")
    return seconds


def parse_listen(key: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(key, f"expected host:port (e.g. 127.0.0.1:9464), got {value!r}")
    return host, int(port)


def split_list(value: str) -> list[str]:
    """A Connect LIST value: trimmed, split on commas with surrounding whitespace; '' is []."""
    value = value.strip()
    return [item for item in re.split(r"\s*,\s*", value)] if value else []


def convert(key: str, value: str, kind: str, minimum: int | None = None) -> object:
    """One setting of a kind: "bool", "non-negative" (an integer), "count" is a positive integer, "seconds" a
    positive whole number of seconds (as a float), "rf" a replication factor, "non-negative-seconds" 0 or more
    seconds (a float), "integer" one of at least `minimum`."""
    if kind == "integer":
        return integer(key, value, minimum=minimum)
    if kind == "non-negative-seconds":
        return non_negative_seconds(key, value)
    if kind == "bool":
        return boolean(key, value)
    if kind == "rf":
        return replication_factor(key, value)
    if kind == "non-negative":
        return integer(key, value, minimum=0)
    if kind == "seconds":
        return float(integer(key, value, minimum=1))
    return integer(key, value, minimum=1)
