"""The batch relay's SCRAM client against RFC 7677's SCRAM-SHA-256 example, and what it refuses."""

from __future__ import annotations

import pytest

from engine.batch.scram import ScramClient, ScramError

# RFC 7677, section 3: user "user", password "pencil"
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_client() -> ScramClient:
    return ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=CLIENT_NONCE)


def test_the_exchange_matches_rfc_7677_byte_for_byte():
    client = rfc_client()
    assert client.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.check(SERVER_FINAL)  # the server's signature is the one the password gives: no exception


def test_a_server_signature_of_another_password_is_refused():
    client = rfc_client()
    client.final(SERVER_FIRST)
    with pytest.raises(ScramError, match="signature is wrong"):
        client.check(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


@pytest.mark.parametrize("server_first, error", [
    (b"r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend the client's"),
    (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend the client's"),
    (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==", "malformed"),
    (b"e=unknown-user", "refused the login: unknown-user"),
])
def test_a_server_first_message_that_breaks_the_exchange_is_named(server_first, error):
    with pytest.raises(ScramError, match=error):
        rfc_client().final(server_first)


def test_user_names_escape_comma_and_equals_and_nonces_differ():
    assert ScramClient("SCRAM-SHA-512", "a=b,c", "pw", nonce="n").first() == b"n,,n=a=3Db=2Cc,r=n"
    assert ScramClient("SCRAM-SHA-512", "u", "pw").first() != ScramClient("SCRAM-SHA-512", "u", "pw").first()
