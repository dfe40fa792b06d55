"""intyg.jose: RFC test vectors, round trips and one negative test per rejection rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from intyg import jose

# RFC 8037 Appendix A.1-A.4 (Ed25519 key, thumbprint, JWS).
RFC8037_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
# RFC 7515 Appendix A.3 (ES256).
RFC7515_EC_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
RFC7515_ES256_JWS = (
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
# RFC 7638 §3.1 (RSA key, thumbprint).
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
    "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict, payload: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}.{b64(signature)}"


@pytest.fixture(scope="module")
def es256() -> jose.Key:
    return jose.generate_key("ES256")


# -- specification vectors ----------------------------------------------------------------


def test_rfc8037_ed25519_thumbprint_and_signature() -> None:
    key = jose.key_from_jwk(RFC8037_JWK, allow_private=True)
    assert key.thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jose.encode_jws(b"Example of Ed25519 signing", key) == RFC8037_JWS
    public = jose.key_from_jwk({k: v for k, v in RFC8037_JWK.items() if k != "d"})
    jws = jose.parse_jws(RFC8037_JWS)
    jose.verify_signature(jws, public)
    assert jws.payload_bytes() == b"Example of Ed25519 signing"


def test_rfc7515_es256_example_verifies() -> None:
    header, claims = jose.verify_jws(RFC7515_ES256_JWS, jose.key_from_jwk(RFC7515_EC_JWK))
    assert header == {"alg": "ES256"}
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


def test_rfc7638_thumbprint() -> None:
    assert jose.jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jose.jwk_thumbprint_uri(RFC7638_JWK).endswith(":sha-256:" + RFC7638_JWK_TP)


RFC7638_JWK_TP = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_sign_verify_round_trip(alg: str) -> None:
    key = jose.generate_key(alg)
    token = jose.encode_jws({"sub": "x", "n": 1}, key, {"typ": "example+jwt", "kid": key.kid})
    header, claims = jose.verify_jws(token, key.public(), typ="example+jwt")
    assert claims == {"sub": "x", "n": 1}
    assert header["alg"] == alg and header["kid"] == key.thumbprint()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_jwk_export_import_round_trip(alg: str) -> None:
    key = jose.generate_key(alg)
    private = jose.key_from_jwk(key.private_jwk(), allow_private=True)
    public = jose.key_from_jwk(key.public_jwk())
    assert private.thumbprint() == public.thumbprint() == key.thumbprint()
    assert public.verify(private.sign(b"data"), b"data")
    assert not public.has_private


@given(st.binary(max_size=300))
def test_b64url_round_trip(data: bytes) -> None:
    text = jose.b64url_encode(data)
    assert "=" not in text and jose.b64url_decode(text) == data


NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@given(
    st.dictionaries(
        st.text(NO_NUL, max_size=10),
        st.integers(-(10**30), 10**30) | st.text(NO_NUL, max_size=20),
        max_size=6,
    )
)
def test_jws_payload_round_trip(payload: dict) -> None:
    key = jose.generate_key("EdDSA")
    assert jose.verify_jws(jose.encode_jws(payload, key), key)[1] == payload


def test_header_alg_always_from_key(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256, {"alg": "none"})
    assert jose.parse_jws(token).alg == "ES256"


def test_sha256_b64url() -> None:
    digest = hashlib.sha256(b"abc").digest()
    assert jose.sha256_b64url("abc") == b64(digest)


# -- rejection rules ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(es256: jose.Key, alg: str) -> None:
    for signature in (b"", b"x" * 64):
        token = forge({"alg": alg}, {"a": 1}, signature)
        with pytest.raises(jose.JoseError, match="never accepted|empty JWS"):
            jose.verify_jws(token, es256, algorithms={"ES256", alg})


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_public_key_as_secret_rejected(es256: jose.Key, alg: str) -> None:
    """T002: the public key (here its JWK JSON and PEM) as an HMAC secret must not verify."""
    from cryptography.hazmat.primitives import serialization

    pem = es256.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, json.dumps(es256.public_jwk()).encode()):
        signing_input = f"{b64(json.dumps({'alg': alg}))}.{b64('{}')}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(jose.JoseError, match="never accepted"):
            jose.verify_jws(f"{signing_input}.{b64(mac)}", es256, algorithms={alg, "ES256"})


def test_alg_not_in_allow_list_rejected(es256: jose.Key) -> None:
    ed = jose.generate_key("EdDSA")
    token = jose.encode_jws({"a": 1}, ed)
    with pytest.raises(jose.JoseError, match="not allowed"):
        jose.verify_jws(token, ed, algorithms={"ES256"})


def test_unknown_alg_rejected_even_if_caller_lists_it(es256: jose.Key) -> None:
    with pytest.raises(jose.JoseError, match="not allowed"):
        jose.verify_jws(forge({"alg": "RS256"}, {}, b"x" * 256), es256, algorithms={"RS256"})


def test_key_type_not_matching_alg_rejected(es256: jose.Key) -> None:
    """T003: an EdDSA token checked with a P-256 key, and the reverse."""
    ed = jose.generate_key("EdDSA")
    with pytest.raises(jose.JoseError, match="does not match the key type"):
        jose.verify_jws(jose.encode_jws({"a": 1}, ed), es256)
    with pytest.raises(jose.JoseError, match="does not match the key type"):
        jose.verify_jws(jose.encode_jws({"a": 1}, es256), ed)


def test_p384_and_rsa_jwk_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-384",
        "x": b64(p384.x.to_bytes(48, "big")),
        "y": b64(p384.y.to_bytes(48, "big")),
    }
    with pytest.raises(jose.JoseError, match="unsupported JWK key type"):
        jose.key_from_jwk(jwk)
    with pytest.raises(jose.JoseError, match="unsupported JWK key type"):
        jose.key_from_jwk(RFC7638_JWK)
    with pytest.raises(jose.JoseError, match="unsupported JWK key type"):
        jose.key_from_jwk({"kty": "oct", "k": "c2VjcmV0"}, allow_private=True)
    with pytest.raises(jose.JoseError, match="private key material"):
        jose.key_from_jwk({"kty": "oct", "k": "c2VjcmV0"})


def test_jwk_alg_contradicting_key_type_refused(es256: jose.Key) -> None:
    with pytest.raises(jose.JoseError, match="does not match"):
        jose.key_from_jwk({**es256.public_jwk(), "alg": "EdDSA"})
    with pytest.raises(jose.JoseError, match="not allowed"):
        jose.key_from_jwk({**es256.public_jwk(), "alg": "HS256"})


def test_point_not_on_curve_refused(es256: jose.Key) -> None:
    jwk = es256.public_jwk()
    jwk["y"] = b64((int.from_bytes(jose.b64url_decode(jwk["y"]), "big") ^ 1).to_bytes(32, "big"))
    with pytest.raises(jose.JoseError, match="not on P-256"):
        jose.key_from_jwk(jwk)


def test_private_jwk_refused_unless_allowed(es256: jose.Key) -> None:
    """T008: a JWK with private members where a public key is expected."""
    with pytest.raises(jose.JoseError, match="private key material"):
        jose.key_from_jwk(es256.private_jwk())
    with pytest.raises(jose.JoseError, match="private key material"):
        jose.key_from_jwk({**es256.public_jwk(), "p": "AQAB"})


def test_private_jwk_must_match_public_part(es256: jose.Key) -> None:
    other = jose.generate_key("ES256")
    mixed = {**es256.public_jwk(), "d": other.private_jwk()["d"]}
    with pytest.raises(jose.JoseError, match="does not match its public part"):
        jose.key_from_jwk(mixed, allow_private=True)


def test_unknown_crit_rejected(es256: jose.Key) -> None:
    """T004: crit naming an unknown parameter, and crit naming a parameter that is absent."""
    token = jose.encode_jws({"a": 1}, es256, {"crit": ["unknown"], "unknown": 1})
    with pytest.raises(jose.JoseError, match="critical header parameter"):
        jose.verify_jws(token, es256)
    token = jose.encode_jws({"a": 1}, es256, {"crit": ["cnf"], "cnf": {}})
    with pytest.raises(jose.JoseError, match="critical header parameter"):
        jose.verify_jws(token, es256)
    absent = jose.encode_jws({"a": 1}, es256, {"crit": ["b64"]})
    with pytest.raises(jose.JoseError, match="critical header parameter"):
        jose.verify_jws(absent, es256, understood_crit={"b64"})
    with pytest.raises(jose.JoseError, match="non-empty array"):
        jose.verify_jws(jose.encode_jws({"a": 1}, es256, {"crit": []}), es256)


def test_understood_crit_accepted(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256, {"crit": ["ext"], "ext": True})
    assert jose.verify_jws(token, es256, understood_crit={"ext"})[1] == {"a": 1}


def test_wrong_typ_rejected(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256, {"typ": "JWT"})
    with pytest.raises(jose.JoseError, match="typ must be"):
        jose.verify_jws(token, es256, typ="kb+jwt")
    untyped = jose.encode_jws({"a": 1}, es256)
    with pytest.raises(jose.JoseError, match="typ must be"):
        jose.verify_jws(untyped, es256, typ="kb+jwt")


def test_typ_comparison_per_rfc7515(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256, {"typ": "application/KB+JWT"})
    assert jose.verify_jws(token, es256, typ="kb+jwt")[1] == {"a": 1}


def test_flipped_signature_bit_rejected(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256)
    head, body, sig = token.split(".")
    raw = bytearray(jose.b64url_decode(sig))
    raw[5] ^= 1
    with pytest.raises(jose.JoseError, match="signature verification failed"):
        jose.verify_jws(f"{head}.{body}.{b64(bytes(raw))}", es256)


def test_signature_of_wrong_length_rejected(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256)
    head, body, sig = token.split(".")
    with pytest.raises(jose.JoseError, match="signature verification failed"):
        jose.verify_jws(f"{head}.{body}.{sig}AAAA", es256)


def test_payload_tampering_rejected(es256: jose.Key) -> None:
    head, _, sig = jose.encode_jws({"a": 1}, es256).split(".")
    with pytest.raises(jose.JoseError, match="signature verification failed"):
        jose.verify_jws(f"{head}.{b64(json.dumps({'a': 2}))}.{sig}", es256)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", "=.", 1),  # padding
        lambda t: t[:10] + "+" + t[11:],  # standard alphabet
        lambda t: t[:10] + "/" + t[11:],
        lambda t: t[:10] + " " + t[11:],  # whitespace
        lambda t: t[:10] + "é" + t[11:],  # non-ASCII
        lambda t: t + ".x",  # four dots / five parts (JWE shape, T006)
        lambda t: t.rsplit(".", 1)[0],  # two parts
        lambda t: "." + t.split(".", 1)[1],  # empty header
        lambda t: t.rsplit(".", 1)[0] + ".",  # empty signature
        lambda t: "A" + t,  # length % 4 == 1 in the header
    ],
)
def test_malformed_compact_serialization_rejected(es256: jose.Key, mangle) -> None:
    """T006, T014: clean JoseError, never another exception."""
    with pytest.raises(jose.JoseError):
        jose.verify_jws(mangle(jose.encode_jws({"a": 1}, es256)), es256)


def test_json_serialization_rejected(es256: jose.Key) -> None:
    """T009: only compact serialization; a JSON-serialized JWS is not parsed."""
    token = jose.encode_jws({"a": 1}, es256)
    head, body, sig = token.split(".")
    general = json.dumps(
        {"payload": body, "protected": head, "header": {"alg": "none"}, "signature": sig}
    )
    with pytest.raises(jose.JoseError, match="compact"):
        jose.parse_jws(general)


def test_oversized_token_rejected_before_decoding(es256: jose.Key) -> None:
    """T013: a 10 MB header segment is refused by size, without decoding."""
    huge = "A" * 10_000_000 + ".e30.AAAA"
    with pytest.raises(jose.JoseError, match="larger than"):
        jose.parse_jws(huge)


def test_duplicate_header_member_rejected(es256: jose.Key) -> None:
    """T016: two alg members; reject rather than last-wins."""
    header = '{"alg":"none","alg":"ES256"}'
    signing_input = f"{b64(header)}.{b64('{}')}"
    token = f"{signing_input}.{b64(es256.sign(signing_input.encode()))}"
    with pytest.raises(jose.JoseError, match="duplicate member"):
        jose.verify_jws(token, es256)


def test_duplicate_payload_claim_rejected(es256: jose.Key) -> None:
    token = jose.encode_jws(b'{"nonce":"a","nonce":"b"}', es256)
    with pytest.raises(jose.JoseError, match="duplicate member"):
        jose.verify_jws(token, es256)


def test_header_not_object_rejected(es256: jose.Key) -> None:
    with pytest.raises(jose.JoseError, match="object with a string alg"):
        jose.parse_jws(f"{b64('[1]')}.{b64('{}')}.AAAA")
    with pytest.raises(jose.JoseError, match="object with a string alg"):
        jose.parse_jws(f"{b64(json.dumps({'alg': 1}))}.{b64('{}')}.AAAA")


def test_payload_not_object_rejected(es256: jose.Key) -> None:
    with pytest.raises(jose.JoseError, match="must be a JSON object"):
        jose.verify_jws(jose.encode_jws(b"[1,2]", es256), es256)


# -- time claims ------------------------------------------------------------------------------

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": NOW - 61}, "expired"),
        ({"nbf": NOW + 61}, "not yet valid"),
        ({"iat": NOW + 61}, "in the future"),
        ({"iat": NOW - 400}, "too old"),
        ({"exp": str(NOW)}, "integer NumericDate"),
        ({"exp": float(NOW)}, "integer NumericDate"),
        ({"exp": True}, "integer NumericDate"),
        ({"iat": -1}, "integer NumericDate"),
        ({"exp": 10**40}, "integer NumericDate"),
        ({}, "missing iat"),
    ],
)
def test_time_claims_rejected(claims: dict, message: str) -> None:
    """T018: wrong types, absurd values, and values outside the leeway."""
    with pytest.raises(jose.JoseError, match=message):
        jose.check_time_claims(
            claims, now=NOW, leeway=60, require={"iat"} if not claims else (), max_iat_age=300
        )


def test_time_claims_within_leeway_accepted() -> None:
    jose.check_time_claims(
        {"exp": NOW - 30, "nbf": NOW + 30, "iat": NOW + 30}, now=NOW, leeway=60, max_iat_age=300
    )


@pytest.mark.parametrize(
    "aud",
    [
        "https://issuer.ex",
        "issuer.example",
        "https://issuer.example/",
        ["https://issuer.example", "https://evil.example"],
        ["https://issuer.example"],
        None,
    ],
)
def test_audience_exact_single_string(aud) -> None:
    """T017: exact string match only; arrays refused where one value is expected."""
    with pytest.raises(jose.JoseError, match="aud"):
        jose.check_audience({"aud": aud}, "https://issuer.example")


def test_audience_exact_match_accepted() -> None:
    jose.check_audience({"aud": "https://issuer.example"}, "https://issuer.example")


def test_unencodable_payload_refused_at_signing(es256: jose.Key) -> None:
    with pytest.raises(jose.JoseError, match="not valid Unicode"):
        jose.encode_jws({"a": "\ud800"}, es256)


@given(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1))
def test_ecdsa_der_signature_matches_cryptography(r: int, s: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert jose.ecdsa_der_signature(raw) == encode_dss_signature(r, s)


@given(st.binary(max_size=200))
def test_b64url_decode_sha256_matches_separate_steps(data: bytes) -> None:
    text = jose.b64url_encode(data)
    assert jose.b64url_decode_sha256(text) == (jose.b64url_decode(text), jose.sha256_b64url(text))


def test_cached_header_is_a_private_copy(es256: jose.Key) -> None:
    token = jose.encode_jws({"a": 1}, es256, {"typ": "kb+jwt"})
    first = jose.parse_jws(token)
    first.header["alg"] = "none"  # a caller scribbling on its header ...
    assert jose.parse_jws(token).header["alg"] == "ES256"  # ... does not reach the next one


def test_refused_header_is_refused_every_time(es256: jose.Key) -> None:
    header = '{"alg":"ES256","alg":"none"}'
    token = f"{b64(header)}.{b64('{}')}.{b64(b'x' * 64)}"
    for _ in range(2):
        with pytest.raises(jose.JoseError, match="duplicate member"):
            jose.parse_jws(token)
