"""Sandbox prerequisites fail with an error that names the missing tool; the sandbox CA issues
what it promises and keytool's stores hold it."""

import datetime
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from engine.sandbox import KafkaCluster, SandboxError
from engine.sandbox.distribution import require_tool
from engine.sandbox.pki import SandboxPki


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="'java' was not found on PATH"):
        require_tool("java")


def test_missing_maven_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("MIRROR_ENGINE_CACHE", str(tmp_path))  # an empty cache: Maven is needed
    from engine.sandbox.distribution import kafka_libs

    with pytest.raises(SandboxError, match="'mvn' was not found on PATH"):
        kafka_libs()


def test_node_count_is_checked(tmp_path):
    with pytest.raises(SandboxError, match="nodes must be 1 to 3"):
        KafkaCluster("X", nodes=4, base_dir=tmp_path)


def test_cluster_ids_never_start_with_a_dash():
    from engine.sandbox.cluster import _new_cluster_id

    ids = [_new_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_mtls_implies_tls_and_a_plaintext_cluster_has_no_ca(tmp_path):
    assert KafkaCluster("X", mtls=True, base_dir=tmp_path).tls
    with pytest.raises(SandboxError, match="has no TLS listener"):
        KafkaCluster("Y", base_dir=tmp_path).ca_file  # noqa: B018 (reading the property is the test)
    assert not (tmp_path / "Y").exists()


# -- the sandbox CA (engine/sandbox/pki.py) --------------------------------------------------


def _server_verifier(pki: SandboxPki):
    store = Store([pki.ca.load_certificate()])
    return PolicyBuilder().store(store).build_server_verifier(IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_server_certificate_chains_to_the_ca_for_127_0_0_1_and_localhost(tmp_path):
    pki = SandboxPki(tmp_path)
    broker = pki.server_cert().load_certificate()
    chain = _server_verifier(pki).verify(broker, [])
    assert chain == [broker, pki.ca.load_certificate()]
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(DNSName) == ["localhost"]


def test_client_certificate_is_cn_only_signed_by_the_ca_with_a_pkcs12_chain(tmp_path):
    pki = SandboxPki(tmp_path)
    alice = pki.client_cert("alice")
    cert = alice.load_certificate()
    # Kafka's principal mapping rule expects the subject to be exactly CN=<name>
    assert cert.subject.rfc4514_string() == "CN=alice"
    cert.verify_directly_issued_by(pki.ca.load_certificate())
    assert cert.not_valid_before_utc < _now() < cert.not_valid_after_utc
    assert alice.p12 is not None
    bundle = pkcs12.load_pkcs12(alice.p12.read_bytes(), pki.password.encode())
    assert bundle.cert is not None and bundle.cert.certificate == cert
    assert bundle.key is not None and bundle.key.public_key() == cert.public_key()
    assert [c.certificate for c in bundle.additional_certs] == [pki.ca.load_certificate()]


def test_client_key_can_be_encrypted(tmp_path):
    alice = SandboxPki(tmp_path).client_cert("alice", key_password="key-secret")
    assert alice.key_password == "key-secret"
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(alice.key.read_bytes(), password=None)
    key = serialization.load_pem_private_key(alice.key.read_bytes(), password=b"key-secret")
    assert key.public_key() == alice.load_certificate().public_key()


def test_expired_certificates_are_expired(tmp_path):
    pki = SandboxPki(tmp_path)
    old_client = pki.client_cert("old", expired=True).load_certificate()
    old_client.verify_directly_issued_by(pki.ca.load_certificate())  # only the dates are wrong
    assert old_client.not_valid_after_utc < _now()
    with pytest.raises(VerificationError, match="not valid at validation time"):
        _server_verifier(pki).verify(pki.server_cert(expired=True).load_certificate(), [])


def test_untrusted_certificates_do_not_chain_to_the_ca(tmp_path):
    pki = SandboxPki(tmp_path)
    mallory = pki.client_cert("mallory", untrusted=True).load_certificate()
    with pytest.raises(ValueError):
        mallory.verify_directly_issued_by(pki.ca.load_certificate())
    mallory.verify_directly_issued_by(pki.untrusted_ca.load_certificate())
    with pytest.raises(VerificationError):
        _server_verifier(pki).verify(pki.server_cert(untrusted=True).load_certificate(), [])


def test_keytool_pkcs12_stores_load_with_cryptography(tmp_path):
    pki = SandboxPki(tmp_path)
    ca = pki.ca.load_certificate()
    truststore = pkcs12.load_pkcs12(pki.java_truststore("PKCS12").read_bytes(), pki.password.encode())
    # keytool's trusted-certificate entries come back as additional certificates, no key or leaf
    assert truststore.key is None and truststore.cert is None
    assert [(c.friendly_name, c.certificate) for c in truststore.additional_certs] == [(b"sandbox-ca", ca)]

    alice = pki.client_cert("alice")
    keystore = pkcs12.load_pkcs12(pki.java_keystore(alice, "PKCS12").read_bytes(), pki.password.encode())
    assert keystore.cert is not None and keystore.cert.certificate == alice.load_certificate()
    assert keystore.key is not None
    assert keystore.key.public_key() == alice.load_certificate().public_key()
    assert [c.certificate for c in keystore.additional_certs] == [ca]


def test_keytool_jks_stores_hold_the_ca_and_the_client_chain(tmp_path):
    pki = SandboxPki(tmp_path)
    alice = pki.client_cert("alice")
    ca = pki.ca.load_certificate()
    assert _keytool_list(pki.java_truststore("JKS"), pki.password) == [ca]
    assert _keytool_list(pki.java_keystore(alice, "JKS"), pki.password) == [alice.load_certificate(), ca]


def _keytool_list(store: Path, password: str) -> list[x509.Certificate]:
    listing = subprocess.run(
        [require_tool("keytool"), "-list", "-rfc", "-keystore", str(store), "-storepass", password],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return x509.load_pem_x509_certificates(listing.encode())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def test_sandbox_up_starts_each_named_cluster_and_prints_its_servers(monkeypatch, capsys):
    from engine import commands
    from engine.cli import parser

    started = []

    class StartedCluster:
        def __init__(self, name: str, nodes: int):
            self.name, self.nodes = name, nodes

        def start(self):
            started.append((self.name, self.nodes))
            self.bootstrap_servers = f"127.0.0.1:{len(started)}"
            return self

    monkeypatch.setattr("engine.sandbox.KafkaCluster", StartedCluster)
    args = parser().parse_args(["sandbox", "up", "--clusters", "A, B", "--nodes", "3"])
    assert args.handler is commands.sandbox_up and args.handler(args) == 0
    assert started == [("A", 3), ("B", 3)]
    assert capsys.readouterr().out == "A.bootstrap.servers = 127.0.0.1:1\nB.bootstrap.servers = 127.0.0.1:2\n"
