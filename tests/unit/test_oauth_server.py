"""The sandbox OAuth server: client-credentials grant, RS256 tokens that verify with its JWKS."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.sandbox.oauth import ALLOWED_URLS_PROPERTY, OAuthServer, b64url_decode

CLIENTS = {"mirror": "s3cret", "odd": "a+b%20c:d"}


@pytest.fixture
def server():
    with OAuthServer(dict(CLIENTS), audience="kafka-test", token_lifetime_s=600) as oauth:
        yield oauth


def _post(url: str, form: str, basic: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
    request = urllib.request.Request(url, data=form.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _public_key(jwks: dict[str, Any], kid: str) -> rsa.RSAPublicKey:
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    n = int.from_bytes(b64url_decode(key["n"]), "big")
    e = int.from_bytes(b64url_decode(key["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def _verified_claims(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of an RS256 JWT whose signature a key of jwks verifies."""
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    _public_key(jwks, header["kid"]).verify(
        b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(),
        padding.PKCS1v15(), hashes.SHA256(),
    )
    return header, json.loads(b64url_decode(claims_b64))


def test_basic_auth_gets_a_signed_token_with_the_claims(server):
    before = int(time.time())
    form = "grant_type=client_credentials&scope=kafka.read+kafka.write"
    status, body = _post(server.token_url, form, basic=("mirror", "s3cret"))
    assert status == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 600
    token = body["access_token"]
    assert "=" not in token  # base64url without padding in every part
    header, claims = _verified_claims(token, _get(server.jwks_url))
    assert header["kid"] == server.key_id
    assert claims["sub"] == "mirror"
    assert claims["iss"] == server.issuer == server.base_url
    assert claims["aud"] == "kafka-test"
    assert claims["scope"] == "kafka.read kafka.write"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 600
    assert server.tokens_issued == 1 and server.requests_rejected == 0


def test_form_fields_authenticate_too(server):
    form = "grant_type=client_credentials&client_id=mirror&client_secret=s3cret"
    status, body = _post(server.token_url, form)
    assert status == 200
    _, claims = _verified_claims(body["access_token"], server.jwks())
    assert claims["sub"] == "mirror"
    assert "scope" not in claims  # none asked for: Kafka refuses an empty scope claim
    assert server.tokens_issued == 1


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "form-urlencoded"])
def test_basic_auth_secret_with_reserved_characters(server, encode):
    # RFC 6749 section 2.3.1 form-urlencodes id and secret inside Basic; many clients do not
    secret = urllib.parse.quote_plus(CLIENTS["odd"]) if encode else CLIENTS["odd"]
    status, body = _post(server.token_url, "grant_type=client_credentials", basic=("odd", secret))
    assert status == 200, body


@pytest.mark.parametrize("form, basic", [
    ("grant_type=client_credentials", ("mirror", "wrong")),
    ("grant_type=client_credentials", ("nobody", "s3cret")),
    ("grant_type=client_credentials&client_id=mirror&client_secret=wrong", None),
    ("grant_type=client_credentials&client_id=mirror", None),
    ("grant_type=client_credentials", None),
], ids=["wrong-secret", "unknown-client", "wrong-form-secret", "no-secret", "no-credentials"])
def test_bad_credentials_are_invalid_client(server, form, basic):
    status, body = _post(server.token_url, form, basic=basic)
    assert (status, body) == (401, {"error": "invalid_client"})
    assert server.tokens_issued == 0 and server.requests_rejected == 1


def test_basic_auth_wins_over_form_fields(server):
    # a client that sends both is judged by its Authorization header, as RFC 6749 allows one method
    form = "grant_type=client_credentials&client_id=mirror&client_secret=s3cret"
    status, _ = _post(server.token_url, form, basic=("mirror", "wrong"))
    assert status == 401


def test_other_grants_and_paths_are_refused(server):
    assert _post(server.token_url, "grant_type=password&username=u&password=p",
                 basic=("mirror", "s3cret")) == (400, {"error": "unsupported_grant_type"})
    assert _post(server.base_url + "/other", "grant_type=client_credentials")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(server.base_url + "/nothing")
    missing.value.close()
    assert missing.value.code == 404
    assert server.tokens_issued == 0


def test_a_token_from_another_server_does_not_verify(server):
    with OAuthServer({"mirror": "s3cret"}) as other:
        token = other.issue_token("mirror")["access_token"]
        header_b64, claims_b64, signature_b64 = token.split(".")
        with pytest.raises(InvalidSignature):
            server.public_key.verify(
                b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(), hashes.SHA256(),
            )


def test_tokens_are_counted_and_logged(server):
    for _ in range(3):
        status, _ = _post(server.token_url, "grant_type=client_credentials", ("mirror", "s3cret"))
        assert status == 200
    assert server.tokens_issued == 3
    assert server.request_log()[-1] == "POST /token basic client=mirror scope='' -> 200"


def test_broker_settings_name_this_server(server):
    settings = server.settings()
    props = settings.listener_properties("OAUTH")
    prefix = "listener.name.oauth.oauthbearer."
    assert props["listener.name.oauth.sasl.enabled.mechanisms"] == "OAUTHBEARER"
    assert props[prefix + "sasl.oauthbearer.jwks.endpoint.url"] == server.jwks_url
    assert props[prefix + "sasl.oauthbearer.expected.issuer"] == server.issuer
    assert props[prefix + "sasl.oauthbearer.expected.audience"] == "kafka-test"
    assert settings.jvm_options() == (f"-D{ALLOWED_URLS_PROPERTY}={server.jwks_url}",)
    config = server.client_config("mirror", scope="kafka")
    assert config["sasl.oauthbearer.token.endpoint.url"] == server.token_url
    assert config["sasl.oauthbearer.client.secret"] == "s3cret"


def test_stop_releases_the_port():
    oauth = OAuthServer({"mirror": "s3cret"}).start()
    url = oauth.token_url
    oauth.stop()
    oauth.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        _post(url, "grant_type=client_credentials", basic=("mirror", "s3cret"))
