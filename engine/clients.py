"""librdkafka client configuration shared by every client the engine creates."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.config.model import ClusterConfig
from engine.logs import RepeatedLines

# the first request to each cluster waits this long for an answer, unless a command says otherwise
CLUSTER_CHECK_TIMEOUT_S = 15.0

_librdkafka_log = logging.getLogger("librdkafka")
# a cluster that cannot be reached makes librdkafka repeat one line per connection attempt (hundreds
# in 15 s): each distinct line is printed once per interval, with the count of its repeats
_librdkafka_log.addFilter(RepeatedLines(30.0))


class ClusterUnreachable(RuntimeError):
    """A cluster did not answer or refused the engine; the message names the alias, servers and keys."""


class Interrupted(RuntimeError):
    """A wait was given up because the process is stopping."""


def client_config(cluster: ClusterConfig | dict[str, str], client_id: str, **settings: object) -> dict[str, Any]:
    """Connection settings of a cluster plus a client.id in MM2's format and the given settings
    (a user's `client.id` among them goes in front of the engine's id).

    librdkafka's own log lines go through Python logging (served by the client's poll), not
    raw to stderr.
    """
    base = role_connection(cluster if isinstance(cluster, dict) else connection(cluster), settings)
    user_id = settings.pop("client.id", None) or base.get("client.id")
    if user_id:  # MM2's format: [userClientId|]A->B|<connector>|<role>, so broker quotas keep applying
        client_id = f"{user_id}|{client_id}"
    return {**base, "client.id": client_id, "logger": _librdkafka_log, **settings}


def connection(cluster: ClusterConfig) -> dict[str, str]:
    return {**cluster.client, "bootstrap.servers": cluster.bootstrap_servers}


def role_connection(base: dict[str, str], overrides: Mapping[str, object]) -> dict[str, str]:
    """The connection settings under a client role's overrides. A role with security keys of its own
    (`B.admin.sasl.jaas.config`, …) has a complete security set among its overrides, always with a
    security.protocol: the cluster's security settings are then dropped, not mixed with it (a role on
    SSL must not keep the cluster's SASL login). Its bootstrap.servers, if any, wins by merging."""
    if "security.protocol" not in overrides:
        return base
    return {k: v for k, v in base.items() if k in ("bootstrap.servers", "client.id")}


def has_own_security(overrides: dict[str, str]) -> bool:
    """Whether a role's clients log in with settings of their own (not rotated with the cluster's)."""
    return "security.protocol" in overrides


# the process's long-lived clients per cluster alias, so rotated SASL credentials reach them
# (confluent-kafka's producers and consumers take no weak reference: closing one untracks it)
_long_lived: dict[str, list] = defaultdict(list)


def track(alias: str, client):
    """Registers a client that lives as long as the engine runs, or until untrack; returns it."""
    _long_lived[alias].append(client)
    return client


def untrack(client) -> None:
    for clients in _long_lived.values():
        if client in clients:
            clients.remove(client)


def rotate_sasl_credentials(alias: str, username: str, password: str) -> int:
    """Gives every long-lived client of the cluster new PLAIN/SCRAM credentials, used from its next
    login on (a reconnect, or the re-authentication the broker asks for: connections.max.reauth.ms)."""
    rotated = 0
    for client in list(_long_lived[alias]):
        try:
            client.set_sasl_credentials(username, password)
            rotated += 1
        except RuntimeError:  # closed meanwhile
            untrack(client)
    return rotated


class DeliveryTally:
    """on_delivery for best-effort writes (heartbeats, offset syncs): counts, and logs the 1st and
    every 100th failure instead of one line per record."""

    def __init__(self, what: str):
        self.what = what
        self.sent = 0
        self.failures = 0

    def __call__(self, err, _message) -> None:
        if err is None:
            self.sent += 1
            return
        self.failures += 1
        if self.failures == 1 or self.failures % 100 == 0:
            logging.getLogger("engine").warning("%s failed (%d so far): %s", self.what, self.failures, err.str())


class _Hint(NamedTuple):
    marker: str  # text of librdkafka's error
    meaning: str
    keys: tuple[str, ...]  # the config keys that decide it
    refused: bool  # the cluster answered and said no: waiting longer will not help


_CONNECTION_HINTS = (
    _Hint("SASL authentication", "SASL authentication failed", ("sasl.jaas.config", "sasl.mechanism"), True),
    _Hint("OAUTHBEARER token", "the OAuth token endpoint refused the client",
          ("sasl.jaas.config", "sasl.oauthbearer.token.endpoint.url"), True),
    _Hint("certificate verify failed", "the broker's certificate is not trusted", ("ssl.truststore.location",), True),
    # TLS 1.3 reports a refused client certificate after the handshake, as a transport error
    _Hint("alert", "the broker refused the client certificate", ("ssl.keystore.location",), True),
    _Hint("security.protocol", "the listener speaks another protocol", ("security.protocol",), False),
)


class ConnectionErrors:
    """error_cb of a client: keeps the last error of a connection, so that a request that waits in
    vain can say why (a wrong password, an untrusted certificate) rather than only that it timed out."""

    def __init__(self) -> None:
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._TRANSPORT,
                            KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
            if self.last is None or self.last.code() not in (KafkaError._AUTHENTICATION, KafkaError._SSL) \
                    or error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
                self.last = error

    @property
    def refused(self) -> bool:
        """The cluster answered and refused us: waiting longer will not help."""
        return self.last is not None and (self.last.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)
                                          or any(h.refused and h.marker in self.last.str() for h in _CONNECTION_HINTS))


def connection_failure(cluster: ClusterConfig, error: str, waited_s: float) -> str:
    """One line that names the cluster, what went wrong and the config keys to look at."""
    for hint in _CONNECTION_HINTS:
        if hint.marker in error:
            named = ", ".join(f"{cluster.alias}.{key}" for key in hint.keys)
            return (f"cluster {cluster.alias} ({cluster.bootstrap_servers}): {hint.meaning}: {error} "
                    f"(config keys: {named})")
    return (f"cluster {cluster.alias} ({cluster.bootstrap_servers}) did not answer within {waited_s:.0f}s: {error} "
            f"(config key: {cluster.alias}.bootstrap.servers)")


def cluster_id(cluster: ClusterConfig, timeout_s: float = CLUSTER_CHECK_TIMEOUT_S,
               go_on: Callable[[], bool] = lambda: True) -> str:
    """The cluster's id: the first request to each cluster, so its error says why it failed.

    Blocks for at most timeout_s; a refused login or handshake ends the wait at once, and so does
    go_on() turning false (the process is stopping: Interrupted)."""
    errors = ConnectionErrors()
    admin = AdminClient(client_config(cluster, f"{cluster.alias}|mirror-engine|cluster-check", error_cb=errors))
    future = admin.describe_cluster(request_timeout=timeout_s)
    # error_cb is served by poll()
    while not future.done() and not errors.refused:
        if not go_on():
            raise Interrupted(f"stopped while waiting for cluster {cluster.alias}")
        admin.poll(0.1)
    if errors.refused and errors.last is not None:  # refused: the error is kept
        raise ClusterUnreachable(connection_failure(cluster, errors.last.str(), timeout_s))
    try:
        description = future.result()
    except KafkaException as error:
        reason = errors.last.str() if errors.last is not None else error.args[0].str()
        raise ClusterUnreachable(connection_failure(cluster, reason, timeout_s)) from None
    return description.cluster_id


# what a partition answers while its leadership settles: a just-created topic, a broker that restarted
_SETTLING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
             KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


def settling(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _SETTLING


def settled_watermarks(consumer, topic: str, partition: int, timeout_s: float = 60.0) -> tuple[int, int]:
    """(low, high) of a partition, asked again while its leadership settles; the last error after
    timeout_s, or at once for an error that waiting does not cure."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        except KafkaException as error:
            if not settling(error.args[0]) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
