"""SASL OAUTHBEARER end to end: a Kafka 4.3.1 listener that validates RS256 JWTs against the sandbox
OAuth server's JWKS, and librdkafka's OIDC client-credentials login (`sasl.oauthbearer.method=oidc`)
fetching tokens from that server's /token over plain http on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from engine.sandbox import KafkaCluster
from engine.sandbox.oauth import OAuthServer
from tests.helpers import wait_for
from tests.integration.conftest import GIVEN_SECRETS

CLIENT_ID = "mirror-engine"
CLIENT_SECRET = "oauth-sandbox-secret"
WRONG_SECRET = "a-wrong-oauth-secret"
GIVEN_SECRETS.update({CLIENT_SECRET, WRONG_SECRET})
SCOPE = "kafka.read kafka.write"
TIMEOUT_S = 30
T = TypeVar("T")


@pytest.fixture(scope="module")
def oauth_server():
    with OAuthServer({CLIENT_ID: CLIENT_SECRET}) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_cluster(oauth_server, sandbox_dir):
    # the JWKS must answer before the brokers start: they fetch the keys while configuring
    cluster = KafkaCluster(f"oauth-{os.getpid()}", base_dir=sandbox_dir, oauth=oauth_server.settings())
    with cluster:
        yield cluster


@pytest.fixture
def topic(oauth_cluster) -> str:
    name = f"oauth-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(oauth_cluster.admin_config())  # must outlive the future
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=TIMEOUT_S)
    return name


class _Recorder:
    """error_cb and librdkafka's log lines of one client, for the assertions and for diagnostics."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self.logs: list[str] = []
        self.logger = logging.getLogger(f"oauth-test-{uuid.uuid4().hex[:8]}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        recorder = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                recorder.logs.append(record.getMessage())

        self.logger.addHandler(_Handler())

    def config(self) -> dict[str, object]:
        return {"error_cb": self.errors.append, "logger": self.logger}

    def report(self, server: OAuthServer, cluster: KafkaCluster) -> str:
        return "\n".join([
            f"error_cb: {[str(e) for e in self.errors]}",
            "librdkafka log:", *self.logs[-20:],
            "OAuth server requests:", *server.request_log()[-20:],
            cluster.log_tail(1, 30),
        ])


def _client_config(server: OAuthServer, cluster, recorder: _Recorder, **overrides: str) -> dict:
    return {
        "bootstrap.servers": cluster.oauth_bootstrap_servers,
        **server.client_config(CLIENT_ID, scope=SCOPE),
        **recorder.config(),
        **overrides,
    }


def _broker_logged(cluster: KafkaCluster, text: str) -> None:
    """Waits until the broker's log says why it refused a token (it logs after it answers)."""
    wait_for(lambda: text in cluster.member(1).log_file.read_text(errors="replace"), TIMEOUT_S,
             f"the broker to log {text!r}", lambda: cluster.log_tail(1, 30))


def _serving(producer: Producer, result: Callable[[], T]) -> Callable[[], T]:
    """A wait_for predicate that serves the producer's callbacks, then reads what they recorded
    (poll()'s own count also counts log lines, so it says nothing about delivery or errors)."""

    def predicate() -> T:
        producer.poll(0.2)
        return result()

    return predicate


def _produce_one(producer: Producer, topic: str, value: bytes) -> list:
    results: list = []
    producer.produce(topic, value, on_delivery=lambda error, msg: results.append((error, msg)))
    return results


def test_oidc_client_produces_and_consumes(oauth_server, oauth_cluster, topic):
    recorder = _Recorder()
    issued_before = oauth_server.tokens_issued

    def diagnostics() -> str:
        return recorder.report(oauth_server, oauth_cluster)

    producer = Producer(_client_config(oauth_server, oauth_cluster, recorder))
    delivered = _produce_one(producer, topic, b"over oauth")
    wait_for(_serving(producer, lambda: delivered), TIMEOUT_S, "the delivery report", diagnostics)
    assert delivered[0][0] is None, delivered
    assert producer.flush(TIMEOUT_S) == 0

    consumer = Consumer({
        **_client_config(oauth_server, oauth_cluster, recorder),
        "group.id": f"oauth-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
    })
    try:
        consumer.subscribe([topic])

        def one_record():
            msg = consumer.poll(0.5)
            return msg if msg is not None and msg.error() is None else None

        msg = wait_for(one_record, TIMEOUT_S, "the record over the OAUTH listener", diagnostics)
        assert msg.value() == b"over oauth"
    finally:
        consumer.close()

    assert recorder.errors == [], diagnostics()
    # each client logged in with a token of its own from our /token, by HTTP Basic, with the scope
    assert oauth_server.tokens_issued >= issued_before + 2
    fetch = f"POST /token basic client={CLIENT_ID} scope='{SCOPE}' -> 200"
    assert fetch in oauth_server.request_log()


def test_oidc_client_without_a_scope(oauth_server, oauth_cluster, topic):
    # no sasl.oauthbearer.scope: the token carries no scope claim, which the broker accepts
    recorder = _Recorder()
    config = _client_config(oauth_server, oauth_cluster, recorder)
    del config["sasl.oauthbearer.scope"]
    producer = Producer(config)

    def diagnostics() -> str:
        return recorder.report(oauth_server, oauth_cluster)

    delivered = _produce_one(producer, topic, b"no scope")
    wait_for(_serving(producer, lambda: delivered), TIMEOUT_S, "the delivery report", diagnostics)
    assert delivered[0][0] is None and recorder.errors == [], diagnostics()
    assert f"POST /token basic client={CLIENT_ID} scope='' -> 200" in oauth_server.request_log()


def test_wrong_client_secret_is_an_authentication_error(oauth_server, oauth_cluster, topic):
    recorder = _Recorder()
    rejected_before = oauth_server.requests_rejected
    producer = Producer(_client_config(
        oauth_server, oauth_cluster, recorder, **{"sasl.oauthbearer.client.secret": "wrong"}
    ))
    delivered = _produce_one(producer, topic, b"never")
    wait_for(_serving(producer, lambda: recorder.errors), TIMEOUT_S, "error_cb",
             lambda: recorder.report(oauth_server, oauth_cluster))
    error = recorder.errors[0]
    assert error.code() == KafkaError._AUTHENTICATION
    # librdkafka quotes the token endpoint's error body
    assert error.str() == 'Failed to acquire SASL OAUTHBEARER token: {"error": "invalid_client"}'
    # and logs (facility OIDC, level 3) the endpoint's status; it retries every 10 s or so
    failure = f'Failed to retrieve OIDC token from "{oauth_server.token_url}": ' \
              '{"error": "invalid_client"} (401)'
    assert any(line.endswith(failure) for line in recorder.logs), recorder.logs
    assert oauth_server.requests_rejected > rejected_before
    assert delivered == []  # the broker was never reached
    producer.purge()
    producer.flush(1)


def test_token_signed_by_an_unknown_key_is_refused(oauth_server, oauth_cluster, topic):
    # same issuer and audience, another key: only the signature check can tell the tokens apart
    with OAuthServer({CLIENT_ID: CLIENT_SECRET}, issuer_name=oauth_server.issuer,
                     audience=oauth_server.audience) as impostor:
        recorder = _Recorder()
        producer = Producer(_client_config(
            oauth_server, oauth_cluster, recorder,
            **{"sasl.oauthbearer.token.endpoint.url": impostor.token_url},
        ))
        delivered = _produce_one(producer, topic, b"never")
        wait_for(_serving(producer, lambda: recorder.errors), TIMEOUT_S, "error_cb",
                 lambda: recorder.report(oauth_server, oauth_cluster))
        error = recorder.errors[0]
        assert impostor.tokens_issued >= 1
        assert error.code() == KafkaError._AUTHENTICATION
        # e.g. "sasl_plaintext://127.0.0.1:41085/bootstrap: SASL authentication error:
        # {"status":"invalid_token"} (after 305ms in state AUTH_REQ)"
        assert 'SASL authentication error: {"status":"invalid_token"}' in error.str()
        assert delivered == []
        header = f'{{"alg":"RS256","typ":"JWT","kid":"{impostor.key_id}"}}'
        _broker_logged(oauth_cluster, f"suitable verification key for JWS w/ header {header}")
        producer.purge()
        producer.flush(1)


def test_token_for_another_audience_is_refused(oauth_server, oauth_cluster, topic):
    recorder = _Recorder()
    expected = oauth_server.audience
    oauth_server.audience = "not-kafka"  # the brokers still expect the old one
    try:
        producer = Producer(_client_config(oauth_server, oauth_cluster, recorder))
        _produce_one(producer, topic, b"never")
        wait_for(_serving(producer, lambda: recorder.errors), TIMEOUT_S, "error_cb",
                 lambda: recorder.report(oauth_server, oauth_cluster))
    finally:
        oauth_server.audience = expected
    assert 'SASL authentication error: {"status":"invalid_token"}' in recorder.errors[0].str()
    _broker_logged(oauth_cluster, "Audience (aud) claim [not-kafka] doesn't contain an acceptable")
    producer.purge()
    producer.flush(1)


# -- the engine on an OAuth cluster, configured with MM2's Java keys ---------------------------

def _engine_properties(oauth_server, oauth_cluster, target_cluster, topic: str, secret_file) -> str:
    from tests.integration.conftest import ClusterHandle
    from tests.integration.kafka_io import mm2_properties

    return mm2_properties(ClusterHandle("A", oauth_cluster.bootstrap_servers, oauth_cluster), target_cluster, {
        "A->B.topics": topic,
        "A.bootstrap.servers": oauth_cluster.oauth_bootstrap_servers,
        "A.security.protocol": "SASL_PLAINTEXT",
        "A.sasl.mechanism": "OAUTHBEARER",
        "A.sasl.login.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
        "A.sasl.oauthbearer.token.endpoint.url": oauth_server.token_url,
        "A.sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                              f'clientId="{CLIENT_ID}" clientSecret="${{file:{secret_file}:secret}}" scope="{SCOPE}";',
        # the engine's principal is a super user here: heartbeats into A need no ACLs
        "emit.heartbeats.enabled": "false",
    })


def test_engine_replicates_from_an_oauth_cluster(oauth_server, oauth_cluster, target_cluster, topic, engine,
                                                 tmp_path):
    from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, produce, read_all

    records = [Record(0, f"k{i}".encode(), f"v{i}".encode(), (("h", b"x"),), BASE_TIMESTAMP_MS + i)
               for i in range(50)]
    produce(oauth_cluster.bootstrap_servers, topic, records)
    secret_file = tmp_path / "oauth.properties"
    secret_file.write_text(f"secret={CLIENT_SECRET}\n")
    issued_before = oauth_server.tokens_issued
    run = engine(_engine_properties(oauth_server, oauth_cluster, target_cluster, topic, secret_file))
    remote = f"A.{topic}"
    wait_for(lambda: remote in target_cluster.admin().list_topics(timeout=10).topics
             and sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= 50,
             60, "50 records copied from the OAuth cluster", run.log)
    assert read_all(target_cluster.bootstrap_servers, remote)[0] == records
    assert oauth_server.tokens_issued > issued_before  # the engine's clients logged in with tokens
    assert run.stop() == 0
    assert CLIENT_SECRET not in run.log()


def test_engine_names_the_cluster_when_the_token_endpoint_refuses(oauth_server, oauth_cluster, target_cluster,
                                                                  topic, engine, tmp_path):
    secret_file = tmp_path / "oauth.properties"
    secret_file.write_text(f"secret={WRONG_SECRET}\n")
    run = engine(_engine_properties(oauth_server, oauth_cluster, target_cluster, topic, secret_file))
    assert run.wait(60) == 2, run.log()
    log = run.log()
    assert f"cluster A ({oauth_cluster.oauth_bootstrap_servers}): the OAuth token endpoint refused the client: " \
           'Failed to acquire SASL OAUTHBEARER token: {"error": "invalid_client"} ' \
           "(config keys: A.sasl.jaas.config, A.sasl.oauthbearer.token.endpoint.url)" in log, log
    assert WRONG_SECRET not in log
