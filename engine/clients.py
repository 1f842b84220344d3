"""librdkafka client configuration shared by every client the engine creates."""

from __future__ import annotations

import logging

from engine.config import ClusterConfig

_librdkafka_log = logging.getLogger("librdkafka")


def client_config(cluster: ClusterConfig | dict[str, str], client_id: str, **settings: object) -> dict[str, object]:
    """Connection settings of a cluster plus a client.id in MM2's format and the given settings.

    librdkafka's own log lines go through Python logging (served by the client's poll), not
    raw to stderr.
    """
    base = cluster if isinstance(cluster, dict) else connection(cluster)
    return {**base, "client.id": client_id, "logger": _librdkafka_log, **settings}


def connection(cluster: ClusterConfig) -> dict[str, str]:
    return {**cluster.client, "bootstrap.servers": cluster.bootstrap_servers}


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
