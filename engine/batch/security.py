"""A cluster's security settings as the batch relay uses them: TLS from the standard library's ssl, SASL
PLAIN and SCRAM as SaslHandshake and SaslAuthenticate requests (docs/batch-relay.md, "Security").

It reads the librdkafka settings engine/security/client_keys.py derives from the file's Java keys (CA and
client certificate as PEM or files, the key's password, the host name check), so both loops connect alike.
A refusal names the cluster, what was refused and the config keys to look at, in one line, as
engine/clients.py's connection_failure() does for the C loop; it never shows a secret.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from engine.batch.scram import HASHES

MECHANISMS = ("PLAIN", *HASHES)


class ClusterRefused(Exception):
    """The cluster answered and refused us (a login, a certificate): trying again will not help."""


def batch_refusal(settings: Mapping[str, str]) -> str | None:
    """Why the batch loop cannot connect with these settings, or None."""
    protocol = settings.get("security.protocol", "plaintext").upper()
    if protocol.startswith("SASL_"):
        mechanism = settings.get("sasl.mechanisms", "GSSAPI").upper()
        if mechanism not in MECHANISMS:
            return f"SASL mechanism {mechanism} (the batch loop logs in with {', '.join(MECHANISMS)})"
    return None


@dataclass(frozen=True)
class Security:
    """What connecting to one cluster takes beyond a socket. `alias` and `servers` name it in a refusal."""

    alias: str
    servers: str
    tls: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str = ""
    password: str = ""

    def refused(self, meaning: str, detail: str, keys: tuple[str, ...]) -> ClusterRefused:
        named = ", ".join(f"{self.alias}.{key}" for key in keys)
        return ClusterRefused(f"cluster {self.alias} ({self.servers}): {meaning}: {detail} (config keys: {named})")

    def tls_refused(self, error: ssl.SSLError) -> ClusterRefused:
        if isinstance(error, ssl.SSLCertVerificationError):
            return self.refused("the broker's certificate is not trusted", error.verify_message or str(error),
                                ("ssl.truststore.location",))
        if "ALERT" in (error.reason or "").upper():  # TLS 1.3 reports a refused client certificate so
            return self.refused("the broker refused the client certificate", error.reason or str(error),
                                ("ssl.keystore.location",))
        return self.refused("the TLS handshake failed", error.reason or str(error),
                            ("ssl.truststore.location", "ssl.keystore.location"))


def cluster_security(alias: str, settings: Mapping[str, str]) -> Security:
    """The Security of a client's librdkafka settings (bootstrap.servers, security.protocol, ssl.*, sasl.*)."""
    protocol = settings.get("security.protocol", "plaintext").upper()
    servers = settings.get("bootstrap.servers", "")
    context = _tls_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if not protocol.startswith("SASL_"):
        return Security(alias, servers, context)
    return Security(alias, servers, context, settings.get("sasl.mechanisms", "GSSAPI").upper(),
                    settings.get("sasl.username", ""), settings.get("sasl.password", ""))


def _tls_context(settings: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.get("ssl.ca.location"),
                                         cadata=settings.get("ssl.ca.pem"))
    if settings.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    elif settings.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False  # Java's empty value: the chain is checked, the host name is not
    if settings.get("ssl.cipher.suites"):
        context.set_ciphers(settings["ssl.cipher.suites"])
    password = settings.get("ssl.key.password")
    if "ssl.certificate.pem" in settings:
        _load_pem_chain(context, settings["ssl.certificate.pem"], settings["ssl.key.pem"], password)
    elif "ssl.certificate.location" in settings:
        context.load_cert_chain(settings["ssl.certificate.location"], settings.get("ssl.key.location"), password)
    return context


def _load_pem_chain(context: ssl.SSLContext, certificate: str, key: str, password: str | None) -> None:
    """ssl loads a certificate and key from files only: from a memory file, so the key never touches a disk;
    a file only the engine's user reads, deleted at once, where there are no memory files."""
    pem = (certificate.rstrip() + "\n" + key.rstrip() + "\n").encode()
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("client-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}", password=password)
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile() as file:  # mode 0600
        file.write(pem)
        file.flush()
        context.load_cert_chain(file.name, password=password)
