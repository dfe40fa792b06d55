"""Tests for intyg.oid4vci (OpenID4VCI 1.0): spec examples as vectors, round trips, and one
negative test per rejection rule, each asserting the protocol error code."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intyg import jose, oid4vci, x509
from intyg.oid4vci import OID4VCIError

NOW = 1_800_000_000
ISSUER = "https://issuer.example"
CLIENT_ID = "https://wallet.example/app"
HOLDER = jose.generate_key("ES256")
HOLDER2 = jose.generate_key("ES256")
ED_HOLDER = jose.generate_key("EdDSA")
OTHER = jose.generate_key("ES256")
NOT_BEFORE = datetime.fromtimestamp(NOW - 86400, UTC)
ROOT_KEY, ROOT = x509.make_ca("Wallet Provider Root", not_before=NOT_BEFORE)
PROVIDER_KEY = jose.generate_key("ES256")
PROVIDER_X5C = x509.x5c_from_certs(
    [x509.make_leaf(ROOT_KEY, ROOT, PROVIDER_KEY, common_name="wp", not_before=NOT_BEFORE)]
)
OTHER_ROOT_KEY, OTHER_ROOT = x509.make_ca("Other Root", not_before=NOT_BEFORE)
ALGS = ("ES256", "EdDSA")

# -- OpenID4VCI 1.0 examples (openid/OpenID4VCI 1.0/ and spec text) -----------------------------

SPEC_OFFER_MULTIPLE = {
    "credential_issuer": "https://credential-issuer.example.com",
    "credential_configuration_ids": ["UniversityDegreeCredential", "org.iso.18013.5.1.mDL"],
    "grants": {
        "urn:ietf:params:oauth:grant-type:pre-authorized_code": {
            "pre-authorized_code": "oaKazRN8I0IbtZ0C7JuMn5",
            "tx_code": {
                "length": 4,
                "input_mode": "numeric",
                "description": "Please provide the one-time code that was sent via e-mail",
            },
        }
    },
    "issuer_redirect_uri": "https://credential-issuer.example.com/redirect",
}
SPEC_OFFER_BY_REFERENCE = {
    "credential_issuer": "https://credential-issuer.example.com",
    "credential_configuration_ids": ["UniversityDegree_LDP_VC"],
    "grants": {
        "urn:ietf:params:oauth:grant-type:pre-authorized_code": {
            "pre-authorized_code": "adhjhdjajkdkhjhdj",
            "tx_code": {},
        }
    },
}
SPEC_OFFER_AUTHZ_CODE = """{
  "credential_issuer": "https://credential-issuer.example.com",
  "credential_configuration_ids": ["UniversityDegreeCredential"],
  "grants": {"authorization_code": {"issuer_state": "eyJhbGciOiJSU0Et...FYUaBy"}}
}"""
SPEC_LINK_BY_VALUE = (
    "openid-credential-offer://?credential_offer=%7B%22credential_issuer%22:%22https://credent"
    "ial-issuer.example.com%22,%22credential_configuration_ids%22:%5B%22org.iso.18013.5.1.mDL%2"
    "2%5D,%22grants%22:%7B%22urn:ietf:params:oauth:grant-type:pre-authorized_code%22:%7B%22pre-"
    "authorized_code%22:%22oaKazRN8I0IbtZ0C7JuMn5%22,%22tx_code%22:%7B%22input_mode%22:%22text%"
    "22,%22description%22:%22Please%20enter%20the%20serial%20number%20of%20your%20physical%20dri"
    "vers%20license%22%7D%7D%7D%7D"
)
SPEC_GET_BY_VALUE = (
    "/credential_offer?credential_offer=%7B%22credential_issuer%22:%22https://credential-issuer"
    ".example.com%22,%22credential_configuration_ids%22:%5B%22UniversityDegree_JWT%22,%22org.is"
    "o.18013.5.1.mDL%22%5D,%22grants%22:%7B%22urn:ietf:params:oauth:grant-type:pre-authorized_c"
    "ode%22:%7B%22pre-authorized_code%22:%22oaKazRN8I0IbtZ0C7JuMn5%22,%22tx_code%22:%7B%7D%7D%7D%7D"
)
SPEC_LINK_BY_REFERENCE = (
    "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fserver%2Eexample%2Ecom%2Fcre"
    "dential-offer%2FGkurKxf5T0Y-mnPFCHqWOMiZi4VS138cQO_V7PZHAdM"
)
SPEC_METADATA: dict[str, Any] = {
    "credential_issuer": "https://credential-issuer.example.com",
    "authorization_servers": ["https://server.example.com"],
    "credential_endpoint": "https://credential-issuer.example.com/credential",
    "nonce_endpoint": "https://credential-issuer.example.com/nonce",
    "deferred_credential_endpoint": "https://credential-issuer.example.com/deferred_credential",
    "notification_endpoint": "https://credential-issuer.example.com/notification",
    "credential_request_encryption": {
        "jwks": {
            "keys": [
                {
                    "kty": "EC",
                    "kid": "ac",
                    "use": "enc",
                    "crv": "P-256",
                    "alg": "ECDH-ES",
                    "x": "YO4epjifD-KWeq1sL2tNmm36BhXnkJ0He-WqMYrp9Fk",
                    "y": "Hekpm0zfK7C-YccH5iBjcIXgf6YdUvNUac_0At55Okk",
                }
            ]
        },
        "enc_values_supported": ["A128GCM"],
        "zip_values_supported": ["DEF"],
        "encryption_required": True,
    },
    "credential_response_encryption": {
        "alg_values_supported": ["ECDH-ES"],
        "enc_values_supported": ["A128GCM"],
        "zip_values_supported": ["DEF"],
        "encryption_required": True,
    },
    "batch_credential_issuance": {"batch_size": 10},
    "display": [
        {
            "name": "Example University",
            "locale": "en-US",
            "logo": {
                "uri": "https://university.example.edu/public/logo.png",
                "alt_text": "a square logo of a university",
            },
        },
        {
            "name": "Example Université",
            "locale": "fr-FR",
            "logo": {
                "uri": "https://university.example.edu/public/logo.png",
                "alt_text": "Un logo universitaire carré",
            },
        },
    ],
    "credential_configurations_supported": {
        "SD_JWT_VC_example_in_OpenID4VCI": {
            "format": "dc+sd-jwt",
            "scope": "SD_JWT_VC_example_in_OpenID4VCI",
            "credential_signing_alg_values_supported": ["ES256"],
            "cryptographic_binding_methods_supported": ["jwk"],
            "proof_types_supported": {
                "jwt": {
                    "proof_signing_alg_values_supported": ["ES256"],
                    "key_attestations_required": {
                        "key_storage": ["iso_18045_moderate"],
                        "user_authentication": ["iso_18045_moderate"],
                    },
                }
            },
            "vct": "SD_JWT_VC_example_in_OpenID4VCI",
            "credential_metadata": {
                "display": [
                    {
                        "name": "IdentityCredential",
                        "locale": "en-US",
                        "logo": {
                            "uri": "https://university.example.edu/public/logo_credential.png",
                            "alt_text": "a square logo of a university credential",
                        },
                        "description": "A credential that signals the membership of a university",
                        "background_color": "#12107c",
                        "text_color": "#FFFFFF",
                    }
                ],
                "claims": [
                    {
                        "path": ["given_name"],
                        "display": [
                            {"name": "Given Name", "locale": "en-US"},
                            {"name": "Vorname", "locale": "de-DE"},
                        ],
                    },
                    {
                        "path": ["family_name"],
                        "display": [
                            {"name": "Surname", "locale": "en-US"},
                            {"name": "Nachname", "locale": "de-DE"},
                        ],
                    },
                    {"path": ["email"]},
                    {"path": ["phone_number"]},
                    {
                        "path": ["address"],
                        "display": [
                            {"name": "Place of residence", "locale": "en-US"},
                            {"name": "Wohnsitz", "locale": "de-DE"},
                        ],
                    },
                    {"path": ["address", "street_address"]},
                    {"path": ["address", "locality"]},
                    {"path": ["address", "region"]},
                    {"path": ["address", "country"]},
                    {"path": ["birthdate"]},
                    {"path": ["is_over_18"]},
                    {"path": ["is_over_21"]},
                    {"path": ["is_over_65"]},
                ],
            },
        }
    },
}
SPEC_JWT_PROOF = (
    "eyJ0eXAiOiJvcGVuaWQ0dmNpLXByb29mK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwiY3J2"
    "IjoiUC0yNTYiLCJ4IjoiblVXQW9BdjNYWml0aDhFN2kxOU9kYXhPTFlGT3dNLVoyRXVNMDJUaXJUNCIsInkiOiJI"
    "c2tIVThCalVpMVU5WHFpN1N3bWo4Z3dBS18weGtjRGpFV183MVNvc0VZIn19.eyJhdWQiOiJodHRwczovL2NyZWRl"
    "bnRpYWwtaXNzdWVyLmV4YW1wbGUuY29tIiwiaWF0IjoxNzAxOTYwNDQ0LCJub25jZSI6IkxhclJHU2JtVVBZdFJZ"
    "TzZCUTR5bjgifQ.-a3EDsxClUB4O3LeDD5DVGEnNMT01FCQW4P6-2-BNBqc_Zxf0Qw4CWayLEpqkAomlkLb9zioZo"
    "ipdP-jvh1WlA"
)
# RFC 7636 Appendix B (also used throughout the OpenID4VCI examples).
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "Bound_dc+sd-jwt": {
        "format": "dc+sd-jwt",
        "scope": "bound",
        "vct": "https://issuer.example/bound",
        "cryptographic_binding_methods_supported": ["jwk"],
        "proof_types_supported": {
            "jwt": {"proof_signing_alg_values_supported": ["ES256"]},
            "attestation": {"proof_signing_alg_values_supported": ["ES256"]},
        },
    },
    "Unbound_jwt_vc_json": {
        "format": "jwt_vc_json",
        "scope": "unbound",
        "credential_definition": {"type": ["VerifiableCredential", "X"]},
    },
}
JWT_ONLY = {"jwt": {"proof_signing_alg_values_supported": ["ES256"]}}


def b64json(value: Any) -> str:
    return jose.b64url_encode(json.dumps(value).encode())


def expect(error: str, func: Any, *args: Any, **kwargs: Any) -> OID4VCIError:
    with pytest.raises(OID4VCIError) as info:
        func(*args, **kwargs)
    assert info.value.error == error, info.value.description
    return info.value


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level members replaced (None removes one)."""
    out = json.loads(json.dumps(base))
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


# -- error class ----------------------------------------------------------------------------------


def test_error_description_is_ascii_safe() -> None:
    error = OID4VCIError("invalid_proof", 'bad "quote" \\ and é\n' + "x" * 400)
    assert error.error == "invalid_proof"
    assert oid4vci.is_ascii_description(error.description)
    assert len(error.description) <= 300
    assert isinstance(error, ValueError)


# -- Credential Offer (§4.1) ----------------------------------------------------------------------


def test_spec_offer_with_tx_code_parses() -> None:
    offer = oid4vci.parse_credential_offer(SPEC_OFFER_MULTIPLE)
    assert offer.credential_issuer == "https://credential-issuer.example.com"
    assert offer.credential_configuration_ids == (
        "UniversityDegreeCredential",
        "org.iso.18013.5.1.mDL",
    )
    assert offer.pre_authorized_code is not None
    assert offer.pre_authorized_code.pre_authorized_code == "oaKazRN8I0IbtZ0C7JuMn5"
    assert offer.pre_authorized_code.tx_code == oid4vci.TxCode(
        "numeric", 4, "Please provide the one-time code that was sent via e-mail"
    )
    assert offer.authorization_code is None


def test_spec_offer_with_empty_tx_code_still_requires_one() -> None:
    offer = oid4vci.parse_credential_offer(SPEC_OFFER_BY_REFERENCE)
    assert offer.pre_authorized_code and offer.pre_authorized_code.tx_code == oid4vci.TxCode()


def test_spec_authorization_code_offer_parses_from_text() -> None:
    offer = oid4vci.parse_credential_offer(SPEC_OFFER_AUTHZ_CODE)
    assert offer.authorization_code == oid4vci.AuthorizationCodeGrant("eyJhbGciOiJSU0Et...FYUaBy")
    assert offer.pre_authorized_code is None


def test_spec_links_parse() -> None:
    by_value = oid4vci.parse_offer_link(SPEC_LINK_BY_VALUE)
    assert isinstance(by_value, dict)
    offer = oid4vci.parse_credential_offer(by_value)
    assert offer.pre_authorized_code and offer.pre_authorized_code.tx_code == oid4vci.TxCode(
        "text", None, "Please enter the serial number of your physical drivers license"
    )
    get = oid4vci.parse_offer_link(SPEC_GET_BY_VALUE)
    assert oid4vci.parse_credential_offer(get).credential_configuration_ids == (
        "UniversityDegree_JWT",
        "org.iso.18013.5.1.mDL",
    )
    assert oid4vci.parse_offer_link(SPEC_LINK_BY_REFERENCE) == (
        "https://server.example.com/credential-offer/GkurKxf5T0Y-mnPFCHqWOMiZi4VS138cQO_V7PZHAdM"
    )


def test_build_offer() -> None:
    offer = oid4vci.credential_offer(
        ISSUER,
        ["A", "B"],
        pre_authorized_code="code",
        tx_code={"length": 6, "description": "Sent by SMS"},
        issuer_state="state",
        authorization_server="https://as.example",
    )
    assert offer == {
        "credential_issuer": ISSUER,
        "credential_configuration_ids": ["A", "B"],
        "grants": {
            oid4vci.PRE_AUTHORIZED_CODE_GRANT: {
                "pre-authorized_code": "code",
                "tx_code": {"input_mode": "numeric", "length": 6, "description": "Sent by SMS"},
                "authorization_server": "https://as.example",
            },
            "authorization_code": {
                "issuer_state": "state",
                "authorization_server": "https://as.example",
            },
        },
    }
    assert "grants" not in oid4vci.credential_offer(ISSUER, ["A"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"configuration_ids": []},
        {"configuration_ids": ["A", "A"]},
        {"tx_code": {"input_mode": "emoji"}},
        {"tx_code": {"description": "x" * 301}},
        {"issuer": "https://issuer.example?x=1"},
    ],
)
def test_build_offer_refuses_invalid_input(kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"issuer": ISSUER, "configuration_ids": ["A"]}
    options.update(kwargs)
    with pytest.raises(OID4VCIError):
        oid4vci.credential_offer(
            options.pop("issuer"),
            options.pop("configuration_ids"),
            pre_authorized_code="c",
            **options,
        )


_ids = st.lists(
    st.text(alphabet=string.ascii_letters + string.digits + "_+-.:", min_size=1, max_size=30),
    min_size=1,
    max_size=4,
    unique=True,
)
# JSON text that strict_json accepts back: no control characters, no lone surrogates.
_chars = st.characters(blacklist_categories=("Cs", "Cc"))
_text = st.text(alphabet=_chars, min_size=1, max_size=40)


@given(
    ids=_ids,
    code=_text,
    tx=st.none()
    | st.builds(
        oid4vci.TxCode,
        st.sampled_from(["numeric", "text"]),
        st.none() | st.integers(1, 64),
        st.none() | st.text(alphabet=_chars, max_size=300),
    ),
    state=st.none() | _text,
    scheme=st.sampled_from(
        ["openid-credential-offer://", "haip-vci://", "https://wallet.example/offer"]
    ),
)
def test_offer_link_by_value_round_trip(
    ids: list[str], code: str, tx: oid4vci.TxCode | None, state: str | None, scheme: str
) -> None:
    offer = oid4vci.credential_offer(
        ISSUER, ids, pre_authorized_code=code, tx_code=tx, issuer_state=state
    )
    link = oid4vci.offer_link(offer, scheme)
    assert link.startswith(scheme + "?credential_offer=")
    parsed = oid4vci.parse_offer_link(link)
    assert parsed == offer
    result = oid4vci.parse_credential_offer(parsed, known_configuration_ids=set(ids))
    assert result.credential_configuration_ids == tuple(ids)
    assert result.pre_authorized_code == oid4vci.PreAuthorizedCodeGrant(code, tx)
    assert result.authorization_code == (
        oid4vci.AuthorizationCodeGrant(state) if state is not None else None
    )


@given(
    path=st.text(alphabet=string.ascii_letters + string.digits + "-._~/%+&=?", max_size=60),
)
def test_offer_link_by_reference_round_trip(path: str) -> None:
    uri = "https://issuer.example/offers/" + quote(path, safe="/")
    link = oid4vci.offer_link(uri)
    assert link.count("?") == 1 and link.count("=") == 1
    assert oid4vci.parse_offer_link(link) == uri


def test_offer_link_refuses_endpoint_with_query() -> None:
    with pytest.raises(ValueError):
        oid4vci.offer_link("https://x.example/o", "https://wallet.example/offer?x=1")


@pytest.mark.parametrize(
    "link",
    [
        "openid-credential-offer://",
        "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fa.example%2Fo&x=1",
        "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fa.example%2Fo"
        "&credential_offer=%7B%7D",
        "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fa.example%2Fo"
        "&credential_offer_uri=https%3A%2F%2Fb.example%2Fo",
        "openid-credential-offer://?offer=%7B%7D",
        "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fa.example%2Fo#frag",
        "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Fa.example%2Fo",
        "openid-credential-offer://?credential_offer_uri=javascript%3Aalert(1)",
        "openid-credential-offer://?credential_offer_uri=",
        "openid-credential-offer://?credential_offer=not-json",
        "openid-credential-offer://?credential_offer=%5B%5D",
        "openid-credential-offer://?credential_offer=%7B%22a%22%3A1%2C%22a%22%3A2%7D",
        "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fa.example%2F"
        + "x" * oid4vci.MAX_OFFER_LINK_LENGTH,
    ],
)
def test_parse_offer_link_rejects(link: str) -> None:
    expect("invalid_credential_offer", oid4vci.parse_offer_link, link)


def test_parse_offer_link_allows_http_in_development() -> None:
    link = "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Flocalhost%3A8000%2Fo"
    assert oid4vci.parse_offer_link(link, allow_http=True) == "http://localhost:8000/o"


_PRE = oid4vci.PRE_AUTHORIZED_CODE_GRANT


@pytest.mark.parametrize(
    "changes",
    [
        {"credential_issuer": None},
        {"credential_issuer": "http://credential-issuer.example.com"},
        {"credential_issuer": "https://credential-issuer.example.com?x=1"},
        {"credential_issuer": "https://credential-issuer.example.com#f"},
        {"credential_issuer": "credential-issuer.example.com"},
        {"credential_configuration_ids": None},
        {"credential_configuration_ids": []},
        {"credential_configuration_ids": ["A", "A"]},
        {"credential_configuration_ids": ["A", 5]},
        {"credential_configuration_ids": "A"},
        {"grants": []},
        {"grants": {_PRE: "code"}},
        {"grants": {_PRE: {}}},
        {"grants": {_PRE: {"pre-authorized_code": 5}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": "123456"}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": {"input_mode": "alpha"}}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": {"length": 0}}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": {"length": "6"}}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": {"length": True}}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "tx_code": {"description": "x" * 301}}}},
        {"grants": {_PRE: {"pre-authorized_code": "c", "authorization_server": 1}}},
        {"grants": {"authorization_code": []}},
        {"grants": {"authorization_code": {"issuer_state": 7}}},
    ],
)
def test_parse_credential_offer_rejects(changes: dict[str, Any]) -> None:
    expect(
        "invalid_credential_offer",
        oid4vci.parse_credential_offer,
        with_(SPEC_OFFER_MULTIPLE, **changes),
    )


def test_parse_credential_offer_rejects_unknown_configuration() -> None:
    expect(
        "invalid_credential_offer",
        oid4vci.parse_credential_offer,
        SPEC_OFFER_MULTIPLE,
        known_configuration_ids={"UniversityDegreeCredential"},
    )


def test_parse_credential_offer_rejects_duplicate_json_members() -> None:
    text = '{"credential_issuer":"https://a.example","credential_issuer":"https://b.example"}'
    expect("invalid_credential_offer", oid4vci.parse_credential_offer, text)


def test_unknown_grants_and_members_are_ignored() -> None:
    offer = oid4vci.parse_credential_offer(
        with_(SPEC_OFFER_BY_REFERENCE, grants={"urn:example:other": {"x": 1}}, extra=[1])
    )
    assert offer.pre_authorized_code is None and offer.authorization_code is None


# -- metadata (§12.2, RFC 8414) -------------------------------------------------------------------


def test_spec_metadata_passes_with_haip() -> None:
    meta = oid4vci.check_issuer_metadata(
        SPEC_METADATA, "https://credential-issuer.example.com", haip=True
    )
    assert meta.credential_endpoint == "https://credential-issuer.example.com/credential"
    assert meta.nonce_endpoint == "https://credential-issuer.example.com/nonce"
    assert meta.batch_size == 10
    assert meta.authorization_servers == ("https://server.example.com",)
    assert meta.credential_response_encryption is not None
    assert meta.configuration("SD_JWT_VC_example_in_OpenID4VCI")["vct"]
    expect("unknown_credential_configuration", meta.configuration, "nope")


def test_metadata_from_json_text() -> None:
    text = json.dumps(SPEC_METADATA)
    meta = oid4vci.check_issuer_metadata(text, "https://credential-issuer.example.com")
    assert "SD_JWT_VC_example_in_OpenID4VCI" in meta.credential_configurations


def test_minimal_metadata_passes() -> None:
    doc = {
        "credential_issuer": ISSUER,
        "credential_endpoint": ISSUER + "/credential",
        "credential_configurations_supported": CONFIGURATIONS,
    }
    meta = oid4vci.check_issuer_metadata(doc, ISSUER, haip=False)
    assert meta.batch_size is None and meta.authorization_servers == ()


def _config(**changes: Any) -> dict[str, Any]:
    base = SPEC_METADATA["credential_configurations_supported"]["SD_JWT_VC_example_in_OpenID4VCI"]
    return with_(SPEC_METADATA, credential_configurations_supported={"c": with_(base, **changes)})


_ENC = SPEC_METADATA["credential_request_encryption"]


@pytest.mark.parametrize(
    ("doc", "haip"),
    [
        (with_(SPEC_METADATA, credential_issuer="https://credential-issuer.example.com/"), False),
        (with_(SPEC_METADATA, credential_issuer=None), False),
        (with_(SPEC_METADATA, credential_endpoint=None), False),
        (with_(SPEC_METADATA, credential_endpoint="http://credential-issuer.example.com/c"), False),
        (with_(SPEC_METADATA, credential_endpoint="https://x.example/c#frag"), False),
        (with_(SPEC_METADATA, nonce_endpoint="http://credential-issuer.example.com/n"), False),
        (with_(SPEC_METADATA, notification_endpoint=5), False),
        (with_(SPEC_METADATA, authorization_servers=[]), False),
        (with_(SPEC_METADATA, authorization_servers=["https://as.example?x=1"]), False),
        (with_(SPEC_METADATA, batch_credential_issuance={"batch_size": 1}), False),
        (with_(SPEC_METADATA, batch_credential_issuance={"batch_size": "10"}), False),
        (with_(SPEC_METADATA, batch_credential_issuance={}), False),
        (with_(SPEC_METADATA, display=[{"name": "a", "locale": "sv"}, {"locale": "sv"}]), False),
        (with_(SPEC_METADATA, credential_configurations_supported=None), False),
        (with_(SPEC_METADATA, credential_configurations_supported={"c": "x"}), False),
        (_config(format=None), False),
        (_config(vct=None), False),
        (_config(proof_types_supported=None), False),
        (_config(cryptographic_binding_methods_supported=None), False),
        (_config(cryptographic_binding_methods_supported=[]), False),
        (_config(proof_types_supported={}), False),
        (_config(proof_types_supported={"jwt": {}}), False),
        (_config(proof_types_supported={"jwt": {"proof_signing_alg_values_supported": []}}), False),
        (
            _config(
                proof_types_supported={
                    "jwt": {
                        "proof_signing_alg_values_supported": ["ES256"],
                        "key_attestations_required": {"key_storage": []},
                    }
                }
            ),
            False,
        ),
        (_config(credential_signing_alg_values_supported=[]), False),
        (_config(credential_metadata={"display": [{"locale": "en"}]}), False),
        (_config(credential_metadata={"claims": [{"path": []}]}), False),
        (_config(format="mso_mdoc", vct=None), False),
        (_config(format="jwt_vc_json"), False),
        (_config(format="jwt_vc_json", credential_definition={"type": []}), False),
        (_config(format="ldp_vc", credential_definition={"type": ["VerifiableCredential"]}), False),
        (
            with_(
                SPEC_METADATA,
                credential_request_encryption=with_(_ENC, jwks={"keys": [{"kty": "EC"}]}),
            ),
            False,
        ),
        (
            with_(
                SPEC_METADATA, credential_request_encryption=with_(_ENC, encryption_required=None)
            ),
            False,
        ),
        (
            with_(
                SPEC_METADATA,
                credential_response_encryption={"alg_values_supported": ["ECDH-ES"]},
            ),
            False,
        ),
        (_config(scope=None), True),
        (with_(SPEC_METADATA, nonce_endpoint=None), True),
    ],
)
def test_check_issuer_metadata_rejects(doc: dict[str, Any], haip: bool) -> None:
    expect(
        "invalid_issuer_metadata",
        oid4vci.check_issuer_metadata,
        doc,
        "https://credential-issuer.example.com",
        haip=haip,
    )


def test_metadata_allows_http_in_development() -> None:
    doc = {
        "credential_issuer": "http://localhost:8000",
        "credential_endpoint": "http://localhost:8000/credential",
        "credential_configurations_supported": {},
    }
    expect("invalid_issuer_metadata", oid4vci.check_issuer_metadata, doc, "http://localhost:8000")
    assert oid4vci.check_issuer_metadata(doc, "http://localhost:8000", allow_http=True)


@pytest.mark.parametrize(
    ("identifier", "suffix", "expected"),
    [
        (
            "https://issuer.example.com/tenant",
            oid4vci.WELL_KNOWN_CREDENTIAL_ISSUER,
            "https://issuer.example.com/.well-known/openid-credential-issuer/tenant",
        ),
        (
            "https://tenant.issuer.example.com",
            oid4vci.WELL_KNOWN_CREDENTIAL_ISSUER,
            "https://tenant.issuer.example.com/.well-known/openid-credential-issuer",
        ),
        (
            "https://server.example.com/issuer1/",
            "/.well-known/oauth-authorization-server",
            "https://server.example.com/.well-known/oauth-authorization-server/issuer1",
        ),
        (
            "https://example.com:8443",
            oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER,
            "https://example.com:8443/.well-known/oauth-authorization-server",
        ),
    ],
)
def test_well_known_url(identifier: str, suffix: str, expected: str) -> None:
    assert oid4vci.well_known_url(identifier, suffix) == expected


def test_well_known_url_refuses_query() -> None:
    with pytest.raises(ValueError):
        oid4vci.well_known_url("https://issuer.example?x=1")


def test_select_authorization_server() -> None:
    meta = oid4vci.check_issuer_metadata(SPEC_METADATA, "https://credential-issuer.example.com")
    assert oid4vci.select_authorization_server(meta) == "https://server.example.com"
    assert (
        oid4vci.select_authorization_server(meta, "https://server.example.com")
        == "https://server.example.com"
    )
    expect(
        "invalid_credential_offer",
        oid4vci.select_authorization_server,
        meta,
        "https://evil.example",
    )
    own = oid4vci.check_issuer_metadata(
        with_(SPEC_METADATA, authorization_servers=None), "https://credential-issuer.example.com"
    )
    assert oid4vci.select_authorization_server(own) == "https://credential-issuer.example.com"


AS_META = {
    "issuer": ISSUER,
    "token_endpoint": ISSUER + "/token",
    "pushed_authorization_request_endpoint": ISSUER + "/par",
    "pre-authorized_grant_anonymous_access_supported": True,
}


def test_authorization_server_metadata() -> None:
    assert oid4vci.check_authorization_server_metadata(AS_META, ISSUER)["token_endpoint"]


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": ISSUER + "/"},
        {"token_endpoint": None},
        {"token_endpoint": "http://issuer.example/token"},
        {"pushed_authorization_request_endpoint": "ftp://issuer.example/par"},
        {"pre-authorized_grant_anonymous_access_supported": "true"},
    ],
)
def test_authorization_server_metadata_rejects(changes: dict[str, Any]) -> None:
    expect(
        "invalid_issuer_metadata",
        oid4vci.check_authorization_server_metadata,
        with_(AS_META, **changes),
        ISSUER,
    )


# -- claims descriptions (Appendix B, C) -----------------------------------------------------------


def test_spec_claims_descriptions_pass() -> None:
    claims = SPEC_METADATA["credential_configurations_supported"][
        "SD_JWT_VC_example_in_OpenID4VCI"
    ]["credential_metadata"]["claims"]
    paths = oid4vci.check_claims_descriptions(claims)
    assert ("address", "street_address") in paths


@pytest.mark.parametrize(
    "claims",
    [
        [],
        "given_name",
        [{"path": ["a"]}, {"path": ["a"]}],
        [{"path": ["degrees", None, "type"]}, {"path": ["degrees", 0]}],
        [{"path": ["address", "street"]}, {"path": ["address", 0]}],
        [{"path": ["nationalities", None]}, {"path": ["nationalities", "x"]}],
        [{"path": []}],
        [{"path": "a"}],
        [{"path": ["a", -1]}],
        [{"path": ["a", True]}],
        [{"path": ["a", 1.5]}],
        [{"path": ["a"], "mandatory": "yes"}],
        [{}],
        ["a"],
    ],
)
def test_claims_descriptions_rejected(claims: Any) -> None:
    expect("invalid_request", oid4vci.check_claims_descriptions, claims)


@given(
    st.lists(
        st.one_of(st.none(), st.integers(0, 100), st.text(min_size=1, max_size=10)),
        min_size=1,
        max_size=6,
    )
)
def test_valid_claims_paths_are_accepted(path: list[Any]) -> None:
    assert oid4vci.check_claims_path(path) == tuple(path)


# -- authorization details (§5.1.1, RFC 9396) -----------------------------------------------------


def test_spec_authorization_details_parse() -> None:
    details = oid4vci.parse_authorization_details(
        '[{"type": "openid_credential", "credential_configuration_id": '
        '"UniversityDegreeCredential"}, {"type": "openid_credential", '
        '"credential_configuration_id": "org.iso.18013.5.1.mDL"}]'
    )
    assert [d.credential_configuration_id for d in details] == [
        "UniversityDegreeCredential",
        "org.iso.18013.5.1.mDL",
    ]
    with_as = oid4vci.parse_authorization_details(
        [
            {
                "type": "openid_credential",
                "locations": ["https://credential-issuer.example.com"],
                "credential_configuration_id": "UniversityDegreeCredential",
            }
        ],
        credential_issuer="https://credential-issuer.example.com",
        require_locations=True,
    )
    assert with_as[0].locations == ("https://credential-issuer.example.com",)


def test_authorization_detail_to_json_for_token_response() -> None:
    (detail,) = oid4vci.parse_authorization_details(
        [
            {
                "type": "openid_credential",
                "credential_configuration_id": "A",
                "claims": [{"path": ["given_name"], "mandatory": True, "smuggled": 1}],
                "extra": "ignored",
            }
        ]
    )
    assert detail.to_json(["id-1", "id-2"]) == {
        "type": "openid_credential",
        "credential_configuration_id": "A",
        "claims": [{"path": ["given_name"], "mandatory": True}],
        "credential_identifiers": ["id-1", "id-2"],
    }


_DETAIL = {"type": "openid_credential", "credential_configuration_id": "A"}


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        ("not json", {}),
        ({}, {}),
        ([], {}),
        (["x"], {}),
        ([with_(_DETAIL, type="other")], {}),
        ([with_(_DETAIL, type=None)], {}),
        ([with_(_DETAIL, credential_configuration_id=None)], {}),
        ([with_(_DETAIL, credential_configuration_id=5)], {}),
        ([_DETAIL], {"known_configuration_ids": {"B"}}),
        ([with_(_DETAIL, claims=[])], {}),
        ([with_(_DETAIL, claims=[{"path": ["a"]}, {"path": ["a"]}])], {}),
        ([with_(_DETAIL, locations="https://issuer.example")], {}),
        ([_DETAIL], {"credential_issuer": ISSUER, "require_locations": True}),
        ([with_(_DETAIL, locations=["https://other.example"])], {"credential_issuer": ISSUER}),
    ],
)
def test_authorization_details_rejected(value: Any, kwargs: dict[str, Any]) -> None:
    expect("invalid_authorization_details", oid4vci.parse_authorization_details, value, **kwargs)


# -- token request (§6.1) -------------------------------------------------------------------------


def test_spec_pre_authorized_token_request() -> None:
    request = oid4vci.parse_token_request(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
            "pre-authorized_code": "SplxlOBeZQQYbYS6WxSbIA",
            "tx_code": "493536",
            "authorization_details": '[{"type": "openid_credential", '
            '"credential_configuration_id": "UniversityDegreeCredential"}]',
        }
    )
    assert request.pre_authorized_code == "SplxlOBeZQQYbYS6WxSbIA"
    assert request.tx_code == "493536"
    assert request.authorization_details == (
        oid4vci.AuthorizationDetail("UniversityDegreeCredential"),
    )
    assert request.client_id is None


def test_spec_authorization_code_token_request() -> None:
    request = oid4vci.parse_token_request(
        {
            "grant_type": "authorization_code",
            "code": "SplxlOBeZQQYbYS6WxSbIA",
            "code_verifier": RFC7636_VERIFIER,
            "redirect_uri": "https://wallet.example.org/cb",
            "scope": "a  b",
            "unknown": "ignored",
        }
    )
    assert request.code == "SplxlOBeZQQYbYS6WxSbIA"
    assert request.redirect_uri == "https://wallet.example.org/cb"
    assert request.scope == ("a", "b")
    oid4vci.verify_pkce(RFC7636_CHALLENGE, "S256", request.code_verifier)


def test_refresh_token_request() -> None:
    request = oid4vci.parse_token_request({"grant_type": "refresh_token", "refresh_token": "r"})
    assert request.refresh_token == "r"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": ""}, "invalid_request"),
        ({"grant_type": "password", "username": "u"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "c", "tx_code": "1"}, "invalid_request"),
        ({"grant_type": _PRE}, "invalid_request"),
        ({"grant_type": _PRE, "pre-authorized_code": ""}, "invalid_request"),
        ({"grant_type": _PRE, "pre-authorized_code": ["a", "b"]}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        (
            {"grant_type": _PRE, "pre-authorized_code": "c", "authorization_details": "[{}]"},
            "invalid_authorization_details",
        ),
    ],
)
def test_token_request_rejected(form: dict[str, Any], error: str) -> None:
    expect(error, oid4vci.parse_token_request, form)


def test_token_request_grant_not_enabled() -> None:
    expect(
        "unsupported_grant_type",
        oid4vci.parse_token_request,
        {"grant_type": "refresh_token", "refresh_token": "r"},
        grant_types={_PRE},
    )


def test_tx_code_presence() -> None:
    oid4vci.check_tx_code_presence(True, "123456")
    oid4vci.check_tx_code_presence(False, None)
    expect("invalid_request", oid4vci.check_tx_code_presence, True, None)
    expect("invalid_request", oid4vci.check_tx_code_presence, False, "123456")


@given(length=st.integers(4, 64), mode=st.sampled_from(["numeric", "text"]))
def test_new_tx_code_matches_the_announced_shape(length: int, mode: str) -> None:
    code = oid4vci.new_tx_code(length, mode)
    assert len(code) == length
    assert (
        code.isdigit()
        if mode == "numeric"
        else set(code) <= set(string.ascii_uppercase + "23456789")
    )


def test_new_tx_code_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        oid4vci.new_tx_code(3)
    with pytest.raises(ValueError):
        oid4vci.new_tx_code(6, "emoji")


def test_opaque_values_are_long_and_unique() -> None:
    values = {oid4vci.new_opaque_value() for _ in range(1000)}
    assert len(values) == 1000
    assert all(len(jose.b64url_decode(v)) >= 16 for v in values)


def test_spec_token_response_round_trip() -> None:
    body = oid4vci.token_response(
        "eyJhbGciOiJSUzI1NiIsInR5cCI6Ikp..sHQ",
        token_type="Bearer",
        expires_in=86400,
        authorization_details=[
            {
                "type": "openid_credential",
                "credential_configuration_id": "UniversityDegreeCredential",
                "credential_identifiers": [
                    "CivilEngineeringDegree-2023",
                    "ElectricalEngineeringDegree-2023",
                ],
            }
        ],
    )
    response = oid4vci.parse_token_response(json.dumps(body))
    assert response.token_type == "Bearer" and response.expires_in == 86400
    assert response.authorization_details == (
        oid4vci.GrantedCredential(
            "UniversityDegreeCredential",
            ("CivilEngineeringDegree-2023", "ElectricalEngineeringDegree-2023"),
        ),
    )


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "DPoP"},
        {"access_token": "a"},
        {"access_token": "a", "token_type": "DPoP", "expires_in": -1},
        {"access_token": "a", "token_type": "DPoP", "authorization_details": []},
        {
            "access_token": "a",
            "token_type": "DPoP",
            "authorization_details": [
                {
                    "type": "openid_credential",
                    "credential_configuration_id": "A",
                    "credential_identifiers": [],
                }
            ],
        },
    ],
)
def test_token_response_rejected(body: dict[str, Any]) -> None:
    expect("invalid_token_response", oid4vci.parse_token_response, body)


# -- PKCE (RFC 7636) ------------------------------------------------------------------------------


def test_rfc7636_vector() -> None:
    assert oid4vci.pkce_challenge(RFC7636_VERIFIER) == RFC7636_CHALLENGE
    oid4vci.verify_pkce(RFC7636_CHALLENGE, "S256", RFC7636_VERIFIER)
    oid4vci.check_code_challenge(RFC7636_CHALLENGE, "S256")


@given(st.from_regex(r"[A-Za-z0-9\-._~]{43,128}", fullmatch=True))
def test_pkce_round_trip_for_any_valid_verifier(verifier: str) -> None:
    challenge = oid4vci.pkce_challenge(verifier)
    oid4vci.check_code_challenge(challenge, "S256")
    oid4vci.verify_pkce(challenge, "S256", verifier)
    other = ("A" if verifier[0] != "A" else "B") + verifier[1:]
    expect("invalid_grant", oid4vci.verify_pkce, challenge, "S256", other)


def test_new_pkce_verifiers() -> None:
    verifiers = {oid4vci.new_pkce_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    for verifier in verifiers:
        assert len(verifier) == 43
        oid4vci.verify_pkce(oid4vci.pkce_challenge(verifier), "S256", verifier)


@pytest.mark.parametrize(
    ("challenge", "method", "verifier", "error"),
    [
        (RFC7636_CHALLENGE, "S256", RFC7636_VERIFIER[:-1] + "A", "invalid_grant"),
        (RFC7636_CHALLENGE, "S256", RFC7636_VERIFIER[:42], "invalid_grant"),
        (RFC7636_CHALLENGE, "S256", "a" * 129, "invalid_grant"),
        (RFC7636_CHALLENGE, "S256", RFC7636_VERIFIER[:-1] + "+", "invalid_grant"),
        (RFC7636_CHALLENGE, "S256", None, "invalid_grant"),
        (None, None, RFC7636_VERIFIER, "invalid_grant"),
        (RFC7636_VERIFIER, "plain", RFC7636_VERIFIER, "invalid_request"),
    ],
)
def test_verify_pkce_rejects(
    challenge: str | None, method: str | None, verifier: str | None, error: str
) -> None:
    expect(error, oid4vci.verify_pkce, challenge, method, verifier)


def test_no_pkce_at_all_is_the_callers_decision() -> None:
    oid4vci.verify_pkce(None, None, None)


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, "S256"), (RFC7636_CHALLENGE, "plain"), (RFC7636_CHALLENGE, None), ("short", "S256")],
)
def test_check_code_challenge_rejects(challenge: str | None, method: str | None) -> None:
    expect("invalid_request", oid4vci.check_code_challenge, challenge, method)


# -- nonce endpoint (§7) --------------------------------------------------------------------------


def test_spec_nonce_response() -> None:
    assert oid4vci.nonce_response("wKI4LT17ac15ES9bw8ac4") == {"c_nonce": "wKI4LT17ac15ES9bw8ac4"}
    assert oid4vci.parse_nonce_response('{"c_nonce": "wKI4LT17ac15ES9bw8ac4"}') == (
        "wKI4LT17ac15ES9bw8ac4"
    )
    expect("invalid_credential_response", oid4vci.parse_nonce_response, {"c_nonce": 1})


# -- credential request (§8.2) --------------------------------------------------------------------


def _request(body: Any, **kwargs: Any) -> oid4vci.CredentialRequest:
    options: dict[str, Any] = {"batch_size": 3, "configurations": CONFIGURATIONS}
    options.update(kwargs)
    return oid4vci.parse_credential_request(body, **options)


def test_spec_credential_request_by_configuration_id() -> None:
    request = oid4vci.parse_credential_request(
        {"credential_configuration_id": "org.iso.18013.5.1.mDL", "proofs": {"jwt": ["eyJ.a.b"]}},
        batch_size=None,
        proof_types_supported=JWT_ONLY,
    )
    assert request.credential_configuration_id == "org.iso.18013.5.1.mDL"
    assert request.proof_type == "jwt" and request.proofs == ("eyJ.a.b",)
    assert request.credential_identifier is None and request.configuration is None


def test_spec_credential_request_by_identifier_with_two_proofs() -> None:
    request = _request(
        {
            "credential_identifier": "CivilEngineeringDegree-2023",
            "proofs": {"jwt": ["eyJ0.a.b", "eyJr.c.d"]},
        },
        credential_identifiers={"CivilEngineeringDegree-2023": "Bound_dc+sd-jwt"},
    )
    assert request.credential_identifier == "CivilEngineeringDegree-2023"
    assert request.credential_configuration_id == "Bound_dc+sd-jwt"
    assert request.configuration is CONFIGURATIONS["Bound_dc+sd-jwt"]
    assert len(request.proofs) == 2


def test_smuggled_claims_are_never_returned() -> None:
    request = _request(
        {
            "credential_configuration_id": "Unbound_jwt_vc_json",
            "credentialSubject": {"birth_date": "1900-01-01"},
            "birth_date": "1900-01-01",
        }
    )
    assert "1900" not in repr(request)


def test_unbound_configuration_takes_no_proofs() -> None:
    assert _request({"credential_configuration_id": "Unbound_jwt_vc_json"}).proofs == ()


_BOUND = {"credential_configuration_id": "Bound_dc+sd-jwt", "proofs": {"jwt": ["a.b.c"]}}
_IDS = {"id-1": "Bound_dc+sd-jwt"}


@pytest.mark.parametrize(
    ("body", "kwargs", "error"),
    [
        ("x", {}, "invalid_credential_request"),
        ({}, {}, "invalid_credential_request"),
        (
            with_(_BOUND, credential_identifier="id-1"),
            {"credential_identifiers": _IDS},
            "invalid_credential_request",
        ),
        (with_(_BOUND, credential_configuration_id=5), {}, "invalid_credential_request"),
        (with_(_BOUND, credential_configuration_id=""), {}, "invalid_credential_request"),
        ({"credential_identifier": "id-1"}, {}, "invalid_credential_request"),
        (
            {"credential_identifier": "id-9"},
            {"credential_identifiers": _IDS},
            "unknown_credential_identifier",
        ),
        (_BOUND, {"credential_identifiers": _IDS}, "invalid_credential_request"),
        (with_(_BOUND, credential_configuration_id="Nope"), {}, "unknown_credential_configuration"),
        (_BOUND, {"authorized_configuration_ids": {"Unbound_jwt_vc_json"}}, "insufficient_scope"),
        (with_(_BOUND, proofs=None), {}, "invalid_proof"),
        (
            {"credential_configuration_id": "Unbound_jwt_vc_json", "proofs": {"jwt": ["a.b.c"]}},
            {},
            "invalid_proof",
        ),
        (with_(_BOUND, proofs=["a.b.c"]), {}, "invalid_proof"),
        (with_(_BOUND, proofs={}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": ["a.b.c"], "attestation": ["a.b.c"]}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"di_vp": [{}]}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": []}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": "a.b.c"}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": ["a.b.c"] * 4}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": ["a.b.c"] * 2}), {"batch_size": None}, "invalid_proof"),
        (with_(_BOUND, proofs={"attestation": ["a.b.c"] * 2}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": [{"jwt": "a.b.c"}]}), {}, "invalid_proof"),
        (with_(_BOUND, proofs={"jwt": [""]}), {}, "invalid_proof"),
    ],
)
def test_credential_request_rejected(body: Any, kwargs: dict[str, Any], error: str) -> None:
    expect(error, _request, body, **kwargs)


def test_proofs_required_by_proof_types_supported_without_configurations() -> None:
    expect(
        "invalid_proof",
        oid4vci.parse_credential_request,
        {"credential_configuration_id": "X"},
        batch_size=None,
        proof_types_supported=JWT_ONLY,
    )


RESPONSE_ENCRYPTION = SPEC_METADATA["credential_response_encryption"]
_ENC_JWK = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES", "x": "x", "y": "y"}


def _encrypted(enc: Any, *, encrypted: bool = True, supported: Any = RESPONSE_ENCRYPTION) -> Any:
    body = with_(_BOUND, credential_response_encryption=enc)
    return _request(body, encrypted=encrypted, response_encryption=supported)


def test_response_encryption_accepted_in_encrypted_request() -> None:
    request = _encrypted({"jwk": _ENC_JWK, "enc": "A128GCM", "zip": "DEF", "extra": 1})
    assert request.credential_response_encryption == {
        "jwk": _ENC_JWK,
        "enc": "A128GCM",
        "zip": "DEF",
    }


@pytest.mark.parametrize(
    ("enc", "options"),
    [
        ({"jwk": _ENC_JWK, "enc": "A128GCM"}, {"encrypted": False}),
        ({"jwk": _ENC_JWK, "enc": "A128GCM"}, {"supported": None}),
        (None, {}),
        ("x", {}),
        ({"enc": "A128GCM"}, {}),
        ({"jwk": _ENC_JWK, "enc": "A256CBC-HS512"}, {}),
        ({"jwk": _ENC_JWK}, {}),
        ({"jwk": with_(_ENC_JWK, alg="RSA1_5"), "enc": "A128GCM"}, {}),
        ({"jwk": with_(_ENC_JWK, alg=None), "enc": "A128GCM"}, {}),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0", "alg": "ECDH-ES"}, "enc": "A128GCM"}, {}),
        ({"jwk": with_(_ENC_JWK, d="secret"), "enc": "A128GCM"}, {}),
        ({"jwk": _ENC_JWK, "enc": "A128GCM", "zip": "GZIP"}, {}),
    ],
)
def test_response_encryption_rejected(enc: Any, options: dict[str, Any]) -> None:
    if enc is None:  # missing although our metadata says encryption_required
        body = dict(_BOUND)
        expect(
            "invalid_encryption_parameters",
            _request,
            body,
            encrypted=True,
            response_encryption=RESPONSE_ENCRYPTION,
        )
        return
    expect("invalid_encryption_parameters", _encrypted, enc, **options)


def test_deferred_credential_request() -> None:
    assert oid4vci.parse_deferred_credential_request({"transaction_id": "8xLOxBtZp8"}) == (
        "8xLOxBtZp8",
        None,
    )
    expect("invalid_credential_request", oid4vci.parse_deferred_credential_request, {})
    expect(
        "invalid_encryption_parameters",
        oid4vci.parse_deferred_credential_request,
        {"transaction_id": "t", "credential_response_encryption": {"jwk": _ENC_JWK}},
    )


# -- key proofs (Appendix F) ----------------------------------------------------------------------


def proof(key: jose.Key = HOLDER, **kwargs: Any) -> str:
    options: dict[str, Any] = {"audience": ISSUER, "nonce": "c-nonce", "iat": NOW}
    options.update(kwargs)
    return oid4vci.make_jwt_proof(key, **options)


def raw_proof(
    claims: dict[str, Any], header: dict[str, Any] | None = None, key: jose.Key = HOLDER
) -> str:
    full: dict[str, Any] = {"typ": oid4vci.PROOF_TYP, "jwk": key.public_jwk()}
    full.update(header or {})
    return jose.encode_jws(claims, key, {k: v for k, v in full.items() if v is not None})


def proof_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"aud": ISSUER, "iat": NOW, "nonce": "c-nonce"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def check(token: str, **kwargs: Any) -> oid4vci.ProofResult:
    options: dict[str, Any] = {
        "audience": ISSUER,
        "now": NOW,
        "algorithms": ALGS,
        "nonce_required": True,
    }
    options.update(kwargs)
    return oid4vci.verify_jwt_proof(token, **options)


def bad_proof(token: str, **kwargs: Any) -> OID4VCIError:
    return expect("invalid_proof", check, token, **kwargs)


def test_spec_jwt_proof_verifies() -> None:
    result = oid4vci.verify_jwt_proof(
        SPEC_JWT_PROOF,
        audience="https://credential-issuer.example.com",
        now=1701960444,
        algorithms=["ES256"],
        nonce_required=True,
        anonymous=True,
    )
    assert result.nonce == "LarRGSbmUPYtRYO6BQ4yn8"
    assert result.iat == 1701960444
    assert result.key.public_jwk()["x"] == "nUWAoAv3XZith8E7i19OdaxOLYFOwM-Z2EuM02TirT4"
    assert result.jwt == SPEC_JWT_PROOF


def test_spec_jwt_proof_for_another_issuer_is_refused() -> None:
    expect(
        "invalid_proof",
        oid4vci.verify_jwt_proof,
        SPEC_JWT_PROOF,
        audience="https://credential-issuer.example.com/",
        now=1701960444,
        algorithms=["ES256"],
    )


@pytest.mark.parametrize("key", [HOLDER, ED_HOLDER], ids=["ES256", "EdDSA"])
def test_jwt_proof_round_trip(key: jose.Key) -> None:
    result = check(proof(key, client_id=CLIENT_ID), client_id=CLIENT_ID)
    assert result.key.thumbprint() == key.thumbprint()
    assert result.nonce == "c-nonce" and result.key_attestation is None
    header = jose.parse_jws(result.jwt).header
    assert header["typ"] == "openid4vci-proof+jwt" and "kid" not in header["jwk"]


def test_proof_without_nonce_when_not_required() -> None:
    assert check(proof(nonce=None), nonce_required=False).nonce is None


def test_proof_with_kid_resolved_by_caller() -> None:
    keys = {"did:example:holder#1": HOLDER.public()}
    token = raw_proof(proof_claims(), {"jwk": None, "kid": "did:example:holder#1"})
    assert check(token, key_resolver=keys.__getitem__).key == HOLDER.public()
    bad_proof(
        raw_proof(proof_claims(), {"jwk": None, "kid": "did:x#2"}), key_resolver=keys.__getitem__
    )


def test_proof_with_x5c_validated_by_caller() -> None:
    holder_cert = x509.make_leaf(
        ROOT_KEY, ROOT, HOLDER, common_name="holder", not_before=NOT_BEFORE
    )
    token = raw_proof(proof_claims(), {"jwk": None, "x5c": x509.x5c_from_certs([holder_cert])})
    result = check(token, x5c_validator=lambda x5c: x509.validate_x5c(x5c, [ROOT], now=NOW).key)
    assert result.key.thumbprint() == HOLDER.thumbprint()
    bad_proof(token, x5c_validator=lambda x5c: x509.validate_x5c(x5c, [OTHER_ROOT], now=NOW).key)


@pytest.mark.parametrize("typ", [None, "JWT", "application/openid4vci-proof+jwt", "kb+jwt"])
def test_proof_rejects_typ(typ: str | None) -> None:
    bad_proof(raw_proof(proof_claims(), {"typ": typ}))


@pytest.mark.parametrize("alg", ["none", "NONE", "HS256"])
def test_proof_rejects_none_and_mac(alg: str) -> None:
    header = {"typ": oid4vci.PROOF_TYP, "alg": alg, "jwk": HOLDER.public_jwk()}
    bad_proof(f"{b64json(header)}.{b64json(proof_claims())}.c2ln")


def test_proof_rejects_algorithm_outside_metadata() -> None:
    bad_proof(proof(ED_HOLDER), algorithms=["ES256"])


@pytest.mark.parametrize(
    "header",
    [
        {"kid": "k1"},
        {"x5c": PROVIDER_X5C},
        {"jwk": None},
        {"jwk": None, "kid": "k1", "x5c": PROVIDER_X5C},
    ],
    ids=["jwk+kid", "jwk+x5c", "none", "kid+x5c"],
)
def test_proof_rejects_not_exactly_one_key_parameter(header: dict[str, Any]) -> None:
    bad_proof(raw_proof(proof_claims(), header), key_resolver=lambda kid: HOLDER)


def test_proof_rejects_private_jwk() -> None:
    error = bad_proof(raw_proof(proof_claims(), {"jwk": HOLDER.private_jwk()}))
    assert HOLDER.private_jwk()["d"] not in error.description


def test_proof_rejects_jwk_that_is_not_an_object() -> None:
    bad_proof(raw_proof(proof_claims(), {"jwk": "key"}))


def test_proof_rejects_kid_without_resolver() -> None:
    bad_proof(raw_proof(proof_claims(), {"jwk": None, "kid": "did:example:1#k"}))


def test_proof_rejects_x5c_without_validator() -> None:
    bad_proof(raw_proof(proof_claims(), {"jwk": None, "x5c": PROVIDER_X5C}))


def test_proof_rejects_signature_by_another_key() -> None:
    bad_proof(raw_proof(proof_claims(), {"jwk": OTHER.public_jwk()}))


def test_proof_rejects_flipped_signature_bit() -> None:
    head, body, sig = proof().split(".")
    raw = bytearray(jose.b64url_decode(sig))
    raw[-1] ^= 1
    bad_proof(f"{head}.{body}.{jose.b64url_encode(bytes(raw))}")


@pytest.mark.parametrize(
    "aud", [None, ISSUER + "/", "https://issuer.ex", [ISSUER], [ISSUER, "https://x.example"]]
)
def test_proof_rejects_audience(aud: Any) -> None:
    bad_proof(raw_proof(proof_claims(aud=aud)))


@pytest.mark.parametrize("iat", [None, NOW + 10 * 365 * 86400, NOW - 3600, "1800000000", 1.8e9])
def test_proof_rejects_iat(iat: Any) -> None:
    bad_proof(raw_proof(proof_claims(iat=iat)))


def test_proof_accepts_small_future_skew() -> None:
    assert check(raw_proof(proof_claims(iat=NOW + 30))).iat == NOW + 30


def test_proof_rejects_iss_in_anonymous_flow() -> None:
    bad_proof(proof(client_id=CLIENT_ID), anonymous=True)


def test_proof_rejects_iss_other_than_client_id() -> None:
    bad_proof(proof(client_id="https://other.example"), client_id=CLIENT_ID)
    bad_proof(proof(client_id=CLIENT_ID))  # no client_id known: iss cannot be checked


def test_proof_without_iss_is_fine_for_known_clients() -> None:
    assert check(proof(), client_id=CLIENT_ID).nonce == "c-nonce"


def test_proof_without_c_nonce() -> None:
    error = bad_proof(proof(nonce=None))
    assert "c_nonce" in error.description


@pytest.mark.parametrize("nonce", ["", 5, ["n"]])
def test_proof_rejects_malformed_nonce(nonce: Any) -> None:
    bad_proof(raw_proof(proof_claims(nonce=nonce)))


def test_proof_rejects_oversized_token() -> None:
    bad_proof(raw_proof(proof_claims(pad="x" * 70_000)))


# -- key attestations (Appendix D) with jwt and attestation proofs -------------------------------

TRUST = oid4vci.x5c_trust([ROOT], now=NOW)
REQUIRED = {"key_storage": ["iso_18045_moderate", "iso_18045_high"]}


def key_attestation(**kwargs: Any) -> str:
    options: dict[str, Any] = {
        "attested_keys": [HOLDER, HOLDER2],
        "exp": NOW + 3600,
        "iat": NOW - 10,
        "x5c": PROVIDER_X5C,
        "nonce": "c-nonce",
        "key_storage": ["iso_18045_high"],
        "user_authentication": ["iso_18045_moderate"],
    }
    options.update(kwargs)
    return oid4vci.make_key_attestation(PROVIDER_KEY, **options)


def raw_key_attestation(claims: dict[str, Any], typ: str = oid4vci.KEY_ATTESTATION_TYP) -> str:
    return jose.encode_jws(claims, PROVIDER_KEY, {"typ": typ, "x5c": PROVIDER_X5C})


def ka_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "attested_keys": [HOLDER.public_jwk()],
        "nonce": "c-nonce",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_jwt_proof_with_key_attestation() -> None:
    result = check(
        proof(key_attestation=key_attestation()),
        key_attestation_trust=TRUST,
        key_attestations_required=REQUIRED,
    )
    assert [k.thumbprint() for k in result.attested_keys] == [
        HOLDER.thumbprint(),
        HOLDER2.thumbprint(),
    ]
    assert result.key_attestation and result.key_attestation["key_storage"] == ["iso_18045_high"]


def test_attestation_proof_type() -> None:
    result = oid4vci.verify_attestation_proof(
        key_attestation(exp=None), now=NOW, trust=TRUST, algorithms=ALGS, nonce_required=True
    )
    assert result.key.thumbprint() == HOLDER.thumbprint()
    assert result.nonce == "c-nonce" and len(result.attested_keys) == 2
    expect(
        "invalid_proof",
        oid4vci.verify_attestation_proof,
        key_attestation(nonce=None),
        now=NOW,
        trust=TRUST,
        algorithms=ALGS,
        nonce_required=True,
    )


def test_made_key_attestation_shape() -> None:
    jws = jose.parse_jws(key_attestation(certification="https://cert.example/1"))
    assert jws.header["typ"] == "key-attestation+jwt" and jws.header["x5c"] == PROVIDER_X5C
    claims = jws.claims()
    assert all("kid" not in k and "d" not in k for k in claims["attested_keys"])
    assert claims["certification"] == "https://cert.example/1"


@pytest.mark.parametrize(
    ("attestation", "kwargs"),
    [
        (lambda: key_attestation(), {"key_attestation_trust": None}),
        (lambda: key_attestation(attested_keys=[HOLDER2]), {}),
        (
            lambda: key_attestation(),
            {"key_attestation_trust": oid4vci.x5c_trust([OTHER_ROOT], now=NOW)},
        ),
        (lambda: key_attestation(x5c=None), {}),
        (lambda: key_attestation(exp=NOW - 3600), {}),
        (lambda: key_attestation(exp=None), {}),
        (lambda: key_attestation(nonce="other"), {}),
        (lambda: key_attestation(nonce=None), {}),
        (
            lambda: key_attestation(key_storage=["iso_18045_basic"]),
            {"key_attestations_required": REQUIRED},
        ),
        (lambda: key_attestation(key_storage=None), {"key_attestations_required": REQUIRED}),
        (lambda: raw_key_attestation(ka_claims(attested_keys=[])), {}),
        (lambda: raw_key_attestation(ka_claims(attested_keys=None)), {}),
        (lambda: raw_key_attestation(ka_claims(attested_keys=[HOLDER.private_jwk()])), {}),
        (
            lambda: raw_key_attestation(
                ka_claims(attested_keys=[HOLDER.public_jwk(), HOLDER.public_jwk()])
            ),
            {},
        ),
        (lambda: raw_key_attestation(ka_claims(iat=None)), {}),
        (lambda: raw_key_attestation(ka_claims(key_storage=[])), {}),
        (lambda: raw_key_attestation(ka_claims(nonce=5)), {}),
        (lambda: raw_key_attestation(ka_claims(), typ="JWT"), {}),
        (lambda: 42, {}),
    ],
)
def test_key_attestation_rejected(attestation: Any, kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"key_attestation_trust": TRUST}
    options.update(kwargs)
    bad_proof(proof(key_attestation=attestation()), **options)


def test_key_attestation_required_but_absent() -> None:
    bad_proof(proof(), key_attestation_trust=TRUST, key_attestations_required={})


def test_distinct_proof_keys() -> None:
    first = check(proof(HOLDER, key_attestation=key_attestation()), key_attestation_trust=TRUST)
    second = check(proof(HOLDER2, key_attestation=key_attestation()), key_attestation_trust=TRUST)
    keys = oid4vci.distinct_proof_keys([first, second])
    assert [k.thumbprint() for k in keys] == [HOLDER.thumbprint(), HOLDER2.thumbprint()]
    expect("invalid_proof", oid4vci.distinct_proof_keys, [first, check(proof(HOLDER))])


def test_common_nonce() -> None:
    a, b = check(proof(HOLDER)), check(proof(HOLDER2))
    assert oid4vci.common_nonce([a, b]) == "c-nonce"
    assert oid4vci.common_nonce([]) is None
    expect("invalid_proof", oid4vci.common_nonce, [a, check(proof(HOLDER2, nonce="n2"))])


# -- credential response (§8.3, §9.2) -------------------------------------------------------------


def test_spec_credential_responses() -> None:
    single = oid4vci.parse_credential_response(
        {"credentials": [{"credential": "LUpixVCWJk0eOt4CXQe1NXK....WZwmhmn9OQp6YxX0a2L"}]}
    )
    assert single.credentials == ("LUpixVCWJk0eOt4CXQe1NXK....WZwmhmn9OQp6YxX0a2L",)
    batch = oid4vci.parse_credential_response(
        {
            "credentials": [
                {"credential": "LUpixVCWJk0eOt4CXQe1NXK....WZwmhmn9OQp6YxX0a2L"},
                {"credential": "YXNkZnNhZGZkamZqZGFza23....29tZTIzMjMyMzIzMjMy"},
            ],
            "notification_id": "3fwe98js",
        }
    )
    assert batch.notification_id == "3fwe98js" and len(batch.credentials) == 2
    deferred = oid4vci.parse_credential_response(
        '{"transaction_id": "8xLOxBtZp8", "interval": 3600}', expected_transaction_id="8xLOxBtZp8"
    )
    assert deferred.transaction_id == "8xLOxBtZp8" and deferred.interval == 3600
    ldp = oid4vci.parse_credential_response({"credentials": [{"credential": {"@context": []}}]})
    assert ldp.credentials == ({"@context": []},)


@given(
    credentials=st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=5),
    notification_id=st.none() | st.text(min_size=1, max_size=20),
)
def test_credential_response_round_trip(
    credentials: list[str], notification_id: str | None
) -> None:
    body = oid4vci.credential_response(credentials, notification_id)
    parsed = oid4vci.parse_credential_response(body)
    assert parsed.credentials == tuple(credentials)
    assert parsed.notification_id == notification_id


def test_deferred_response_round_trip() -> None:
    parsed = oid4vci.parse_credential_response(oid4vci.deferred_response("t-1", 5))
    assert (parsed.transaction_id, parsed.interval) == ("t-1", 5)
    with pytest.raises(ValueError):
        oid4vci.deferred_response("t-1", 0)
    with pytest.raises(ValueError):
        oid4vci.credential_response([])


@pytest.mark.parametrize(
    ("body", "kwargs"),
    [
        ({}, {}),
        ({"credentials": [{"credential": "c"}], "transaction_id": "t", "interval": 5}, {}),
        ({"transaction_id": "t"}, {}),
        ({"transaction_id": "t", "interval": 0}, {}),
        ({"transaction_id": "t", "interval": "5"}, {}),
        ({"transaction_id": "t", "interval": 5, "notification_id": "n"}, {}),
        ({"transaction_id": "t", "interval": 5}, {"expected_transaction_id": "other"}),
        ({"credentials": [{"credential": "c"}], "interval": 5}, {}),
        ({"credentials": []}, {}),
        ({"credentials": "c"}, {}),
        ({"credentials": [{"format": "x"}]}, {}),
        ({"credentials": [{"credential": ""}]}, {}),
        ({"credentials": [{"credential": 5}]}, {}),
        ({"credentials": [{"credential": "c"}], "notification_id": 5}, {}),
    ],
)
def test_credential_response_rejected(body: dict[str, Any], kwargs: dict[str, Any]) -> None:
    expect("invalid_credential_response", oid4vci.parse_credential_response, body, **kwargs)


# -- notification (§11) ---------------------------------------------------------------------------


def test_spec_notification_requests() -> None:
    accepted = oid4vci.parse_notification_request(
        {"notification_id": "3fwe98js", "event": "credential_accepted"}
    )
    assert accepted == oid4vci.NotificationRequest("3fwe98js", "credential_accepted")
    failure = oid4vci.parse_notification_request(
        {
            "notification_id": "3fwe98js",
            "event": "credential_failure",
            "event_description": "Could not store the Credential. Out of storage.",
            "extra": "ignored",
        }
    )
    assert failure.event_description == "Could not store the Credential. Out of storage."
    assert oid4vci.notification_request("3fwe98js", "credential_deleted") == {
        "notification_id": "3fwe98js",
        "event": "credential_deleted",
    }


@pytest.mark.parametrize(
    "body",
    [
        "x",
        {"event": "credential_accepted"},
        {"notification_id": "", "event": "credential_accepted"},
        {"notification_id": 5, "event": "credential_accepted"},
        {"notification_id": "n"},
        {"notification_id": "n", "event": "CREDENTIAL_ACCEPTED"},
        {"notification_id": "n", "event": "credential_revoked"},
        {"notification_id": "n", "event": "credential_failure", "event_description": 'a "q"'},
        {"notification_id": "n", "event": "credential_failure", "event_description": "åäö"},
        {"notification_id": "n", "event": "credential_failure", "event_description": "a\\b"},
        {"notification_id": "n", "event": "credential_failure", "event_description": 1},
    ],
)
def test_notification_request_rejected(body: Any) -> None:
    expect("invalid_notification_request", oid4vci.parse_notification_request, body)
