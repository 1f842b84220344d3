"""The key table (engine/config/keys.py) is the one source of the keys: the docs' reference is
generated from it, its defaults are the model's, its secrets are masked."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.config.keys import BY_NAME, KEYS
from engine.config.model import EngineConfig, FlowConfig, HeartbeatConfig
from engine.config.reference import rewritten
from engine.config.values import ConfigError
from engine.security.secrets import is_secret_key

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_KEYS = ("emit.heartbeats.interval.seconds", "heartbeats.topic.replication.factor")


def test_the_committed_reference_is_the_one_the_table_generates():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == rewritten(page), "docs/configuration.md differs from the key table: run `make config-docs`"


def _struct_default(struct, attr: str):
    field = next(f for f in msgspec.structs.fields(struct) if f.name == attr)
    return field.default


@pytest.mark.parametrize("key", [k for k in KEYS if k.attr and k.default is not None], ids=lambda k: k.name)
def test_a_keys_default_is_the_models(key):
    struct = HeartbeatConfig if key.name in HEARTBEAT_KEYS else EngineConfig if key.scope == "top" else FlowConfig
    assert key.default_value() == _struct_default(struct, key.attr)


def test_every_model_field_a_key_sets_exists():
    fields = {f.name for s in (FlowConfig, EngineConfig, HeartbeatConfig) for f in msgspec.structs.fields(s)}
    assert [k.name for k in KEYS if k.attr and k.attr not in fields] == []


def test_the_table_names_each_key_once_and_in_a_known_scope():
    assert len(BY_NAME) == len(KEYS)
    assert {k.scope for k in KEYS} <= {"top", "cluster", "worker", "flow", "client"}


def test_every_secret_of_the_table_is_masked():
    secrets = [k.name for k in KEYS if k.secret]
    assert "sasl.jaas.config" in secrets and "ssl.keystore.password" in secrets
    assert [name for name in secrets if not is_secret_key(name)] == []


def test_a_choice_names_the_key_and_what_it_takes():
    with pytest.raises(ConfigError, match=r"^A->B.offset.translation: expected exact or mm2, got 'fast'$"):
        BY_NAME["offset.translation"].value("A->B.offset.translation", "fast")
    with pytest.raises(ConfigError, match=r"expected enabled, disabled or preparing, got 'on'"):
        BY_NAME["exactly.once.source.support"].value("B.exactly.once.source.support", "on")


def test_unknown_key_detection_knows_the_tables_keys_and_suggests_them():
    from engine.config.unknown_keys import unknown_keys
    assert unknown_keys(["A->B.mirror.engine.resume.from.target.enabld", "mirror.engine.group.session.timeout",
                         "A->B.record.filter.anything", "B.offset.storage.partitions"], ["A", "B"]) == [
        ("A->B.mirror.engine.resume.from.target.enabld", "A->B.mirror.engine.resume.from.target.enabled"),
        ("mirror.engine.group.session.timeout", "mirror.engine.group.session.timeout.ms"),
    ]


def test_a_connect_worker_key_of_the_table_is_accepted_and_not_used():
    from engine.config.loading import from_properties
    config = from_properties({"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
                              "A->B.enabled": "true", "B.rest.advertised.host.name": "mm2-1",
                              "A.offset.storage.partitions": "5", "mirror.engine.metrics.listen": ""}, quiet=True)
    assert "2 keys of MM2's Connect workers and driver are accepted and not used: A.offset.storage.partitions, " \
           "B.rest.advertised.host.name" in config.remarks
    assert config.unknown_keys == []
