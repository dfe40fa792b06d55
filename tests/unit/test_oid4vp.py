"""Tests for intyg.oid4vp: spec examples, verifier<->wallet round trips, one test per refusal
(security.md T057-T073, T092, T101-T104)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from intyg import dcql, did, jose, jwe, oid4vp, sdjwt, sdjwt_vc, x509
from intyg.oid4vp import OID4VPError
from intyg.sdjwt import SD

NOW = 1_800_000_000
DNS = "verifier.example"
RESPONSE_URI = f"https://{DNS}/oid4vp/response"
CA_KEY, CA = x509.make_ca("Test Verifier CA", not_before=None)
LEAF_KEY = jose.generate_key("ES256")
LEAF = x509.make_leaf(CA_KEY, CA, LEAF_KEY, common_name="Verifier", san_dns=[DNS])
X5C = x509.x5c_from_certs([LEAF])
CLIENT_ID_HASH = oid4vp.client_id_x509_hash(LEAF)
CLIENT_ID_DNS = oid4vp.client_id_x509_san_dns(DNS)
ENC_PRIVATE, ENC_PUBLIC = jwe.new_encryption_key()
VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"
QUERY = {
    "credentials": [
        {
            "id": "inskrivning",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [VCT]},
            "claims": [{"path": ["registered_since"]}],
        }
    ]
}


def build(client_id: str = CLIENT_ID_HASH, **overrides: Any) -> dict[str, Any]:
    claims = oid4vp.authorization_request(
        client_id=client_id,
        response_uri=RESPONSE_URI,
        dcql_query=QUERY,
        encryption_jwks=[ENC_PUBLIC],
        now=NOW,
    )
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: jose.Key = LEAF_KEY, **header: Any) -> str:
    full = {"typ": oid4vp.REQUEST_OBJECT_TYP, "x5c": X5C, **header}
    return jose.encode_jws(claims, key, {k: v for k, v in full.items() if v is not None})


def verify(
    token: str, client_id: str = CLIENT_ID_HASH, **kwargs: Any
) -> oid4vp.AuthorizationRequest:
    kwargs.setdefault("x5c_trust_anchors", [CA])
    kwargs.setdefault("now", NOW)
    return oid4vp.verify_request_object(token, client_id_from_link=client_id, **kwargs)


def refused(call: Callable[[], Any], error: str, match: str | None = None) -> OID4VPError:
    with pytest.raises(OID4VPError, match=match) as info:
        call()
    assert info.value.error == error
    return info.value


# -- client identifiers (§5.9) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "expected"),
    [
        ("example-client", ("pre-registered", "example-client")),
        ("x509_san_dns:client.example.org", ("x509_san_dns", "client.example.org")),
        (
            "x509_hash:Uvo3HtuIxuhC92rShpgqcT3YXwrqRxWEviRiA0OZszk",
            ("x509_hash", "Uvo3HtuIxuhC92rShpgqcT3YXwrqRxWEviRiA0OZszk"),
        ),
        (
            "redirect_uri:https://client.example.org/cb",
            ("redirect_uri", "https://client.example.org/cb"),
        ),
        (
            "decentralized_identifier:did:example:123",
            ("decentralized_identifier", "did:example:123"),
        ),
        ("verifier_attestation:verifier.example", ("verifier_attestation", "verifier.example")),
        ("https://client.example.org/cb", ("pre-registered", "https://client.example.org/cb")),
    ],
)
def test_parse_client_id_spec_examples(client_id: str, expected: tuple[str, str]) -> None:
    assert oid4vp.parse_client_id(client_id) == expected


@pytest.mark.parametrize(
    ("client_id", "match"),
    [
        ("origin:https://verifier.example.com/", "origin"),
        ("x509_hash:", "empty"),
        ("", "non-empty"),
        (None, "non-empty"),
        ("x509_san_dns:vеrifier.example", "ASCII"),  # Cyrillic "е" look-alike (T068)
        ("x509_san_dns:a b", "ASCII"),
    ],
)
def test_parse_client_id_refusals(client_id: Any, match: str) -> None:
    refused(lambda: oid4vp.parse_client_id(client_id), "invalid_request", match)


def test_client_id_builders() -> None:
    assert CLIENT_ID_HASH == "x509_hash:" + x509.x509_hash(x509.cert_to_der(LEAF))
    assert oid4vp.client_id_did("did:web:v.example") == "decentralized_identifier:did:web:v.example"
    assert (
        oid4vp.client_id_redirect_uri("https://v.example/cb") == "redirect_uri:https://v.example/cb"
    )


# -- verifier: request building ------------------------------------------------------------


def test_authorization_request_claims() -> None:
    claims = build()
    assert claims["response_type"] == "vp_token" and claims["response_mode"] == "direct_post.jwt"
    assert claims["client_id"] == CLIENT_ID_HASH and claims["response_uri"] == RESPONSE_URI
    assert claims["aud"] == "https://self-issued.me/v2"
    assert claims["exp"] - claims["iat"] == oid4vp.DEFAULT_REQUEST_LIFETIME
    for name in ("nonce", "state"):
        assert len(claims[name]) >= 43 and oid4vp._URL_SAFE.fullmatch(claims[name])
    assert claims["nonce"] != claims["state"]
    metadata = claims["client_metadata"]
    assert metadata["jwks"] == {"keys": [ENC_PUBLIC]}
    assert metadata["encrypted_response_enc_values_supported"] == ["A128GCM", "A256GCM"]
    assert metadata["vp_formats_supported"]["dc+sd-jwt"]["kb-jwt_alg_values"] == ["ES256"]
    assert claims["dcql_query"] == QUERY
    assert "redirect_uri" not in claims


def test_authorization_request_fresh_values() -> None:
    assert build()["nonce"] != build()["nonce"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"response_mode": "fragment"}, "response_mode"),
        ({"encryption_jwks": []}, "encryption key"),
        ({"encryption_jwks": [dict(ENC_PUBLIC, alg="RSA-OAEP")]}, "encryption_jwks"),
        ({"enc_values": ["A192GCM"]}, "enc_values"),
        ({"nonce": "short"}, "too short"),
        ({"nonce": "n" * 30 + " "}, "nonce"),
        ({"state": "ä" * 30}, "state"),
        ({"response_uri": "ftp://verifier.example/x"}, "response_uri"),
        ({"client_id": "x509_san_dns:other.example"}, "host"),
        ({"client_id": "redirect_uri:https://other.example/cb"}, "redirect_uri"),
        ({"dcql_query": {"credentials": []}}, "credentials"),
    ],
)
def test_authorization_request_refusals(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "client_id": CLIENT_ID_HASH,
        "response_uri": RESPONSE_URI,
        "dcql_query": QUERY,
        "encryption_jwks": [ENC_PUBLIC],
        **kwargs,
    }
    refused(lambda: oid4vp.authorization_request(**args), "invalid_request", match)


def test_plain_direct_post_needs_no_keys() -> None:
    claims = oid4vp.authorization_request(
        client_id=CLIENT_ID_HASH,
        response_uri=RESPONSE_URI,
        dcql_query=QUERY,
        response_mode="direct_post",
    )
    assert "jwks" not in claims["client_metadata"]


def test_sign_request_object_header() -> None:
    token = oid4vp.sign_request_object(build(), LEAF_KEY, x5c=X5C)
    header = jose.parse_jws(token).header
    assert header == {"alg": "ES256", "typ": "oauth-authz-req+jwt", "x5c": X5C}
    did_key = jose.generate_key("ES256", kid="did:example:123#key-1")
    assert jose.parse_jws(oid4vp.sign_request_object(build(), did_key)).header["kid"] == (
        "did:example:123#key-1"
    )


def test_request_uri_link_round_trip() -> None:
    link = oid4vp.request_uri_link(CLIENT_ID_DNS, "https://verifier.example/request/abc")
    assert link == (
        "openid4vp://?client_id=x509_san_dns%3Averifier.example"
        "&request_uri=https%3A%2F%2Fverifier.example%2Frequest%2Fabc"
    )
    parsed = oid4vp.parse_request_link(link)
    assert parsed == oid4vp.RequestLink(CLIENT_ID_DNS, "https://verifier.example/request/abc")


def test_request_uri_link_schemes_and_method() -> None:
    haip = oid4vp.request_uri_link(
        CLIENT_ID_HASH, "https://v.example/r", oid4vp.HAIP_VP_SCHEME, "post"
    )
    assert haip.startswith("haip-vp://?client_id=")
    assert oid4vp.parse_request_link(haip).request_uri_method == "post"
    universal = oid4vp.request_uri_link(
        CLIENT_ID_HASH, "https://v.example/r", "https://wallet.example/authorize"
    )
    assert universal.startswith("https://wallet.example/authorize?client_id=")
    refused(
        lambda: oid4vp.request_uri_link(
            CLIENT_ID_HASH, "https://v.example/r", request_uri_method="PUT"
        ),
        "invalid_request_uri_method",
    )


# -- wallet: link parsing (T064, T068) ---------------------------------------------------


def test_spec_example_link_with_post() -> None:
    link = (
        "https://wallet.example/authorize?client_id=x509_san_dns%3Aclient.example.org"
        "&request_uri=https%3A%2F%2Fclient.example.org%2Frequest%2Fvapof4ql2i7m41m68uep"
        "&request_uri_method=post"
    )
    parsed = oid4vp.parse_request_link(link)
    assert parsed.client_id == "x509_san_dns:client.example.org"
    assert parsed.request_uri == "https://client.example.org/request/vapof4ql2i7m41m68uep"
    assert parsed.request_uri_method == "post"


def test_link_by_value_and_plain() -> None:
    by_value = oid4vp.parse_request_link("openid4vp://?client_id=c&request=eyJ.eyJ.sig")
    assert by_value.request == "eyJ.eyJ.sig" and by_value.request_uri is None
    plain = oid4vp.parse_request_link("openid4vp://?client_id=c&response_type=vp_token")
    assert plain.params["response_type"] == "vp_token"


@pytest.mark.parametrize("method", ["PUT", "Post", "GET", ""])
def test_request_uri_method_refused(method: str) -> None:  # T064
    link = f"openid4vp://?client_id=c&request_uri=https%3A%2F%2Fv.example%2Fr&request_uri_method={method}"
    refused(lambda: oid4vp.parse_request_link(link), "invalid_request_uri_method")


@pytest.mark.parametrize(
    ("link", "match"),
    [
        (
            "openid4vp://?client_id=c&client_id=d&request_uri=https%3A%2F%2Fv.example%2Fr",
            "repeated",
        ),
        (
            "openid4vp://?client_id=c&request_uri=https%3A%2F%2Fv.example%2Fr"
            + "&x="
            + "a" * 100_000,
            "too long",
        ),
        ("openid4vp://?client_id=c\r\n&request_uri=https%3A%2F%2Fv.example%2Fr", "ASCII"),
        (
            "openid4vp://?client_id=x509_san_dns%3Av%D0%B5rifier.example&request_uri=https%3A%2F%2Fv.example%2Fr",
            "ASCII",
        ),
        ("openid4vp://?client_id=c&request_uri=https%3A%2F%2Fv.example%2Fr&request=e", "both"),
        ("openid4vp://?client_id=c&request_uri_method=post", "without request_uri"),
        ("openid4vp://?client_id=c&request_uri=http%3A%2F%2Fv.example%2Fr", "https"),
        ("openid4vp://?request_uri=https%3A%2F%2Fv.example%2Fr", "client_id"),
        ("openid4vp://", "no parameters"),
        (
            "openid4vp://?client_id=origin%3Ahttps%3A%2F%2Fv.example&request_uri=https%3A%2F%2Fv.example%2Fr",
            "origin",
        ),
    ],
)
def test_link_refusals(link: str, match: str) -> None:
    refused(lambda: oid4vp.parse_request_link(link), "invalid_request", match)


def test_request_uri_post_body() -> None:
    body = oid4vp.request_uri_post_body(
        wallet_metadata=oid4vp.wallet_metadata(), wallet_nonce="qPmxiNFCR3QTm19POc8u"
    )
    assert body["wallet_nonce"] == "qPmxiNFCR3QTm19POc8u"
    assert json.loads(body["wallet_metadata"])["vp_formats_supported"]["dc+sd-jwt"]


# -- wallet: Request Object verification ---------------------------------------------------


def test_round_trip_x509_hash() -> None:
    claims = build()
    request = verify(oid4vp.sign_request_object(claims, LEAF_KEY, x5c=X5C))
    assert request.client_id == CLIENT_ID_HASH and request.client_id_prefix == "x509_hash"
    assert request.audience == CLIENT_ID_HASH  # full client id incl. prefix (T072)
    assert request.nonce == claims["nonce"] and request.state == claims["state"]
    assert request.response_mode == "direct_post.jwt" and request.response_uri == RESPONSE_URI
    assert request.encryption_jwk == ENC_PUBLIC and request.encryption_enc == "A256GCM"
    assert request.dcql_query == dcql.parse_query(QUERY)
    assert request.signed and request.certificate_chain is not None
    assert request.certificate_chain.san_dns == (DNS,)


def test_round_trip_x509_san_dns() -> None:
    claims = build(CLIENT_ID_DNS)
    request = verify(sign(claims), CLIENT_ID_DNS)
    assert request.original_client_id == DNS


def test_round_trip_did() -> None:
    key = jose.generate_key("ES256")
    did_value = did.encode_did_jwk(key)
    signer = key.with_kid(did.verification_method_id(did_value))
    client_id = oid4vp.client_id_did(did_value)
    claims = oid4vp.authorization_request(
        client_id=client_id,
        response_uri=RESPONSE_URI,
        dcql_query=QUERY,
        encryption_jwks=[ENC_PUBLIC],
        now=NOW,
    )
    token = oid4vp.sign_request_object(claims, signer)
    request = verify(token, client_id, did_resolver=did.resolve_verification_key)
    assert request.client_id_prefix == "decentralized_identifier"


def test_did_kid_of_another_did_refused() -> None:
    key, other = jose.generate_key("ES256"), jose.generate_key("ES256")
    did_value, other_did = did.encode_did_jwk(key), did.encode_did_jwk(other)
    client_id = oid4vp.client_id_did(did_value)
    claims = build(client_id)
    token = oid4vp.sign_request_object(
        claims, other.with_kid(did.verification_method_id(other_did))
    )
    err = refused(
        lambda: verify(token, client_id, did_resolver=did.resolve_verification_key),
        "invalid_request",
        "kid",
    )
    assert not err.authenticated


def test_did_without_kid_or_resolver_refused() -> None:
    key = jose.generate_key("ES256")
    client_id = oid4vp.client_id_did(did.encode_did_jwk(key))
    token = sign(build(client_id), key.with_kid(None), x5c=None)
    refused(
        lambda: verify(token, client_id, did_resolver=did.resolve_verification_key),
        "invalid_request",
        "kid",
    )
    refused(lambda: verify(token, client_id), "invalid_request", "resolver")


def test_typ_required(claims: dict | None = None) -> None:  # T057
    claims = build()
    for typ in (None, "JWT", "oauth-authz-req"):
        token = sign(claims, typ=typ)
        err = refused(lambda t=token: verify(t), "invalid_request", "typ")
        assert not err.authenticated


def test_bad_signature_x509_hash() -> None:  # T057
    token = sign(build(), jose.generate_key("ES256"))
    refused(lambda: verify(token), "invalid_request", "signature")


def test_bad_signature_x509_san_dns() -> None:  # T057
    token = sign(build(CLIENT_ID_DNS), jose.generate_key("ES256"))
    refused(lambda: verify(token, CLIENT_ID_DNS), "invalid_request", "signature")


def test_alg_none_refused() -> None:  # T001
    header = jose.b64url_encode(b'{"alg":"none","typ":"oauth-authz-req+jwt"}')
    body = jose.b64url_encode(json.dumps(build()).encode())
    refused(lambda: verify(f"{header}.{body}."), "invalid_request")


def test_san_mismatch_refused() -> None:  # T058
    client_id = "x509_san_dns:evil.example"
    claims = build()
    claims.update(client_id=client_id, response_uri="https://evil.example/r")
    token = sign(claims)
    refused(lambda: verify(token, client_id), "invalid_request", "dNSName")


def test_x509_hash_mismatch_refused() -> None:  # T058
    other_leaf = x509.make_leaf(CA_KEY, CA, LEAF_KEY, common_name="Other", san_dns=[DNS])
    client_id = oid4vp.client_id_x509_hash(other_leaf)
    token = sign(build(client_id))
    refused(lambda: verify(token, client_id), "invalid_request", "x509_hash")


def test_client_id_of_link_differs() -> None:  # T058
    token = sign(build())
    err = refused(lambda: verify(token, CLIENT_ID_DNS), "invalid_request", "differs")
    assert not err.authenticated


def test_untrusted_chain_refused() -> None:
    _, other_ca = x509.make_ca("Other CA")
    refused(lambda: verify(sign(build()), x5c_trust_anchors=[other_ca]), "invalid_request", "x5c")


def test_no_trust_anchors_refused() -> None:
    refused(lambda: verify(sign(build()), x5c_trust_anchors=None), "invalid_request", "anchors")


def test_missing_x5c_refused() -> None:
    refused(lambda: verify(sign(build(), x5c=None)), "invalid_request", "x5c")


def test_response_uri_host_must_match_san_dns() -> None:
    token = sign(build(CLIENT_ID_DNS, response_uri="https://elsewhere.example/r"))
    err = refused(lambda: verify(token, CLIENT_ID_DNS), "invalid_request", "host")
    assert err.authenticated
    assert verify(token, CLIENT_ID_DNS, trusted_client_ids={CLIENT_ID_DNS}).response_uri == (
        "https://elsewhere.example/r"
    )


def test_redirect_uri_prefix_cannot_be_signed() -> None:  # T059
    client_id = oid4vp.client_id_redirect_uri(RESPONSE_URI)
    token = sign(build(client_id))
    refused(lambda: verify(token, client_id), "invalid_request", "cannot be signed")


def test_redirect_uri_prefix_response_uri_must_be_client_id() -> None:  # T059
    client_id = oid4vp.client_id_redirect_uri(RESPONSE_URI)
    params = {
        "client_id": client_id,
        "response_type": "vp_token",
        "response_mode": "direct_post",
        "response_uri": "https://verifier.example/other",
        "nonce": "n-0S6_WzA2Mj",
        "dcql_query": json.dumps(QUERY),
    }
    refused(lambda: oid4vp.parse_authorization_request(params), "invalid_request", "equal")


def test_spec_example_unsigned_direct_post_request() -> None:
    # OpenID4VP §8.2 example payload (redirect_uri prefix, direct_post), as plain parameters.
    params = {
        "client_id": "redirect_uri:https://client.example.org/post",
        "response_uri": "https://client.example.org/post",
        "response_type": "vp_token",
        "response_mode": "direct_post",
        "dcql_query": json.dumps(QUERY),
        "nonce": "n-0S6_WzA2Mj",
        "state": "eyJhb...6-sVA",
    }
    request = oid4vp.parse_authorization_request(params)
    assert request.client_id_prefix == "redirect_uri" and not request.signed
    assert request.state == "eyJhb...6-sVA" and request.encryption_jwk is None
    # The response URI may be omitted with this prefix (§5.9.3).
    del params["response_uri"]
    assert oid4vp.parse_authorization_request(params).response_uri == (
        "https://client.example.org/post"
    )


def test_signed_prefix_as_plain_parameters_refused() -> None:
    params = dict(build(), dcql_query=json.dumps(QUERY))
    refused(lambda: oid4vp.parse_authorization_request(params), "invalid_request", "signed")


def test_missing_nonce() -> None:  # T061
    err = refused(lambda: verify(sign(build(nonce=None))), "invalid_request", "nonce")
    assert err.authenticated and err.response_uri == RESPONSE_URI and err.state


def test_bad_nonce_charset() -> None:
    refused(lambda: verify(sign(build(nonce="a b"))), "invalid_request", "nonce")


def test_both_dcql_query_and_scope() -> None:  # T062
    refused(lambda: verify(sign(build(scope="x"))), "invalid_request", "both")


def test_neither_dcql_query_nor_scope() -> None:  # T062
    refused(lambda: verify(sign(build(dcql_query=None))), "invalid_request", "required")


def test_scope_alias() -> None:
    token = sign(build(dcql_query=None, scope="inskrivning"))
    request = verify(token, scopes={"inskrivning": QUERY})
    assert request.dcql_query.ids == ("inskrivning",)
    refused(lambda: verify(token), "invalid_scope")


def test_malformed_dcql_query() -> None:
    query = copy.deepcopy(QUERY)
    query["credentials"].append(copy.deepcopy(query["credentials"][0]))
    refused(lambda: verify(sign(build(dcql_query=query))), "invalid_request", "unique")


def test_transaction_data_refused() -> None:  # T063
    data = jose.b64url_encode(b'{"type":"x","credential_ids":["inskrivning"]}')
    refused(lambda: verify(sign(build(transaction_data=[data]))), "invalid_transaction_data")


def test_pre_registered_client_with_client_metadata() -> None:  # T066
    key = jose.generate_key("ES256", kid="reg-1")
    registry = {
        "employer-1": oid4vp.RegisteredClient(
            "employer-1", (key,), {"jwks": {"keys": [ENC_PUBLIC]}}, (RESPONSE_URI,)
        )
    }
    claims = build("employer-1")
    err = refused(
        lambda: verify(
            sign(claims, key, x5c=None, kid="reg-1"), "employer-1", client_registry=registry
        ),
        "invalid_client",
    )
    assert err.authenticated
    del claims["client_metadata"]
    request = verify(
        sign(claims, key, x5c=None, kid="reg-1"), "employer-1", client_registry=registry
    )
    assert request.registered_client is registry["employer-1"]
    assert request.encryption_jwk == ENC_PUBLIC


def test_unknown_pre_registered_client() -> None:
    refused(
        lambda: verify(sign(build("employer-2"), x5c=None), "employer-2", client_registry={}),
        "invalid_client",
    )


def test_unsupported_prefix() -> None:
    client_id = "verifier_attestation:verifier.example"
    refused(lambda: verify(sign(build(client_id)), client_id), "invalid_request", "prefix")


@pytest.mark.parametrize(
    "bad_key",
    [
        dict(ENC_PUBLIC, alg="RSA-OAEP"),
        {k: v for k, v in ENC_PUBLIC.items() if k != "alg"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "s", "alg": "ECDH-ES"},
        dict(ENC_PUBLIC, d=ENC_PRIVATE["d"]),
        dict(ENC_PUBLIC, use="sig"),
        {k: v for k, v in ENC_PUBLIC.items() if k != "kid"},
        dict(ENC_PUBLIC, crv="P-384"),
    ],
)
def test_unusable_encryption_keys(bad_key: dict[str, Any]) -> None:  # T067
    claims = build()
    claims["client_metadata"]["jwks"] = {"keys": [bad_key]}
    err = refused(lambda: verify(sign(claims)), "invalid_request", "usable")
    assert err.authenticated


def test_usable_key_chosen_among_unusable() -> None:
    claims = build()
    claims["client_metadata"]["jwks"] = {"keys": [dict(ENC_PUBLIC, use="sig"), ENC_PUBLIC]}
    assert verify(sign(claims)).encryption_jwk == ENC_PUBLIC


def test_enc_default_and_preference() -> None:
    claims = build()
    del claims["client_metadata"]["encrypted_response_enc_values_supported"]
    assert verify(sign(claims)).encryption_enc == "A128GCM"
    claims["client_metadata"]["encrypted_response_enc_values_supported"] = ["A192GCM"]
    refused(lambda: verify(sign(claims)), "invalid_request", "content encryption")


def test_no_jwks_for_direct_post_jwt() -> None:
    claims = build()
    del claims["client_metadata"]["jwks"]
    refused(lambda: verify(sign(claims)), "invalid_request", "jwks")


def test_wallet_nonce_echo() -> None:
    token = sign(build(wallet_nonce="qPmxiNFCR3QTm19POc8u"))
    assert verify(token, wallet_nonce="qPmxiNFCR3QTm19POc8u").wallet_nonce == (
        "qPmxiNFCR3QTm19POc8u"
    )
    err = refused(
        lambda: verify(sign(build()), wallet_nonce="qPmxiNFCR3QTm19POc8u"),
        "invalid_request",
        "wallet_nonce",
    )
    assert not err.authenticated


def test_redirect_uri_with_direct_post() -> None:
    refused(
        lambda: verify(sign(build(redirect_uri="https://verifier.example/cb"))),
        "invalid_request",
        "redirect_uri",
    )


@pytest.mark.parametrize("mode", [None, "fragment", "query", "DIRECT_POST"])
def test_response_mode(mode: str | None) -> None:
    refused(lambda: verify(sign(build(response_mode=mode))), "invalid_request", "response_mode")


def test_response_type() -> None:
    refused(lambda: verify(sign(build(response_type="code"))), "unsupported_response_type")


def test_missing_response_uri() -> None:
    refused(lambda: verify(sign(build(response_uri=None))), "invalid_request", "response_uri")


def test_http_response_uri_only_in_development() -> None:
    claims = build(CLIENT_ID_HASH, response_uri="http://verifier.example/r")
    refused(lambda: verify(sign(claims)), "invalid_request", "https")
    assert verify(sign(claims), allow_http=True).response_uri == "http://verifier.example/r"


def test_expired_request_object() -> None:
    refused(lambda: verify(sign(build()), now=NOW + 3600), "invalid_request", "expired")


def test_wrong_audience() -> None:
    refused(
        lambda: verify(sign(build(aud="https://other-wallet.example"))), "invalid_request", "aud"
    )


def test_unknown_parameters_ignored() -> None:
    request = verify(sign(build(future_parameter={"x": 1}, iss="ignored", verifier_info=[])))
    assert request.nonce


def test_vp_formats_not_supported() -> None:
    mdoc = {
        "credentials": [
            {"id": "m", "format": "mso_mdoc", "meta": {"doctype_value": "org.iso.18013.5.1.mDL"}}
        ]
    }
    refused(lambda: verify(sign(build(dcql_query=mdoc))), "vp_formats_not_supported")
    claims = build()
    claims["client_metadata"]["vp_formats_supported"] = {"jwt_vc_json": {}}
    refused(lambda: verify(sign(claims)), "vp_formats_not_supported")


def test_jwe_request_object_refused() -> None:
    refused(lambda: verify(jwe.encrypt(b"{}", ENC_PUBLIC)), "invalid_request", "request object")


# -- wallet response -> verifier -----------------------------------------------------------


ISSUER = jose.generate_key("ES256", kid="issuer-1")
HOLDER = jose.generate_key("ES256")


def credential(**extra: Any) -> str:
    return sdjwt_vc.issue_vc(
        {
            "iss": "https://af.example",
            "vct": VCT,
            SD("registered_since"): "2026-01-12",
            SD("personal_number"): "19900101-1234",
            **extra,
        },
        ISSUER,
        holder_jwk=HOLDER.public_jwk(),
    )


def resolver(header: Any, claims: Any) -> jose.Key:
    return ISSUER


def present(
    request: oid4vp.AuthorizationRequest,
    aud: str | None = None,
    paths: tuple = (("registered_since",),),
) -> str:
    return sdjwt_vc.present_vc(
        credential(),
        list(paths),
        holder_key=HOLDER,
        aud=aud or request.audience,
        nonce=request.nonce,
        iat=NOW,
    )


def test_full_round_trip_encrypted() -> None:
    claims = build()
    request = verify(sign(claims))
    token = oid4vp.vp_token({"inskrivning": [present(request)]})
    form = oid4vp.authorization_response(request, token)
    assert set(form) == {"response"}
    body = "response=" + form["response"]
    response = oid4vp.decrypt_direct_post_jwt(body.encode(), [ENC_PRIVATE])
    assert response.encrypted and response.state == claims["state"]
    assert response.jwe_header is not None and response.jwe_header["kid"] == ENC_PUBLIC["kid"]
    result = oid4vp.verify_vp_token(
        response.vp_token,
        dcql.parse_query(claims["dcql_query"]),
        client_id=claims["client_id"],
        nonce=claims["nonce"],
        resolver=resolver,
        now=NOW,
    )
    [verified] = result.presentations["inskrivning"]
    assert verified.claims["registered_since"] == "2026-01-12"
    assert "personal_number" not in verified.claims and result.check.satisfied


def test_round_trip_plain_direct_post() -> None:
    params = {
        "client_id": "redirect_uri:https://client.example.org/post",
        "response_type": "vp_token",
        "response_mode": "direct_post",
        "dcql_query": json.dumps(QUERY),
        "nonce": oid4vp.new_nonce(),
        "state": oid4vp.new_state(),
    }
    request = oid4vp.parse_authorization_request(params)
    form = oid4vp.authorization_response(request, {"inskrivning": [present(request)]})
    response = oid4vp.parse_direct_post(form)
    assert response.state == params["state"] and not response.encrypted
    oid4vp.verify_vp_token(
        response.vp_token,
        request.dcql_query,
        client_id=params["client_id"],
        nonce=params["nonce"],
        resolver=resolver,
        now=NOW,
    )


def test_never_unencrypted_when_encryption_requested() -> None:  # T067
    request = verify(sign(build()))
    broken = oid4vp.AuthorizationRequest(**{**request.__dict__, "encryption_jwk": None})
    refused(
        lambda: oid4vp.authorization_response(broken, {"inskrivning": ["x~"]}),
        "invalid_request",
        "encryption",
    )


def test_kb_jwt_audience_without_prefix_refused() -> None:  # T072 / T092
    claims = build()
    request = verify(sign(claims))
    wrong = present(request, aud=request.original_client_id)
    refused(
        lambda: oid4vp.verify_vp_token(
            {"inskrivning": [wrong]},
            request.dcql_query,
            client_id=claims["client_id"],
            nonce=claims["nonce"],
            resolver=resolver,
            now=NOW,
        ),
        "invalid_request",
        "aud",
    )


def test_kb_jwt_wrong_nonce_refused() -> None:  # T101
    claims = build()
    request = verify(sign(claims))
    refused(
        lambda: oid4vp.verify_vp_token(
            {"inskrivning": [present(request)]},
            request.dcql_query,
            client_id=claims["client_id"],
            nonce=oid4vp.new_nonce(),
            resolver=resolver,
            now=NOW,
        ),
        "invalid_request",
        "nonce",
    )


def test_missing_holder_binding_refused() -> None:  # T091
    claims = build()
    request = verify(sign(claims))
    no_kb = sdjwt.present(credential(), [("registered_since",)])
    refused(
        lambda: oid4vp.verify_vp_token(
            {"inskrivning": [no_kb]},
            request.dcql_query,
            client_id=claims["client_id"],
            nonce=claims["nonce"],
            resolver=resolver,
            now=NOW,
        ),
        "invalid_request",
        "KB-JWT",
    )


def test_holder_binding_waived_by_query() -> None:
    query = dcql.parse_query(
        {"credentials": [dict(QUERY["credentials"][0], require_cryptographic_holder_binding=False)]}
    )
    no_kb = sdjwt.present(credential(), [("registered_since",)])
    result = oid4vp.verify_vp_token(
        {"inskrivning": [no_kb]},
        query,
        client_id=CLIENT_ID_HASH,
        nonce="n" * 43,
        resolver=resolver,
        now=NOW,
    )
    assert result.presentations["inskrivning"][0].vc.key_binding is None


def test_requested_claim_missing_refused() -> None:
    claims = build()
    request = verify(sign(claims))
    nothing = present(request, paths=())
    refused(
        lambda: oid4vp.verify_vp_token(
            {"inskrivning": [nothing]},
            request.dcql_query,
            client_id=claims["client_id"],
            nonce=claims["nonce"],
            resolver=resolver,
            now=NOW,
        ),
        "invalid_request",
        "satisfy",
    )


def test_extra_claims_reported() -> None:
    claims = build()
    request = verify(sign(claims))
    greedy = present(request, paths=(("registered_since",), ("personal_number",)))
    result = oid4vp.verify_vp_token(
        {"inskrivning": [greedy]},
        request.dcql_query,
        client_id=claims["client_id"],
        nonce=claims["nonce"],
        resolver=resolver,
        now=NOW,
    )
    assert result.check.reports[0].extra_claims == (("personal_number",),)


def test_wrong_format_query_refused() -> None:
    query = dcql.parse_query(
        {"credentials": [{"id": "j", "format": "jwt_vc_json", "meta": {"type_values": [["X"]]}}]}
    )
    refused(
        lambda: oid4vp.verify_sd_jwt_presentation(
            "x~", query.credentials[0], client_id="c", nonce="n", resolver=resolver
        ),
        "invalid_request",
        "dc\\+sd-jwt",
    )


# -- verifier: response endpoint parsing ---------------------------------------------------


def test_parse_error_response() -> None:
    form = oid4vp.error_response("access_denied", "the person declined", "st-1")
    response = oid4vp.parse_direct_post(form)
    assert response.error == "access_denied" and response.vp_token is None
    assert response.error_description == "the person declined" and response.state == "st-1"


def test_spec_example_error_body() -> None:
    body = (
        b"error=invalid_request&error_description=unsupported%20client_id_prefix"
        b"&state=eyJhb...6-sVA"
    )
    response = oid4vp.parse_direct_post(body)
    assert response.error == "invalid_request" and response.state == "eyJhb...6-sVA"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"vp_token=%7B%7D&vp_token=%7B%7D", "repeated"),
        (b"state=abc", "neither"),
        (b"vp_token=%5B%5D", "object"),
        (b"vp_token=notjson", "vp_token"),
        (b"vp_token=%7B%7D&state=a%20b", "state"),
        (b"\xff\xfe", "UTF-8"),
        (b"error=%22bad%22", "error code"),
    ],
)
def test_parse_direct_post_refusals(body: bytes, match: str) -> None:
    refused(lambda: oid4vp.parse_direct_post(body), "invalid_request", match)


def test_direct_post_jwt_refusals() -> None:
    plain = oid4vp.direct_post_body({"inskrivning": ["x~"]}, "s")
    refused(
        lambda: oid4vp.decrypt_direct_post_jwt(plain, [ENC_PRIVATE]),
        "invalid_request",
        "response JWE",
    )
    encrypted = oid4vp.encrypt_response({"vp_token": {"q": ["x~"]}}, ENC_PUBLIC, "A128GCM")
    refused(
        lambda: oid4vp.decrypt_direct_post_jwt({**encrypted, "state": "s"}, [ENC_PRIVATE]),
        "invalid_request",
        "only the response",
    )
    other, _ = jwe.new_encryption_key(kid=ENC_PUBLIC["kid"])
    refused(
        lambda: oid4vp.decrypt_direct_post_jwt(encrypted, [other]),
        "invalid_request",
        "decryption failed",
    )
    list_payload = {"response": jwe.encrypt(b"[]", ENC_PUBLIC)}
    refused(
        lambda: oid4vp.decrypt_direct_post_jwt(list_payload, [ENC_PRIVATE]),
        "invalid_request",
        "object",
    )


def test_direct_post_jwt_accepts_plain_error() -> None:
    response = oid4vp.decrypt_direct_post_jwt(
        {"error": "access_denied", "state": "s"}, [ENC_PRIVATE]
    )
    assert response.error == "access_denied" and not response.encrypted


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ([], "object"),
        ({}, "object"),
        ({"other": ["x"]}, "unknown"),
        ({"inskrivning": "x"}, "array"),
        ({"inskrivning": []}, "array"),
        ({"inskrivning": ["a~", "b~"]}, "multiple"),
        ({"inskrivning": [{"x": 1}]}, "type"),
        ({"inskrivning": [""]}, "type"),
    ],
)
def test_vp_token_shape_refusals(token: Any, match: str) -> None:
    query = dcql.parse_query(QUERY)
    refused(lambda: oid4vp.check_vp_token_shape(token, query), "invalid_request", match)


def test_vp_token_shape_multiple_allowed() -> None:
    query = dcql.parse_query({"credentials": [dict(QUERY["credentials"][0], multiple=True)]})
    assert oid4vp.check_vp_token_shape({"inskrivning": ["a~", "b~"]}, query)


def test_response_code_and_redirect() -> None:
    code = oid4vp.new_response_code()
    assert len(code) >= 43 and code != oid4vp.new_response_code()  # >= 256 bits (T104)
    uri = oid4vp.redirect_uri_with_response_code("https://verifier.example/cb", code)
    assert uri == f"https://verifier.example/cb#response_code={code}"
    assert oid4vp.response_endpoint_reply(uri) == {"redirect_uri": uri}
    assert oid4vp.response_endpoint_reply() == {}
    assert oid4vp.parse_response_endpoint_reply(json.dumps({"redirect_uri": uri})) == uri
    assert oid4vp.parse_response_endpoint_reply(b"{}") is None


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "http://verifier.example/cb",
        "intent://x",
        "https:///nohost",
        7,
    ],
)
def test_redirect_uri_schemes_refused(uri: Any) -> None:  # T073
    refused(
        lambda: oid4vp.parse_response_endpoint_reply({"redirect_uri": uri}),
        "invalid_request",
        "redirect_uri",
    )


def test_redirect_uri_http_only_when_allowed() -> None:
    """Development: a loopback verifier's http redirect_uri; other schemes still refused."""
    uri = "http://127.0.0.1:8300/done#response_code=abc"
    assert oid4vp.parse_response_endpoint_reply({"redirect_uri": uri}, allow_http=True) == uri
    refused(
        lambda: oid4vp.parse_response_endpoint_reply({"redirect_uri": uri}),
        "invalid_request",
        "redirect_uri",
    )
    for bad in ("javascript:alert(1)", "data:text/html,x", "intent://x", "http:///nohost"):
        refused(
            lambda bad=bad: oid4vp.parse_response_endpoint_reply(
                {"redirect_uri": bad}, allow_http=True
            ),
            "invalid_request",
            "redirect_uri",
        )


def test_error_response_builder() -> None:
    assert oid4vp.error_response("access_denied") == {"error": "access_denied"}
    body = oid4vp.error_response("invalid_request", 'bad "x"\n', "s")
    assert body["error_description"] == "bad ?x??" and body["state"] == "s"


def test_direct_post_body() -> None:
    body = oid4vp.direct_post_body({"q": ["a~"]}, "s")
    assert json.loads(body["vp_token"]) == {"q": ["a~"]} and body["state"] == "s"
    assert dict(parse_qsl(urlsplit("x:?" + "&".join(f"{k}={v}" for k, v in body.items())).query))


def test_vp_token_builder_refusals() -> None:
    refused(lambda: oid4vp.vp_token({}), "invalid_request")
    refused(lambda: oid4vp.vp_token({"q": []}), "invalid_request")


# -- metadata -------------------------------------------------------------------------------


def test_wallet_metadata() -> None:
    metadata = oid4vp.wallet_metadata()
    assert metadata["authorization_endpoint"] == "openid4vp:"
    assert "x509_hash" in metadata["client_id_prefixes_supported"]
    assert metadata["request_object_signing_alg_values_supported"] == ["ES256"]
    assert metadata["response_types_supported"] == ["vp_token"]
    unsigned_only = oid4vp.wallet_metadata(client_id_prefixes_supported=["redirect_uri"])
    assert "request_object_signing_alg_values_supported" not in unsigned_only


def test_verifier_metadata() -> None:
    metadata = oid4vp.verifier_metadata(jwks=[ENC_PUBLIC])
    assert metadata["jwks"]["keys"] == [ENC_PUBLIC]
    assert metadata["encrypted_response_enc_values_supported"] == ["A128GCM", "A256GCM"]
    assert oid4vp.verifier_metadata() == {"vp_formats_supported": oid4vp.DEFAULT_VP_FORMATS}
