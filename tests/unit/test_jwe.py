"""Tests for intyg.jwe: the OpenID4VP §8.3 vector, round trips, one test per refusal."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from intyg import jose, jwe
from intyg.jwe import JWEError

# OpenID4VP 1.0 §8.3 (errata draft -31): key "ac" and the example encrypted response.
SPEC_PRIVATE_JWK = {
    "kty": "EC",
    "kid": "ac",
    "use": "enc",
    "crv": "P-256",
    "alg": "ECDH-ES",
    "x": "YO4epjifD-KWeq1sL2tNmm36BhXnkJ0He-WqMYrp9Fk",
    "y": "Hekpm0zfK7C-YccH5iBjcIXgf6YdUvNUac_0At55Okk",
    "d": "Et-3ce0omz8_TuZ96Df9lp0GAaaDoUnDe6X-CRO7Aww",
}
SPEC_RESPONSE = (
    "eyJhbGciOiJFQ0RILUVTIiwiZW5jIjoiQTEyOEdDTSIsImtpZCI6ImFjIiwiZXBrIjp7Imt"
    "0eSI6IkVDIiwieCI6Im5ubVZwbTNWM2piaGNhZlFhUkJrU1ZOSGx3Wkh3dC05ck9wSnVmeVlJdWsiLCJ5I"
    "joicjRmakRxd0p5czlxVU9QLV9iM21SNVNaRy0tQ3dPMm1pYzVWU05UWU45ZyIsImNydiI6IlAtMjU2In1"
    "9..uAYcHRUSSn2X0WPX.yVzlGSYG4qbg0bq18JcUiDRw56yVnbKR8E7S7YlEtzT00RqE3Pw5oTpUG3hdLN"
    "4taHZ9gC1kwak8JOnJgQ.1wR024_3-qtAlx1oFIUpQQ"
)
PRIVATE, PUBLIC = jwe.new_encryption_key(kid="k1")
_EPK = {k: v for k, v in PUBLIC.items() if k in ("kty", "crv", "x", "y")}


def forge(header: dict[str, Any], encrypted_key: bytes = b"") -> str:
    """A compact JWE with an arbitrary protected header (never decryptable)."""
    parts = [
        jose.b64url_encode(json.dumps(header).encode()),
        jose.b64url_encode(encrypted_key),
        jose.b64url_encode(os.urandom(12)),
        jose.b64url_encode(os.urandom(32)),
        jose.b64url_encode(os.urandom(16)),
    ]
    return ".".join(parts)


def jwcrypto_token(header: dict[str, Any], payload: bytes = b"{}") -> str:
    """A real JWE made by jwcrypto with header members we would never produce."""
    token = jwcrypto_jwe.JWE(payload, protected=json.dumps(header))
    token.add_recipient(jwcrypto_jwk.JWK(**_EPK))
    return token.serialize(compact=True)


@pytest.fixture
def no_jwcrypto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals by the allow-list must happen before jwcrypto sees the token (T011, T012)."""

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("jwcrypto was reached")

    monkeypatch.setattr(jwcrypto_jwe.JWE, "deserialize", boom)


# -- vectors and round trips ----------------------------------------------------------------


def test_openid4vp_spec_example_decrypts() -> None:
    header, payload = jwe.decrypt(SPEC_RESPONSE, [SPEC_PRIVATE_JWK])
    assert header["alg"] == "ECDH-ES" and header["enc"] == "A128GCM" and header["kid"] == "ac"
    assert json.loads(payload) == {"vp_token": {"example_credential_id": ["eyJhb...YMetA"]}}


@pytest.mark.parametrize("enc", ["A128GCM", "A256GCM"])
def test_round_trip(enc: str) -> None:
    token = jwe.encrypt({"vp_token": {"q": ["x~y~"]}, "state": "s"}, PUBLIC, enc=enc)
    header, payload = jwe.decrypt(token, [PRIVATE])
    assert header["enc"] == enc and header["kid"] == "k1" and header["alg"] == "ECDH-ES"
    assert json.loads(payload) == {"vp_token": {"q": ["x~y~"]}, "state": "s"}


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=2048))
def test_round_trip_property(data: bytes) -> None:
    assert jwe.decrypt(jwe.encrypt(data, PUBLIC), [PRIVATE])[1] == data


@pytest.mark.parametrize("enc", ["A128GCM", "A256GCM"])
def test_jwcrypto_token_with_party_info_decrypts(enc: str) -> None:
    """RFC 7518 §4.6.2: ``apu``/``apv`` enter the Concat KDF (made by another implementation)."""
    party = {"apu": jose.b64url_encode(b"wallet"), "apv": jose.b64url_encode(b"nonce-123")}
    token = jwcrypto_token({"alg": "ECDH-ES", "enc": enc, "kid": "k1", **party}, b'{"a":1}')
    assert jwe.decrypt(token, [PRIVATE])[1] == b'{"a":1}'
    header_segment, *rest = token.split(".")
    header = json.loads(jose.b64url_decode(header_segment))
    header["apv"] = jose.b64url_encode(b"nonce-124")  # other party info: another key
    forged = ".".join([jose.b64url_encode(json.dumps(header).encode()), *rest])
    with pytest.raises(JWEError, match="decryption failed"):
        jwe.decrypt(forged, [PRIVATE])


def test_new_encryption_key_shapes() -> None:
    private, public = jwe.new_encryption_key()
    assert public["use"] == "enc" and public["alg"] == "ECDH-ES" and public["kid"]
    assert "d" not in public and private["kid"] == public["kid"]
    loaded = jose.key_from_jwk(private, allow_private=True)
    assert loaded.has_private
    assert jwe.check_encryption_jwk(public) == public


def test_decrypt_with_jose_key_and_jwcrypto_key() -> None:
    token = jwe.encrypt(b"hi", PUBLIC)
    assert jwe.decrypt(token, [jose.key_from_jwk(PRIVATE, allow_private=True)])[1] == b"hi"
    assert jwe.decrypt(token, [jwcrypto_jwk.JWK(**PRIVATE)])[1] == b"hi"


def test_key_chosen_by_kid() -> None:
    other_private, _ = jwe.new_encryption_key(kid="other")
    token = jwe.encrypt(b"hi", PUBLIC)
    assert jwe.decrypt(token, [other_private, PRIVATE])[1] == b"hi"


# -- decryption refusals --------------------------------------------------------------------


@pytest.mark.usefixtures("no_jwcrypto")
@pytest.mark.parametrize(
    "alg",
    ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "dir", "A128KW", "ECDH-ES+A128KW", "none", "ES256"],
)
def test_key_management_algorithms_refused_before_jwcrypto(alg: str) -> None:
    header = {"alg": alg, "enc": "A128GCM", "kid": "k1", "epk": _EPK}
    with pytest.raises(JWEError, match="alg"):
        jwe.decrypt(forge(header, os.urandom(256)), [PRIVATE])


@pytest.mark.usefixtures("no_jwcrypto")
def test_pbes2_huge_p2c_refused_before_key_derivation() -> None:  # T011
    header = {"alg": "PBES2-HS256+A128KW", "p2c": 2**31, "p2s": "c2FsdA", "enc": "A128GCM"}
    with pytest.raises(JWEError, match="alg"):
        jwe.decrypt(forge(header, os.urandom(24)), [PRIVATE])


@pytest.mark.usefixtures("no_jwcrypto")
def test_rsa1_5_crafted_encrypted_keys_all_refused_alike() -> None:  # T012
    header = {"alg": "RSA1_5", "enc": "A128GCM", "kid": "k1"}
    messages = set()
    for size in (0, 1, 128, 256, 512):
        with pytest.raises(JWEError) as info:
            jwe.decrypt(forge(header, os.urandom(size)), [PRIVATE])
        messages.add(str(info.value))
    assert len(messages) == 1


def test_zip_refused() -> None:
    token = jwcrypto_token({"alg": "ECDH-ES", "enc": "A128GCM", "kid": "k1", "zip": "DEF"})
    with pytest.raises(JWEError, match="zip"):
        jwe.decrypt(token, [PRIVATE])


def test_a192gcm_refused() -> None:
    token = jwcrypto_token({"alg": "ECDH-ES", "enc": "A192GCM", "kid": "k1"})
    with pytest.raises(JWEError, match="enc"):
        jwe.decrypt(token, [PRIVATE])


def test_cbc_hmac_refused() -> None:
    token = jwcrypto_token({"alg": "ECDH-ES", "enc": "A128CBC-HS256", "kid": "k1"})
    with pytest.raises(JWEError, match="enc"):
        jwe.decrypt(token, [PRIVATE])


def test_enc_not_offered_refused() -> None:
    token = jwe.encrypt(b"x", PUBLIC, enc="A256GCM")
    with pytest.raises(JWEError, match="not offered"):
        jwe.decrypt(token, [PRIVATE], allowed_enc=("A128GCM",))


def test_crit_refused() -> None:
    token = jwcrypto_token(
        {"alg": "ECDH-ES", "enc": "A128GCM", "kid": "k1", "crit": ["exp"], "exp": 1}
    )
    with pytest.raises(JWEError, match="crit"):
        jwe.decrypt(token, [PRIVATE])


def test_missing_kid_refused() -> None:
    token = jwcrypto_token({"alg": "ECDH-ES", "enc": "A128GCM"})
    with pytest.raises(JWEError, match="kid"):
        jwe.decrypt(token, [PRIVATE])


def test_wrong_kid_refused() -> None:
    token = jwe.encrypt(b"x", PUBLIC)
    other_private, _ = jwe.new_encryption_key(kid="other")
    with pytest.raises(JWEError, match="no decryption key"):
        jwe.decrypt(token, [other_private])


def test_right_kid_wrong_key_fails() -> None:
    impostor, _ = jwe.new_encryption_key(kid="k1")
    with pytest.raises(JWEError, match="decryption failed"):
        jwe.decrypt(jwe.encrypt(b"x", PUBLIC), [impostor])


@pytest.mark.parametrize("part", [2, 3, 4])
def test_tampered_parts_fail(part: int) -> None:
    parts = jwe.encrypt(b"payload bytes", PUBLIC).split(".")
    raw = bytearray(jose.b64url_decode(parts[part]))
    raw[0] ^= 1
    parts[part] = jose.b64url_encode(bytes(raw))
    with pytest.raises(JWEError, match="decryption failed"):
        jwe.decrypt(".".join(parts), [PRIVATE])


def test_tampered_header_fails() -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    header = json.loads(jose.b64url_decode(parts[0]))
    header["apu"] = "YQ"
    parts[0] = jose.b64url_encode(json.dumps(header).encode())
    with pytest.raises(JWEError, match="decryption failed"):
        jwe.decrypt(".".join(parts), [PRIVATE])


@pytest.mark.parametrize("count", [3, 4, 6])
def test_wrong_number_of_parts(count: int) -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    token = ".".join([*parts, "AAAA"][:count])
    with pytest.raises(JWEError, match="five"):
        jwe.decrypt(token, [PRIVATE])


@pytest.mark.usefixtures("no_jwcrypto")
def test_oversized_token_refused_before_parsing() -> None:
    token = "e" * (jwe.MAX_JWE_BYTES + 1)
    with pytest.raises(JWEError, match="larger"):
        jwe.decrypt(token, [PRIVATE])


def test_json_serialization_refused() -> None:
    token = jwcrypto_jwe.JWE(b"x", protected=json.dumps({"alg": "ECDH-ES", "enc": "A128GCM"}))
    token.add_recipient(jwcrypto_jwk.JWK(**_EPK))
    with pytest.raises(JWEError, match="compact"):
        jwe.decrypt(token.serialize(), [PRIVATE])


def test_duplicate_header_member_refused() -> None:
    header = '{"alg":"ECDH-ES","alg":"ECDH-ES","enc":"A128GCM","kid":"k1"}'
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[0] = jose.b64url_encode(header.encode())
    with pytest.raises(JWEError, match="duplicate"):
        jwe.decrypt(".".join(parts), [PRIVATE])


def test_non_empty_encrypted_key_refused() -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[1] = jose.b64url_encode(b"key")
    with pytest.raises(JWEError, match="empty encrypted key"):
        jwe.decrypt(".".join(parts), [PRIVATE])


def test_wrong_iv_length_refused() -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[2] = jose.b64url_encode(os.urandom(16))
    with pytest.raises(JWEError, match="IV"):
        jwe.decrypt(".".join(parts), [PRIVATE])


@pytest.mark.parametrize("bad", ["a=", "a+b", "a b", "ä"])
def test_bad_base64url_refused(bad: str) -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[3] = bad
    with pytest.raises(JWEError, match="base64url"):
        jwe.decrypt(".".join(parts), [PRIVATE])


def test_epk_off_curve_refused() -> None:
    epk = dict(_EPK, y=jose.b64url_encode(b"\x01" * 32))
    with pytest.raises(JWEError, match="P-256"):
        jwe.decrypt(forge({"alg": "ECDH-ES", "enc": "A128GCM", "kid": "k1", "epk": epk}), [PRIVATE])


def test_epk_other_curve_refused() -> None:
    epk = {"kty": "OKP", "crv": "X25519", "x": jose.b64url_encode(os.urandom(32))}
    with pytest.raises(JWEError, match="epk"):
        jwe.decrypt(forge({"alg": "ECDH-ES", "enc": "A128GCM", "kid": "k1", "epk": epk}), [PRIVATE])


def test_epk_with_private_part_refused() -> None:
    epk = dict(_EPK, d=PRIVATE["d"])
    with pytest.raises(JWEError, match="private"):
        jwe.decrypt(forge({"alg": "ECDH-ES", "enc": "A128GCM", "kid": "k1", "epk": epk}), [PRIVATE])


def test_header_not_object_refused() -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[0] = jose.b64url_encode(b"[]")
    with pytest.raises(JWEError, match="object"):
        jwe.decrypt(".".join(parts), [PRIVATE])


def test_non_string_token_refused() -> None:
    with pytest.raises(JWEError, match="string"):
        jwe.decrypt(b"abc", [PRIVATE])  # type: ignore[arg-type]


def test_non_p256_decryption_key_refused() -> None:
    ed = jose.generate_key("EdDSA", kid="k1")
    with pytest.raises(JWEError, match="P-256"):
        jwe.decrypt(jwe.encrypt(b"x", PUBLIC), [ed])


# -- encryption refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kty": "RSA"}, "P-256"),
        ({"crv": "P-384"}, "P-256"),
        ({"alg": None}, "ECDH-ES"),
        ({"alg": "RSA-OAEP"}, "ECDH-ES"),
        ({"alg": "ECDH-ES+A128KW"}, "ECDH-ES"),
        ({"use": "sig"}, "use"),
        ({"kid": None}, "kid"),
        ({"d": PRIVATE["d"]}, "private"),
        ({"x": "AAAA"}, "key"),
    ],
)
def test_unusable_recipient_keys_refused(change: dict[str, Any], message: str) -> None:
    jwk = {k: v for k, v in {**PUBLIC, **change}.items() if v is not None}
    with pytest.raises(JWEError, match=message):
        jwe.encrypt(b"x", jwk)


def test_recipient_key_not_object_refused() -> None:
    with pytest.raises(JWEError, match="object"):
        jwe.check_encryption_jwk(["not", "a", "key"])


def test_encrypt_refuses_a192gcm() -> None:
    with pytest.raises(JWEError, match="enc"):
        jwe.encrypt(b"x", PUBLIC, enc="A192GCM")


def test_encrypt_refuses_empty_payload() -> None:
    with pytest.raises(JWEError, match="nothing"):
        jwe.encrypt(b"", PUBLIC)


def test_encrypt_refuses_foreign_kid() -> None:
    with pytest.raises(JWEError, match="kid"):
        jwe.encrypt(b"x", PUBLIC, kid="someone-else")


@pytest.mark.parametrize("part", [0, 2, 3, 4])
@pytest.mark.parametrize("bad", ["+", "/", "=", "é", " ", "\x00"])
def test_a_part_outside_the_base64url_alphabet_is_refused_before_any_key(
    part: int, bad: str
) -> None:
    parts = jwe.encrypt(b"x", PUBLIC).split(".")
    parts[part] = parts[part][:4] + bad + parts[part][4:]
    with pytest.raises(JWEError, match="malformed base64url"):
        jwe.parse_header(".".join(parts))
