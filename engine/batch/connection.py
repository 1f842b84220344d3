"""One blocking connection to one broker: the versions checked once, requests pipelined, responses in order.

A response is read into a fresh bytearray: the batches the relay rewrites in place live there.
TLS wraps the socket with the standard library's ssl; SASL logs in with SaslHandshake and SaslAuthenticate
before ApiVersions' check, and again before the session the broker gives expires (docs/batch-relay.md,
"Security").
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections import deque

from engine.batch import protocol
from engine.batch.scram import HASHES, ScramClient, ScramError
from engine.batch.security import Security

_SIZE = struct.Struct(">i")
API_NAMES = {protocol.API_PRODUCE: "Produce", protocol.API_FETCH: "Fetch", protocol.API_METADATA: "Metadata",
             protocol.API_VERSIONS: "ApiVersions", protocol.API_INIT_PRODUCER_ID: "InitProducerId",
             protocol.API_SASL_HANDSHAKE: "SaslHandshake", protocol.API_SASL_AUTHENTICATE: "SaslAuthenticate"}
_SASL_APIS = (protocol.API_SASL_HANDSHAKE, protocol.API_SASL_AUTHENTICATE)
_REAUTH_AT = 0.85  # of the session's lifetime: log in again, between requests, before the broker closes
_SASL_KEYS = ("sasl.jaas.config", "sasl.mechanism")
_SMALL = 16384  # parts of a request below this size are joined before a TLS socket sends them


class BrokerConnectionError(Exception):
    """The broker cannot be reached, closed the connection, or does not serve a request version we frame."""


class BrokerConnection:
    def __init__(self, host: str, port: int, client_id: str = "mirror-engine", timeout_s: float = 30.0,
                 security: Security | None = None):
        self.address = f"{host}:{port}"
        self._client_id = client_id.encode()
        self._correlation = 0
        self._pending: deque[int] = deque()  # correlation ids of the requests sent, in order
        self._security = security
        self._reauth_at: float | None = None  # monotonic time to log in again, when the session expires
        try:
            plain = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise BrokerConnectionError(f"cannot connect to broker {self.address}: {error}") from error
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket: socket.socket = plain
        if security is not None and security.tls is not None:
            try:
                self._socket = security.tls.wrap_socket(plain, server_hostname=host)
            except ssl.SSLError as error:
                plain.close()
                raise security.tls_refused(error) from error
            except OSError as error:
                plain.close()
                raise BrokerConnectionError(f"TLS handshake with broker {self.address} failed: {error}") from error
        self._setting_up = True  # a TLS alert now (TLS 1.3's refused client certificate) is a refusal
        try:
            if security is not None and security.mechanism is not None:
                self._login(security)
            self._check_versions()
        except BaseException:
            self._socket.close()
            raise
        self._setting_up = False

    def _login(self, security: Security) -> None:
        """SaslHandshake, then one SaslAuthenticate (PLAIN) or two (SCRAM's client-first and client-final)."""
        mechanism = security.mechanism or ""
        error, enabled = protocol.read_sasl_handshake(self.call(protocol.API_SASL_HANDSHAKE,
                                                                protocol.sasl_handshake_request(mechanism)))
        if error:
            raise security.refused(f"the listener does not enable SASL mechanism {mechanism}",
                                   f"it enables {', '.join(enabled) or 'none'}", ("sasl.mechanism",))
        if mechanism in HASHES:
            scram = ScramClient(mechanism, security.username, security.password)
            try:
                server_first = self._authenticate(security, scram.first())
                scram.check(self._authenticate(security, scram.final(server_first)))
            except ScramError as failure:
                raise security.refused("SASL authentication failed", str(failure), _SASL_KEYS) from failure
        else:
            self._authenticate(security, f"\0{security.username}\0{security.password}".encode())

    def _authenticate(self, security: Security, auth: bytes) -> bytes:
        error, message, answer, lifetime_ms = protocol.read_sasl_authenticate(
            self.call(protocol.API_SASL_AUTHENTICATE, protocol.sasl_authenticate_request(auth)))
        if error:
            raise security.refused("SASL authentication failed", message or f"error code {error}", _SASL_KEYS)
        self._reauth_at = time.monotonic() + _REAUTH_AT * lifetime_ms / 1000 if lifetime_ms > 0 else None
        return answer

    def _check_versions(self) -> None:
        served = protocol.read_api_versions(self.call(protocol.API_VERSIONS, protocol.api_versions_request()))
        for api, version in protocol.VERSIONS.items():
            if api in _SASL_APIS:
                continue  # used before this check, when the cluster logs in
            low, high = served.get(api, (0, -1))
            if not low <= version <= high:
                raise BrokerConnectionError(f"broker {self.address} does not serve {API_NAMES[api]} v{version} "
                                       f"(it serves v{low}-v{high})")

    def send(self, api: int, body: list) -> int:
        """Sends a request without waiting; its response comes from `receive`, in the order sent."""
        if self._reauth_at is not None and not self._pending and time.monotonic() >= self._reauth_at \
                and api not in _SASL_APIS and self._security is not None:
            self._login(self._security)  # KIP-368: the broker closes a connection whose session expired
        self._correlation += 1
        buffers = protocol.request(api, self._correlation, self._client_id, body)
        try:
            if isinstance(self._socket, ssl.SSLSocket):
                self._send_tls(buffers)
            else:
                total = sum(len(b) for b in buffers)
                sent = self._socket.sendmsg(buffers)
                if sent < total:  # a short write: the rest byte-exact, from where it stopped
                    rest = memoryview(b"".join(bytes(b) for b in buffers))[sent:]
                    self._socket.sendall(rest)
        except OSError as error:
            raise BrokerConnectionError(f"sending to broker {self.address} failed: {error}") from error
        self._pending.append(self._correlation)
        return self._correlation

    def _send_tls(self, buffers: list) -> None:
        """An SSL socket has no sendmsg: the small parts are joined, the batches' views sent as they are."""
        joined = bytearray()
        for buffer in buffers:
            if len(buffer) < _SMALL:
                joined += buffer
                continue
            if joined:
                self._socket.sendall(joined)
                joined = bytearray()
            self._socket.sendall(buffer)
        if joined:
            self._socket.sendall(joined)

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
        except ssl.SSLError as error:
            if self._setting_up and self._security is not None:
                raise self._security.tls_refused(error) from error
            raise BrokerConnectionError(f"reading from broker {self.address} failed: {error}") from error
        except OSError as error:
            raise BrokerConnectionError(f"reading from broker {self.address} failed: {error}") from error
        return buffer

    def close(self) -> None:
        self._socket.close()
