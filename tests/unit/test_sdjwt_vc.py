"""Tests for intyg.sdjwt_vc (draft-ietf-oauth-sd-jwt-vc-18): one test per rejection rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from intyg import jose, sdjwt, sdjwt_vc
from intyg.fetch import FetchResponse, fetch_from_mapping
from intyg.sdjwt import SD
from intyg.sdjwt_vc import SDJWTVCError

ISS = "https://issuer.example/af"
META_URL = "https://issuer.example/.well-known/jwt-vc-issuer/af"
VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"
ISSUER = jose.generate_key("ES256", kid="key-1")
HOLDER = jose.generate_key("ES256")
OTHER = jose.generate_key("ES256", kid="key-1")
NOW = 1_800_000_000
AUD = "x509_san_dns:verifier.example"
NONCE = "kQ3x-nonce"
STATUS = {"status_list": {"idx": 7, "uri": "https://issuer.example/status/1"}}


def metadata(**overrides: Any) -> dict:
    document: dict[str, Any] = {"issuer": ISS, "jwks": {"keys": [ISSUER.public_jwk()]}}
    document.update(overrides)
    return {key: value for key, value in document.items() if value is not None}


def resolver_for(document: dict | None = None, extra: dict | None = None):
    documents = {META_URL: json.dumps(document or metadata()).encode(), **(extra or {})}
    return sdjwt_vc.MetadataKeyResolver(fetch_from_mapping(documents))


def base_payload(**overrides: Any) -> dict:
    payload: dict[Any, Any] = {
        "iss": ISS,
        "vct": VCT,
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "status": STATUS,
        SD("given_name"): "Ada",
        SD("registered_since"): "2026-01-12",
    }
    payload.update(overrides)
    return payload


def credential(payload: dict | None = None, *, key=ISSUER, header=None) -> str:
    return sdjwt_vc.issue_vc(
        base_payload() if payload is None else payload,
        key,
        holder_jwk=HOLDER.public_jwk(),
        header=header or {"kid": key.kid},
    )


def presentation(cred: str | None = None, paths=(("given_name",),)) -> str:
    return sdjwt_vc.present_vc(
        cred or credential(), list(paths), holder_key=HOLDER, aud=AUD, nonce=NONCE, iat=NOW
    )


def verify(text: str, resolver=None, **kwargs: Any) -> sdjwt_vc.VerifiedVC:
    options = {"audience": AUD, "nonce": NONCE, "now": NOW, **kwargs}
    return sdjwt_vc.verify_vc(text, resolver or resolver_for(), **options)


def forged(payload: dict, disclosures: tuple[str, ...] = (), header: dict | None = None) -> str:
    """A VC built by hand (so the issuer-side checks cannot stop it), with a KB-JWT."""
    payload = {"cnf": {"jwk": HOLDER.public_jwk()}, "_sd_alg": "sha-256", **payload}
    jwt = jose.encode_jws(payload, ISSUER, header or {"typ": "dc+sd-jwt", "kid": "key-1"})
    prefix = "~".join([jwt, *disclosures]) + "~"
    return prefix + sdjwt.key_binding_jwt(prefix, HOLDER, aud=AUD, nonce=NONCE, iat=NOW)


# -- happy paths ------------------------------------------------------------------------------


def test_issue_and_verify_with_metadata_resolver() -> None:
    result = verify(presentation())
    assert result.vct == VCT and result.issuer == ISS
    assert result.claims["given_name"] == "Ada"
    assert "registered_since" not in result.claims
    assert result.status.idx == 7 and result.status.uri.endswith("/status/1")
    assert result.header["typ"] == "dc+sd-jwt"
    assert result.key_binding["aud"] == AUD


def test_issued_header_and_claims() -> None:
    parsed = sdjwt.parse(credential())
    assert parsed.jws.header["typ"] == "dc+sd-jwt"
    plain = parsed.jws.claims()
    for name in ("iss", "vct", "exp", "status", "cnf"):
        assert name in plain
    assert len(plain["_sd"]) >= 2 + 2  # two claims plus at least two decoys


def test_jwks_uri_in_metadata() -> None:
    uri = "https://issuer.example/jwks.json"
    jwks = json.dumps({"keys": [OTHER.public_jwk() | {"kid": "k0"}, ISSUER.public_jwk()]})
    resolver = resolver_for(metadata(jwks=None, jwks_uri=uri), {uri: jwks.encode()})
    assert verify(presentation(), resolver).vct == VCT


def test_metadata_url_construction() -> None:
    assert sdjwt_vc.jwt_vc_issuer_metadata_url("https://a.example") == (
        "https://a.example/.well-known/jwt-vc-issuer"
    )
    assert sdjwt_vc.jwt_vc_issuer_metadata_url("https://a.example:8443/t/1/") == (
        "https://a.example:8443/.well-known/jwt-vc-issuer/t/1"
    )


def test_did_jwk_resolver() -> None:
    from intyg import did

    issuer_did = did.encode_did_jwk(ISSUER)
    kid = did.verification_method_id(issuer_did)
    cred = credential(base_payload(iss=issuer_did), header={"kid": kid})
    resolver = sdjwt_vc.issuer_key_resolver(did=sdjwt_vc.DIDKeyResolver())
    assert verify(presentation(cred), resolver).issuer == issuer_did


def test_did_resolver_uses_injected_function() -> None:
    calls: list = []

    def resolve(did_url: str, fetch: Any) -> jose.Key:
        calls.append(did_url)
        return ISSUER.public()

    cred = credential(base_payload(iss="did:web:issuer.example"), header={"kid": "#key-1"})
    verify(presentation(cred), sdjwt_vc.DIDKeyResolver(None, resolve))
    assert calls == ["did:web:issuer.example#key-1"]


def test_x5c_resolver_uses_injected_chain_validator() -> None:
    seen: list = []

    def validate(x5c: list[str], header: dict) -> jose.Key:
        seen.append(x5c)
        return ISSUER.public()

    cred = credential(header={"x5c": ["MIIB"]})
    resolver = sdjwt_vc.issuer_key_resolver(x5c=sdjwt_vc.X5CKeyResolver(validate))
    assert verify(presentation(cred), resolver).vct == VCT and seen == [["MIIB"]]


def test_without_key_binding_when_policy_allows() -> None:
    cred = credential()
    text = sdjwt.present(cred, [["given_name"]])
    result = sdjwt_vc.verify_vc(text, resolver_for(), require_key_binding=False, now=NOW)
    assert result.key_binding is None


def test_disclosable_claims_lists_paths() -> None:
    assert sorted(sdjwt_vc.disclosable_claims(credential())) == [
        ("given_name",),
        ("registered_since",),
    ]


# -- issuer-side refusals ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(sdjwt_vc.NON_SELECTIVELY_DISCLOSABLE))
def test_issuer_refuses_protected_claim_as_sd(name: str) -> None:
    payload = base_payload()
    payload.pop(name, None)
    payload[SD(name)] = "x"
    with pytest.raises(SDJWTVCError, match=f"{name!r} must not be selectively disclosable"):
        sdjwt_vc.issue_vc(payload, ISSUER, holder_jwk=HOLDER.public_jwk())


def test_issuer_refuses_sd_inside_protected_claim() -> None:
    payload = base_payload(status={"status_list": {SD("idx"): 1, "uri": "https://x"}})
    with pytest.raises(SDJWTVCError, match="'status' must not be selectively"):
        sdjwt_vc.issue_vc(payload, ISSUER, holder_jwk=HOLDER.public_jwk())


def test_issuer_refuses_missing_vct() -> None:
    payload = base_payload()
    del payload["vct"]
    with pytest.raises(SDJWTVCError, match="vct is required"):
        sdjwt_vc.issue_vc(payload, ISSUER, holder_jwk=HOLDER.public_jwk())


def test_issuer_refuses_bad_status_reference() -> None:
    with pytest.raises(SDJWTVCError, match="status"):
        sdjwt_vc.issue_vc(
            base_payload(status={"status_list": {"idx": -1, "uri": "https://x"}}),
            ISSUER,
            holder_jwk=HOLDER.public_jwk(),
        )


def test_issuer_refuses_jwk_header() -> None:
    with pytest.raises(SDJWTVCError, match="'jwk'"):
        credential(header={"jwk": ISSUER.public_jwk()})


def test_issuer_requires_holder_binding() -> None:
    with pytest.raises(SDJWTVCError, match="cnf"):
        sdjwt_vc.issue_vc(base_payload(), ISSUER)


def test_issuer_refuses_string_exp() -> None:
    with pytest.raises(SDJWTVCError, match="NumericDate"):
        credential(base_payload(exp="1900000000"))


# -- verifier-side rejections -------------------------------------------------------------------


def test_reject_wrong_typ() -> None:
    text = forged({"iss": ISS, "vct": VCT}, header={"typ": "vc+sd-jwt", "kid": "key-1"})
    with pytest.raises(SDJWTVCError, match="typ must be 'dc\\+sd-jwt'"):
        verify(text)


def test_reject_missing_typ() -> None:
    with pytest.raises(SDJWTVCError, match="typ must be"):
        verify(forged({"iss": ISS, "vct": VCT}, header={"kid": "key-1"}))


def test_reject_missing_vct() -> None:
    with pytest.raises(SDJWTVCError, match="vct is required"):
        verify(forged({"iss": ISS}))


def test_reject_non_string_vct() -> None:
    with pytest.raises(SDJWTVCError, match="vct is required"):
        verify(forged({"iss": ISS, "vct": ["a"]}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("iss", ISS),
        ("nbf", NOW - 5),
        ("exp", NOW + 5),
        ("vct", VCT),
        ("vct#integrity", "sha256-x"),
        ("status", STATUS),
        ("aka_vcts", ["urn:x"]),
    ],
)
def test_reject_protected_claim_delivered_in_disclosure(name: str, value: Any) -> None:
    d = sdjwt.make_disclosure(value, name)
    plain = {"iss": ISS, "vct": VCT, "_sd": [d.digest]}
    plain.pop(name, None)
    fixed_key = lambda header, claims: ISSUER.public()  # noqa: E731 - the rule under test
    with pytest.raises(SDJWTVCError, match=f"{name!r} must not be delivered in a disclosure"):
        verify(forged(plain, (d.encoded,)), fixed_key)


def test_reject_cnf_delivered_in_disclosure() -> None:
    d = sdjwt.make_disclosure({"jwk": HOLDER.public_jwk()}, "cnf")
    jwt = jose.encode_jws(
        {"iss": ISS, "vct": VCT, "_sd": [d.digest]}, ISSUER, {"typ": "dc+sd-jwt", "kid": "key-1"}
    )
    prefix = f"{jwt}~{d.encoded}~"
    text = prefix + sdjwt.key_binding_jwt(prefix, HOLDER, aud=AUD, nonce=NONCE, iat=NOW)
    with pytest.raises(SDJWTVCError, match="'cnf' must not be delivered"):
        verify(text)


def test_reject_expired() -> None:
    with pytest.raises(SDJWTVCError, match="expired"):
        verify(presentation(credential(base_payload(exp=NOW - 3600))))


def test_reject_not_yet_valid() -> None:
    with pytest.raises(SDJWTVCError, match="not yet valid"):
        verify(presentation(credential(base_payload(nbf=NOW + 3600))))


def test_clock_skew_is_configurable() -> None:
    text = presentation(credential(base_payload(exp=NOW - 30)))
    with pytest.raises(SDJWTVCError, match="expired"):
        verify(text, leeway=0)
    assert verify(text, leeway=60).vct == VCT


def test_reject_bad_status_reference() -> None:
    bad = {"status_list": {"idx": "7", "uri": "https://x"}}
    with pytest.raises(SDJWTVCError, match="status"):
        verify(forged({"iss": ISS, "vct": VCT, "status": bad}))


def test_reject_aka_vcts_repeating_vct() -> None:
    with pytest.raises(SDJWTVCError, match="aka_vcts"):
        verify(forged({"iss": ISS, "vct": VCT, "aka_vcts": [VCT]}))


def test_reject_jwk_header_as_key_source() -> None:
    attacker = jose.generate_key()
    payload = {"iss": ISS, "vct": VCT, "cnf": {"jwk": HOLDER.public_jwk()}, "_sd_alg": "sha-256"}
    header = {"typ": "dc+sd-jwt", "jwk": attacker.public_jwk()}
    prefix = jose.encode_jws(payload, attacker, header) + "~"
    text = prefix + sdjwt.key_binding_jwt(prefix, HOLDER, aud=AUD, nonce=NONCE, iat=NOW)
    with pytest.raises(SDJWTVCError, match="never a key source"):
        verify(text)


def test_reject_kb_required_but_missing() -> None:
    with pytest.raises(SDJWTVCError, match="no KB-JWT"):
        verify(sdjwt.present(credential(), [["given_name"]]))


def test_reject_kb_wrong_nonce() -> None:
    with pytest.raises(SDJWTVCError, match="nonce"):
        verify(presentation(), nonce="other")


def test_reject_signature_by_other_key_with_same_kid() -> None:
    with pytest.raises(SDJWTVCError, match="signature verification failed"):
        verify(presentation(credential(key=OTHER)))


# -- metadata resolver rejections ---------------------------------------------------------------


def test_reject_metadata_issuer_mismatch() -> None:
    with pytest.raises(SDJWTVCError, match="issuer does not equal iss"):
        verify(presentation(), resolver_for(metadata(issuer=ISS + "/")))


def test_reject_metadata_with_both_jwks_and_jwks_uri() -> None:
    with pytest.raises(SDJWTVCError, match="exactly one of jwks"):
        verify(presentation(), resolver_for(metadata(jwks_uri="https://issuer.example/j")))


def test_reject_metadata_with_neither_jwks_nor_jwks_uri() -> None:
    with pytest.raises(SDJWTVCError, match="exactly one of jwks"):
        verify(presentation(), resolver_for(metadata(jwks=None)))


def test_reject_metadata_jwks_uri_not_https() -> None:
    doc = metadata(jwks=None, jwks_uri="http://issuer.example/jwks")
    with pytest.raises(SDJWTVCError, match="https"):
        verify(presentation(), resolver_for(doc))


def test_reject_unknown_kid() -> None:
    doc = metadata(jwks={"keys": [ISSUER.public_jwk() | {"kid": "other"}]})
    with pytest.raises(SDJWTVCError, match="no unique issuer key"):
        verify(presentation(), resolver_for(doc))


def test_reject_ambiguous_keys_without_kid() -> None:
    cred = credential(header={"alg": "ES256"})  # no kid
    doc = metadata(jwks={"keys": [ISSUER.public_jwk(), OTHER.public_jwk() | {"kid": "k2"}]})
    with pytest.raises(SDJWTVCError, match="no unique issuer key"):
        verify(presentation(cred), resolver_for(doc))


def test_reject_metadata_not_found() -> None:
    resolver = sdjwt_vc.MetadataKeyResolver(fetch_from_mapping({}))
    with pytest.raises(SDJWTVCError, match="could not be retrieved"):
        verify(presentation(), resolver)


def test_reject_metadata_not_json() -> None:
    resolver = sdjwt_vc.MetadataKeyResolver(
        fetch_from_mapping({META_URL: FetchResponse(b"<html>", "text/html")})
    )
    with pytest.raises(SDJWTVCError, match="issuer metadata"):
        verify(presentation(), resolver)


def test_reject_untrusted_issuer() -> None:
    resolver = sdjwt_vc.MetadataKeyResolver(fetch_from_mapping({}), trusted_issuers={"https://x"})
    with pytest.raises(SDJWTVCError, match="not trusted"):
        verify(presentation(), resolver)


@pytest.mark.parametrize(
    "iss", ["http://issuer.example", "https://issuer.example?x=1", "https://u@issuer.example"]
)
def test_reject_iss_unusable_for_metadata(iss: str) -> None:
    with pytest.raises(SDJWTVCError, match="iss must"):
        sdjwt_vc.jwt_vc_issuer_metadata_url(iss)


def test_reject_private_key_in_jwks() -> None:
    doc = metadata(jwks={"keys": [ISSUER.private_jwk()]})
    with pytest.raises(SDJWTVCError, match="private"):
        verify(presentation(), resolver_for(doc))


# -- dispatch, did and x5c rejections -----------------------------------------------------------


def test_reject_mechanism_not_allowed() -> None:
    resolver = sdjwt_vc.issuer_key_resolver(metadata=resolver_for())
    cred = credential(header={"x5c": ["MIIB"]})
    with pytest.raises(SDJWTVCError, match="not allowed by this verifier"):
        verify(presentation(cred), resolver)


def test_reject_when_key_cannot_be_tied_to_issuer() -> None:
    payload = base_payload()
    del payload["iss"]
    resolver = sdjwt_vc.issuer_key_resolver(metadata=resolver_for())
    with pytest.raises(SDJWTVCError, match="no way to tie"):
        verify(presentation(credential(payload)), resolver)


def test_reject_did_kid_of_another_did() -> None:
    resolver = sdjwt_vc.DIDKeyResolver(None, lambda url, fetch: ISSUER.public())
    cred = credential(base_payload(iss="did:web:a.example"), header={"kid": "did:web:b#k"})
    with pytest.raises(SDJWTVCError, match="verification method of the iss DID"):
        verify(presentation(cred), resolver)


def test_reject_did_without_kid() -> None:
    resolver = sdjwt_vc.DIDKeyResolver(None, lambda url, fetch: ISSUER.public())
    cred = credential(base_payload(iss="did:web:a.example"), header={"alg": "ES256"})
    with pytest.raises(SDJWTVCError, match="kid is required"):
        verify(presentation(cred), resolver)


def test_reject_did_resolution_failure() -> None:
    def failing(url: str, fetch: Any) -> jose.Key:
        raise ValueError("unknown DID")

    cred = credential(base_payload(iss="did:web:a.example"), header={"kid": "#k"})
    with pytest.raises(SDJWTVCError, match="DID resolution failed"):
        verify(presentation(cred), sdjwt_vc.DIDKeyResolver(None, failing))


def test_reject_x5c_chain_rejected_by_validator() -> None:
    def untrusted(x5c: list[str], header: dict) -> jose.Key:
        raise ValueError("self-signed leaf")

    cred = credential(header={"x5c": ["MIIB"]})
    with pytest.raises(SDJWTVCError, match="x5c chain rejected"):
        verify(presentation(cred), sdjwt_vc.X5CKeyResolver(untrusted))


@pytest.mark.parametrize("x5c", [[], "MIIB", [""], [1]])
def test_reject_malformed_x5c(x5c: Any) -> None:
    cred = credential(header={"x5c": x5c})
    with pytest.raises(SDJWTVCError, match="x5c must be"):
        verify(presentation(cred), sdjwt_vc.X5CKeyResolver(lambda c, h: ISSUER.public()))


def test_reject_plain_key_instead_of_resolver() -> None:
    with pytest.raises(SDJWTVCError, match="resolver is required"):
        sdjwt_vc.verify_vc(presentation(), ISSUER.public(), audience=AUD, nonce=NONCE, now=NOW)
