"""Security keys of mm2.properties: JAAS, the Java -> librdkafka mapping, TLS stores, config
providers and redaction. No broker, no Java: certificates are made here with `cryptography`."""

from __future__ import annotations

import datetime
import io
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from engine.cli import main
from engine.config.loading import from_properties, load
from engine.config.values import ConfigError
from engine.security.jaas import JaasLogin, parse_jaas
from engine.security.secrets import MASK, Redactor, masked, resolve_references

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
OAUTH = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


def base(**extra: str) -> dict[str, str]:
    return {"clusters": "A, B", "A.bootstrap.servers": "127.0.0.1:1", "B.bootstrap.servers": "127.0.0.1:2",
            "A->B.enabled": "true", **extra}


# -- JAAS ------------------------------------------------------------------------------------

def test_jaas_options_quoted_with_escapes_and_unquoted():
    login = parse_jaas("k", f'{SCRAM} required username=alice password="p@ss \\"w;rd\\" =x" tokenauth=true;')
    assert login == JaasLogin(SCRAM, {"username": "alice", "password": 'p@ss "w;rd" =x', "tokenauth": "true"})


# a cloud connection string as a password: `;`, `=`, `/` and spaces inside quotes (Azure Event Hubs'
# Kafka tutorials log in this way, single- or double-quoted)
CONNECTION_STRING = "Endpoint=sb://ns-1.example.net/;SharedAccessKeyName=Root Manage;SharedAccessKey=k3y=="


@pytest.mark.parametrize("quote", ["'", '"'])
def test_jaas_quoted_values_keep_semicolons_equals_slashes_and_spaces(quote):
    login = parse_jaas("k", f"{PLAIN} required username={quote}$ConnectionString{quote} "
                            f"password={quote}{CONNECTION_STRING}{quote};")
    assert login == JaasLogin(PLAIN, {"username": "$ConnectionString", "password": CONNECTION_STRING})


# each accepted or refused as Kafka 4.3.1's JaasContext.loadClientContext does (checked against the jar)
@pytest.mark.parametrize("text, options", [
    (f"""{PLAIN} required username='a"b' password="it's = ; x";""", {"username": 'a"b', "password": "it's = ; x"}),
    # octal and letter escapes; an unknown escape is the character itself; an empty value
    (f"""{PLAIN} "REQUIRED" 'username'="a\\101\\tb\\q" password="";""", {"username": "aA\tbq", "password": ""}),
    (f'{PLAIN} required /* note */ username=a // to the line end\n password=b ;', {"username": "a", "password": "b"}),
    # a quote left open ends at the line end
    (f'{PLAIN} required username=abc password="x\n;', {"username": "abc", "password": "x"}),
    (f"{PLAIN} required username=a username=b password=c;", {"username": "b", "password": "c"}),
    (f"{PLAIN} required username=é€ password=c;", {"username": "é€", "password": "c"}),
    (f"{PLAIN}\trequired\nusername=a\rpassword=b\n;\n", {"username": "a", "password": "b"}),
])
def test_jaas_is_read_as_kafkas_tokenizer_reads_it(text, options):
    assert parse_jaas("k", text) == JaasLogin(PLAIN, options)


@pytest.mark.parametrize("text, message", [
    (f'{SCRAM} required username="a" password="b"', "login module " + SCRAM + ": the entry must end with ';'"),
    (f'{SCRAM} username="a";', "needs a control flag"),
    (f'{SCRAM} required username "a";', "option username is not an option=value pair"),
    (f'{SCRAM} required username=a password=my pass;', "the text at character 88 is not an option=value pair"),
    (f'{SCRAM} required username=a=b;', "the text at character 75 is not an option=value pair"),
    (f'{SCRAM} required username="a;', "the entry must end with ';' (the quote at character 74 is not closed)"),
    (f"{SCRAM} required username=a password=b/c;",
     "the entry must end with ';' (the / at character 86 starts a comment that runs to the end of the line; "
     "quote a value that contains /)"),
    (f'{SCRAM} required username="a"; {PLAIN} required username="b";', "exactly one login module, found 2"),
    (f'{SCRAM} required;;', "expected a login module class name at character 65"),
    ('', "expected exactly one login module, found 0"),
    ('software.amazon.msk.auth.iam.IAMLoginModule required;',
     "login module software.amazon.msk.auth.iam.IAMLoginModule is a Java class that librdkafka cannot run"),
    ('com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;', "(GSSAPI) needs a librdkafka built"),
])
def test_bad_jaas_is_refused_naming_the_key_never_the_password(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_jaas("A.sasl.jaas.config", text)
    assert str(caught.value).startswith("A.sasl.jaas.config: ")
    assert message in str(caught.value)
    assert '"b"' not in str(caught.value) and "password=" not in str(caught.value) and "pass;" not in str(caught.value)


def test_a_vendor_file_with_a_single_quoted_connection_string_loads_and_check_config_hides_it(tmp_path, capsys):
    path = tmp_path / "mm2.properties"
    path.write_text(
        "clusters = onprem, cloud\n"
        "onprem.bootstrap.servers = 127.0.0.1:9092\n"
        "cloud.bootstrap.servers = ns-1.example.net:9093\n"
        "cloud.security.protocol = SASL_SSL\n"
        "cloud.sasl.mechanism = PLAIN\n"
        f"cloud.sasl.jaas.config = {PLAIN} required username='$ConnectionString' \\\n"
        f"    password='{CONNECTION_STRING}';\n"
        "onprem->cloud.enabled = true\n")
    config = load(path, quiet=True)
    assert config.cluster("cloud").client["sasl.username"] == "$ConnectionString"
    assert config.cluster("cloud").client["sasl.password"] == CONNECTION_STRING
    assert main(["check-config", str(path)]) == 0
    printed = capsys.readouterr()
    assert "sasl.password = [hidden]" in printed.out
    assert "k3y" not in printed.out + printed.err and "Root Manage" not in printed.out + printed.err


# -- SASL -------------------------------------------------------------------------------------

def test_scram_over_tls_from_java_keys():
    config = from_properties(base(**{
        "A.security.protocol": "SASL_SSL", "A.sasl.mechanism": "SCRAM-SHA-512",
        "A.sasl.jaas.config": f'{SCRAM} required username="mirror" password="s3cret-A";',
        "A.ssl.endpoint.identification.algorithm": "",
    }))
    assert config.cluster("A").client == {
        "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "mirror",
        "sasl.password": "s3cret-A", "ssl.endpoint.identification.algorithm": "none",
    }
    assert config.cluster("B").client == {"security.protocol": "PLAINTEXT"}
    assert "s3cret-A" in config.secrets


def test_top_level_security_applies_to_every_cluster_and_the_cluster_key_wins():
    config = from_properties(base(**{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": f'{PLAIN} required username="everyone" password="shared-pw";',
        "B.sasl.jaas.config": f'{PLAIN} required username="b-user" password="b-pw";',
    }))
    assert config.cluster("A").client["sasl.username"] == "everyone"
    assert (config.cluster("B").client["sasl.username"],
            config.cluster("B").client["sasl.password"]) == ("b-user", "b-pw")


def test_librdkafka_native_credentials_still_work():
    config = from_properties(base(**{"A.security.protocol": "SASL_PLAINTEXT", "A.sasl.mechanism": "SCRAM-SHA-256",
                                     "A.sasl.username": "u", "A.sasl.password": "native-pw"}))
    assert config.cluster("A").client == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
                                          "sasl.username": "u", "sasl.password": "native-pw"}


@pytest.mark.parametrize("extra, key, message", [
    ({"A.sasl.mechanism": "PLAIN", "A.sasl.jaas.config": f'{SCRAM} required username="u" password="p";'},
     "A.sasl.jaas.config", f"login module {SCRAM} does not go with sasl.mechanism=PLAIN"),
    ({"A.sasl.mechanism": "SCRAM-SHA-256"}, "A.sasl.jaas.config", "needs credentials"),
    ({"A.sasl.jaas.config": f'{SCRAM} required username="u" password="p";'}, "A.sasl.mechanism",
     "GSSAPI is Java's default"),
    ({"A.sasl.mechanism": "SCRAM-SHA-256", "A.sasl.jaas.config": f'{SCRAM} required username="u";'},
     "A.sasl.jaas.config", 'needs password="..."'),
    ({"A.sasl.mechanism": "PLAIN", "A.sasl.login.class": "com.example.Login"}, "A.sasl.login.class",
     "com.example.Login is a Java class that librdkafka cannot run"),
    ({"A.sasl.mechanism": "PLAIN", "A.sasl.frobnicate": "1"}, "A.sasl.frobnicate", "unknown security key"),
])
def test_bad_sasl_settings_name_the_key_and_cluster(extra, key, message):
    with pytest.raises(ConfigError) as caught:
        from_properties(base(**{"A.security.protocol": "SASL_SSL", **extra}))
    assert caught.value.key == key
    assert "cluster A" in str(caught.value) and message in str(caught.value)


def test_oauth_client_credentials_from_the_jaas_options():
    config = from_properties(base(**{
        "A.security.protocol": "SASL_SSL", "A.sasl.mechanism": "OAUTHBEARER",
        "A.sasl.login.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
        "A.sasl.oauthbearer.token.endpoint.url": "https://idp.example/oauth2/token",
        "A.sasl.jaas.config": f'{OAUTH} required clientId="mirror" clientSecret="oauth-secret-1" scope="kafka" '
                              'extension_logicalCluster="lkc-1";',
        "A.sasl.login.refresh.buffer.seconds": "300",
    }))
    assert config.cluster("A").client == {
        "security.protocol": "SASL_SSL", "sasl.mechanisms": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/oauth2/token",
        "sasl.oauthbearer.client.id": "mirror", "sasl.oauthbearer.client.secret": "oauth-secret-1",
        "sasl.oauthbearer.scope": "kafka", "sasl.oauthbearer.extensions": "logicalCluster=lkc-1",
    }
    assert "oauth-secret-1" in config.secrets


def test_oauth_client_credentials_from_kafka_4_keys():
    config = from_properties(base(**{
        "A.security.protocol": "SASL_PLAINTEXT", "A.sasl.mechanism": "OAUTHBEARER",
        "A.sasl.oauthbearer.token.endpoint.url": "http://127.0.0.1:8080/token",
        "A.sasl.oauthbearer.client.credentials.client.id": "mirror",
        "A.sasl.oauthbearer.client.credentials.client.secret": "oauth-secret-2",
        "A.sasl.jaas.config": f"{OAUTH} required;",
    }))
    client = config.cluster("A").client
    assert (client["sasl.oauthbearer.client.id"],
            client["sasl.oauthbearer.client.secret"]) == ("mirror", "oauth-secret-2")


def test_oauth_unsecured_jws_login_for_tests():
    config = from_properties(base(**{
        "A.security.protocol": "SASL_PLAINTEXT", "A.sasl.mechanism": "OAUTHBEARER",
        "A.sasl.jaas.config": f'{OAUTH} required unsecuredLoginStringClaim_sub="alice";'}))
    assert config.cluster("A").client["sasl.oauthbearer.config"] == "principal=alice"
    assert config.cluster("A").client["enable.sasl.oauthbearer.unsecure.jwt"] == "true"


@pytest.mark.parametrize("extra, key, message", [
    ({}, "A.sasl.oauthbearer.token.endpoint.url", "needs the token endpoint"),
    ({"A.sasl.oauthbearer.token.endpoint.url": "file:///tmp/token"}, "A.sasl.oauthbearer.token.endpoint.url",
     "over http(s) only"),
    ({"A.sasl.oauthbearer.token.endpoint.url": "https://idp/t",
      "A.sasl.login.callback.handler.class": "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler"},
     "A.sasl.login.callback.handler.class", "IAMOAuthBearerLoginCallbackHandler is a Java class"),
])
def test_bad_oauth_settings_name_the_key(extra, key, message):
    with pytest.raises(ConfigError) as caught:
        from_properties(base(**{"A.security.protocol": "SASL_SSL", "A.sasl.mechanism": "OAUTHBEARER",
                                "A.sasl.jaas.config": f'{OAUTH} required clientId="c" clientSecret="s";', **extra}))
    assert caught.value.key == key and message in str(caught.value)


# -- TLS stores --------------------------------------------------------------------------------

def _certificate(subject: str, issuer_key, issuer: str, key, days: tuple[int, int] = (-1, 30), ca: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1])))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def stores(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, "test-ca", ca_key, ca=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("mirror", ca_key, "test-ca", client_key)
    expired = _certificate("mirror-old", ca_key, "test-ca", client_key, days=(-30, -1))
    pem = serialization.Encoding.PEM
    files = {
        "ca.pem": ca.public_bytes(pem),
        "client.p12": pkcs12.serialize_key_and_certificates(
            b"mirror", client_key, client, [ca], serialization.BestAvailableEncryption(b"store-pw")),
        "expired.p12": pkcs12.serialize_key_and_certificates(
            b"mirror", client_key, expired, [ca], serialization.BestAvailableEncryption(b"store-pw")),
        "client.pem": client_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"key-pw"))
                      + client.public_bytes(pem),
        "legacy.jks": b"\xfe\xed\xfe\xed" + b"\0" * 60,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path, ca, client


def _tls(folder, **keys: str):
    return from_properties(base(**{"A.security.protocol": "SSL",
                                   **{f"A.{k.replace('_', '.')}": v.format(d=folder) for k, v in keys.items()}}))


def test_pem_truststore_and_pkcs12_keystore_become_librdkafka_pem(stores):
    folder, ca, client = stores
    config = _tls(folder, ssl_truststore_type="PEM", ssl_truststore_location="{d}/ca.pem",
                  ssl_keystore_type="PKCS12", ssl_keystore_location="{d}/client.p12", ssl_keystore_password="store-pw")
    settings = config.cluster("A").client
    assert x509.load_pem_x509_certificates(settings["ssl.ca.pem"].encode()) == [ca]
    chain = x509.load_pem_x509_certificates(settings["ssl.certificate.pem"].encode())
    assert chain[0] == client and chain[1] == ca
    key = serialization.load_pem_private_key(settings["ssl.key.pem"].encode(), None)
    assert key.public_key().public_numbers() == client.public_key().public_numbers()
    assert settings["ssl.key.pem"] in config.secrets


def test_pem_keystore_with_an_encrypted_key(stores):
    folder, _ca, client = stores
    config = _tls(folder, ssl_keystore_type="PEM", ssl_keystore_location="{d}/client.pem", ssl_key_password="key-pw")
    assert x509.load_pem_x509_certificates(config.cluster("A").client["ssl.certificate.pem"].encode()) == [client]


@pytest.mark.parametrize("keys, key, message", [
    ({"ssl_keystore_location": "{d}/client.p12", "ssl_keystore_password": "wrong"}, "A.ssl.keystore.location",
     "wrong password"),
    ({"ssl_keystore_location": "{d}/expired.p12", "ssl_keystore_password": "store-pw"}, "A.ssl.keystore.location",
     "cluster A: the client certificate CN=mirror-old expired on"),
    ({"ssl_truststore_location": "{d}/legacy.jks"}, "A.ssl.truststore.location", "is a JKS/JCEKS store"),
    ({"ssl_truststore_location": "{d}/missing.p12"}, "A.ssl.truststore.location", "cannot read"),
    ({"ssl_truststore_type": "BCFKS", "ssl_truststore_location": "{d}/ca.pem"}, "A.ssl.truststore.type",
     "not supported"),
    ({"ssl_keystore_type": "PEM", "ssl_keystore_location": "{d}/client.pem", "ssl_key_password": "nope"},
     "A.ssl.keystore.location", "wrong ssl.key.password"),
    ({"ssl_cipher_suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, "A.ssl.cipher.suites",
     "is a Java cipher suite name"),
])
def test_bad_stores_name_the_key(stores, keys, key, message):
    with pytest.raises(ConfigError) as caught:
        _tls(stores[0], **keys)
    assert caught.value.key == key and message in str(caught.value)


def test_java_keys_without_a_librdkafka_counterpart_are_noted(stores, caplog):
    with caplog.at_level(logging.INFO, logger="engine.config"):
        config = _tls(stores[0], ssl_enabled_protocols="TLSv1.2,TLSv1.3", ssl_truststore_type="PEM",
                      ssl_truststore_location="{d}/ca.pem")
    assert "ssl.enabled.protocols" not in config.cluster("A").client
    assert "A.ssl.enabled.protocols is not used: OpenSSL negotiates" in caplog.text


# -- config providers and redaction ------------------------------------------------------------

def test_env_file_and_directory_providers(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRROR_TEST_PASSWORD", "from-env-pw")
    (tmp_path / "creds.properties").write_text("password = from-file-pw\nuser=mirror\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "b-password").write_text("from-dir-pw")
    config = from_properties(base(**{
        "config.providers": "file,env,dir",
        "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
        "A.security.protocol": "SASL_PLAINTEXT", "A.sasl.mechanism": "PLAIN",
        "A.sasl.jaas.config": f'{PLAIN} required username="${{file:{tmp_path}/creds.properties:user}}" '
                              f'password="${{file:{tmp_path}/creds.properties:password}}";',
        "B.security.protocol": "SASL_PLAINTEXT", "B.sasl.mechanism": "PLAIN",
        "B.sasl.username": "${env:MIRROR_TEST_PASSWORD}", "B.sasl.password": f"${{dir:{tmp_path}/secrets:b-password}}",
    }))
    assert (config.cluster("A").client["sasl.username"], config.cluster("A").client["sasl.password"]) == (
        "mirror", "from-file-pw")
    assert (config.cluster("B").client["sasl.username"], config.cluster("B").client["sasl.password"]) == (
        "from-env-pw", "from-dir-pw")
    assert {"from-file-pw", "mirror", "from-env-pw", "from-dir-pw"} <= config.secrets


@pytest.mark.parametrize("value, declared, message", [
    ("${env:MIRROR_TEST_UNSET_VARIABLE}", {}, "environment variable MIRROR_TEST_UNSET_VARIABLE is not set"),
    ("${vault:secret/kafka:password}", {}, "unknown config provider 'vault'"),
    ("${file:/nonexistent/creds:password}", {}, "cannot read /nonexistent/creds"),
    ("${file:{d}/creds.properties:missing}", {}, "has no key 'missing'"),
    ("${file:{d}/creds.properties:password}", {"config.providers": "file",
     "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
     "config.providers.file.param.allowed.paths": "/etc/kafka"}, "outside config.providers.file.param.allowed.paths"),
])
def test_provider_errors_name_the_key_and_not_the_value(tmp_path, value, declared, message):
    (tmp_path / "creds.properties").write_text("password=file-pw\n")
    with pytest.raises(ConfigError) as caught:
        resolve_references({"A.sasl.password": value.replace("{d}", str(tmp_path)), **declared})
    assert caught.value.key == "A.sasl.password" and message in str(caught.value)
    assert "file-pw" not in str(caught.value)


def test_an_unknown_provider_class_is_refused():
    with pytest.raises(ConfigError) as caught:
        resolve_references({"config.providers": "vault", "config.providers.vault.class": "com.example.Vault"})
    assert caught.value.key == "config.providers.vault.class"


def test_redactor_masks_whole_secrets_and_lines_of_key_material():
    redactor = Redactor()
    key_material = ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
                    "-----END PRIVATE KEY-----")
    redactor.hide(["pw", "hunter2-pw", "hunter2", key_material])
    assert redactor("login hunter2-pw then hunter2 and pw") == f"login {MASK} then {MASK} and pw"
    assert "MIGHAgEAMBMG" not in redactor("line: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg")


@pytest.mark.parametrize("text, expected", [
    ("cannot reach kafka-1:9092 as mirror-engine", "cannot reach kafka-1:9092 as mirror-engine"),
    ("kafka.example.com:9093 and the topic mirror.orders", "kafka.example.com:9093 and the topic mirror.orders"),
    ("user mirror with password kafka.", f"user {MASK} with password {MASK}."),
    ('username="mirror" password="kafka";', f'username="{MASK}" password="{MASK}";'),
    ("sasl.password=kafka,sasl.username=mirror", f"sasl.password={MASK},sasl.username={MASK}"),
    ("SCRAM login of mirror failed (kafka)", f"SCRAM login of {MASK} failed ({MASK})"),
    ("https://mirror:kafka@127.0.0.1/token", f"https://{MASK}:{MASK}@127.0.0.1/token"),
    ("kafkaesque mirrors", "kafkaesque mirrors"),
])
def test_short_secrets_that_are_parts_of_common_words_are_masked_as_whole_tokens_only(text, expected):
    redactor = Redactor()
    redactor.hide(["kafka", "mirror"])
    assert redactor(text) == expected


def test_log_lines_and_tracebacks_never_print_a_secret(monkeypatch):
    from engine import logs
    from engine.security import secrets

    monkeypatch.setattr(secrets, "REDACTOR", Redactor())
    secrets.hide(["tb-secret-value"])
    stream = io.StringIO()
    monkeypatch.setattr(logs.sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logs.sys.excepthook
    try:
        logs.setup_logging("INFO", prefix="test")
        try:
            raise RuntimeError("login with tb-secret-value refused")
        except RuntimeError:
            logging.getLogger("t").exception("failed: %s", "tb-secret-value")
    finally:
        root.handlers[:], root.level, logs.sys.excepthook = saved
    assert "tb-secret-value" not in stream.getvalue()
    assert stream.getvalue().count(MASK) == 3  # the message, the source line, the exception


def test_masked_settings_for_printing():
    assert masked({"sasl.password": "x", "sasl.username": "u", "ssl.key.pem": "k", "ssl.ca.pem": "c"}) == {
        "sasl.password": MASK, "sasl.username": "u", "ssl.key.pem": MASK, "ssl.ca.pem": "c"}
