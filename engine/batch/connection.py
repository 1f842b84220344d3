"""One blocking connection to one broker: the versions checked once, requests pipelined, responses in order.

A response is read into a fresh bytearray: the batches the relay rewrites in place live there.
PLAINTEXT only in part 1; TLS wraps the socket with the standard library's ssl and SASL adds its two
requests before ApiVersions' check (docs/batch-relay.md, "The protocol client").
"""

from __future__ import annotations

import socket
import struct
from collections import deque

from engine.batch import protocol

_SIZE = struct.Struct(">i")
API_NAMES = {protocol.API_PRODUCE: "Produce", protocol.API_FETCH: "Fetch", protocol.API_METADATA: "Metadata",
             protocol.API_VERSIONS: "ApiVersions", protocol.API_INIT_PRODUCER_ID: "InitProducerId"}


class BrokerConnectionError(Exception):
    """The broker cannot be reached, closed the connection, or does not serve a request version we frame."""


class BrokerConnection:
    def __init__(self, host: str, port: int, client_id: str = "mirror-engine", timeout_s: float = 30.0):
        self.address = f"{host}:{port}"
        self._client_id = client_id.encode()
        self._correlation = 0
        self._pending: deque[int] = deque()  # correlation ids of the requests sent, in order
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise BrokerConnectionError(f"cannot connect to broker {self.address}: {error}") from error
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._check_versions()

    def _check_versions(self) -> None:
        served = protocol.read_api_versions(self.call(protocol.API_VERSIONS, protocol.api_versions_request()))
        for api, version in protocol.VERSIONS.items():
            low, high = served.get(api, (0, -1))
            if not low <= version <= high:
                raise BrokerConnectionError(f"broker {self.address} does not serve {API_NAMES[api]} v{version} "
                                       f"(it serves v{low}-v{high})")

    def send(self, api: int, body: list) -> int:
        """Sends a request without waiting; its response comes from `receive`, in the order sent."""
        self._correlation += 1
        buffers = protocol.request(api, self._correlation, self._client_id, body)
        try:
            total = sum(len(b) for b in buffers)
            sent = self._socket.sendmsg(buffers)
            if sent < total:  # a short write: the rest byte-exact, from where it stopped
                rest = memoryview(b"".join(bytes(b) for b in buffers))[sent:]
                self._socket.sendall(rest)
        except OSError as error:
            raise BrokerConnectionError(f"sending to broker {self.address} failed: {error}") from error
        self._pending.append(self._correlation)
        return self._correlation

    def receive(self) -> protocol.Reader:
        """The response to the oldest request still waiting, positioned after its correlation id."""
        expected = self._pending.popleft()
        (size,) = _SIZE.unpack(self._read(4))
        buffer = self._read(size)
        (correlation,) = _SIZE.unpack_from(buffer, 0)
        if correlation != expected:
            raise BrokerConnectionError(f"broker {self.address} answered request {correlation}, expected {expected}")
        return protocol.Reader(buffer, 4)

    def call(self, api: int, body: list) -> protocol.Reader:
        self.send(api, body)
        return self.receive()

    def fileno(self) -> int:
        return self._socket.fileno()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _read(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        try:
            while got < size:
                n = self._socket.recv_into(view[got:])
                if n == 0:
                    raise BrokerConnectionError(f"broker {self.address} closed the connection")
                got += n
        except OSError as error:
            raise BrokerConnectionError(f"reading from broker {self.address} failed: {error}") from error
        return buffer

    def close(self) -> None:
        self._socket.close()
