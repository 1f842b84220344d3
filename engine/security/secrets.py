"""Secrets: Kafka's config providers and the redaction of every secret the engine holds.

`${env:VAR}`, `${file:/path/creds.properties:key}` and `${directory:/path:file}` are resolved as
Kafka's EnvVarConfigProvider, FileConfigProvider and DirectoryConfigProvider resolve them, each
time the file is loaded (so a rotated credentials file is picked up by a reload). A value that
came from a provider, and the value of every key that holds a password or key material, is a
secret: it is printed as `[hidden]` (Kafka's own mask) in logs, errors, check-config and metrics.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from engine.config.keys import KEYS
from engine.config.properties import parse_properties
from engine.config.values import ConfigError

MASK = "[hidden]"

PROVIDER_CLASSES = {
    "org.apache.kafka.common.config.provider.EnvVarConfigProvider": "env",
    "org.apache.kafka.common.config.provider.FileConfigProvider": "file",
    "org.apache.kafka.common.config.provider.DirectoryConfigProvider": "directory",
}
# Kafka's ConfigTransformer pattern: ${provider:[path:]key}
_REFERENCE = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")
# Java's PASSWORD-typed client keys and librdkafka's sensitive ones, by the end of their names
_SECRET_KEY = re.compile(
    r"(^|\.)(password|secret|sasl\.jaas\.config|ssl\.key\.pem|ssl_key|ssl\.keystore\.key|"
    r"sasl\.oauthbearer\.config|basic\.auth\.user\.info|client\.secret)$"
)
# shorter values would mask ordinary words all over the logs
MIN_SECRET_LENGTH = 4


# and every key the key table marks secret, written at any scope (`A.`, `A.consumer.`, ...)
_TABLE_SECRETS = tuple(k.name for k in KEYS if k.secret)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) or any(key == name or key.endswith("." + name) for name in _TABLE_SECRETS)


class Secret(str):
    """A secret value of the file, as the loader holds it: a `str` to the code that parses it, but
    `[hidden]` to every message that formats it (repr, str, f-strings, %-formatting), so an error or
    log line that quotes a config value cannot print it. What is derived from it (a slice, a strip,
    the value of a JAAS option) is a plain str again; the redaction below is the net for those.

    reveal() gives the value itself, for the clients that need it: librdkafka's Python bindings read
    a setting with str() and msgspec refuses str subclasses, so client settings hold plain strings.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def reveal(self) -> str:
        return str.__str__(self)  # a plain copy: str's own, not the mask


def revealed(settings: dict[str, str]) -> dict[str, str]:
    """The settings with every Secret as its plain value, for a client or a message to a worker."""
    return {key: value.reveal() if isinstance(value, Secret) else value for key, value in settings.items()}


def held_secret(settings: dict[str, str]) -> dict[str, str]:
    """The settings with the value of every secret key held as a Secret."""
    return {key: Secret(value) if value and is_secret_key(key) else value for key, value in settings.items()}


def resolve_references(props: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """The properties with every `${provider:[path:]key}` replaced, and the values that replaced them.

    Providers are the ones `config.providers` declares (`config.providers.<name>.class` one of
    Kafka's built-in classes); `env`, `file` and `directory` also work undeclared, because a
    reference left unresolved, as Java would leave it, would only fail later as a wrong password.
    """
    providers = {"env": "env", "file": "file", "directory": "directory"}
    allowed_paths: dict[str, list[Path]] = {}
    for name in (n.strip() for n in props.get("config.providers", "").split(",") if n.strip()):
        class_key = f"config.providers.{name}.class"
        class_name = props.get(class_key, "").strip()
        if class_name not in PROVIDER_CLASSES:
            raise ConfigError(class_key, f"config provider {name!r} needs one of the built-in classes "
                                         f"{', '.join(PROVIDER_CLASSES)}; got {class_name or 'nothing'!r}")
        providers[name] = PROVIDER_CLASSES[class_name]
        paths = props.get(f"config.providers.{name}.param.allowed.paths", "").strip()
        if paths:
            allowed_paths[name] = [Path(p.strip()).resolve() for p in paths.split(",") if p.strip()]

    secrets: set[str] = set()
    resolved = {}
    for key, value in props.items():
        def replace(match: re.Match, key: str = key) -> str:
            name, path, item = match.group(1), match.group(2), match.group(3)
            kind = providers.get(name)
            if kind is None:
                raise ConfigError(key, f"unknown config provider {name!r} in ${{{name}:...}}; declare it with "
                                       f"config.providers and config.providers.{name}.class")
            secret = _provide(key, kind, name, path, item, allowed_paths.get(name))
            secrets.add(secret)
            return secret

        resolved[key] = _REFERENCE.sub(replace, value) if "${" in value else value
    return resolved, secrets


def _provide(key: str, kind: str, name: str, path: str | None, item: str, allowed: list[Path] | None) -> str:
    if kind == "env":
        if path:
            raise ConfigError(key, f"${{{name}:...}} takes a variable name only, e.g. ${{{name}:KAFKA_PASSWORD}}")
        if item not in os.environ:
            raise ConfigError(key, f"environment variable {item} is not set (config provider {name})")
        return os.environ[item]
    if not path:
        raise ConfigError(key, f"${{{name}:...}} needs a path and a key, e.g. ${{{name}:/etc/kafka/creds:password}}")
    file = Path(path) / item if kind == "directory" else Path(path)
    if allowed is not None and not any(file.resolve().is_relative_to(a) for a in allowed):
        raise ConfigError(key, f"{file} is outside config.providers.{name}.param.allowed.paths")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(key, f"config provider {name} cannot read {file}: {error.strerror}") from None
    if kind == "directory":
        return text
    values = parse_properties(text)
    if item not in values:
        raise ConfigError(key, f"{file} has no key {item!r} (config provider {name})")
    return values[item]


# A secret is masked only as a whole token: not inside a word, a host name or a dotted name, so a
# short password "kafka" hides `password=kafka;` but leaves `kafka-1:9092` and `kafka.example.com`
# readable (a sentence's final full stop still ends the token).
TOKEN_START = r"(?<![A-Za-z0-9_.\-])"
TOKEN_END = r"(?![A-Za-z0-9_\-]|\.[A-Za-z0-9_\-])"


class Redactor:
    """Replaces every known secret in a text by MASK, where it stands as a whole token. One per
    process, shared by all threads."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern | None = None
        self._lock = threading.Lock()

    def hide(self, values) -> None:
        fresh: set[str] = set()
        for value in values:
            if not value:
                continue
            # key material: the whole block, and each long line of it should one be printed alone
            fresh.update(part for part in [value, *value.splitlines()] if len(part.strip()) >= MIN_SECRET_LENGTH)
        with self._lock:
            if fresh <= self._secrets:
                return
            self._secrets |= fresh
            ordered = sorted(self._secrets, key=len, reverse=True)  # the longest first: no half-masked secret
            self._pattern = re.compile(
                TOKEN_START + "(?:" + "|".join(re.escape(s) for s in ordered) + ")" + TOKEN_END)

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None and text else text


REDACTOR = Redactor()


def hide(values) -> None:
    """Adds values to the process's secrets."""
    REDACTOR.hide(values)


def redact(text: str) -> str:
    return REDACTOR(text)


def secret_values(settings: dict[str, str]) -> set[str]:
    """The values of the secret keys among these settings (plain strings)."""
    return {value.reveal() if isinstance(value, Secret) else value
            for key, value in settings.items() if is_secret_key(key) and value}


def masked(settings: dict[str, str]) -> dict[str, str]:
    """The settings to print: secret keys' values masked, every other value redacted."""
    return {key: MASK if is_secret_key(key) else redact(value) for key, value in settings.items()}
