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
