"""A throw-away certificate authority for the sandbox's TLS, mutual-TLS and SASL_SSL listeners.

`SandboxPki(folder)` keeps a CA in that folder and issues EC P-256 certificates signed by it:
one for the brokers (IP 127.0.0.1, DNS localhost) and client certificates by CN, each as PEM
(certificate, PKCS#8 key) and PKCS#12 (key, certificate and CA), all made with `cryptography`.
For failure tests it also issues certificates that have already expired or that a second,
untrusted CA signed. Java-made stores (keytool) stand for the truststores and keystores users
bring from their MirrorMaker 2 deployments.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.sandbox.distribution import SandboxError, require_tool

# protects only throw-away test keys inside a sandbox folder
STORE_PASSWORD = "sandbox-only"
VALIDITY = datetime.timedelta(days=30)
# a certificate dated from "now" is not yet valid on a machine whose clock is slightly behind
CLOCK_SKEW = datetime.timedelta(hours=1)

JavaStoreType = Literal["PKCS12", "JKS"]


@dataclass(frozen=True)
class IssuedCert:
    """The files of one certificate: PEM certificate, PKCS#8 PEM key and (for leaves) PKCS#12."""

    cert: Path
    key: Path
    p12: Path | None = None
    # the PEM key's password; None when the key is not encrypted
    key_password: str | None = None

    def load_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert.read_bytes())


@dataclass
class SandboxPki:
    """A CA in `folder` and the certificates it issues; PKCS#12 files are locked with `password`."""

    folder: Path
    password: str = STORE_PASSWORD

    @property
    def ca(self) -> IssuedCert:
        """The trusted CA (made on first use, then read back from the folder)."""
        return self._authority("ca", "sandbox CA")

    @property
    def untrusted_ca(self) -> IssuedCert:
        """A second CA that nothing in the sandbox trusts."""
        return self._authority("untrusted-ca", "untrusted sandbox CA")

    def server_cert(self, name: str = "broker", expired: bool = False,
                    untrusted: bool = False) -> IssuedCert:
        """A TLS server certificate for IP 127.0.0.1 and DNS localhost."""
        return self._issue(
            self._file_stem(name, expired, untrusted), f"sandbox-{name}",
            ExtendedKeyUsageOID.SERVER_AUTH, expired, untrusted, key_password=None,
            alt_names=[x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                       x509.DNSName("localhost")],
        )

    def client_cert(self, cn: str, expired: bool = False, untrusted: bool = False,
                    key_password: str | None = None) -> IssuedCert:
        """A client certificate whose subject is exactly CN=<cn> (the broker maps it to User:<cn>).

        Each call makes a new key and overwrites the files of an earlier call with the same
        arguments.
        """
        return self._issue(
            self._file_stem(f"client-{cn}", expired, untrusted), cn,
            ExtendedKeyUsageOID.CLIENT_AUTH, expired, untrusted, key_password, alt_names=[],
        )

    def java_truststore(self, store_type: JavaStoreType = "PKCS12") -> Path:
        """A truststore holding the CA certificate, made by keytool -importcert."""
        store = self.folder / f"truststore.{_extension(store_type)}"
        store.unlink(missing_ok=True)  # keytool adds to an existing store and refuses a used alias
        self._keytool(
            "-importcert", "-noprompt", "-alias", "sandbox-ca", "-file", str(self.ca.cert),
            "-keystore", str(store), "-storetype", store_type, "-storepass", self.password,
        )
        return store

    def java_keystore(self, issued: IssuedCert, store_type: JavaStoreType = "PKCS12") -> Path:
        """A keystore with the key and chain of `issued`, converted by keytool -importkeystore.

        The key password equals the store password (PKCS12 allows nothing else; for JKS it keeps
        ssl.key.password equal to ssl.keystore.password).
        """
        if issued.p12 is None:
            raise SandboxError(f"{issued.cert} has no PKCS#12 file to import")
        store = issued.p12.with_name(f"{issued.p12.stem}-keystore.{_extension(store_type)}")
        store.unlink(missing_ok=True)
        self._keytool(
            "-importkeystore", "-noprompt",
            "-srckeystore", str(issued.p12), "-srcstoretype", "PKCS12",
            "-srcstorepass", self.password,
            "-destkeystore", str(store), "-deststoretype", store_type,
            "-deststorepass", self.password, "-destkeypass", self.password,
        )
        return store

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _file_stem(name: str, expired: bool, untrusted: bool) -> str:
        return name + "-expired" * expired + "-untrusted" * untrusted

    def _authority(self, stem: str, common_name: str) -> IssuedCert:
        files = IssuedCert(self.folder / f"{stem}.pem", self.folder / f"{stem}.key")
        if files.cert.exists():
            return files
        self.folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_key(files.key, key, password=None)
        files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return files

    def _issue(self, stem: str, common_name: str, usage: x509.ObjectIdentifier, expired: bool,
               untrusted: bool, key_password: str | None,
               alt_names: list[x509.GeneralName]) -> IssuedCert:
        authority = self.untrusted_ca if untrusted else self.ca
        ca_cert = authority.load_certificate()
        ca_key = serialization.load_pem_private_key(authority.key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        if expired:
            not_before, not_after = now - 2 * VALIDITY, now - datetime.timedelta(days=1)
        else:
            not_before, not_after = now - CLOCK_SKEW, now + VALIDITY
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        p12 = self.folder / f"{stem}.p12"
        # the friendly name becomes the entry's alias in Java
        p12.write_bytes(pkcs12.serialize_key_and_certificates(
            stem.encode(), key, certificate, [ca_cert],
            serialization.BestAvailableEncryption(self.password.encode()),
        ))
        issued = IssuedCert(self.folder / f"{stem}.pem", self.folder / f"{stem}.key", p12, key_password)
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(issued.key, key, key_password)
        return issued

    def _keytool(self, *arguments: str) -> None:
        # a short-lived JVM: C1 only and the serial collector start it in about half the time
        command = [require_tool("keytool"), "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC",
                   *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SandboxError(f"keytool {arguments[0]} failed: {result.stdout}{result.stderr}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _extension(store_type: JavaStoreType) -> str:
    return "p12" if store_type == "PKCS12" else "jks"


def _key_usage(key_cert_sign: bool) -> x509.KeyUsage:
    # digitalSignature: ECDHE-ECDSA handshakes sign with the leaf key; CAs only sign certificates
    return x509.KeyUsage(
        digital_signature=not key_cert_sign, key_cert_sign=key_cert_sign, crl_sign=key_cert_sign,
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False,
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password
        else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)
