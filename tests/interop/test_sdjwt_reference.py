"""Interop with the IETF SD-JWT reference implementation (PyPI ``sd-jwt`` 0.10.4).

Both directions, with nested, recursive and array disclosures, decoys and Key Binding.
Differences in the reference that matter here (none breaks interop):
- its default issuer ``typ`` is ``example+sd-jwt`` (overridden to ``dc+sd-jwt`` for VCs);
- its verifier does not check ``iat`` of the KB-JWT, nor reject unreferenced disclosures;
- it signs KB-JWTs with ES256 only unless told otherwise.
"""

from __future__ import annotations

import pytest
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from intyg import jose, sdjwt, sdjwt_vc
from intyg.sdjwt import SD

pytestmark = pytest.mark.interop

ISSUER = jose.generate_key("ES256", kid="issuer-1")
HOLDER = jose.generate_key("ES256")
ISS = "https://issuer.example"
VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"
AUD = "x509_san_dns:verifier.example"
NONCE = "5Jx-interop-nonce"


def to_jwcrypto(key: jose.Key) -> JWK:
    return JWK(**key.private_jwk())


def their_verify(presentation: str, key: jose.Key, *, kb: bool) -> dict:
    public = JWK(**key.public_jwk())
    verifier = SDJWTVerifier(
        presentation,
        lambda iss, header: public,
        expected_aud=AUD if kb else None,
        expected_nonce=NONCE if kb else None,
    )
    return verifier.get_verified_payload()


def our_verify(presentation: str, **kwargs) -> sdjwt.Verified:
    return sdjwt.verify(
        presentation,
        ISSUER.public(),
        require_key_binding=True,
        audience=AUD,
        nonce=NONCE,
        **kwargs,
    )


OUR_PAYLOAD = {
    "iss": ISS,
    "vct": VCT,
    "iat": 1_700_000_000,
    SD("given_name"): "Åsa",
    SD("family_name"): "Öberg",
    "address": SD({"street_address": SD("Storgatan 1"), "locality": "Lund"}),
    "nationalities": [SD("SE"), "FI", SD({"code": SD("NO")})],
    SD("registered_since"): "2026-01-12",
}
OUR_FULL = {
    "iss": ISS,
    "vct": VCT,
    "iat": 1_700_000_000,
    "given_name": "Åsa",
    "family_name": "Öberg",
    "address": {"street_address": "Storgatan 1", "locality": "Lund"},
    "nationalities": ["SE", "FI", {"code": "NO"}],
    "registered_since": "2026-01-12",
}


# -- ours issues, theirs verifies -------------------------------------------------------------


def test_ours_issues_and_presents_with_kb_theirs_verifies() -> None:
    issued = sdjwt_vc.issue_vc(OUR_PAYLOAD, ISSUER, holder_jwk=HOLDER.public_jwk(), decoys=3)
    everything = sdjwt.disclosable_paths(issued)
    presentation = sdjwt.present(issued, everything, holder_key=HOLDER, aud=AUD, nonce=NONCE)
    claims = their_verify(presentation, ISSUER, kb=True)
    claims.pop("cnf")
    assert claims == OUR_FULL


def test_ours_issues_partial_presentation_theirs_verifies() -> None:
    issued = sdjwt.issue(OUR_PAYLOAD, ISSUER, holder_jwk=HOLDER.public_jwk(), decoys=2)
    presentation = sdjwt.present(
        issued,
        [["address", "street_address"], ["nationalities", 2, "code"]],
        holder_key=HOLDER,
        aud=AUD,
        nonce=NONCE,
    )
    claims = their_verify(presentation, ISSUER, kb=True)
    assert claims["address"] == {"street_address": "Storgatan 1", "locality": "Lund"}
    assert claims["nationalities"] == ["FI", {"code": "NO"}]
    assert "given_name" not in claims


def test_ours_issues_their_holder_presents_with_kb_ours_verifies() -> None:
    issued = sdjwt.issue(OUR_PAYLOAD, ISSUER, holder_jwk=HOLDER.public_jwk(), decoys=2)
    holder = SDJWTHolder(issued)
    holder.create_presentation(
        {"given_name": True, "address": {"street_address": True}, "nationalities": [True]},
        nonce=NONCE,
        aud=AUD,
        holder_key=to_jwcrypto(HOLDER),
    )
    result = our_verify(holder.sd_jwt_presentation)
    assert result.claims["given_name"] == "Åsa"
    assert result.claims["address"] == {"street_address": "Storgatan 1", "locality": "Lund"}
    assert result.claims["nationalities"] == ["SE", "FI"]


# -- theirs issues, ours verifies -------------------------------------------------------------

THEIR_CLAIMS = {
    "iss": ISS,
    "vct": VCT,
    "iat": 1_700_000_000,
    SDObj("given_name"): "Åsa",
    SDObj("address"): {
        SDObj("street_address"): "Storgatan 1",
        "locality": "Lund",
    },
    "nationalities": [SDObj("SE"), "FI", SDObj({SDObj("code"): "NO"})],
}


def their_issue(**kwargs) -> str:
    issuer = SDJWTIssuer(
        THEIR_CLAIMS,
        to_jwcrypto(ISSUER),
        holder_key=JWK(**HOLDER.public_jwk()),
        add_decoy_claims=True,
        **kwargs,
    )
    return issuer.sd_jwt_issuance


def test_theirs_issues_their_holder_presents_with_kb_ours_verifies() -> None:
    issued = their_issue(extra_header_parameters={"typ": "dc+sd-jwt", "kid": "issuer-1"})
    holder = SDJWTHolder(issued)
    holder.create_presentation(
        {
            "given_name": True,
            "address": {"street_address": True},
            "nationalities": [False, True, {"code": True}],
        },
        nonce=NONCE,
        aud=AUD,
        holder_key=to_jwcrypto(HOLDER),
    )
    result = our_verify(holder.sd_jwt_presentation, typ="dc+sd-jwt")
    assert result.claims["given_name"] == "Åsa"
    assert result.claims["address"] == {"street_address": "Storgatan 1", "locality": "Lund"}
    assert result.claims["nationalities"] == ["FI", {"code": "NO"}]
    assert result.key_binding["aud"] == AUD


def test_theirs_issues_with_default_typ_ours_verifies_all() -> None:
    issued = their_issue()
    assert sdjwt.parse(issued).jws.header["typ"] == "example+sd-jwt"
    assert sdjwt.accept_issued(issued, ISSUER.public(), holder_jwk=HOLDER.public_jwk())
    result = sdjwt.verify(issued, ISSUER.public(), require_key_binding=False)
    assert result.claims["nationalities"] == ["SE", "FI", {"code": "NO"}]
    assert result.claims["address"]["street_address"] == "Storgatan 1"


def test_theirs_issues_our_holder_presents_both_verify() -> None:
    issued = their_issue(extra_header_parameters={"typ": "dc+sd-jwt"})
    presentation = sdjwt.present(
        issued, [["nationalities", 2, "code"]], holder_key=HOLDER, aud=AUD, nonce=NONCE
    )
    ours = our_verify(presentation).claims
    theirs = their_verify(presentation, ISSUER, kb=True)
    assert ours == theirs
    assert ours["nationalities"] == ["FI", {"code": "NO"}]


def test_theirs_issued_vc_passes_our_vc_profile() -> None:
    issued = their_issue(extra_header_parameters={"typ": "dc+sd-jwt", "kid": "issuer-1"})
    presentation = sdjwt.present(issued, [["given_name"]], holder_key=HOLDER, aud=AUD, nonce=NONCE)
    result = sdjwt_vc.verify_vc(
        presentation, lambda header, claims: ISSUER.public(), audience=AUD, nonce=NONCE
    )
    assert result.vct == VCT and result.claims["given_name"] == "Åsa"
