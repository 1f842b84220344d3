"""Java TLS stores (`ssl.truststore.*`, `ssl.keystore.*`) read into the PEM that librdkafka takes.

librdkafka reads PEM files and PKCS#12 keystores but no truststore and no JKS, and it learns of a
wrong store password or an expired certificate only at the first handshake, as an OpenSSL error.
So the engine reads the stores itself when the config is loaded: every client gets the CA
certificates as `ssl.ca.pem` and its own chain and key as `ssl.certificate.pem` / `ssl.key.pem`,
and a bad store is an error that names its key before anything connects.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from engine.config.values import ConfigError

log = logging.getLogger(__name__)

STORE_TYPES = ("JKS", "PKCS12", "PEM")
_JKS_MAGIC = (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce")  # JKS and JCEKS


def _config_error(key: str, message: str):
    return ConfigError(key, message)


def _store_type(key: str, value: str | None) -> str:
    store_type = (value or "JKS").strip().upper()
    if store_type not in STORE_TYPES:
        raise _config_error(key, f"store type {value!r} is not supported; use PKCS12 or PEM")
    return store_type


def _read(key: str, location: str) -> bytes:
    try:
        return Path(location).read_bytes()
    except OSError as error:
        raise _config_error(key, f"cannot read {location}: {error.strerror}") from None


def _refuse_jks(key: str, location: str, data: bytes) -> None:
    if data[:4] in _JKS_MAGIC:
        raise _config_error(key, f"{location} is a JKS/JCEKS store, which librdkafka cannot read; convert it "
                                 f"once: keytool -importkeystore -srckeystore {location} -destkeystore "
                                 f"{Path(location).with_suffix('.p12')} -deststoretype PKCS12")


def _pkcs12(key: str, location: str, data: bytes, passwords: list[str | None]):
    for password in passwords:
        try:
            return pkcs12.load_pkcs12(data, password.encode() if password is not None else None)
        except ValueError:
            continue
    raise _config_error(key, f"cannot open {location} as PKCS12: wrong password or not a PKCS12 store")


def truststore_pem(cluster: str, keys: dict[str, tuple[str, str]]) -> str:
    """The trusted certificates of `ssl.truststore.location` (or `.certificates`) as one PEM bundle.

    keys: Java key (without the cluster prefix) -> (the key as written, value).
    """
    if "ssl.truststore.certificates" in keys:
        written, text = keys["ssl.truststore.certificates"]
        certificates = _pem_certificates(written, text.encode())
    else:
        written, location = keys["ssl.truststore.location"]
        store_type = _store_type(*keys.get("ssl.truststore.type", ("ssl.truststore.type", None)))
        data = _read(written, location)
        if store_type == "PEM":
            certificates = _pem_certificates(written, data)
        else:
            _refuse_jks(written, location, data)
            password = keys.get("ssl.truststore.password", (None, None))[1]
            store = _pkcs12(written, location, data, [password] if password is not None else [None, ""])
            certificates = [c.certificate for c in store.additional_certs]
            if store.cert is not None:
                certificates.append(store.cert.certificate)
    if not certificates:
        raise _config_error(written, f"cluster {cluster}: the truststore holds no certificate")
    now = datetime.datetime.now(datetime.UTC)
    for certificate in certificates:
        if certificate.not_valid_after_utc < now:
            log.warning("%s: the trusted certificate %s of cluster %s expired on %s", written,
                        certificate.subject.rfc4514_string(), cluster, certificate.not_valid_after_utc.date())
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def keystore_pem(cluster: str, keys: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(certificate chain PEM, unencrypted PKCS#8 key PEM) of the client's keystore."""
    key_password = keys.get("ssl.key.password", (None, None))[1]
    if "ssl.keystore.key" in keys:
        written, key_text = keys["ssl.keystore.key"]
        chain_key, chain_text = keys.get("ssl.keystore.certificate.chain", (written, ""))
        private_key = _pem_key(written, key_text.encode(), key_password)
        chain = _pem_certificates(chain_key, chain_text.encode())
    else:
        written, location = keys["ssl.keystore.location"]
        store_type = _store_type(*keys.get("ssl.keystore.type", ("ssl.keystore.type", None)))
        data = _read(written, location)
        if store_type == "PEM":
            private_key = _pem_key(written, data, key_password)
            chain = _pem_certificates(written, data)
        else:
            _refuse_jks(written, location, data)
            password = keys.get("ssl.keystore.password", (None, None))[1]
            store = _pkcs12(written, location, data, [password, key_password, None])
            if store.key is None or store.cert is None:
                raise _config_error(written, f"cluster {cluster}: {location} holds no private key with its certificate")
            private_key = store.key
            chain = [store.cert.certificate, *(c.certificate for c in store.additional_certs)]
    if not chain:
        raise _config_error(written, f"cluster {cluster}: the keystore holds no certificate")
    leaf = chain[0]
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc < now:
        raise _config_error(written, f"cluster {cluster}: the client certificate {leaf.subject.rfc4514_string()} "
                                     f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if leaf.not_valid_before_utc > now:
        raise _config_error(written, f"cluster {cluster}: the client certificate {leaf.subject.rfc4514_string()} "
                                     f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    key_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    return chain_pem, key_pem


def _pem_certificates(key: str, data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise _config_error(key, f"a PEM certificate cannot be read: {error}") from None


def _pem_key(key: str, data: bytes, password: str | None):
    start = data.find(b"-----BEGIN")
    while start != -1 and b"PRIVATE KEY-----" not in data[start:start + 60]:
        start = data.find(b"-----BEGIN", start + 1)
    if start == -1:
        raise _config_error(key, "holds no PEM private key")
    end = data.find(b"-----END", start)
    end = data.find(b"-----", end + 8) + 5
    try:
        return serialization.load_pem_private_key(data[start:end], password.encode() if password else None)
    except (ValueError, TypeError):
        raise _config_error(key, "the private key cannot be read: wrong ssl.key.password, or not PKCS#8 PEM") from None
