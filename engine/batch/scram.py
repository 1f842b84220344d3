"""SCRAM-SHA-256 and SCRAM-SHA-512's client side (RFC 5802, RFC 7677), from hashlib and hmac.

Three messages: the client's first (a user name and a fresh nonce), its final (the proof, once the
server's first gave its nonce, salt and iteration count), and the check of the server's final (its
signature: the broker knows the password too). No channel binding (`n,,`), as Kafka's clients do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_GS2_HEADER = "n,,"


class ScramError(Exception):
    """The server's answer does not follow SCRAM, or it refused the login."""


def _name(user: str) -> str:
    return user.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: str) -> dict[str, str]:
    return {part[0]: part[2:] for part in message.split(",") if len(part) >= 2 and part[1] == "="}


class ScramClient:
    def __init__(self, mechanism: str, user: str, password: str, nonce: str | None = None):
        self._hash = HASHES[mechanism]
        self._password = password.encode()
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={_name(user)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return (_GS2_HEADER + self._first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        fields = _attributes(text)
        if "e" in fields:
            raise ScramError(f"the server refused the login: {fields['e']}")
        try:
            nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        except (KeyError, ValueError) as error:
            raise ScramError(f"the server's first SCRAM message is malformed ({error})") from error
        if not nonce.startswith(self._nonce) or nonce == self._nonce:
            raise ScramError("the server's SCRAM nonce does not extend the client's")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        binding = base64.b64encode(_GS2_HEADER.encode()).decode()
        without_proof = f"c={binding},r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: bytes) -> None:
        """Raises unless the server's final message carries the signature only the password's holder makes."""
        fields = _attributes(server_final.decode())
        if "e" in fields:
            raise ScramError(f"the server refused the login: {fields['e']}")
        if not hmac.compare_digest(base64.b64decode(fields.get("v", "")), self._server_signature):
            raise ScramError("the server's SCRAM signature is wrong: it does not know the password")
