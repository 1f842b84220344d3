"""One cluster as the batch relay sees it: its brokers, each partition's leader, one connection per broker."""

from __future__ import annotations

from engine.batch import protocol
from engine.batch.connection import BrokerConnection, BrokerConnectionError
from engine.batch.security import Security

# a partition whose leader moves or is elected: refresh the metadata and try again
LEADER_ERRORS = {3, 5, 6, 74, 75}  # unknown partition, leader not available, not leader, fenced/unknown epoch


class NoLeader(Exception):
    """A partition without a leader right now (being elected, or the topic is not there yet)."""


class Brokers:
    def __init__(self, bootstrap_servers: str, client_id: str = "mirror-engine", timeout_s: float = 30.0,
                 security: Security | None = None):
        """security: TLS and SASL for every connection (None: PLAINTEXT); a refusal raises ClusterRefused."""
        self._bootstrap = []
        for server in bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            self._bootstrap.append((host, int(port)))
        self._client_id, self._timeout_s, self._security = client_id, timeout_s, security
        self._connections: dict[int, BrokerConnection] = {}
        self._addresses: dict[int, tuple[str, int]] = {}
        self._leaders: dict[tuple[str, int], int] = {}
        self._metadata: BrokerConnection | None = None  # Metadata requests only, one at a time

    def refresh(self, topics: list[str]) -> None:
        """Reads the leaders of these topics' partitions from any broker that answers, on a connection of its
        own: the brokers' connections carry pipelined requests whose responses must come back in order."""
        candidates = list(self._addresses.values()) + self._bootstrap
        last_error: Exception | None = None
        for address in [None] + candidates:
            try:
                if address is not None or self._metadata is None:
                    if self._metadata is not None:
                        self._metadata.close()
                    self._metadata = None
                    self._metadata = BrokerConnection(*(address or candidates[0]), self._client_id, self._timeout_s,
                                                      self._security)
                metadata = protocol.read_metadata(self._metadata.call(protocol.API_METADATA,
                                                                      protocol.metadata_request(topics)))
            except BrokerConnectionError as error:
                last_error = error
                continue
            self._addresses.update(metadata.brokers)
            for topic, (_, partitions) in metadata.topics.items():
                for index, partition in partitions.items():
                    if partition.error == 0 and partition.leader >= 0:
                        self._leaders[(topic, index)] = partition.leader
                    else:
                        self._leaders.pop((topic, index), None)
            return
        raise BrokerConnectionError(f"no broker of {self._bootstrap} answers: {last_error}")

    def leader(self, topic: str, partition: int) -> int:
        if (topic, partition) not in self._leaders:
            self.refresh([topic])
        if (topic, partition) not in self._leaders:
            raise NoLeader(f"{topic}-{partition} has no leader")
        return self._leaders[(topic, partition)]

    def connection(self, node: int) -> BrokerConnection:
        if node not in self._connections:
            host, port = self._addresses[node]
            self._connections[node] = BrokerConnection(host, port, self._client_id, self._timeout_s,
                                                       self._security)
        return self._connections[node]

    def any_connection(self) -> BrokerConnection:
        if not self._connections and not self._addresses:
            self.refresh([])
        return self._connections[next(iter(self._connections))] if self._connections else self.connection(
            next(iter(self._addresses)))

    def forget_leader(self, topic: str, partition: int) -> None:
        self._leaders.pop((topic, partition), None)

    def forget(self, node: int) -> None:
        """Drops a broker's connection after it failed; requests still waiting on it are lost."""
        connection = self._connections.pop(node, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for node in list(self._connections):
            self.forget(node)
        if self._metadata is not None:
            self._metadata.close()
            self._metadata = None
