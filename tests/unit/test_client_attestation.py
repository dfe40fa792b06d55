"""Tests for intyg.client_attestation: spec examples, round trips, one test per rejection rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from intyg import client_attestation as ca
from intyg import dpop, jose, x509
from intyg.client_attestation import ClientAttestationError

NOW = 1_800_000_000
NOT_BEFORE = datetime.fromtimestamp(NOW - 86400, UTC)
AS_ISSUER = "https://issuer.example"
CLIENT_ID = "https://wallet.example/app"

ROOT_KEY, ROOT = x509.make_ca("Wallet Provider Root", not_before=NOT_BEFORE)
PROVIDER_KEY = jose.generate_key("ES256")
PROVIDER_CERT = x509.make_leaf(
    ROOT_KEY, ROOT, PROVIDER_KEY, common_name="wallet-provider.example", not_before=NOT_BEFORE
)
X5C = x509.x5c_from_certs([PROVIDER_CERT])
OTHER_ROOT_KEY, OTHER_ROOT = x509.make_ca("Other Root", not_before=NOT_BEFORE)
INSTANCE = jose.generate_key("ES256")
OTHER = jose.generate_key("ES256")

# OpenID4VCI 1.0 examples/wallet_attestation.jwt.txt (Appendix E; x5c is self-signed).
SPEC_WALLET_ATTESTATION = (
    "eyJ0eXAiOiJvYXV0aC1jbGllbnQtYXR0ZXN0YXRpb24rand0IiwiYWxnIjoiRVMyNTYiLCJ4NWMiOlsiTUlJQjZ6"
    "Q0NBWkdnQXdJQkFnSVVQUXA1MWVLRUt2bkVWMlVtcnMrcGFkNko3Zjh3Q2dZSUtvWkl6ajBFQXdJd0pqRWtNQ0lH"
    "QTFVRUF3d2JkMkZzYkdWMExYQnliM1pwWkdWeUxtVjRZVzF3YkdVdVkyOXRNQ0FYRFRJMU1EZ3hNakE0TURVeU5s"
    "b1lEekl3TlRVd09EQTFNRGd3TlRJMldqQW1NU1F3SWdZRFZRUUREQnQzWVd4c1pYUXRjSEp2ZG1sa1pYSXVaWGho"
    "YlhCc1pTNWpiMjB3V1RBVEJnY3Foa2pPUFFJQkJnZ3Foa2pPUFFNQkJ3TkNBQVNKNFBIUVkxVGtodUVDY0prQ09l"
    "azFwYXBtWTBPUVBESExMNWIyckdPV0ZZVldiVXRJS3ZYSFBSN0RPa3JHbmhNNFg3SW5BSFJrVXZzbnpWZHhtMmVW"
    "bzRHYU1JR1hNQjBHQTFVZERnUVdCQlJuQS9yVnlWbktPNkhxckoxSGJmejIvMWd1a3pBZkJnTlZIU01FR0RBV2dC"
    "Um5BL3JWeVZuS082SHFySjFIYmZ6Mi8xZ3VrekFQQmdOVkhSTUJBZjhFQlRBREFRSC9NRVFHQTFVZEVRUTlNRHVD"
    "RzNkaGJHeGxkQzF3Y205MmFXUmxjaTVsZUdGdGNHeGxMbU52YllJY0tpNTNZV3hzWlhRdGNISnZkbWxrY2k1bGVH"
    "RnRjR3hsTG1OdmJUQUtCZ2dxaGtqT1BRUURBZ05JQURCRkFpQmNLcmc4QVhJNm15RTdCY1JvN3k4N1VDNkRFNi85"
    "eFZ0RjRBT3kzbTRNekFJaEFON3B5UUx6NDF0WjlUb1JTdEc1Y05Cb09INWVJQWcrbDFkOUpPazBXTndvIl19.eyJp"
    "c3MiOiJodHRwczovL3dhbGxldC1wcm92aWRlci5leGFtcGxlLmNvbSIsInN1YiI6Imh0dHBzOi8vd2FsbGV0LmV4"
    "YW1wbGUub3JnIiwid2FsbGV0X25hbWUiOiJXYWxsZXQgU29sdXRpb24gWCBieSBXb25kZXJsYW5kIFN0YXRlIERl"
    "cGFydG1lbnQiLCJ3YWxsZXRfbGluayI6Imh0dHBzOi8vZXhhbXBsZS5jb20vd2FsbGV0L2RldGFpbF9pbmZvLmh0"
    "bWwiLCJuYmYiOjEzMDA4MTU3ODAsImV4cCI6MTMwMDgxOTM4MCwiY25mIjp7Imp3ayI6eyJrdHkiOiJFQyIsInVz"
    "ZSI6InNpZyIsImNydiI6IlAtMjU2IiwieCI6IjE4d0hMZUlnVzl3Vk42VkQxVHhncHF5MkxzellrTWY2SjhualZB"
    "aWJ2aE0iLCJ5IjoiLVY0ZFM0VWFMTWdQXzRmWTRqOGlyN2NsMVRYbEZkQWdjeDU1bzdUa2NTQSJ9fX0.juKkYImj"
    "RQZnH9V1zWqhthj19w4Mof42CPRj6tOdzmbQvyQr3L3u1qc_6INlf4pAjdulQooZsUsLmCJA0Lzqnw"
)
# draft-ietf-oauth-attestation-based-client-auth-11 §4 and §5.1 examples.
DRAFT_ATTESTATION = (
    "eyJ0eXAiOiJvYXV0aC1jbGllbnQtYXR0ZXN0YXRpb24rand0IiwiYWxnIjoiRVMyNTYiLCJraWQiOiIxMSJ9.eyJz"
    "dWIiOiJodHRwczovL2NsaWVudC5leGFtcGxlLmNvbSIsImlhdCI6MTc3MjQ4NzU5NSwiZXhwIjoyNTI5ODY2Mzk0"
    "LCJjbmYiOnsiandrIjp7Imt0eSI6IkVDIiwidXNlIjoic2lnIiwiY3J2IjoiUC0yNTYiLCJ4IjoiVmNLVk5CWjRJ"
    "YUJBWVczanhNNHczVEpGVkE3bXllVUdReUd0LWdfeXZwUSIsInkiOiJmLUUtaFlFM1RBV0t3aFZ2OXBlajlOQUJz"
    "OVNYOVhzTk84MHg1N2pGVHlVIn19fQ._TS4d-LAnRlwdN97wiVnl4z7C9gvm45IWr-BvGTzeZaHtZtgNZ88gvzroU"
    "3LElUPbgF4kWi_DFORnKzsx5yu6A"
)
DRAFT_POP = (
    "eyJ0eXAiOiJvYXV0aC1jbGllbnQtYXR0ZXN0YXRpb24tcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.eyJhdWQiOiJo"
    "dHRwczovL2FzLmV4YW1wbGUuY29tIiwianRpIjoiZDI1ZDAwYWItNTUyYi00NmZjLWFlMTktOThmNDQwZjI1MDY0"
    "IiwiaWF0IjoxNzcyNDg3NTk1LCJjaGFsbGVuZ2UiOiI1YzFhOWUxMC0yOWZmLTRjMmItYWU3My01N2MwOTU3YzA5"
    "YzQifQ.M4Uc4rWVAqaLlmDDUXQKkKPbAQKj0JrTizLgWhZndmbkvM3VL8y-w_QJr7Z0HZlH94E64cLa8L5fSjJItY"
    "v0jg"
)


def b64json(value: Any) -> str:
    return jose.b64url_encode(json.dumps(value).encode())


def attestation(**overrides: Any) -> str:
    options: dict[str, Any] = {
        "x5c": X5C,
        "client_id": CLIENT_ID,
        "instance_key_jwk": INSTANCE,
        "exp": NOW + 3600,
        "iat": NOW - 60,
        "wallet_name": "Intyg Wallet",
        "wallet_link": "https://wallet.example/about",
    }
    options.update(overrides)
    return ca.make_client_attestation(PROVIDER_KEY, **options)


def raw_attestation(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An attestation with arbitrary claims, signed by the trusted provider."""
    full = {"typ": ca.ATTESTATION_TYP, "x5c": X5C}
    full.update(header or {})
    return jose.encode_jws(claims, PROVIDER_KEY, full)


def base_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": CLIENT_ID,
        "exp": NOW + 3600,
        "iat": NOW - 60,
        "cnf": {"jwk": INSTANCE.public_jwk()},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def pop(**overrides: Any) -> str:
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "audience": AS_ISSUER,
        "challenge": "ch-1",
        "iat": NOW,
    }
    options.update(overrides)
    return ca.make_client_attestation_pop(INSTANCE, **options)


def raw_pop(claims: dict[str, Any], *, key: jose.Key = INSTANCE, typ: str = ca.POP_TYP) -> str:
    return jose.encode_jws(claims, key, {"typ": typ})


def pop_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"aud": AS_ISSUER, "jti": "jti-1", "iat": NOW, "challenge": "ch-1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def verify(att: str, proof: str | None, **kwargs: Any) -> ca.ClientAttestation:
    options: dict[str, Any] = {
        "audience": AS_ISSUER,
        "now": NOW,
        "trust_anchors": [ROOT],
        "challenge": "ch-1",
    }
    options.update(kwargs)
    return ca.verify_client_attestation(att, proof, **options)


def refused(att: str, proof: str | None, error: str = "invalid_client", **kwargs: Any) -> None:
    with pytest.raises(ClientAttestationError) as info:
        verify(att, proof, **kwargs)
    assert info.value.error == error


# -- spec examples -------------------------------------------------------------------------------


def _leaf_key(header: Any, claims: Any) -> jose.Key:
    """Trust the example's attester by pinning its (self-signed) certificate key."""
    return jose.key_from_public_key(x509.certs_from_x5c(header["x5c"])[0].public_key())


def test_openid4vci_wallet_attestation_example_verifies_with_a_pinned_key() -> None:
    claims, key, provider, chain = ca.verify_client_attestation_jwt(
        SPEC_WALLET_ATTESTATION, now=1300816000, key_resolver=_leaf_key
    )
    assert claims["sub"] == "https://wallet.example.org"
    assert claims["wallet_name"] == "Wallet Solution X by Wonderland State Department"
    assert provider == "https://wallet-provider.example.com"
    assert key.thumbprint() == jose.jwk_thumbprint(claims["cnf"]["jwk"])
    assert chain is None


def test_openid4vci_wallet_attestation_example_fails_haip_chain_rules() -> None:
    # Its x5c holds a self-signed certificate: not acceptable as an x5c chain (HAIP).
    (cert,) = x509.certs_from_x5c(jose.parse_jws(SPEC_WALLET_ATTESTATION).header["x5c"])
    with pytest.raises(ClientAttestationError) as info:
        ca.verify_client_attestation_jwt(
            SPEC_WALLET_ATTESTATION, now=1300816000, trust_anchors=[cert]
        )
    assert info.value.error == "invalid_client"


def test_draft_pop_example_verifies_with_the_attested_key() -> None:
    cnf = jose.parse_jws(DRAFT_ATTESTATION).claims()["cnf"]["jwk"]
    claims = ca.verify_client_attestation_pop(
        DRAFT_POP,
        jose.key_from_jwk(cnf),
        client_id="https://client.example.com",
        audience="https://as.example.com",
        now=1772487595,
        challenge="5c1a9e10-29ff-4c2b-ae73-57c0957c09c4",
    )
    assert claims["jti"] == "d25d00ab-552b-46fc-ae19-98f440f25064"


def test_draft_pop_example_for_another_server_is_refused() -> None:
    cnf = jose.parse_jws(DRAFT_ATTESTATION).claims()["cnf"]["jwk"]
    with pytest.raises(ClientAttestationError):
        ca.verify_client_attestation_pop(
            DRAFT_POP,
            jose.key_from_jwk(cnf),
            client_id="https://client.example.com",
            audience="https://rs.example.com",
            now=1772487595,
        )


# -- round trips ---------------------------------------------------------------------------------


def test_attestation_and_pop_round_trip() -> None:
    result = verify(attestation(), pop(jti="pop-jti"), expected_client_id=CLIENT_ID)
    assert result.client_id == CLIENT_ID
    assert result.instance_jkt == INSTANCE.thumbprint()
    assert result.pop_jti == "pop-jti"
    assert result.wallet_name == "Intyg Wallet"
    assert result.wallet_link == "https://wallet.example/about"
    assert "wallet-provider.example" in result.provider
    assert result.chain is not None and result.chain.leaf == PROVIDER_CERT


def test_made_attestation_shape() -> None:
    jws = jose.parse_jws(attestation(issuer="https://provider.example"))
    assert jws.header["typ"] == "oauth-client-attestation+jwt"
    assert jws.header["x5c"] == X5C
    claims = jws.claims()
    assert claims["iss"] == "https://provider.example"
    assert set(claims["cnf"]["jwk"]) == {"kty", "crv", "x", "y", "kid"}


def test_made_pop_shape() -> None:
    jws = jose.parse_jws(pop())
    assert jws.header == {"alg": "ES256", "typ": "oauth-client-attestation-pop+jwt"}
    assert set(jws.claims()) == {"aud", "jti", "iat", "iss", "challenge"}


def test_key_resolver_instead_of_x5c() -> None:
    att = ca.make_client_attestation(
        PROVIDER_KEY,
        x5c=None,
        client_id=CLIENT_ID,
        instance_key_jwk=INSTANCE.public_jwk(),
        exp=NOW + 60,
        issuer="https://provider.example",
    )
    assert jose.parse_jws(att).header["kid"] == PROVIDER_KEY.kid
    keys = {PROVIDER_KEY.kid: PROVIDER_KEY.public()}
    result = verify(att, pop(), trust_anchors=None, key_resolver=lambda h, c: keys[h["kid"]])
    assert result.provider == "https://provider.example"


def test_pop_without_iss_and_without_challenge_requirement() -> None:
    result = verify(attestation(), pop(client_id=None, challenge=None), challenge=None)
    assert "iss" not in (result.pop_claims or {})


def test_challenge_may_be_one_of_several() -> None:
    assert verify(attestation(), pop(challenge="b"), challenge=["a", "b"]).pop_jti


def test_dpop_combined_mode() -> None:
    proof = dpop.make_dpop_proof(INSTANCE, htm="POST", htu=AS_ISSUER + "/token", iat=NOW)
    checked = dpop.verify_dpop_proof(proof, htm="POST", htu=AS_ISSUER + "/token", now=NOW)
    result = verify(attestation(), None, dpop_jkt=checked.jkt)
    assert result.pop_jti is None and result.pop_claims is None


def test_must_pass_exactly_one_trust_source() -> None:
    with pytest.raises(TypeError):
        verify(attestation(), pop(), key_resolver=lambda h, c: PROVIDER_KEY)
    with pytest.raises(TypeError):
        verify(attestation(), pop(), trust_anchors=None)


def test_instance_key_must_be_public_when_making() -> None:
    with pytest.raises(jose.JoseError):
        attestation(instance_key_jwk=INSTANCE.private_jwk())


# -- attestation rejection rules (§7.1) ----------------------------------------------------------


def test_rejects_malformed_attestation() -> None:
    refused("a.b", pop())


@pytest.mark.parametrize("typ", [None, "JWT", "oauth-client-attestation-pop+jwt"])
def test_rejects_attestation_typ(typ: str | None) -> None:
    refused(raw_attestation(base_claims(), {"typ": typ}), pop())


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_rejects_attestation_none_or_mac(alg: str) -> None:
    header = {"typ": ca.ATTESTATION_TYP, "alg": alg, "x5c": X5C}
    refused(f"{b64json(header)}.{b64json(base_claims())}.c2ln", pop())


def test_rejects_attestation_algorithm_outside_policy() -> None:
    refused(attestation(), pop(), algorithms={"EdDSA"})


def test_rejects_attestation_without_x5c_when_anchors_are_used() -> None:
    refused(raw_attestation(base_claims(), {"x5c": None}), pop())


def test_rejects_attestation_chain_to_another_anchor() -> None:
    refused(attestation(), pop(), trust_anchors=[OTHER_ROOT])


def test_rejects_attestation_with_the_anchor_in_x5c() -> None:
    chain = x509.x5c_from_certs([PROVIDER_CERT, ROOT])
    refused(attestation(x5c=chain), pop())


def test_rejects_attestation_signed_by_another_key() -> None:
    att = jose.encode_jws(base_claims(), OTHER, {"typ": ca.ATTESTATION_TYP, "x5c": X5C})
    refused(att, pop())


def test_rejects_unknown_attester_from_resolver() -> None:
    refused(attestation(x5c=None), pop(), trust_anchors=None, key_resolver=lambda h, c: {}[1])


def test_rejects_missing_exp() -> None:
    refused(raw_attestation(base_claims(exp=None)), pop())


def test_rejects_expired_attestation() -> None:
    refused(attestation(exp=NOW - 3600), pop())


def test_rejects_attestation_not_yet_valid() -> None:
    refused(raw_attestation(base_claims(nbf=NOW + 3600)), pop())


def test_rejects_attestation_that_is_not_fresh_enough() -> None:
    refused(attestation(iat=NOW - 7200), pop(), "use_fresh_attestation", max_attestation_age=600)


@pytest.mark.parametrize("sub", [None, "", 5])
def test_rejects_missing_sub(sub: Any) -> None:
    refused(raw_attestation(base_claims(sub=sub)), pop())


def test_rejects_client_id_not_matching_sub() -> None:
    refused(attestation(), pop(), expected_client_id="https://other.example")


@pytest.mark.parametrize("cnf", [None, {}, {"jwk": "k"}, {"jkt": "abc"}])
def test_rejects_missing_cnf_jwk(cnf: Any) -> None:
    refused(raw_attestation(base_claims(cnf=cnf)), pop())


def test_rejects_private_cnf_jwk() -> None:
    refused(raw_attestation(base_claims(cnf={"jwk": INSTANCE.private_jwk()})), pop())


# -- PoP rejection rules (§7.2) and combined mode (§7.3) -------------------------------------------


def test_rejects_missing_proof_of_possession() -> None:
    refused(attestation(), None)


@pytest.mark.parametrize("typ", ["JWT", "dpop+jwt", "oauth-client-attestation+jwt"])
def test_rejects_pop_typ(typ: str) -> None:
    refused(attestation(), raw_pop(pop_claims(), typ=typ))


def test_rejects_pop_signed_by_another_key() -> None:
    refused(attestation(), raw_pop(pop_claims(), key=OTHER))


@pytest.mark.parametrize(
    "aud", [None, "https://issuer.example/", [AS_ISSUER], "https://evil.example"]
)
def test_rejects_pop_audience(aud: Any) -> None:
    refused(attestation(), raw_pop(pop_claims(aud=aud)))


def test_rejects_pop_without_iat() -> None:
    refused(attestation(), raw_pop(pop_claims(iat=None)))


@pytest.mark.parametrize("iat", [NOW - 3600, NOW + 3600])
def test_rejects_pop_iat_outside_window(iat: int) -> None:
    refused(attestation(), raw_pop(pop_claims(iat=iat)))


@pytest.mark.parametrize("jti", [None, "", 3])
def test_rejects_pop_without_jti(jti: Any) -> None:
    claims = pop_claims()
    claims.pop("jti")
    if jti is not None:
        claims["jti"] = jti
    refused(attestation(), raw_pop(claims))


def test_rejects_pop_iss_other_than_the_client() -> None:
    refused(attestation(), raw_pop(pop_claims(iss="https://other.example")))


def test_missing_challenge_asks_for_one() -> None:
    refused(attestation(), raw_pop(pop_claims(challenge=None)), "use_attestation_challenge")


def test_wrong_challenge_asks_for_a_fresh_one() -> None:
    refused(attestation(), pop(challenge="old"), "use_attestation_challenge")


def test_rejects_dpop_key_that_is_not_the_instance_key() -> None:
    refused(attestation(), None, dpop_jkt=OTHER.thumbprint())
