"""Secrets kept out of messages at the source: the value of a secret key is held as a Secret, which
formats as [hidden] however a message formats it; clients still get the value itself. Short secrets
that are parts of common words (password `kafka`, user `mirror`) garble nothing."""

from __future__ import annotations

import logging
import re

import msgspec
import pytest

from engine import cli
from engine.config.loading import from_properties
from engine.config.values import ConfigError
from engine.security import secrets
from engine.security.secrets import MASK, Secret, revealed

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
FILE = {
    "clusters": "A, B", "A.bootstrap.servers": "kafka-1:9092,kafka-2:9092", "B.bootstrap.servers": "mirror-b:9092",
    "A->B.enabled": "true", "A.security.protocol": "SASL_PLAINTEXT", "A.sasl.mechanism": "PLAIN",
    "A.sasl.jaas.config": f'{PLAIN} required username="mirror" password="kafka";',
    "B.ssl.truststore.password": "kafka", "mirror.engine.metrics.listen": "",
}
# `kafka` as a whole token: not inside kafka-1, org.apache.kafka.common or Kafka's
PASSWORD_TOKEN = re.compile(r"(?<![\w.\-])kafka(?![\w\-]|\.\w)")


@pytest.fixture(autouse=True)
def own_redactor(monkeypatch):
    monkeypatch.setattr(secrets, "REDACTOR", secrets.Redactor())  # this test's secrets stay its own


def test_a_secret_formats_as_hidden_every_way_and_reveals_its_value():
    secret = Secret("kafka")
    assert [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, "%r" % secret,  # noqa: UP031
            f"{secret}", f"{secret:>10}"] == [MASK] * 7 + [f"{MASK:>10}"]
    assert secret == "kafka" and secret.reveal() == "kafka" and type(secret.reveal()) is str
    assert type(secret.strip()) is str  # what is derived is a plain str: the redaction is its net


def test_the_files_secret_values_are_held_as_secrets_and_the_clients_get_plain_values():
    config = from_properties(FILE, quiet=True)
    jaas = config.raw["A.sasl.jaas.config"]
    assert isinstance(jaas, Secret) and isinstance(config.raw["B.ssl.truststore.password"], Secret)
    assert not isinstance(config.raw["A.bootstrap.servers"], Secret)
    assert str(ConfigError("A.sasl.jaas.config", f"cannot use {jaas!r}")) == "A.sasl.jaas.config: cannot use [hidden]"
    client = config.clusters["A"].client
    assert (client["sasl.username"], client["sasl.password"]) == ("mirror", "kafka")
    assert [v for c in config.clusters.values() for v in c.client.values() if type(v) is not str] == []
    msgspec.json.encode(config.clusters)  # what a worker is sent: plain strings only
    assert revealed({"ssl.key.password": Secret("kafka")}) == {"ssl.key.password": "kafka"}
    assert type(revealed({"ssl.key.password": Secret("kafka")})["ssl.key.password"]) is str
    assert config.secrets == {"kafka", f'{PLAIN} required username="mirror" password="kafka";'}


def test_a_log_line_that_formats_a_secret_value_prints_it_hidden(caplog):
    config = from_properties(FILE, quiet=True)
    with caplog.at_level(logging.INFO, logger="engine.test"):
        logging.getLogger("engine.test").info("login %s, trust store %r", config.raw["A.sasl.jaas.config"],
                                               config.raw["B.ssl.truststore.password"])
    assert [r.getMessage() for r in caplog.records] == ["login [hidden], trust store [hidden]"]


def test_check_config_shows_neither_the_short_password_nor_garbled_words(tmp_path, capsys):
    path = tmp_path / "mm2.properties"
    path.write_text("".join(f"{key} = {value}\n" for key, value in FILE.items()), encoding="utf-8")
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "A: bootstrap.servers = kafka-1:9092,kafka-2:9092" in out and "B: bootstrap.servers = mirror-b:9092" in out
    assert "    sasl.password = [hidden]\n    sasl.username = mirror\n" in out
    assert "where mirror-engine differs from MM2's defaults:" in out
    assert "[hidden]-" not in out and "-[hidden]" not in out and not PASSWORD_TOKEN.search(out)


def test_an_error_line_of_a_file_with_a_short_password_garbles_nothing(tmp_path, capsys):
    path = tmp_path / "mm2.properties"
    bad = {**FILE, "A.sasl.jaas.config": f'{PLAIN} required username="mirror" password="kafka"',
           "B.bootstrap.servers": "kafka-9:9092"}
    path.write_text("".join(f"{key} = {value}\n" for key, value in bad.items()), encoding="utf-8")
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mirror-engine: error: A.sasl.jaas.config: login module ")
    assert "[hidden]-" not in err[0] and not PASSWORD_TOKEN.search(err[0]), err
