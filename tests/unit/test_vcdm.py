"""Tests for intyg.vcdm: VCDM 2.0 data model and VC-JOSE-COSE ``vc+jwt`` / ``vp+jwt``.

Spec vectors:
- VCDM 2.0 REC Example 11 ("Use of the validFrom and validUntil properties").
- w3c/vc-jose-cose-test-suite ``tests/input``: ``credential-jose-minimal.txt`` (ES256),
  ``credential-jose-vc-vp-claims.txt``, ``credential-jose-bad-signature.txt``,
  ``credential-jose-bad-media-type.txt``, ``presentation-jose-bad-credential.txt`` and
  ``presentation-jose-bad-media-type.txt`` (EdDSA), with the public keys of
  ``cid-p256.json`` and ``cid-ed25519.json``. Each signature was checked against those keys.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intyg import jose, strict_json, vcdm
from intyg.vcdm import VCDMError

NOW = int(datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp())
ISSUER = "https://issuer.intyg.example"
AUDIENCE = "x509_san_dns:verifier.intyg.example"
NONCE = "n-0S6_WzA2Mj"

# -- spec vectors ---------------------------------------------------------------------------

VCDM_EXAMPLE_11 = {
    "@context": [
        "https://www.w3.org/ns/credentials/v2",
        "https://www.w3.org/ns/credentials/examples/v2",
    ],
    "id": "http://university.example/credentials/3732",
    "type": ["VerifiableCredential", "ExampleDegreeCredential"],
    "issuer": "https://university.example/issuers/14",
    "validFrom": "2010-01-01T19:23:24Z",
    "validUntil": "2020-01-01T19:23:24Z",
    "credentialSubject": {
        "id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
        "degree": {"type": "ExampleBachelorDegree", "name": "Bachelor of Science and Arts"},
    },
}

SUITE_P256_JWK = {
    "alg": "ES256",
    "crv": "P-256",
    "kid": "73voMXFNmNlOEpuYCSJlh8eN0dscykoO6gBukgRS1uU",
    "kty": "EC",
    "x": "WfTi93YuhsQxKbD0ftnjOXJndqhnJ5kgDV-ZDGyrhBQ",
    "y": "qUd_55EjX0mjKZ6W6mF4UXVYTQ41K6jfdnYFwN5uPyk",
}
SUITE_ED25519_JWK = {
    "alg": "EdDSA",
    "crv": "Ed25519",
    "kid": "2aOHaQxsWVT4mLsUkdtlCnUV-au0BBR-5yPYaPaCc5k",
    "kty": "OKP",
    "x": "NvUhsjZe7Mdv8Esoc60o3ma1U5j2tFUTDsOQd39xMnI",
}

_SUITE_HEADER_ES256 = (
    "eyJhbGciOiJFUzI1NiIsImN0eSI6InZjIiwia2lkIjoiNzN2b01YRk5tTmxPRXB1WUNTSmxoOGVOMGRzY3lrb0"
    "82Z0J1a2dSUzF1VSIsInR5cCI6InZjK2p3dCJ9"
)
_SUITE_HEADER_EDDSA = (
    "eyJhbGciOiJFZERTQSIsImN0eSI6InZjIiwia2lkIjoiMmFPSGFReHNXVlQ0bUxzVWtkdGxDblVWLWF1MEJCUi"
    "01eVBZYVBhQ2M1ayIsInR5cCI6InZjK2p3dCJ9"
)
_SUITE_PAYLOAD_BODY = (
    "eyJAY29udGV4dCI6WyJodHRwczovL3d3dy53My5vcmcvbnMvY3JlZGVudGlhbHMvdjIiLCJodHRwczovL3d3dy"
    "53My5vcmcvbnMvY3JlZGVudGlhbHMvZXhhbXBsZXMvdjIiXSwiY3JlZGVudGlhbFNjaGVtYSI6eyJpZCI6Imh0"
    "dHBzOi8vZXhhbXBsZS5vcmcvZXhhbXBsZXMvZGVncmVlLmpzb24iLCJ0eXBlIjoiSnNvblNjaGVtYSJ9LCJjcm"
    "VkZW50aWFsU3ViamVjdCI6eyJkZWdyZWUiOnsibmFtZSI6IkJhY2hlbG9yIG9mIFNjaWVuY2UgYW5kIEFydHMi"
    "LCJ0eXBlIjoiQmFjaGVsb3JEZWdyZWUifSwiaWQiOiJkaWQ6ZXhhbXBsZToxMjMifSwiaWF0IjoiMjAxMC0wMS"
    "0wMVQxOToyMzoyNFoiLCJpZCI6Imh0dHA6Ly91bml2ZXJzaXR5LmV4YW1wbGUvY3JlZGVudGlhbHMvMTg3MiIs"
    "ImlzcyI6Imh0dHBzOi8vZXhhbXBsZS5pc3N1ZXIvdmMtam9zZS1jb3NlIiwiaXNzdWVyIjoiaHR0cHM6Ly9leG"
    "FtcGxlLmlzc3Vlci92Yy1qb3NlLWNvc2UiLCJqdGkiOiJodHRwOi8vdW5pdmVyc2l0eS5leGFtcGxlL2NyZWRl"
    "bnRpYWxzLzE4NzIiLCJ0eXBlIjpbIlZlcmlmaWFibGVDcmVkZW50aWFsIiwiRXhhbXBsZUFsdW1uaUNyZWRlbn"
    "RpYWwiXSwidmFsaWRGcm9tIjoiMjAxMC0wMS0wMVQxOToyMzoyNFoi"
)
SUITE_CREDENTIAL_MINIMAL = (
    f"{_SUITE_HEADER_ES256}.{_SUITE_PAYLOAD_BODY}fQ."
    "-X6A--TnCgeepna-dXn7j6_q2DfQzjiYdEc-pbaHR38JUIv5ubhjYp2Tb_LJuJInzI7qKfP-JcMlHdd6bDnOLw"
)
SUITE_CREDENTIAL_VC_VP_CLAIMS = (
    f"{_SUITE_HEADER_EDDSA}.{_SUITE_PAYLOAD_BODY}LCJ2YyI6Im9vcHMiLCJ2cCI6Im5vb28ifQ."
    "MYH7qVx4rMZs_VXhy0lTQ53k3eSM2C_zxRC-FfGBYiGP7pbGt89a445EpIhTB5n8OO2Iz3zaKrLeUYHwc4HuBw"
)
SUITE_CREDENTIAL_BAD_SIGNATURE = (
    f"{_SUITE_HEADER_EDDSA}.{_SUITE_PAYLOAD_BODY}fQ."
    "CAJ3jlPCjXpZyAr5NiKs71n_mfFSghy-cPjIRu96mF46XnNZ5QaqGvLrtHjI2pwbG055JDSPGFU2j9X0W3Kfuw"
)
SUITE_CREDENTIAL_BAD_MEDIA_TYPE = (
    "eyJhbGciOiJFZERTQSIsImN0eSI6ImJhZCtjdHkiLCJraWQiOiIyYU9IYVF4c1dWVDRtTHNVa2R0bENuVVYtYX"
    "UwQkJSLTV5UFlhUGFDYzVrIiwidHlwIjoiYmFkK3R5cCJ9."
    f"{_SUITE_PAYLOAD_BODY}fQ."
    "w3QGXwK2TGiE25U4Ul55i4Bq4hS0RC9dqa9uKHLSQaOjtIi4eprUBgAXt6wxgEmnhM-SKrTzKfeOipPF-vESDA"
)
SUITE_PRESENTATION_BAD_CREDENTIAL = (
    "eyJhbGciOiJFZERTQSIsImN0eSI6InZwIiwia2lkIjoiMmFPSGFReHNXVlQ0bUxzVWtkdGxDblVWLWF1MEJCUi"
    "01eVBZYVBhQ2M1ayIsInR5cCI6InZwK2p3dCJ9."
    "eyJAY29udGV4dCI6WyJodHRwczovL3d3dy53My5vcmcvbnMvY3JlZGVudGlhbHMvdjIiLCJodHRwczovL3d3dy"
    "53My5vcmcvbnMvY3JlZGVudGlhbHMvZXhhbXBsZXMvdjIiXSwiZXhwIjoxNzM0MzEwMDIwLCJob2xkZXIiOiJo"
    "dHRwczovL2V4YW1wbGUuaXNzdWVyL3ZjLWpvc2UtY29zZSIsImlhdCI6MTczNDIyMzYyMCwiaWQiOiJ1cm46dX"
    "VpZDozOTc4MzQ0Zi04NTk2LTRjM2EtYTk3OC04ZmNhYmEzOTAzYzUiLCJpc3MiOiJodHRwczovL2V4YW1wbGUu"
    "aXNzdWVyL3ZjLWpvc2UtY29zZSIsImp0aSI6InVybjp1dWlkOjM5NzgzNDRmLTg1OTYtNGMzYS1hOTc4LThmY2"
    "FiYTM5MDNjNSIsInR5cGUiOiJWZXJpZmlhYmxlUHJlc2VudGF0aW9uIiwidmVyaWZpYWJsZUNyZWRlbnRpYWwi"
    "Olt7IkBjb250ZXh0IjoiaHR0cHM6Ly93d3cudzMub3JnL25zL2NyZWRlbnRpYWxzL3YyIiwiaWQiOiJub3QtYS"
    "1jcmVkZW50aWFsIiwidHlwZSI6IkVudmVsb3BlZFZlcmlmaWFibGVDcmVkZW50aWFsIn1dfQ."
    "X1cKkExIbQMYETs1SHtuesZG0F2NpWqWwc7dBm8yeMSxM6JkkTekcZY-F2yGHoRMMef_lR_KtijdqhLnzpoiDQ"
)
SUITE_PRESENTATION_BAD_MEDIA_TYPE = (
    "eyJhbGciOiJFZERTQSIsImN0eSI6ImJhZCtjdHkiLCJraWQiOiIyYU9IYVF4c1dWVDRtTHNVa2R0bENuVVYtYX"
    "UwQkJSLTV5UFlhUGFDYzVrIiwidHlwIjoiYmFkK3R5cCJ9."
    "eyJAY29udGV4dCI6WyJodHRwczovL3d3dy53My5vcmcvbnMvY3JlZGVudGlhbHMvdjIiLCJodHRwczovL3d3dy"
    "53My5vcmcvbnMvY3JlZGVudGlhbHMvZXhhbXBsZXMvdjIiXSwiZXhwIjoxNzM0Mjk5OTAzLCJob2xkZXIiOiJo"
    "dHRwczovL2V4YW1wbGUuaXNzdWVyL3ZjLWpvc2UtY29zZSIsImlhdCI6MTczNDIxMzUwMywiaWQiOiJ1cm46dX"
    "VpZDozOTc4MzQ0Zi04NTk2LTRjM2EtYTk3OC04ZmNhYmEzOTAzYzUiLCJpc3MiOiJodHRwczovL2V4YW1wbGUu"
    "aXNzdWVyL3ZjLWpvc2UtY29zZSIsImp0aSI6InVybjp1dWlkOjM5NzgzNDRmLTg1OTYtNGMzYS1hOTc4LThmY2"
    "FiYTM5MDNjNSIsInR5cGUiOiJWZXJpZmlhYmxlUHJlc2VudGF0aW9uIiwidmVyaWZpYWJsZUNyZWRlbnRpYWwi"
    "Olt7IkBjb250ZXh0IjoiaHR0cHM6Ly93d3cudzMub3JnL25zL2NyZWRlbnRpYWxzL3YyIiwiaWQiOiJkYXRhOm"
    "FwcGxpY2F0aW9uL3ZjK2p3dCx5SnJhV1FpT2lKRmVFaHJRazFYT1dadFltdDJWakkyTm0xU2NIVlFNbk5WV1Y5"
    "T1gwVlhTVTR4YkdGd1ZYcFBPSEp2SWl3aVlXeG5Jam9pUlZNeU5UWWlmUS5leUpBWTI5dWRHVjRkQ0k2V3lKb2"
    "RIUndjem92TDNkM2R5NTNNeTV2Y21jdmJuTXZZM0psWkdWdWRHbGhiSE12ZGpJaUxDSm9kSFJ3Y3pvdkwzZDNk"
    "eTUzTXk1dmNtY3Zibk12WTNKbFpHVnVkR2xoYkhNdlpYaGhiWEJzWlhNdmRqSWlYU3dpYVdRaU9pSm9kSFJ3T2"
    "k4dmRXNXBkbVZ5YzJsMGVTNWxlR0Z0Y0d4bEwyTnlaV1JsYm5ScFlXeHpMekU0TnpJaUxDSjBlWEJsSWpwYkls"
    "WmxjbWxtYVdGaWJHVkRjbVZrWlc1MGFXRnNJaXdpUlhoaGJYQnNaVUZzZFcxdWFVTnlaV1JsYm5ScFlXd2lYU3"
    "dpYVhOemRXVnlJam9pYUhSMGNITTZMeTkxYm1sMlpYSnphWFI1TG1WNFlXMXdiR1V2YVhOemRXVnljeTgxTmpV"
    "d05Ea2lMQ0oyWVd4cFpFWnliMjBpT2lJeU1ERXdMVEF4TFRBeFZERTVPakl6T2pJMFdpSXNJbU55WldSbGJuUn"
    "BZV3hUWTJobGJXRWlPbnNpYVdRaU9pSm9kSFJ3Y3pvdkwyVjRZVzF3YkdVdWIzSm5MMlY0WVcxd2JHVnpMMlJs"
    "WjNKbFpTNXFjMjl1SWl3aWRIbHdaU0k2SWtwemIyNVRZMmhsYldFaWZTd2lZM0psWkdWdWRHbGhiRk4xWW1wbF"
    "kzUWlPbnNpYVdRaU9pSmthV1E2WlhoaGJYQnNaVG94TWpNaUxDSmtaV2R5WldVaU9uc2lkSGx3WlNJNklrSmhZ"
    "MmhsYkc5eVJHVm5jbVZsSWl3aWJtRnRaU0k2SWtKaFkyaGxiRzl5SUc5bUlGTmphV1Z1WTJVZ1lXNWtJRUZ5ZE"
    "hNaWZYMTkuQjVOYi15Szh1VkVJMDI5MnZacXRBY0Z2SkhZMlEtOFFhRDJlRWhnMHpyTVExSmxtVEFuLUZQcjc2"
    "MVBiRktFMWtITXF6N1RBZXVHVnNDQTdSWHN0VkEiLCJ0eXBlIjoiRW52ZWxvcGVkVmVyaWZpYWJsZUNyZWRlbn"
    "RpYWwifV19."
    "rsLY0mSPblndqO2oX2-M-OBAz8nz0bouTaW5Wddofxk9loORvhiRsAu2nM-Q9mO8nfwMMoJgSjR01Bt7vKoCAw"
)


def _suite_resolver(header: Any, payload: Any) -> jose.Key:
    keys = {jwk["kid"]: jwk for jwk in (SUITE_P256_JWK, SUITE_ED25519_JWK)}
    return jose.key_from_jwk(keys[header["kid"]])


# -- helpers --------------------------------------------------------------------------------

ISSUER_KEY = jose.generate_key("ES256")
HOLDER_KEY = jose.generate_key("ES256")
OTHER_KEY = jose.generate_key("ES256")


def issuer_resolver(header: Any, payload: Any) -> jose.Key:
    return ISSUER_KEY.public()


def holder_resolver(header: Any, payload: Any) -> jose.Key:
    return HOLDER_KEY.public()


def a_credential(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": [vcdm.CREDENTIALS_V2_CONTEXT],
        "type": ["VerifiableCredential", "RegistrationCertificate"],
        "id": "urn:uuid:0b7a8f7e-6a51-4a0e-9a5e-1f0c6b7b7a11",
        "issuer": {"id": ISSUER, "name": "Arbetsförmedlingen"},
        "validFrom": "2026-01-12T00:00:00Z",
        "validUntil": "2027-01-12T00:00:00+01:00",
        "credentialSubject": {"registeredSince": "2026-01-12", "programme": "Rusta och matcha"},
    }
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def signed(credential: dict[str, Any] | None = None, **kwargs: Any) -> str:
    kwargs.setdefault("iat", NOW - 10)
    return vcdm.sign_credential(credential or a_credential(), ISSUER_KEY, **kwargs)


def verify(token: str, **kwargs: Any) -> vcdm.VerifiedCredential:
    kwargs.setdefault("now", NOW)
    return vcdm.verify_credential(token, issuer_resolver, **kwargs)


def raw_jws(header: dict[str, Any], claims: dict[str, Any], key: jose.Key = ISSUER_KEY) -> str:
    """A JWS with exactly this header (jose.encode_jws always sets alg from the key)."""
    return jose.encode_jws(claims, key, header)


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return ".".join(
        (
            jose.b64url_encode(strict_json.dumps(header).encode()),
            jose.b64url_encode(strict_json.dumps(claims).encode()),
            jose.b64url_encode(signature),
        )
    )


def presentation(credentials: list[str] | None = None, **kwargs: Any) -> str:
    kwargs.setdefault("audience", AUDIENCE)
    kwargs.setdefault("nonce", NONCE)
    kwargs.setdefault("iat", NOW - 5)
    jwts = credentials if credentials is not None else [signed(holder_jwk=HOLDER_KEY.public_jwk())]
    return vcdm.sign_presentation(jwts, HOLDER_KEY, **kwargs)


def verify_vp(token: str, **kwargs: Any) -> vcdm.VerifiedPresentation:
    kwargs.setdefault("audience", AUDIENCE)
    kwargs.setdefault("nonce", NONCE)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("credential_key_resolver", issuer_resolver)
    return vcdm.verify_presentation(token, holder_resolver, **kwargs)


def vp_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "@context": [vcdm.CREDENTIALS_V2_CONTEXT],
        "type": ["VerifiablePresentation"],
        "verifiableCredential": [
            vcdm.enveloped_credential(signed(holder_jwk=HOLDER_KEY.public_jwk()))
        ],
        "aud": AUDIENCE,
        "nonce": NONCE,
        "iat": NOW - 5,
    }
    claims.update(changes)
    return claims


# -- spec vectors ---------------------------------------------------------------------------


def test_vcdm_example_11_is_a_conforming_credential_inside_its_validity_period() -> None:
    in_2015 = int(datetime(2015, 6, 1, tzinfo=UTC).timestamp())
    model = vcdm.validate_credential(VCDM_EXAMPLE_11, now=in_2015)
    assert model.issuer == "https://university.example/issuers/14"
    assert model.valid_from == datetime(2010, 1, 1, 19, 23, 24, tzinfo=UTC)
    assert model.valid_until == datetime(2020, 1, 1, 19, 23, 24, tzinfo=UTC)
    assert model.subjects[0]["degree"]["type"] == "ExampleBachelorDegree"


def test_vcdm_example_11_has_expired_by_2026() -> None:
    with pytest.raises(VCDMError, match=r"expired \(validUntil\)"):
        vcdm.validate_credential(VCDM_EXAMPLE_11, now=NOW)


def test_suite_minimal_credential_signature_and_data_model() -> None:
    header, claims = jose.verify_jws(
        SUITE_CREDENTIAL_MINIMAL, jose.key_from_jwk(SUITE_P256_JWK), typ="vc+jwt"
    )
    assert header["cty"] == "vc"
    model = vcdm.validate_credential(claims, check_validity=False)
    assert model.issuer == claims["iss"] == "https://example.issuer/vc-jose-cose"
    assert model.valid_from == datetime(2010, 1, 1, 19, 23, 24, tzinfo=UTC)
    assert vcdm.schema_entries(claims) == [
        {"id": "https://example.org/examples/degree.json", "type": "JsonSchema"}
    ]


def test_suite_minimal_credential_string_iat_is_refused() -> None:
    # The suite's generator wrote iat as a dateTimeStamp string; RFC 7519 §4.1.6 requires
    # a NumericDate and we do not bend that (security.md T018).
    with pytest.raises(VCDMError, match="iat must be an integer NumericDate"):
        vcdm.verify_credential(SUITE_CREDENTIAL_MINIMAL, _suite_resolver, now=NOW)


def test_suite_credential_with_vc_and_vp_claims_is_refused() -> None:
    key = jose.key_from_jwk(SUITE_ED25519_JWK)
    jose.verify_jws(SUITE_CREDENTIAL_VC_VP_CLAIMS, key)  # the signature itself is good
    with pytest.raises(VCDMError, match="JWT claim 'vc' must not be present"):
        vcdm.verify_credential(SUITE_CREDENTIAL_VC_VP_CLAIMS, _suite_resolver, now=NOW)


def test_suite_credential_with_bad_signature_is_refused() -> None:
    with pytest.raises(VCDMError, match="signature verification failed"):
        vcdm.verify_credential(SUITE_CREDENTIAL_BAD_SIGNATURE, _suite_resolver, now=NOW)


def test_suite_credential_with_bad_media_type_is_refused() -> None:
    jose.verify_jws(SUITE_CREDENTIAL_BAD_MEDIA_TYPE, jose.key_from_jwk(SUITE_ED25519_JWK))
    with pytest.raises(VCDMError, match="typ must be 'vc\\+jwt'"):
        vcdm.verify_credential(SUITE_CREDENTIAL_BAD_MEDIA_TYPE, _suite_resolver, now=NOW)


def test_suite_presentation_with_non_credential_envelope_is_refused() -> None:
    jose.verify_jws(SUITE_PRESENTATION_BAD_CREDENTIAL, jose.key_from_jwk(SUITE_ED25519_JWK))
    with pytest.raises(VCDMError, match="data:application/vc\\+jwt URL"):
        vcdm.verify_presentation(
            SUITE_PRESENTATION_BAD_CREDENTIAL,
            _suite_resolver,
            audience=AUDIENCE,
            nonce=NONCE,
            credential_key_resolver=_suite_resolver,
            now=1734223700,
        )


def test_suite_presentation_with_bad_media_type_is_refused() -> None:
    jose.verify_jws(SUITE_PRESENTATION_BAD_MEDIA_TYPE, jose.key_from_jwk(SUITE_ED25519_JWK))
    with pytest.raises(VCDMError, match="typ must be 'vp\\+jwt'"):
        vcdm.verify_presentation(
            SUITE_PRESENTATION_BAD_MEDIA_TYPE,
            _suite_resolver,
            audience=AUDIENCE,
            nonce=NONCE,
            credential_key_resolver=_suite_resolver,
            now=1734213600,
        )


# -- dateTimeStamp ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        (
            "2026-11-27T10:00:00+01:00",
            datetime(2026, 11, 27, 10, tzinfo=timezone(timedelta(hours=1))),
        ),
        (
            "2026-11-27T10:00:00-05:30",
            datetime(2026, 11, 27, 10, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("2026-11-27T10:00:00-00:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T10:00:00.5Z", datetime(2026, 11, 27, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-27T10:00:00.1234567891Z", datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-27T24:00:00Z", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-12-31T24:00:00.000Z", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2024-02-29T00:00:00+14:00", datetime(2024, 2, 29, tzinfo=timezone(timedelta(hours=14)))),
    ],
)
def test_date_time_stamp_accepts(text: str, expected: datetime) -> None:
    assert vcdm.parse_date_time_stamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T10:00:00",  # naive: timezone required
        "2026-11-27",  # date only
        "yesterday",
        "",
        "2026-11-27 10:00:00Z",  # space separator (fromisoformat accepts it)
        "2026-11-27t10:00:00z",  # lower-case designators
        "2026-11-27T10:00Z",  # seconds missing
        "2026-11-27T10:00:00+0100",  # offset without colon
        "2026-11-27T10:00:00+01",
        "20261127T100000Z",  # basic format
        "2026-W48-5T10:00:00Z",  # week date
        "２０２６-11-27T10:00:00Z",  # non-ASCII digits
        "2026-11-27T10:00:00Z ",
        "2026-11-27T10:00:00.Z",
        "12026-11-27T10:00:00Z",  # five-digit year: outside what we represent
        "-2026-11-27T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2025-02-29T10:00:00Z",
        "2026-13-01T10:00:00Z",
        "2026-00-01T10:00:00Z",
        "2026-11-27T25:00:00Z",
        "2026-11-27T24:00:01Z",
        "2026-11-27T24:00:00.1Z",
        "2026-11-27T10:60:00Z",
        "2026-11-27T10:00:60Z",  # leap seconds are not in the lexical space
        "2026-11-27T10:00:00+15:00",
        "2026-11-27T10:00:00+14:30",
        "2026-11-27T10:00:00+01:60",
        "0000-01-01T00:00:00Z",
        "2026-11-27T10:00:00." + "0" * 60 + "Z",  # absurdly long
    ],
)
def test_date_time_stamp_refuses(text: str) -> None:
    with pytest.raises(VCDMError, match="validFrom"):
        vcdm.parse_date_time_stamp(text, "validFrom")


@pytest.mark.parametrize("value", [1764237600, None, ["2026-11-27T10:00:00Z"]])
def test_date_time_stamp_refuses_non_strings(value: Any) -> None:
    with pytest.raises(VCDMError, match="must be an XSD dateTimeStamp string"):
        vcdm.parse_date_time_stamp(value)


def test_format_refuses_naive_datetime() -> None:
    with pytest.raises(VCDMError, match="timezone-aware"):
        vcdm.format_date_time_stamp(datetime(2026, 11, 27, 10))


def test_format_is_utc_and_drops_zero_fraction() -> None:
    tz = timezone(timedelta(hours=1))
    assert vcdm.format_date_time_stamp(datetime(2026, 11, 27, 11, tzinfo=tz)) == (
        "2026-11-27T10:00:00Z"
    )
    assert vcdm.format_date_time_stamp(datetime(2026, 11, 27, 10, 0, 0, 120000, tzinfo=UTC)) == (
        "2026-11-27T10:00:00.12Z"
    )


_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_aware = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 30), timezones=_offsets
)


@given(_aware)
def test_date_time_stamp_round_trip(value: datetime) -> None:
    text = vcdm.format_date_time_stamp(value)
    assert vcdm.parse_date_time_stamp(text) == value
    assert vcdm.format_date_time_stamp(vcdm.parse_date_time_stamp(text)) == text


@given(_aware, st.booleans())
def test_date_time_stamp_parses_any_offset_spelling(value: datetime, with_fraction: bool) -> None:
    offset = value.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if with_fraction:
        text += f".{value.microsecond:06d}"
    text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    expected = value if with_fraction else value.replace(microsecond=0)
    assert vcdm.parse_date_time_stamp(text) == expected
    with pytest.raises(VCDMError):
        vcdm.parse_date_time_stamp(text[: text.rindex(sign)])  # naive form refused


# -- data model: one negative test per rule (protocols.md §4.3) -----------------------------


def test_conforming_credential_validates() -> None:
    model = vcdm.validate_credential(a_credential(), now=NOW)
    assert model.issuer == ISSUER
    assert model.valid_until == datetime(2027, 1, 11, 23, tzinfo=UTC)
    assert model.bitstring_status == []


@pytest.mark.parametrize(
    "context",
    [
        ["https://www.w3.org/2018/credentials/v1"],
        ["https://www.w3.org/ns/credentials/examples/v2", vcdm.CREDENTIALS_V2_CONTEXT],
        ["https://www.w3.org/ns/credentials/v2/"],
    ],
)
def test_refuses_wrong_first_context(context: list[str]) -> None:
    with pytest.raises(VCDMError, match="first @context item must be"):
        vcdm.validate_credential(a_credential(**{"@context": context}), now=NOW)


@pytest.mark.parametrize("context", [vcdm.CREDENTIALS_V2_CONTEXT, [], {"@vocab": "x"}])
def test_refuses_context_that_is_not_an_ordered_list(context: Any) -> None:
    with pytest.raises(VCDMError, match="@context must be an array"):
        vcdm.validate_credential(a_credential(**{"@context": context}), now=NOW)


def test_refuses_context_item_of_wrong_kind() -> None:
    with pytest.raises(VCDMError, match="@context items must be URLs or objects"):
        vcdm.validate_credential(
            a_credential(**{"@context": [vcdm.CREDENTIALS_V2_CONTEXT, 7]}), now=NOW
        )


def test_refuses_missing_context() -> None:
    credential = a_credential()
    del credential["@context"]
    with pytest.raises(VCDMError, match="@context must be an array"):
        vcdm.validate_credential(credential, now=NOW)


@pytest.mark.parametrize("types", [["RegistrationCertificate"], "VerifiablePresentation"])
def test_refuses_type_without_verifiable_credential(types: Any) -> None:
    with pytest.raises(VCDMError, match="type must include VerifiableCredential"):
        vcdm.validate_credential(a_credential(type=types), now=NOW)


@pytest.mark.parametrize("types", [[], [1], [""]])
def test_refuses_malformed_type(types: Any) -> None:
    with pytest.raises(VCDMError, match="type must be a string or a non-empty array"):
        vcdm.validate_credential(a_credential(type=types), now=NOW)


def test_accepts_type_as_single_string() -> None:
    vcdm.validate_credential(a_credential(type="VerifiableCredential"), now=NOW)


def test_refuses_missing_issuer() -> None:
    with pytest.raises(VCDMError, match="issuer is required"):
        vcdm.validate_credential(a_credential(issuer=None), now=NOW)


@pytest.mark.parametrize(
    "issuer", [{"name": "AF"}, {"id": "not a url"}, "arbetsformedlingen", 42, ""]
)
def test_refuses_issuer_that_is_not_a_url(issuer: Any) -> None:
    with pytest.raises(VCDMError, match="issuer must be a URL or an object with an id URL"):
        vcdm.validate_credential(a_credential(issuer=issuer), now=NOW)


def test_accepts_issuer_as_string_url() -> None:
    assert vcdm.validate_credential(a_credential(issuer="did:web:af.se"), now=NOW).issuer == (
        "did:web:af.se"
    )


def test_refuses_credential_id_that_is_not_a_url() -> None:
    with pytest.raises(VCDMError, match="credential id must be a URL"):
        vcdm.validate_credential(a_credential(id="1872"), now=NOW)


def test_refuses_missing_credential_subject() -> None:
    with pytest.raises(VCDMError, match="credentialSubject is required"):
        vcdm.validate_credential(a_credential(credentialSubject=None), now=NOW)


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ([], "must not be an empty array"),
        ("did:example:123", "must be an object or an array of objects"),
        ([{"name": "A"}, "B"], "must be an object or an array of objects"),
        ({}, "must make at least one claim"),
        ({"id": "did:example:123"}, "must make at least one claim"),
        ({"id": "19121212-1212", "name": "A"}, "credentialSubject id must be a URL"),
    ],
)
def test_refuses_malformed_credential_subject(subject: Any, message: str) -> None:
    with pytest.raises(VCDMError, match=message):
        vcdm.validate_credential(a_credential(credentialSubject=subject), now=NOW)


def test_accepts_several_credential_subjects() -> None:
    subjects = [{"id": "did:example:a", "name": "A"}, {"name": "B"}]
    assert len(vcdm.validate_credential(a_credential(credentialSubject=subjects)).subjects) == 2


@pytest.mark.parametrize("field", ["validFrom", "validUntil"])
@pytest.mark.parametrize("value", ["2026-01-12T00:00:00", "2026-01-12", "soon", 1768176000])
def test_refuses_validity_that_is_not_date_time_stamp(field: str, value: Any) -> None:
    with pytest.raises(VCDMError, match=field):
        vcdm.validate_credential(a_credential(**{field: value}), now=NOW)


def test_refuses_expired_valid_until() -> None:
    with pytest.raises(VCDMError, match=r"credential has expired \(validUntil\)"):
        vcdm.validate_credential(a_credential(validUntil="2026-11-27T09:58:59Z"), now=NOW)


def test_valid_until_within_leeway_is_accepted() -> None:
    vcdm.validate_credential(a_credential(validUntil="2026-11-27T09:59:30Z"), now=NOW)


def test_refuses_not_yet_valid_valid_from() -> None:
    with pytest.raises(VCDMError, match=r"not yet valid \(validFrom\)"):
        vcdm.validate_credential(a_credential(validFrom="2026-11-27T10:01:01Z"), now=NOW)


def test_refuses_valid_from_later_than_valid_until() -> None:
    # Temporal comparison across offsets: 10:00+01:00 (09:00Z) is before 09:30Z.
    credential = a_credential(
        validFrom="2026-11-27T09:30:00Z", validUntil="2026-11-27T10:00:00+01:00"
    )
    with pytest.raises(VCDMError, match="validFrom is later than validUntil"):
        vcdm.validate_credential(credential, check_validity=False)


def test_absent_validity_means_always_valid() -> None:
    model = vcdm.validate_credential(a_credential(validFrom=None, validUntil=None), now=NOW)
    assert (model.valid_from, model.valid_until) == (None, None)


@pytest.mark.parametrize("entry", [{"id": "https://x.example/1#4"}, {"type": ""}, {"type": 3}])
def test_refuses_status_entry_without_type(entry: dict[str, Any]) -> None:
    with pytest.raises(VCDMError, match="each credentialStatus entry needs a type"):
        vcdm.validate_credential(a_credential(credentialStatus=[entry]), now=NOW)


def test_refuses_status_that_is_not_objects() -> None:
    with pytest.raises(VCDMError, match="credentialStatus must be an object"):
        vcdm.validate_credential(a_credential(credentialStatus="revoked?"), now=NOW)


def test_refuses_status_id_that_is_not_a_url() -> None:
    entry = {"type": "SomeOtherStatus", "id": "status 1"}
    with pytest.raises(VCDMError, match="credentialStatus id must be a URL"):
        vcdm.validate_credential(a_credential(credentialStatus=entry), now=NOW)


def test_unknown_status_types_are_ignored() -> None:
    entry = {"type": "SomeOtherStatus", "id": "https://x.example/s/1"}
    assert vcdm.validate_credential(a_credential(credentialStatus=entry)).bitstring_status == []


BITSTRING_ENTRY = {
    "id": "https://issuer.intyg.example/status/3#94567",
    "type": "BitstringStatusListEntry",
    "statusPurpose": "revocation",
    "statusListIndex": "94567",
    "statusListCredential": "https://issuer.intyg.example/status/3",
}


def test_bitstring_status_entry_is_parsed_by_intyg_status() -> None:
    model = vcdm.validate_credential(a_credential(credentialStatus=BITSTRING_ENTRY), now=NOW)
    (entry,) = model.bitstring_status
    assert entry.index == 94567
    assert entry.status_purpose == "revocation"
    assert entry.list_credential == "https://issuer.intyg.example/status/3"


def test_refuses_malformed_bitstring_status_entry() -> None:
    entry = dict(BITSTRING_ENTRY, statusListIndex=94567)  # must be a base-10 string
    with pytest.raises(VCDMError, match="^credentialStatus: "):
        vcdm.validate_credential(a_credential(credentialStatus=[entry]), now=NOW)


SCHEMA = {"id": "https://intyg.example/schemas/registration.json", "type": "JsonSchema"}


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "JsonSchema"},
        {"id": "registration.json", "type": "JsonSchema"},
    ],
)
def test_refuses_schema_entry_without_id(entry: dict[str, Any]) -> None:
    with pytest.raises(VCDMError, match="each credentialSchema entry needs an id URL"):
        vcdm.validate_credential(a_credential(credentialSchema=entry), now=NOW)


def test_refuses_schema_entry_without_type() -> None:
    entry = {"id": SCHEMA["id"]}
    with pytest.raises(VCDMError, match="each credentialSchema entry needs a type"):
        vcdm.validate_credential(a_credential(credentialSchema=[entry]), now=NOW)


def test_schema_validator_is_called_for_each_subject_of_json_schema_entries() -> None:
    calls: list[tuple[str, Any]] = []
    subjects = [{"name": "A"}, {"name": "B"}]
    other = {"id": "https://x.example/s.json", "type": "JsonSchemaCredential"}
    vcdm.validate_credential(
        a_credential(credentialSchema=[SCHEMA, other], credentialSubject=subjects),
        now=NOW,
        schema_validator=lambda schema_id, subject: calls.append((schema_id, subject)),
    )
    assert calls == [(SCHEMA["id"], {"name": "A"}), (SCHEMA["id"], {"name": "B"})]


def test_refuses_subject_failing_schema_validator() -> None:
    def validator(schema_id: str, subject: Any) -> None:
        raise ValueError("$.registeredSince: 'x' is not a 'date'")

    with pytest.raises(VCDMError, match=r"fails schema https://intyg\.example/.*registeredSince"):
        vcdm.validate_credential(
            a_credential(credentialSchema=SCHEMA), now=NOW, schema_validator=validator
        )


def test_refuses_non_object_credential() -> None:
    with pytest.raises(VCDMError, match="credential must be a JSON object"):
        vcdm.validate_credential([a_credential()])


# -- builder --------------------------------------------------------------------------------


def test_credential_builder_makes_a_conforming_credential() -> None:
    built = vcdm.credential(
        issuer=ISSUER,
        issuer_name="Arbetsförmedlingen",
        types=["RegistrationCertificate"],
        credential_id="urn:uuid:1f3a",
        valid_from=datetime(2026, 1, 12, tzinfo=UTC),
        valid_until=datetime(2027, 1, 12, tzinfo=UTC),
        credential_subject={"registeredSince": "2026-01-12"},
        credential_schema=SCHEMA,
        credential_status={"type": "SomeOtherStatus"},
    )
    assert built == {
        "@context": [vcdm.CREDENTIALS_V2_CONTEXT],
        "type": ["VerifiableCredential", "RegistrationCertificate"],
        "id": "urn:uuid:1f3a",
        "issuer": {"id": ISSUER, "name": "Arbetsförmedlingen"},
        "validFrom": "2026-01-12T00:00:00Z",
        "validUntil": "2027-01-12T00:00:00Z",
        "credentialSubject": {"registeredSince": "2026-01-12"},
        "credentialSchema": SCHEMA,
        "credentialStatus": {"type": "SomeOtherStatus"},
    }


def test_credential_builder_defaults_valid_from_to_now() -> None:
    built = vcdm.credential(issuer=ISSUER, credential_subject={"a": 1})
    valid_from = vcdm.parse_date_time_stamp(built["validFrom"])
    assert abs(valid_from.timestamp() - datetime.now(UTC).timestamp()) < 3600
    assert built["issuer"] == {"id": ISSUER}


def test_credential_builder_refuses_what_it_cannot_make_conforming() -> None:
    with pytest.raises(VCDMError, match="validFrom is later than validUntil"):
        vcdm.credential(
            issuer=ISSUER,
            credential_subject={"a": 1},
            valid_from=datetime(2027, 1, 1, tzinfo=UTC),
            valid_until=datetime(2026, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(VCDMError, match="issuer must be a URL"):
        vcdm.credential(issuer="AF", credential_subject={"a": 1})


# -- vc+jwt: sign and verify ----------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    token = signed(exp=NOW + 3600, holder_jwk=HOLDER_KEY.public_jwk())
    header, payload = vcdm.decode_unverified(token)
    assert header == {"alg": "ES256", "typ": "vc+jwt", "kid": ISSUER_KEY.kid}
    assert payload["iss"] == ISSUER
    assert payload["iat"] == NOW - 10
    assert payload["cnf"] == {"jwk": HOLDER_KEY.public_jwk()}
    assert "vc" not in payload and "vp" not in payload
    verified = verify(token)
    assert verified.issuer == ISSUER
    assert verified.credential == a_credential()
    assert verified.holder_key is not None
    assert verified.holder_key.thumbprint() == HOLDER_KEY.thumbprint()
    assert verified.valid_from == datetime(2026, 1, 12, tzinfo=UTC)
    assert verified.credential_subjects == [a_credential()["credentialSubject"]]


def test_sign_and_verify_with_ed25519_and_header_extras() -> None:
    key = jose.generate_key("EdDSA", kid="https://issuer.intyg.example/keys/1")
    token = vcdm.sign_credential(a_credential(), key, header={"x5c": ["MIIB"]}, iat=NOW)
    verified = vcdm.verify_credential(token, lambda h, p: key.public(), now=NOW)
    assert verified.header["x5c"] == ["MIIB"]
    assert verified.header["kid"] == "https://issuer.intyg.example/keys/1"


def test_verify_passes_header_and_payload_to_the_resolver() -> None:
    seen: list[tuple[Any, Any]] = []

    def resolver(header: Any, payload: Any) -> jose.Key:
        seen.append((header, payload))
        return ISSUER_KEY.public()

    vcdm.verify_credential(signed(), resolver, now=NOW)
    assert seen[0][0]["kid"] == ISSUER_KEY.kid
    assert seen[0][1]["issuer"]["id"] == ISSUER


# NUL is excluded: strict_json refuses it on the way in (T116), so it is never signable data.
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
_json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        _text.filter(lambda name: name not in ("", "id")),
        _json,
        min_size=1,
        max_size=6,
    )
)
def test_sign_verify_round_trip_of_random_subjects(subject: dict[str, Any]) -> None:
    credential = a_credential(credentialSubject=subject)
    verified = verify(signed(credential))
    assert verified.credential["credentialSubject"] == subject


def test_sign_refuses_vc_claim() -> None:
    with pytest.raises(VCDMError, match="JWT claim 'vc' must not be present"):
        signed(a_credential(vc={"type": "VerifiableCredential"}))


def test_sign_refuses_vp_claim() -> None:
    with pytest.raises(VCDMError, match="JWT claim 'vp' must not be present"):
        signed(a_credential(vp={}))


def test_sign_refuses_iss_that_is_not_the_issuer() -> None:
    with pytest.raises(VCDMError, match="iss does not match the credential issuer"):
        signed(a_credential(iss="https://evil.example"))


def test_sign_refuses_jwt_claims_inside_the_credential() -> None:
    with pytest.raises(VCDMError, match="must not contain the JWT claim 'exp'"):
        signed(a_credential(exp=NOW))


def test_sign_refuses_caller_set_key_source_header() -> None:
    with pytest.raises(VCDMError, match="header parameter 'jwk' cannot be set"):
        signed(header={"jwk": ISSUER_KEY.public_jwk()})


def test_sign_refuses_private_holder_jwk() -> None:
    with pytest.raises(VCDMError, match="private key material"):
        signed(holder_jwk=HOLDER_KEY.private_jwk())


def test_sign_refuses_did_issuer_without_kid() -> None:
    key = jose.Key(ISSUER_KEY.alg, ISSUER_KEY.public_key, ISSUER_KEY.private_key, None)
    credential = a_credential(issuer="did:web:issuer.intyg.example")
    with pytest.raises(VCDMError, match="kid is required when the issuer is a DID"):
        vcdm.sign_credential(credential, key)


def test_sign_refuses_exp_later_than_valid_until() -> None:
    valid_until = int(datetime(2027, 1, 11, 23, tzinfo=UTC).timestamp())
    signed(exp=valid_until)  # equal is fine
    with pytest.raises(VCDMError, match="exp is later than validUntil"):
        signed(exp=valid_until + 1)


def test_sign_refuses_nbf_earlier_than_valid_from() -> None:
    valid_from = int(datetime(2026, 1, 12, tzinfo=UTC).timestamp())
    signed(nbf=valid_from)
    with pytest.raises(VCDMError, match="nbf is earlier than validFrom"):
        signed(nbf=valid_from - 1)


def test_sign_refuses_non_numeric_date() -> None:
    with pytest.raises(VCDMError, match="exp must be an integer NumericDate"):
        signed(exp="2027-01-01T00:00:00Z")


def test_verify_refuses_alg_none() -> None:
    claims = a_credential(iss=ISSUER)
    token = unsigned_token({"alg": "none", "typ": "vc+jwt"}, claims, b"x")
    with pytest.raises(VCDMError, match="algorithm 'none' is never accepted"):
        verify(token)
    with pytest.raises(VCDMError, match="empty JWS header or signature"):
        verify(token.rsplit(".", 1)[0] + ".")


def test_verify_refuses_hs256() -> None:
    header = {"alg": "HS256", "typ": "vc+jwt"}
    signing_input = ".".join(
        jose.b64url_encode(strict_json.dumps(part).encode()) for part in (header, a_credential())
    )
    mac = hmac.new(b"issuer-public-key-as-secret", signing_input.encode(), hashlib.sha256)
    with pytest.raises(VCDMError, match="algorithm 'HS256' is never accepted"):
        verify(signing_input + "." + jose.b64url_encode(mac.digest()))


def test_verify_refuses_vc_claim() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(vc={"credentialSubject": {}}))
    with pytest.raises(VCDMError, match="JWT claim 'vc' must not be present"):
        verify(token)


def test_verify_refuses_vp_claim() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(vp={}))
    with pytest.raises(VCDMError, match="JWT claim 'vp' must not be present"):
        verify(token)


def test_verify_refuses_iss_different_from_issuer_string() -> None:
    credential = a_credential(issuer=ISSUER, iss="https://evil.example", iat=NOW)
    with pytest.raises(VCDMError, match="iss does not match the credential issuer"):
        verify(raw_jws({"typ": "vc+jwt"}, credential))


def test_verify_refuses_iss_different_from_issuer_id() -> None:
    credential = a_credential(iss="https://issuer.intyg.example/other", iat=NOW)
    with pytest.raises(VCDMError, match="iss does not match the credential issuer"):
        verify(raw_jws({"typ": "vc+jwt"}, credential))


def test_verify_accepts_absent_iss() -> None:
    assert verify(raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW))).issuer == ISSUER


@pytest.mark.parametrize("typ", ["JWT", "vp+jwt", "dc+sd-jwt", "vc+sd-jwt", "vc-ld+jwt"])
def test_verify_refuses_typ_other_than_vc_jwt(typ: str) -> None:
    with pytest.raises(VCDMError, match="typ must be 'vc\\+jwt'"):
        verify(raw_jws({"typ": typ}, a_credential(iat=NOW)))
    with pytest.raises(VCDMError, match="typ must be 'vc\\+jwt'"):
        verify(raw_jws({"typ": typ}, a_credential(iat=NOW)), require_typ=False)


def test_verify_typ_is_required_unless_relaxed() -> None:
    token = raw_jws({}, a_credential(iat=NOW))
    with pytest.raises(VCDMError, match="typ must be 'vc\\+jwt'"):
        verify(token)
    assert verify(token, require_typ=False).issuer == ISSUER


def test_verify_accepts_full_media_type_and_cty_vc() -> None:
    verify(raw_jws({"typ": "application/vc+jwt", "cty": "vc"}, a_credential(iat=NOW)))


def test_verify_refuses_wrong_cty() -> None:
    with pytest.raises(VCDMError, match="cty must be 'vc'"):
        verify(raw_jws({"typ": "vc+jwt", "cty": "vp"}, a_credential(iat=NOW)))


def test_verify_refuses_expired_exp() -> None:
    token = signed(exp=NOW - 61, iat=NOW - 200)
    with pytest.raises(VCDMError, match=r"token has expired \(exp\)"):
        verify(token)
    verify(token, now=NOW - 120)


def test_verify_refuses_string_exp() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, exp="2027-01-01T00:00:00Z"))
    with pytest.raises(VCDMError, match="exp must be an integer NumericDate"):
        verify(token)


def test_verify_refuses_exp_later_than_valid_until() -> None:
    late = int(datetime(2027, 1, 12, tzinfo=UTC).timestamp())
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, exp=late))
    with pytest.raises(VCDMError, match="exp is later than validUntil"):
        verify(token)


def test_verify_refuses_nbf_earlier_than_valid_from() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, nbf=NOW - 400 * 86400))
    with pytest.raises(VCDMError, match="nbf is earlier than validFrom"):
        verify(token)


def test_verify_refuses_jti_conflicting_with_id() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, jti="urn:uuid:other"))
    with pytest.raises(VCDMError, match="jti conflicts with the credential id"):
        verify(token)


def test_verify_refuses_sub_conflicting_with_subject_id() -> None:
    subject = {"id": "did:example:alice", "name": "Alice"}
    token = raw_jws(
        {"typ": "vc+jwt"}, a_credential(iat=NOW, sub="did:example:bob", credentialSubject=subject)
    )
    with pytest.raises(VCDMError, match="sub conflicts with credentialSubject.id"):
        verify(token)


def test_verify_refuses_future_iat() -> None:
    with pytest.raises(VCDMError, match="iat is in the future"):
        verify(signed(iat=NOW + 3600))


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u"])
def test_verify_refuses_key_source_in_header(name: str) -> None:
    value = ISSUER_KEY.public_jwk() if name == "jwk" else "https://evil.example/keys"
    token = raw_jws({"typ": "vc+jwt", name: value}, a_credential(iat=NOW))
    called = []
    with pytest.raises(VCDMError, match=f"'{name}' is not accepted as a key source"):
        vcdm.verify_credential(token, lambda h, p: called.append(1) or ISSUER_KEY, now=NOW)
    assert called == []


def test_verify_refuses_did_issuer_without_kid() -> None:
    key = jose.Key(ISSUER_KEY.alg, ISSUER_KEY.public_key, ISSUER_KEY.private_key, None)
    credential = a_credential(issuer="did:web:issuer.intyg.example", iat=NOW)
    token = jose.encode_jws(credential, key, {"typ": "vc+jwt"})
    with pytest.raises(VCDMError, match="kid is required when the issuer key is a DID URL"):
        verify(token)


def test_verify_refuses_signature_by_another_key() -> None:
    token = vcdm.sign_credential(a_credential(), OTHER_KEY, iat=NOW)
    with pytest.raises(VCDMError, match="signature verification failed"):
        verify(token)


def test_verify_refuses_tampered_payload() -> None:
    header, _, signature = signed().split(".")
    forged = a_credential(iss=ISSUER, iat=NOW, credentialSubject={"registeredSince": "2020-01-01"})
    payload = jose.b64url_encode(strict_json.dumps(forged).encode())
    with pytest.raises(VCDMError, match="signature verification failed"):
        verify(f"{header}.{payload}.{signature}")


def test_verify_refuses_when_resolver_gives_no_key() -> None:
    with pytest.raises(VCDMError, match="no verification key"):
        vcdm.verify_credential(signed(), lambda h, p: None, now=NOW)  # type: ignore[arg-type,return-value]


def test_verify_refuses_key_of_the_wrong_type() -> None:
    ed_key = jose.generate_key("EdDSA")
    with pytest.raises(VCDMError, match="algorithm does not match the key type"):
        vcdm.verify_credential(signed(), lambda h, p: ed_key.public(), now=NOW)


def test_verify_applies_the_data_model_rules() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, credentialSubject=None))
    with pytest.raises(VCDMError, match="credentialSubject is required"):
        verify(token)


def test_verify_refuses_expired_valid_until() -> None:
    token = signed(a_credential(validUntil="2026-06-01T00:00:00Z"), iat=NOW - 400 * 86400)
    with pytest.raises(VCDMError, match=r"credential has expired \(validUntil\)"):
        verify(token)


def test_verify_refuses_not_yet_valid() -> None:
    token = signed(a_credential(validFrom="2026-12-01T00:00:00Z"))
    with pytest.raises(VCDMError, match=r"not yet valid \(validFrom\)"):
        verify(token)


def test_verify_runs_the_schema_validator() -> None:
    token = signed(a_credential(credentialSchema=SCHEMA))

    def refuse(schema_id: str, subject: Any) -> None:
        raise ValueError("$.programme: required")

    verify(token, schema_validator=lambda schema_id, subject: None)
    with pytest.raises(VCDMError, match="fails schema"):
        verify(token, schema_validator=refuse)


def test_verify_returns_bitstring_status_entries() -> None:
    token = signed(a_credential(credentialStatus=BITSTRING_ENTRY))
    (entry,) = verify(token).bitstring_status
    assert entry.index == 94567


def test_verify_refuses_malformed_cnf() -> None:
    token = raw_jws({"typ": "vc+jwt"}, a_credential(iat=NOW, cnf={"kid": "k1"}))
    with pytest.raises(VCDMError, match="cnf must be an object holding a jwk"):
        verify(token)


def test_verify_refuses_oversized_token() -> None:
    with pytest.raises(VCDMError, match="token larger than"):
        verify("a" * (jose.MAX_TOKEN_BYTES + 1))


def test_decode_unverified_reads_without_checking() -> None:
    header, payload = vcdm.decode_unverified(SUITE_CREDENTIAL_BAD_SIGNATURE)
    assert header["typ"] == "vc+jwt"
    assert payload["issuer"] == "https://example.issuer/vc-jose-cose"
    with pytest.raises(VCDMError, match="not a compact JWS"):
        vcdm.decode_unverified("not.a-jwt")


# -- vp+jwt ---------------------------------------------------------------------------------


def test_presentation_round_trip() -> None:
    first = signed(holder_jwk=HOLDER_KEY.public_jwk())
    second = signed(
        a_credential(credentialSubject={"level": 5}), holder_jwk=HOLDER_KEY.public_jwk()
    )
    token = presentation([first, second], holder="did:jwk:holder")
    header, payload = vcdm.decode_unverified(token)
    assert header["typ"] == "vp+jwt"
    assert payload["verifiableCredential"][0] == {
        "@context": vcdm.CREDENTIALS_V2_CONTEXT,
        "id": "data:application/vc+jwt," + first,
        "type": "EnvelopedVerifiableCredential",
    }
    verified = verify_vp(token, require_holder_binding=True)
    assert verified.holder == "did:jwk:holder"
    assert [c.token for c in verified.credentials] == [first, second]
    assert verified.credentials[1].credential["credentialSubject"] == {"level": 5}


def test_presentation_without_credentials_is_allowed() -> None:
    assert verify_vp(presentation([])).credentials == ()


def test_presentation_refuses_wrong_audience() -> None:
    with pytest.raises(VCDMError, match="aud does not match"):
        verify_vp(presentation(audience="x509_san_dns:other.example"))


def test_presentation_refuses_audience_array_with_extra_value() -> None:
    token = raw_jws(
        {"typ": "vp+jwt"}, vp_claims(aud=[AUDIENCE, "https://evil.example"]), HOLDER_KEY
    )
    with pytest.raises(VCDMError, match="aud does not match"):
        verify_vp(token)


def test_presentation_refuses_missing_audience() -> None:
    claims = vp_claims()
    del claims["aud"]
    with pytest.raises(VCDMError, match="aud does not match"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_wrong_nonce() -> None:
    with pytest.raises(VCDMError, match="nonce does not match"):
        verify_vp(presentation(nonce="another-nonce"))


def test_presentation_refuses_missing_nonce() -> None:
    claims = vp_claims()
    del claims["nonce"]
    with pytest.raises(VCDMError, match="nonce does not match"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_stale_iat() -> None:
    token = presentation(iat=NOW - vcdm.DEFAULT_PRESENTATION_MAX_AGE - 61)
    with pytest.raises(VCDMError, match="iat is too old"):
        verify_vp(token)
    verify_vp(token, max_age=3600)


def test_presentation_refuses_missing_iat() -> None:
    claims = vp_claims()
    del claims["iat"]
    with pytest.raises(VCDMError, match="missing iat"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_future_iat() -> None:
    with pytest.raises(VCDMError, match="iat is in the future"):
        verify_vp(presentation(iat=NOW + 600))


def test_presentation_refuses_enveloped_credential_with_bad_signature() -> None:
    forged = vcdm.sign_credential(
        a_credential(), OTHER_KEY, iat=NOW, holder_jwk=HOLDER_KEY.public_jwk()
    )
    token = presentation([signed(holder_jwk=HOLDER_KEY.public_jwk()), forged])
    with pytest.raises(VCDMError, match=r"verifiableCredential\[1\]: signature verification"):
        verify_vp(token)


def test_presentation_refuses_expired_enveloped_credential() -> None:
    expired = signed(a_credential(validUntil="2026-06-01T00:00:00Z"), iat=NOW - 400 * 86400)
    with pytest.raises(VCDMError, match=r"verifiableCredential\[0\]: credential has expired"):
        verify_vp(presentation([expired]))


def test_presentation_refuses_holder_key_other_than_cnf() -> None:
    bound_elsewhere = signed(holder_jwk=OTHER_KEY.public_jwk())
    with pytest.raises(VCDMError, match="presentation key is not the cnf holder key"):
        verify_vp(presentation([bound_elsewhere]))


def test_presentation_requires_binding_when_asked() -> None:
    unbound = signed()
    verify_vp(presentation([unbound]))
    with pytest.raises(VCDMError, match=r"verifiableCredential\[0\] has no holder binding"):
        verify_vp(presentation([unbound]), require_holder_binding=True)


def test_presentation_refuses_typ_other_than_vp_jwt() -> None:
    for typ in ("vc+jwt", "JWT", None):
        header = {"typ": typ} if typ else {}
        with pytest.raises(VCDMError, match="typ must be 'vp\\+jwt'"):
            verify_vp(raw_jws(header, vp_claims(), HOLDER_KEY))


def test_presentation_refuses_credential_token_used_as_presentation() -> None:
    with pytest.raises(VCDMError, match="typ must be 'vp\\+jwt'"):
        verify_vp(signed())


def test_presentation_refuses_plain_credential_object() -> None:
    claims = vp_claims(verifiableCredential=[a_credential()])
    with pytest.raises(VCDMError, match="must be EnvelopedVerifiableCredential"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("eyJ.e30.sig", "items must be objects"),
        (
            {
                "@context": vcdm.CREDENTIALS_V2_CONTEXT,
                "type": "EnvelopedVerifiableCredential",
                "id": "data:application/vc+sd-jwt,eyJ.e30.c2ln",
            },
            "data:application/vc\\+jwt URL",
        ),
        (
            {
                "@context": vcdm.CREDENTIALS_V2_CONTEXT,
                "type": "EnvelopedVerifiableCredential",
                "id": "data:application/vc+jwt,not a jwt",
            },
            "does not hold a compact JWS",
        ),
        (
            {"type": "EnvelopedVerifiableCredential", "id": "data:application/vc+jwt,a.b.c"},
            "@context must be an array",
        ),
    ],
)
def test_presentation_refuses_malformed_envelopes(item: Any, message: str) -> None:
    claims = vp_claims(verifiableCredential=[item])
    with pytest.raises(VCDMError, match=message):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_vp_claim() -> None:
    with pytest.raises(VCDMError, match="JWT claim 'vp' must not be present"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, vp_claims(vp={}), HOLDER_KEY))


def test_presentation_refuses_missing_presentation_type() -> None:
    claims = vp_claims(type=["VerifiableCredential"])
    with pytest.raises(VCDMError, match="type must include VerifiablePresentation"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_wrong_first_context() -> None:
    claims = vp_claims(**{"@context": ["https://www.w3.org/2018/credentials/v1"]})
    with pytest.raises(VCDMError, match="first @context item must be"):
        verify_vp(raw_jws({"typ": "vp+jwt"}, claims, HOLDER_KEY))


def test_presentation_refuses_iss_other_than_holder() -> None:
    claims = vp_claims(holder="did:jwk:holder", iss="did:jwk:someone-else")
    with pytest.raises(VCDMError, match="iss does not match the presentation holder"):
        verify_vp(raw_jws({"typ": "vp+jwt", "kid": "k"}, claims, HOLDER_KEY))


def test_presentation_refuses_did_holder_without_kid() -> None:
    key = jose.Key(HOLDER_KEY.alg, HOLDER_KEY.public_key, HOLDER_KEY.private_key, None)
    token = jose.encode_jws(vp_claims(holder="did:jwk:holder"), key, {"typ": "vp+jwt"})
    with pytest.raises(VCDMError, match="kid is required when the holder key is a DID URL"):
        verify_vp(token)


def test_presentation_refuses_signature_by_another_key() -> None:
    token = vcdm.sign_presentation([], OTHER_KEY, audience=AUDIENCE, nonce=NONCE, iat=NOW)
    with pytest.raises(VCDMError, match="signature verification failed"):
        verify_vp(token)


def test_presentation_refuses_jwk_header_as_key_source() -> None:
    header = {"typ": "vp+jwt", "jwk": HOLDER_KEY.public_jwk()}
    with pytest.raises(VCDMError, match="'jwk' is not accepted as a key source"):
        verify_vp(raw_jws(header, vp_claims(), HOLDER_KEY))


def test_presentation_refuses_too_many_credentials() -> None:
    jwt = signed()
    with pytest.raises(VCDMError, match="more than 32 credentials"):
        presentation([jwt] * (vcdm.MAX_ENVELOPED_CREDENTIALS + 1))


def test_sign_presentation_refuses_empty_audience_or_nonce() -> None:
    with pytest.raises(VCDMError, match="audience must be a non-empty string"):
        presentation(audience="")
    with pytest.raises(VCDMError, match="nonce must be a non-empty string"):
        presentation(nonce="")


def test_sign_presentation_refuses_non_jwt_credential() -> None:
    with pytest.raises(VCDMError, match="only a compact vc\\+jwt can be enveloped"):
        presentation([copy.deepcopy(a_credential())])  # type: ignore[list-item]


# -- with intyg.status: a Bitstring Status List credential secured as vc+jwt -------------------


def test_status_list_credential_secured_and_read_back() -> None:
    from intyg import status

    bits = status.BitstringStatusList.create()
    bits.set(94567, 1)
    list_url = BITSTRING_ENTRY["statusListCredential"]
    list_credential = status.bitstring_status_list_credential(
        bits,
        id=list_url,
        issuer=ISSUER,
        status_purpose="revocation",
        valid_from=datetime(2026, 11, 1, tzinfo=UTC),
    )
    list_token = vcdm.sign_credential(list_credential, ISSUER_KEY, iat=NOW)
    verified_list = verify(list_token)
    (entry,) = verify(signed(a_credential(credentialStatus=BITSTRING_ENTRY))).bitstring_status
    result = status.bitstring_status(entry, verified_list.claims)
    assert (result.status, result.valid) == (1, False)
