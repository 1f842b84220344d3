"""A local OAuth 2.0 authorization server for the sandbox: client-credentials grant, RS256 JWTs.

Brokers validate the tokens against `GET /jwks` (Kafka's OAuthBearerValidatorCallbackHandler with
`sasl.oauthbearer.jwks.endpoint.url`); clients fetch them from `POST /token` (librdkafka's
`sasl.oauthbearer.method=oidc`). It listens on 127.0.0.1 only, in a daemon thread, with one RSA
key made at construction. Tokens are signed here with `cryptography`, not with a JOSE library:

    signing input = base64url(header) "." base64url(claims)
    JWT           = signing input "." base64url(RSASSA-PKCS1-v1_5 SHA-256 signature of it)

base64url without '=' padding (RFC 7515 section 2); header {"alg": "RS256", "typ": "JWT", "kid"};
claims iss, sub (the client id), aud, iat, exp, jti and, when the client asked for one, scope.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.sandbox.distribution import SandboxError

DEFAULT_AUDIENCE = "kafka"
DEFAULT_TOKEN_LIFETIME_S = 3600
# Since Kafka 4.0 (CVE-2025-27817) a JVM refuses every OAuth URL, JWKS or token endpoint, that this
# system property does not list, comma-separated and matched exactly; its default lists none
ALLOWED_URLS_PROPERTY = "org.apache.kafka.sasl.oauthbearer.allowed.urls"
_OAUTHBEARER = "org.apache.kafka.common.security.oauthbearer"
VALIDATOR_CALLBACK_HANDLER = f"{_OAUTHBEARER}.OAuthBearerValidatorCallbackHandler"
LOGIN_MODULE = f"{_OAUTHBEARER}.OAuthBearerLoginModule"


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS (RFC 7515) encodes every part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint_b64url(value: int) -> str:
    # JWK integers (RFC 7518 section 6.3.1): big-endian, no leading zero bytes
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class OAuthSettings:
    """What a broker needs to accept this server's tokens on one SASL listener."""

    jwks_url: str
    issuer: str
    audience: str

    def listener_properties(self, listener: str = "OAUTH") -> dict[str, str]:
        """server.properties for `listener` (a SASL_PLAINTEXT or SASL_SSL listener name).

        Every key carries the listener prefix, and the OAUTHBEARER ones the mechanism prefix too,
        so another SASL listener of the broker keeps its own mechanisms; the broker has no
        top-level sasl.jaas.config, so the login module entry must be listener-scoped.
        """
        listener_prefix = f"listener.name.{listener.lower()}."
        prefix = listener_prefix + "oauthbearer."
        return {
            listener_prefix + "sasl.enabled.mechanisms": "OAUTHBEARER",
            prefix + "sasl.jaas.config": f"{LOGIN_MODULE} required;",
            prefix + "sasl.server.callback.handler.class": VALIDATOR_CALLBACK_HANDLER,
            prefix + "sasl.oauthbearer.jwks.endpoint.url": self.jwks_url,
            prefix + "sasl.oauthbearer.expected.issuer": self.issuer,
            prefix + "sasl.oauthbearer.expected.audience": self.audience,
        }

    def jvm_options(self) -> tuple[str, ...]:
        """The broker JVM's system properties; without it the broker exits at start-up."""
        return (f"-D{ALLOWED_URLS_PROPERTY}={self.jwks_url}",)


@dataclass
class OAuthServer:
    """Issues RS256 access tokens to registered clients (client id -> secret). Use as a context
    manager or start()/stop(); `token_url`, `jwks_url`, `issuer` are known once started."""

    clients: dict[str, str]
    audience: str = DEFAULT_AUDIENCE
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
    # None: the server's base URL, as real providers name themselves
    issuer_name: str | None = None
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._lock = threading.Lock()
        self._issued = 0
        self._rejected = 0
        # "POST /token basic client=app scope='...' -> 200", newest last: what a failing test shows
        self._requests: deque[str] = deque(maxlen=200)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise SandboxError("the OAuth server is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    @property
    def issuer(self) -> str:
        return self.issuer_name or self.base_url

    def settings(self) -> OAuthSettings:
        """The broker side of this server (the KafkaCluster's OAuth listener)."""
        return OAuthSettings(jwks_url=self.jwks_url, issuer=self.issuer, audience=self.audience)

    def client_config(self, client_id: str, scope: str = "") -> dict[str, str]:
        """librdkafka settings that fetch tokens from here (add bootstrap.servers)."""
        config = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": client_id,
            "sasl.oauthbearer.client.secret": self.clients[client_id],
            "sasl.oauthbearer.token.endpoint.url": self.token_url,
        }
        if scope:
            config["sasl.oauthbearer.scope"] = scope
        return config

    # -- counters, for tests that check a client really fetched a token ---------------------

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._issued

    @property
    def requests_rejected(self) -> int:
        with self._lock:
            return self._rejected

    def request_log(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def _record(self, line: str) -> None:
        with self._lock:
            self._requests.append(line)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OAuthServer:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.oauth = self  # type: ignore[attr-defined]  # the handler's way back to us
        self._server = server
        # stop() waits up to one poll interval for the serving loop to notice
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-oauth",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- keys and tokens ---------------------------------------------------------------------

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def jwks(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.key_id,
            "n": _uint_b64url(numbers.n), "e": _uint_b64url(numbers.e),
        }]}

    def issue_token(self, client_id: str, scope: str = "") -> dict[str, Any]:
        """The token response (RFC 6749 section 5.1) for an already authenticated client."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": client_id, "aud": self.audience,
            "iat": now, "exp": now + self.token_lifetime_s, "jti": uuid.uuid4().hex,
        }
        if scope:
            # Kafka's broker validator refuses a present but empty scope ("scope value must be
            # non-empty"); without one the claim is left out, as RFC 9068 section 2.2.3 allows
            claims["scope"] = scope
        with self._lock:
            self._issued += 1
        return {
            "access_token": self.sign(claims),
            "token_type": "bearer",
            "expires_in": self.token_lifetime_s,
        }

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.key_id}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{b64url(signature)}"

    def authenticate(self, candidates: list[tuple[str | None, str | None]]) -> str | None:
        """The client id of the first (id, secret) pair that matches a registered client."""
        for client_id, secret in candidates:
            if client_id is None or secret is None:
                continue
            if self.clients.get(client_id) == secret:
                return client_id
        with self._lock:
            self._rejected += 1
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "sandbox-oauth/1"
    _status = 0

    @property
    def oauth(self) -> OAuthServer:
        return self.server.oauth  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the counters, not stderr

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/jwks":
            self._reply(200, self.oauth.jwks())
        else:
            self._reply(404, {"error": "not_found"})
        self.oauth._record(f"GET {self.path} -> {self._status}")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/token":
            self._reply(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = {name: values[0] for name, values in parse_qs(body).items()}
        if form.get("grant_type") != "client_credentials":
            self._reply(400, {"error": "unsupported_grant_type"})
            self.oauth._record(f"POST /token grant_type={form.get('grant_type')!r} -> 400")
            return
        # RFC 6749 section 2.3.1: HTTP Basic or the body's client_id/client_secret fields
        candidates = _basic_credentials(self.headers.get("Authorization"))
        how = "basic" if candidates else "form"
        if not candidates:
            candidates = [(form.get("client_id"), form.get("client_secret"))]
        client_id = self.oauth.authenticate(candidates)
        scope = form.get("scope", "")
        if client_id is None:
            # RFC 6749 section 5.2: 401 with a challenge when the client tried HTTP Basic
            challenge = {"WWW-Authenticate": 'Basic realm="sandbox"'}
            self._reply(401, {"error": "invalid_client"}, challenge)
        else:
            self._reply(200, self.oauth.issue_token(client_id, scope))
        client = candidates[-1][0]
        self.oauth._record(f"POST /token {how} client={client} scope={scope!r} -> {self._status}")

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _basic_credentials(header: str | None) -> list[tuple[str | None, str | None]]:
    """(id, secret) readings of an `Authorization: Basic` header; [] when there is none."""
    if not header or not header.lower().startswith("basic "):
        return []
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return [(None, None)]
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return [(None, None)]
    # RFC 6749 section 2.3.1 form-urlencodes id and secret before the Basic encoding, but many
    # clients send them raw; a registered secret holding '+' or '%' must match either way
    return [(client_id, secret), (unquote_plus(client_id), unquote_plus(secret))]
