"""A cluster's security keys, as a Java client (and so MM2) reads them, mapped onto librdkafka's.

| Java key | librdkafka | |
|---|---|---|
| `security.protocol` | `security.protocol` | PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL |
| `sasl.mechanism` | `sasl.mechanisms` | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER |
| `sasl.jaas.config` | `sasl.username` + `sasl.password`; OAuth keys | see engine/security/jaas.py |
| `sasl.oauthbearer.token.endpoint.url` | the same, `sasl.oauthbearer.method=oidc` | client-credentials grant |
| `sasl.oauthbearer.client.credentials.client.id` / `.secret`, `sasl.oauthbearer.scope` | `sasl.oauthbearer.client.id` / `.secret` / `.scope` | |
| `ssl.truststore.location` / `.password` / `.type`, `ssl.truststore.certificates` | `ssl.ca.pem` | read by the engine (tls.py) |
| `ssl.keystore.location` / `.password` / `.type`, `ssl.key.password`, `ssl.keystore.key` / `.certificate.chain` | `ssl.certificate.pem` + `ssl.key.pem` | read by the engine (tls.py) |
| `ssl.endpoint.identification.algorithm` | the same | empty (Java's "off") becomes `none` |

librdkafka's own names (`sasl.username`, `ssl.ca.location`, ...) are taken as they are. Java keys
whose job OpenSSL does without being told (`ssl.protocol`, `ssl.enabled.protocols`, the key and
trust manager algorithms) are noted and dropped; keys that name Java classes are refused.
"""  # noqa: E501 (a Markdown table: its rows cannot wrap)

from __future__ import annotations

import re

from engine.config.values import ConfigError
from engine.security import jaas, tls

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
OAUTH_LOGIN_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
)
OAUTH_CLIENT_CREDENTIALS_RETRIEVER = "org.apache.kafka.common.security.oauthbearer.ClientCredentialsJwtRetriever"

# librdkafka's security keys, passed on unchanged
LIBRDKAFKA_KEYS = frozenset({
    "ssl.ca.location", "ssl.ca.pem", "ssl.ca.certificate.stores", "ssl.crl.location", "ssl.certificate.location",
    "ssl.certificate.pem", "ssl.key.location", "ssl.key.pem", "ssl.providers", "ssl.engine.id",
    "ssl.curves.list", "ssl.sigalgs.list", "enable.ssl.certificate.verification",
    "sasl.mechanisms", "sasl.username", "sasl.password", "sasl.kerberos.service.name",
    "sasl.oauthbearer.method", "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.scope", "sasl.oauthbearer.extensions", "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.config", "enable.sasl.oauthbearer.unsecure.jwt",
})
# Java keys that OpenSSL and librdkafka handle without a setting (TLS 1.2 and 1.3 are negotiated)
NOTED_JAVA_KEYS = {
    "ssl.protocol": "OpenSSL negotiates the highest of TLS 1.2 and 1.3 that both sides offer",
    "ssl.enabled.protocols": "OpenSSL negotiates the highest of TLS 1.2 and 1.3 that both sides offer",
    "ssl.keymanager.algorithm": "a Java key manager; OpenSSL has none to choose",
    "ssl.trustmanager.algorithm": "a Java trust manager; OpenSSL has none to choose",
    "ssl.secure.random.implementation": "OpenSSL uses its own random generator",
    "ssl.provider": "a Java security provider",
    "sasl.login.connect.timeout.ms": "librdkafka's token request has its own timeout",
    "sasl.login.read.timeout.ms": "librdkafka's token request has its own timeout",
    "sasl.login.refresh.window.factor": "librdkafka refreshes a token at 80% of its lifetime",
    "sasl.login.refresh.window.jitter": "librdkafka refreshes a token at 80% of its lifetime",
    "sasl.login.refresh.min.period.seconds": "librdkafka refreshes a token at 80% of its lifetime",
    "sasl.login.refresh.buffer.seconds": "librdkafka refreshes a token at 80% of its lifetime",
    "sasl.login.retry.backoff.ms": "librdkafka retries a failed token request on its own",
    "sasl.login.retry.backoff.max.ms": "librdkafka retries a failed token request on its own",
}
# consumed by the mapping below
_MAPPED_JAVA_KEYS = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.jaas.config", "sasl.login.callback.handler.class",
    "sasl.oauthbearer.jwt.retriever.class",
    "sasl.oauthbearer.client.credentials.client.id", "sasl.oauthbearer.client.credentials.client.secret",
    "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.type", "ssl.truststore.certificates",
    "ssl.keystore.location", "ssl.keystore.password", "ssl.keystore.type", "ssl.keystore.key",
    "ssl.keystore.certificate.chain", "ssl.key.password", "ssl.endpoint.identification.algorithm",
    "ssl.cipher.suites",
})
# Java cipher suite names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); OpenSSL's look like ECDHE-RSA-AES128-GCM-SHA256
_JAVA_CIPHER = re.compile(r"^(TLS|SSL)_[A-Z0-9_]+_WITH_")


class ClusterSecurity:
    """The librdkafka settings of one cluster's security keys, with notes on what was dropped."""

    def __init__(self, settings: dict[str, str], notes: list[str]):
        self.settings = settings
        self.notes = notes


def cluster_security(alias: str, keys: dict[str, tuple[str, str]], missing: str | None = None) -> ClusterSecurity:
    """keys: security key without the cluster prefix -> (the key as written in the file, value).

    alias names the clients in messages ("B", or "B (admin clients)" for one role's own security);
    missing is the prefix of a key an error asks for that the file does not have (default `<alias>.`).
    """
    def value(key: str) -> str | None:
        return keys[key][1].strip() if key in keys else None

    def written(key: str) -> str:
        return keys[key][0] if key in keys else f"{missing or alias + '.'}{key}"

    out: dict[str, str] = {}
    notes: list[str] = []
    for key, (as_written, given) in sorted(keys.items()):
        if key in LIBRDKAFKA_KEYS:
            out[key] = given
        elif key in NOTED_JAVA_KEYS:
            notes.append(f"{as_written} is not used: {NOTED_JAVA_KEYS[key]}")
        elif key in ("ssl.engine.factory.class", "sasl.client.callback.handler.class", "sasl.login.class"):
            raise ConfigError(as_written,
                              f"cluster {alias}: {given.strip()} is a Java class that librdkafka cannot run")
        elif key not in _MAPPED_JAVA_KEYS and not key.startswith(("sasl.oauthbearer.", "sasl.kerberos.")):
            raise ConfigError(as_written, f"cluster {alias}: unknown security key {key}")
        elif key not in _MAPPED_JAVA_KEYS:
            notes.append(f"{as_written} is not used: it configures the broker's token validation or Kerberos "
                         "renewal, not a librdkafka client")

    protocol = (value("security.protocol") or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(written("security.protocol"), f"cluster {alias}: expected one of {', '.join(PROTOCOLS)}, "
                                                        f"got {value('security.protocol')!r}")
    out["security.protocol"] = protocol
    uses_tls = protocol in ("SSL", "SASL_SSL")
    uses_sasl = protocol.startswith("SASL_")

    if uses_tls:
        _map_tls(alias, keys, out, notes)
    elif any(k.startswith("ssl.") for k in keys):
        notes.append(f"cluster {alias}: ssl.* keys are not used with security.protocol={protocol}")
    if uses_sasl:
        _map_sasl(alias, keys, out, written)
    elif "sasl.jaas.config" in keys or "sasl.mechanism" in keys:
        notes.append(f"cluster {alias}: sasl.* keys are not used with security.protocol={protocol}")
        for key in ("sasl.username", "sasl.password", "sasl.mechanisms"):
            out.pop(key, None)
    return ClusterSecurity(out, notes)


def _map_tls(alias: str, keys: dict[str, tuple[str, str]], out: dict[str, str], notes: list[str]) -> None:
    if "ssl.truststore.location" in keys or "ssl.truststore.certificates" in keys:
        if "ssl.ca.location" in keys or "ssl.ca.pem" in keys:
            truststore = next(k for k in ("ssl.truststore.location", "ssl.truststore.certificates") if k in keys)
            raise ConfigError(keys[truststore][0],
                              f"cluster {alias}: give the trusted certificates once, as a Java truststore or as "
                              "librdkafka's ssl.ca.location, not both")
        out["ssl.ca.pem"] = tls.truststore_pem(alias, keys)
    if "ssl.keystore.key" in keys or "ssl.keystore.location" in keys:
        out.pop("ssl.keystore.location", None)
        out["ssl.certificate.pem"], out["ssl.key.pem"] = tls.keystore_pem(alias, keys)
    elif "ssl.key.password" in keys:
        out["ssl.key.password"] = keys["ssl.key.password"][1]  # librdkafka's: the password of ssl.key.location
    if "ssl.endpoint.identification.algorithm" in keys:
        algorithm = keys["ssl.endpoint.identification.algorithm"][1].strip().lower()
        if algorithm not in ("", "https", "none"):
            raise ConfigError(keys["ssl.endpoint.identification.algorithm"][0],
                              f"cluster {alias}: expected https or empty (no host name check), got {algorithm!r}")
        out["ssl.endpoint.identification.algorithm"] = algorithm or "none"
    if "ssl.cipher.suites" in keys:
        as_written, suites = keys["ssl.cipher.suites"]
        names = [s.strip() for s in suites.split(",") if s.strip()]
        java_names = [n for n in names if _JAVA_CIPHER.match(n)]
        if java_names:
            raise ConfigError(as_written, f"cluster {alias}: {java_names[0]} is a Java cipher suite name; give "
                                          "OpenSSL's names (e.g. ECDHE-RSA-AES128-GCM-SHA256), separated by ':'")
        out["ssl.cipher.suites"] = ":".join(names)


def _map_sasl(alias: str, keys: dict[str, tuple[str, str]], out: dict[str, str], written) -> None:
    mechanism = (keys.get("sasl.mechanism", ("", ""))[1] or out.get("sasl.mechanisms") or "GSSAPI").strip().upper()
    if mechanism not in MECHANISMS:
        hint = " (GSSAPI is Java's default when sasl.mechanism is not set)" if "sasl.mechanism" not in keys else ""
        raise ConfigError(written("sasl.mechanism"), f"cluster {alias}: SASL mechanism {mechanism} is not "
                                                     f"supported{hint}; use one of {', '.join(MECHANISMS)}")
    out["sasl.mechanisms"] = mechanism
    login = jaas.parse_jaas(*keys["sasl.jaas.config"]) if "sasl.jaas.config" in keys else None
    if login is not None and ("sasl.username" in keys or "sasl.password" in keys):
        raise ConfigError(keys["sasl.jaas.config"][0], f"cluster {alias}: give the credentials once, in "
                                                       "sasl.jaas.config or as sasl.username/sasl.password")
    expected_module = {"PLAIN": jaas.PLAIN_MODULE,
                       "OAUTHBEARER": jaas.OAUTHBEARER_MODULE}.get(mechanism, jaas.SCRAM_MODULE)
    if login is not None and login.module != expected_module:
        raise ConfigError(keys["sasl.jaas.config"][0], f"cluster {alias}: login module {login.module} does not "
                                                       f"go with sasl.mechanism={mechanism}; use {expected_module}")
    if mechanism == "OAUTHBEARER":
        _map_oauth(alias, keys, out, login, written)
        return
    if login is not None:
        for option in ("username", "password"):
            if option not in login.options:
                raise ConfigError(keys["sasl.jaas.config"][0],
                                  f"cluster {alias}: {login.module} needs {option}=\"...\"")
            out[f"sasl.{option}"] = login.options[option]
    if "sasl.username" not in out or "sasl.password" not in out:
        protocol = keys.get("security.protocol", ("", ""))[1].strip()
        module = jaas.SCRAM_MODULE if mechanism != "PLAIN" else jaas.PLAIN_MODULE
        raise ConfigError(written("sasl.jaas.config"), f"cluster {alias}: security.protocol={protocol} "
                                                       f"with {mechanism} needs credentials: sasl.jaas.config = "
                                                       f'{module} required username="..." password="...";')


def _map_oauth(alias: str, keys: dict[str, tuple[str, str]], out: dict[str, str], login, written) -> None:
    options = login.options if login is not None else {}
    handler = keys.get("sasl.login.callback.handler.class", ("", ""))[1].strip()
    if handler and handler not in OAUTH_LOGIN_HANDLERS:
        raise ConfigError(written("sasl.login.callback.handler.class"),
                          f"cluster {alias}: {handler} is a Java class that librdkafka cannot run; the built-in "
                          f"client-credentials login ({OAUTH_LOGIN_HANDLERS[0]}) is supported")
    retriever = keys.get("sasl.oauthbearer.jwt.retriever.class", ("", ""))[1].strip()
    if retriever and retriever != OAUTH_CLIENT_CREDENTIALS_RETRIEVER:
        raise ConfigError(written("sasl.oauthbearer.jwt.retriever.class"),
                          f"cluster {alias}: {retriever} is not supported; the client-credentials grant is")
    if "unsecuredLoginStringClaim_sub" in options:
        # Kafka's unsecured JWS login, for tests: librdkafka builds the same unsigned token
        out["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
        config = f"principal={options['unsecuredLoginStringClaim_sub']}"
        if "unsecuredLoginListClaim_scope" in options:
            config += f" scope={options['unsecuredLoginListClaim_scope']}"
        out["sasl.oauthbearer.config"] = config
        return
    endpoint = keys.get("sasl.oauthbearer.token.endpoint.url", ("", ""))[1].strip() or out.get(
        "sasl.oauthbearer.token.endpoint.url", "")
    if not endpoint:
        raise ConfigError(written("sasl.oauthbearer.token.endpoint.url"),
                          f"cluster {alias}: OAUTHBEARER needs the token endpoint of the client-credentials grant")
    if not endpoint.startswith(("https://", "http://")):
        raise ConfigError(written("sasl.oauthbearer.token.endpoint.url"),
                          f"cluster {alias}: librdkafka fetches tokens over http(s) only, got {endpoint!r}")
    out["sasl.oauthbearer.method"] = "oidc"
    out["sasl.oauthbearer.token.endpoint.url"] = endpoint
    for java_key, option, target in (
        ("sasl.oauthbearer.client.credentials.client.id", "clientId", "sasl.oauthbearer.client.id"),
        ("sasl.oauthbearer.client.credentials.client.secret", "clientSecret", "sasl.oauthbearer.client.secret"),
        ("sasl.oauthbearer.scope", "scope", "sasl.oauthbearer.scope"),
    ):
        given = keys.get(java_key, ("", ""))[1].strip() or options.get(option)
        if given:
            out[target] = given
    extensions = [f"{name[len('extension_'):]}={v}" for name, v in options.items() if name.startswith("extension_")]
    if extensions:
        out["sasl.oauthbearer.extensions"] = ",".join(extensions)
    for target, option in (("sasl.oauthbearer.client.id", "clientId"),
                           ("sasl.oauthbearer.client.secret", "clientSecret")):
        if target not in out:
            raise ConfigError(written("sasl.jaas.config"), f"cluster {alias}: the client-credentials grant needs "
                                                           f"{option}=\"...\" in sasl.jaas.config")
