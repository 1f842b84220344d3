"""`--security`: the same table over the sandbox's TLS, mutual-TLS and SASL_SSL (SCRAM) listeners.

Every mode is a set of client settings a replicator gets for both clusters; the benchmark's own
admin, preload and latency clients keep to the PLAINTEXT listener, so only the replicators (and
the floor and the ceiling, which stand for librdkafka and the target under the same settings) pay
for the security. One pair of sandbox clusters serves every mode of a run: an SSL listener and a
SASL_SSL listener (SCRAM-SHA-512) beside PLAINTEXT, certificates from the cluster's own CA. The
SSL listener requires a client certificate when mtls is the only TLS mode asked for, and requests
one (mtls rows present it, tls rows do not) when tls and mtls run together.
"""

from __future__ import annotations

from dataclasses import dataclass

PLAINTEXT = "plaintext"
MODES = (PLAINTEXT, "tls", "mtls", "sasl_ssl-scram")
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
# a sandbox-only user of the benchmark's throw-away clusters
BENCH_USER, BENCH_PASSWORD = "mebench", "mebench-sandbox-only"
CLIENT_CN = "mebench"


def modes_of(asked: list[str]) -> list[str]:
    """The modes a run measures: plaintext first (the reference every security row is read
    against), then the ones asked for, each once."""
    return list(dict.fromkeys([PLAINTEXT, *asked]))


def sandbox_options(modes: list[str]) -> dict:
    """KafkaCluster keyword arguments for clusters that serve every mode of `modes`."""
    from engine.sandbox import SaslSettings

    secured = [m for m in modes if m != PLAINTEXT]
    if not secured:
        return {}
    options: dict = {"tls": True}
    if "sasl_ssl-scram" in secured:
        options["sasl"] = SaslSettings(users={"admin": "admin-secret", BENCH_USER: BENCH_PASSWORD})
    if "mtls" in secured:
        if "tls" in secured:
            options["broker_properties"] = {"listener.name.ssl.ssl.client.auth": "requested"}
        else:
            options["mtls"] = True
    return options


@dataclass(frozen=True)
class ClientSecurity:
    """How a replicator reaches one sandbox cluster in one mode."""

    servers: str
    properties: dict[str, str]  # Kafka client keys, as mm2.properties and the Java tools take them
    relay: dict[str, str]  # the franz-go relay's spec (benchmarks/peers/franz-relay/main.go)


def client_security(cluster, mode: str) -> ClientSecurity:
    """`cluster` is a started engine.sandbox.KafkaCluster made with sandbox_options(...) of `mode`;
    call once per cluster and mode (mtls issues a new client certificate each time)."""
    if mode == PLAINTEXT:
        return ClientSecurity(cluster.bootstrap_servers, {}, {})
    if mode not in MODES:
        raise ValueError(f"security mode must be one of {', '.join(MODES)}, got {mode!r}")
    ca = str(cluster.ca_file)
    trust = {"ssl.truststore.type": "PEM", "ssl.truststore.location": ca}
    if mode == "tls":
        return ClientSecurity(cluster.tls_bootstrap_servers, {"security.protocol": "SSL", **trust}, {"ca": ca})
    if mode == "mtls":
        pki = cluster.pki
        client = pki.client_cert(CLIENT_CN)
        keystore = pki.java_keystore(client, "PKCS12")
        return ClientSecurity(cluster.tls_bootstrap_servers, {
            "security.protocol": "SSL", **trust, "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(keystore), "ssl.keystore.password": pki.password,
            "ssl.key.password": pki.password}, {"ca": ca, "cert": str(client.cert), "key": str(client.key)})
    return ClientSecurity(cluster.sasl_bootstrap_servers, {
        "security.protocol": "SASL_SSL", **trust, "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.jaas.config": f'{SCRAM_MODULE} required username="{BENCH_USER}" password="{BENCH_PASSWORD}";'},
        {"ca": ca, "sasl_mechanism": SCRAM_MECHANISM, "sasl_username": BENCH_USER, "sasl_password": BENCH_PASSWORD})

