"""Tests for intyg.dpop (RFC 9449): RFC vectors, round trips, one test per rejection rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intyg import dpop, jose
from intyg.dpop import DPoPError

# RFC 9449 Figure 4 (token request) and Figure 13 (protected resource with ath), §6.1 jkt.
RFC_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoi"
    "UE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-"
    "GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_RESOURCE_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoi"
    "R0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6"
    "MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9"
    "RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}

KEY = jose.generate_key("ES256")
OTHER = jose.generate_key("ES256")
ED_KEY = jose.generate_key("EdDSA")
NOW = 1_800_000_000
HTU = "https://issuer.example/credential"
TOKEN = "at-0123456789"


def b64json(value: Any) -> str:
    return jose.b64url_encode(json.dumps(value).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"jti": "jti-1", "htm": "POST", "htu": HTU, "iat": NOW}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, Any], *, key: jose.Key = KEY, **header: Any) -> str:
    full: dict[str, Any] = {"typ": "dpop+jwt", "jwk": key.public_jwk()}
    full.update(header)
    return jose.encode_jws(payload, key, {k: v for k, v in full.items() if v is not None})


def verify(proof: str, **kwargs: Any) -> dpop.DPoPProof:
    options: dict[str, Any] = {"htm": "POST", "htu": HTU, "now": NOW}
    options.update(kwargs)
    return dpop.verify_dpop_proof(proof, **options)


def refused(proof: str, error: str = "invalid_dpop_proof", **kwargs: Any) -> DPoPError:
    with pytest.raises(DPoPError) as info:
        verify(proof, **kwargs)
    assert info.value.error == error
    return info.value


# -- RFC 9449 vectors -----------------------------------------------------------------------------


def test_rfc_token_request_proof_verifies() -> None:
    result = dpop.verify_dpop_proof(
        RFC_PROOF, htm="POST", htu="https://server.example.com/token", now=1562262616
    )
    assert result.jti == "-BwC3ESc6acc2lTc"
    assert result.jkt == RFC_JKT
    assert result.iat == 1562262616


def test_rfc_resource_proof_verifies_with_ath_and_binding() -> None:
    result = dpop.verify_dpop_proof(
        RFC_RESOURCE_PROOF,
        htm="GET",
        htu="https://resource.example.org/protectedresource",
        now=1562262618,
        access_token=RFC_ACCESS_TOKEN,
        expected_jkt=RFC_JKT,
    )
    assert result.claims["ath"] == RFC_ATH


def test_rfc_ath_and_jkt_helpers() -> None:
    assert dpop.ath(RFC_ACCESS_TOKEN) == RFC_ATH
    assert dpop.jkt(RFC_JWK) == RFC_JKT


def test_rfc_resource_proof_with_another_token_is_refused() -> None:
    with pytest.raises(DPoPError, match="ath"):
        dpop.verify_dpop_proof(
            RFC_RESOURCE_PROOF,
            htm="GET",
            htu="https://resource.example.org/protectedresource",
            now=1562262618,
            access_token=RFC_ACCESS_TOKEN + "x",
        )


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, ED_KEY], ids=["ES256", "EdDSA"])
def test_make_then_verify(key: jose.Key) -> None:
    proof = dpop.make_dpop_proof(
        key, htm="POST", htu=HTU + "?q=1#f", access_token=TOKEN, nonce="n1", iat=NOW
    )
    result = verify(proof, access_token=TOKEN, expected_jkt=key.thumbprint(), nonce="n1")
    assert result.jkt == key.thumbprint()
    assert result.nonce == "n1"
    assert result.htu == HTU  # query and fragment are not sent
    assert len(jose.b64url_decode(result.jti)) >= 12  # >= 96 bits


def test_made_proof_header_has_only_the_public_key() -> None:
    header = jose.parse_jws(dpop.make_dpop_proof(KEY, htm="GET", htu=HTU)).header
    assert header["typ"] == "dpop+jwt"
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}


def test_jti_values_are_unique() -> None:
    assert len({dpop.new_jti() for _ in range(1000)}) == 1000


def test_nonce_may_be_one_of_several_accepted() -> None:
    proof = signed(claims(nonce="old"))
    assert verify(proof, nonce={"new", "old"}).nonce == "old"


def test_ath_is_ignored_at_the_token_endpoint() -> None:
    assert verify(signed(claims(ath="whatever"))).jti == "jti-1"


def test_htu_comparison_normalises() -> None:
    proof = signed(claims(htu="HTTPS://Issuer.Example:443/./credential?x=1#y"))
    assert verify(proof).jti == "jti-1"


def test_www_authenticate() -> None:
    value = dpop.www_authenticate("use_dpop_nonce", 'say "hi"', ["ES256"])
    assert value == 'DPoP error="use_dpop_nonce", error_description="say ?hi?", algs="ES256"'
    assert dpop.www_authenticate() == "DPoP"


# -- one test per rejection rule (§4.3) -----------------------------------------------------------


def test_rejects_malformed_token() -> None:
    refused("not.a-jwt")
    refused(RFC_PROOF + ".extra")


def test_rejects_oversized_proof() -> None:
    refused(signed(claims(pad="x" * dpop.MAX_PROOF_BYTES)))


def test_rejects_duplicate_header_member() -> None:
    header = '{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}'
    refused(jose.b64url_encode(header.encode()) + "." + b64json(claims()) + ".c2ln")


@pytest.mark.parametrize("typ", [None, "JWT", "application/dpop+jwt", "DPOP+JWT"])
def test_rejects_wrong_typ(typ: str | None) -> None:
    proof = jose.encode_jws(
        claims(), KEY, {"jwk": KEY.public_jwk(), **({"typ": typ} if typ else {})}
    )
    refused(proof)


@pytest.mark.parametrize("alg", ["none", "None", "HS256"])
def test_rejects_none_and_mac_algorithms(alg: str) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": KEY.public_jwk()}
    refused(f"{b64json(header)}.{b64json(claims())}.c2ln")


def test_rejects_algorithm_outside_the_allow_list() -> None:
    refused(signed(claims(), key=ED_KEY), algorithms={"ES256"})


def test_rejects_missing_jwk() -> None:
    refused(signed(claims(), jwk=None))


def test_rejects_jwk_that_is_not_an_object() -> None:
    refused(signed(claims(), jwk="key"))


def test_rejects_private_jwk() -> None:
    refused(signed(claims(), jwk=KEY.private_jwk()))


def test_rejects_jwk_of_another_key_type() -> None:
    refused(signed(claims(), key=KEY, jwk=ED_KEY.public_jwk()))


def test_rejects_signature_by_another_key() -> None:
    refused(signed(claims(), key=KEY, jwk=OTHER.public_jwk()))


def test_rejects_flipped_signature_bit() -> None:
    proof = signed(claims())
    head, body, sig = proof.split(".")
    raw = bytearray(jose.b64url_decode(sig))
    raw[0] ^= 1
    refused(f"{head}.{body}.{jose.b64url_encode(bytes(raw))}")


@pytest.mark.parametrize("jti", [None, "", 7, "j" * 300])
def test_rejects_bad_jti(jti: Any) -> None:
    payload = claims()
    payload.pop("jti")
    if jti is not None:
        payload["jti"] = jti
    refused(signed(payload))


@pytest.mark.parametrize("htm", ["GET", "post", None])
def test_rejects_htm_mismatch(htm: str | None) -> None:
    payload = claims(htm=htm)
    refused(signed(payload))


@pytest.mark.parametrize(
    "htu",
    [
        "https://issuer.example/other",
        "https://evil.example/credential",
        "http://issuer.example/credential",
        "https://issuer.example:8443/credential",
        "ftp://issuer.example/credential",
        "https://user@issuer.example/credential",
        "/credential",
        "https://[::1/credential",
        42,
        None,
    ],
)
def test_rejects_htu_mismatch_or_malformed(htu: Any) -> None:
    payload = claims()
    payload.pop("htu")
    if htu is not None:
        payload["htu"] = htu
    refused(signed(payload))


def test_rejects_missing_iat() -> None:
    payload = claims()
    payload.pop("iat")
    refused(signed(payload))


@pytest.mark.parametrize("iat", [NOW + 3600, NOW - 3600, "1800000000", 1.8e9, -1])
def test_rejects_iat_outside_window_or_malformed(iat: Any) -> None:
    refused(signed(claims(iat=iat)))


def test_accepts_iat_within_leeway() -> None:
    assert verify(signed(claims(iat=NOW + 30))).iat == NOW + 30


def test_rejects_missing_ath_with_access_token() -> None:
    refused(signed(claims()), access_token=TOKEN)


def test_rejects_wrong_ath() -> None:
    refused(signed(claims(ath=dpop.ath("other"))), access_token=TOKEN)


def test_rejects_key_not_bound_to_the_token() -> None:
    refused(signed(claims()), expected_jkt=OTHER.thumbprint())


def test_missing_nonce_asks_for_one() -> None:
    refused(signed(claims()), "use_dpop_nonce", nonce="server-nonce")


def test_wrong_nonce_asks_for_a_fresh_one() -> None:
    refused(signed(claims(nonce="stale")), "use_dpop_nonce", nonce="server-nonce")


def test_rejects_non_string_nonce() -> None:
    refused(signed(claims(nonce=5)))


def test_rejects_unknown_critical_header() -> None:
    refused(signed(claims(), crit=["exp"], exp=1))


# -- htu normalisation (RFC 3986 §6.2.2, §6.2.3) -------------------------------------------------

_segment = st.text(alphabet="abcXYZ019-._~", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_paths = st.lists(_segment, max_size=4).map(lambda parts: "/" + "/".join(parts))
_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){1,2}", fullmatch=True)


@given(host=_hosts, path=_paths)
def test_htu_normalisation_is_idempotent_and_case_insensitive_in_host(host: str, path: str) -> None:
    uri = f"https://{host}{path}"
    normal = dpop.normalize_htu(uri)
    assert dpop.normalize_htu(normal) == normal
    assert dpop.normalize_htu(f"HTTPS://{host.upper()}:443{path}?a=b#c") == normal


@given(host=_hosts, path=_paths)
def test_htu_percent_encoding_of_unreserved_characters_is_decoded(host: str, path: str) -> None:
    encoded = "".join(f"%{ord(c):02x}" if c.isalpha() else c for c in path)
    assert dpop.normalize_htu(f"https://{host}{encoded}") == dpop.normalize_htu(
        f"https://{host}{path}"
    )


@given(host=_hosts, path=_paths, port=st.integers(min_value=1, max_value=65535))
def test_htu_keeps_non_default_ports(host: str, path: str, port: int) -> None:
    normal = dpop.normalize_htu(f"https://{host}:{port}{path}")
    assert normal.endswith(path or "/")
    assert (f":{port}" in normal) == (port != 443)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://x.example", "https://x.example/"),
        ("http://x.example:80/a", "http://x.example/a"),
        ("https://x.example/a/./b/../c", "https://x.example/a/c"),
        ("https://x.example/a/b/..", "https://x.example/a/"),
        ("https://x.example/%7euser/%2f", "https://x.example/~user/%2F"),
        ("https://[::1]:8443/p", "https://[::1]:8443/p"),
    ],
)
def test_htu_normalisation_examples(uri: str, expected: str) -> None:
    assert dpop.normalize_htu(uri) == expected
