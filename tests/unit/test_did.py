"""Tests for intyg.did: did:jwk, did:key, did:web and verification method selection."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

from intyg import did, jose
from intyg.fetch import FetchResponse, fetch_from_mapping

# -- test vectors -------------------------------------------------------------------------

# did-jwk method specification (github.com/quartzjer/did-jwk spec.md), "Examples / P-256".
DID_JWK_P256 = (
    "did:jwk:eyJjcnYiOiJQLTI1NiIsImt0eSI6IkVDIiwieCI6ImFjYklRaXVNczNpOF91c3pFakoydHBUdFJNNEVVM3l6"
    "OTFQSDZDZEgyVjAiLCJ5IjoiX0tjeUxqOXZXTXB0bm1LdG00NkdxRHo4d2Y3NEk1TEtncmwyR3pIM25TRSJ9"
)
DID_JWK_P256_JWK = {
    "crv": "P-256",
    "kty": "EC",
    "x": "acbIQiuMs3i8_uszEjJ2tpTtRM4EU3yz91PH6CdH2V0",
    "y": "_KcyLj9vWMptnmKtm46GqDz8wf74I5LKgrl2GzH3nSE",
}
# Same specification, "Examples / X25519" (use "enc": a key type we do not accept).
DID_JWK_X25519 = (
    "did:jwk:eyJrdHkiOiJPS1AiLCJjcnYiOiJYMjU1MTkiLCJ1c2UiOiJlbmMiLCJ4IjoiM3A3YmZYdDl3YlRUVzJIQzdPUTFO"
    "ei1EUThoYmVHZE5yZngtRkctSUswOCJ9"
)

# w3c-ccg/did-method-key test-vectors/nist-curves.json (P-256 entries).
DID_KEY_P256_VECTORS = {
    "did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv": (
        "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns",
        "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM",
    ),
    "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169": (
        "fyNYMN0976ci7xqiSdag3buk-ZCwgXU4kz9XNkBlNUI",
        "hW2ojTNfH7Jbi8--CJUo3OCbH3y5n91g-IMA9MLMbTU",
    ),
}
# Same file, a P-384 entry (codec 0x1201): not a key type we accept.
DID_KEY_P384 = "did:key:z82Lm1MpAkeJcix9K8TMiLd5NMAhnwkjjCBeWHXyu3U4oT2MVJJKXkcVBgjGhnLBn2Kaau9"

# w3c-ccg/did-method-key test-vectors/ed25519-x25519.json: seed -> DID, publicKeyBase58.
DID_KEY_ED25519_VECTORS = [
    (
        "00" * 32,
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
    ),
    (
        "00" * 31 + "01",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
    ),
    (
        "00" * 31 + "02",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
    ),
    (
        "00" * 31 + "03",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
    ),
    (
        "00" * 31 + "04",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
    ),
]

# did:web method specification examples (w3c-ccg.github.io/did-method-web).
DID_WEB_URL_VECTORS = [
    ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
    ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
    ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
]


def _ed25519_public(seed_hex: str) -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)).public_key()


# -- base58btc (draft-msporny-base58) -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
        (bytes(range(10)), "1kA3B2yGe2z4"),
        (b"", ""),
        (b"\0\0", "11"),
    ],
)
def test_base58btc_vectors(data: bytes, encoded: str) -> None:
    assert did.base58btc_encode(data) == encoded
    assert did.base58btc_decode(encoded) == data


@given(st.binary(max_size=80))
def test_base58btc_round_trip(data: bytes) -> None:
    assert did.base58btc_decode(did.base58btc_encode(data)) == data


@pytest.mark.parametrize("bad", ["0abc", "Il", "abc+", "ab c"])
def test_base58btc_rejects_characters_outside_alphabet(bad: str) -> None:
    with pytest.raises(did.DIDError, match="malformed base58btc"):
        did.base58btc_decode(bad)


def test_base58btc_rejects_overlong_input() -> None:
    with pytest.raises(did.DIDError, match="too long"):
        did.base58btc_decode("2" * (did.MAX_BASE58_LENGTH + 1))


# -- did:key -------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "did_key", "base58_public"), DID_KEY_ED25519_VECTORS)
def test_did_key_ed25519_vectors(seed: str, did_key: str, base58_public: str) -> None:
    public = _ed25519_public(seed)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert did.base58btc_encode(raw) == base58_public
    assert did.encode_did_key(jose.key_from_public_key(public)) == did_key
    key = did.resolve_verification_key(did_key)
    assert key.alg == "EdDSA"
    assert key.public_jwk()["x"] == jose.b64url_encode(raw)
    assert key.kid == f"{did_key}#{did_key[len('did:key:') :]}"


@pytest.mark.parametrize(("did_key", "xy"), DID_KEY_P256_VECTORS.items())
def test_did_key_p256_vectors(did_key: str, xy: tuple[str, str]) -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": xy[0], "y": xy[1]}
    assert did.encode_did_key(jose.key_from_jwk(jwk)) == did_key
    key = did.resolve_verification_key(did_key + "#" + did_key[len("did:key:") :])
    assert {k: v for k, v in key.public_jwk().items() if k != "kid"} == jwk


def test_did_key_document_shape() -> None:
    did_key = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    vm_id = did_key + "#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    document = did.resolve(did_key)
    assert document["id"] == did_key
    assert document["verificationMethod"] == [
        {
            "id": vm_id,
            "type": "Multikey",
            "controller": did_key,
            "publicKeyMultibase": "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        }
    ]
    assert document["assertionMethod"] == [vm_id]
    assert document["authentication"] == [vm_id]
    assert did.verification_method_id(did_key) == vm_id


p256_scalars = st.integers(min_value=1, max_value=2**255)
ed25519_seeds = st.binary(min_size=32, max_size=32)


@given(p256_scalars)
def test_did_key_p256_round_trip(scalar: int) -> None:
    key = jose.key_from_public_key(ec.derive_private_key(scalar, ec.SECP256R1()).public_key())
    resolved = did.resolve_verification_key(did.encode_did_key(key))
    assert resolved.public_jwk()["x"] == key.public_jwk()["x"]
    assert resolved.public_jwk()["y"] == key.public_jwk()["y"]


@given(ed25519_seeds)
def test_did_key_ed25519_round_trip(seed: bytes) -> None:
    key = jose.key_from_public_key(ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key())
    multikey = did.encode_multikey(key)
    assert multikey.startswith("z6Mk")
    assert did.decode_multikey(multikey).thumbprint() == key.thumbprint()


def test_did_key_rejects_p384() -> None:
    with pytest.raises(did.DIDError, match="unsupported multikey type"):
        did.resolve_verification_key(DID_KEY_P384)


def test_did_key_rejects_other_multibase() -> None:
    with pytest.raises(did.DIDError, match="only base58btc"):
        did.resolve("did:key:m7QFeRqL")


def test_did_key_rejects_wrong_length() -> None:
    short = "did:key:z" + did.base58btc_encode(bytes([0xED, 0x01]) + bytes(31))
    with pytest.raises(did.DIDError, match="wrong length"):
        did.resolve(short)


def test_did_key_rejects_uncompressed_or_invalid_point() -> None:
    not_compressed = "did:key:z" + did.base58btc_encode(bytes([0x80, 0x24, 0x04]) + bytes(32))
    with pytest.raises(did.DIDError, match="not a valid compressed point"):
        did.resolve(not_compressed)
    # x = 1: x^3 - 3x + b is a quadratic non-residue mod p, so no P-256 point has it.
    off_curve = "did:key:z" + did.base58btc_encode(
        bytes([0x80, 0x24, 0x02]) + (1).to_bytes(32, "big")
    )
    with pytest.raises(did.DIDError, match="not a valid compressed point"):
        did.resolve(off_curve)


def test_did_key_rejects_non_minimal_varint() -> None:
    padded = "did:key:z" + did.base58btc_encode(bytes([0xED, 0x81, 0x00]) + bytes(32))
    with pytest.raises(did.DIDError, match="minimally encoded"):
        did.resolve(padded)


def test_did_key_rejects_fragment_of_other_key() -> None:
    _, did_key, _ = DID_KEY_ED25519_VECTORS[0]
    other = DID_KEY_ED25519_VECTORS[1][1][len("did:key:") :]
    with pytest.raises(did.DIDError, match="verification method not found"):
        did.resolve_verification_key(f"{did_key}#{other}")


# -- did:jwk -------------------------------------------------------------------------------


def test_did_jwk_spec_vector_encode() -> None:
    assert did.encode_did_jwk(jose.key_from_jwk(DID_JWK_P256_JWK)) == DID_JWK_P256


def test_did_jwk_spec_vector_document() -> None:
    vm_id = DID_JWK_P256 + "#0"
    # As in the specification's example (whose `authentication` entry has a stray "$").
    assert did.resolve(DID_JWK_P256) == {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/jws-2020/v1",
        ],
        "id": DID_JWK_P256,
        "verificationMethod": [
            {
                "id": vm_id,
                "type": "JsonWebKey2020",
                "controller": DID_JWK_P256,
                "publicKeyJwk": DID_JWK_P256_JWK,
            }
        ],
        "assertionMethod": [vm_id],
        "authentication": [vm_id],
        "capabilityInvocation": [vm_id],
        "capabilityDelegation": [vm_id],
        "keyAgreement": [vm_id],
    }


def test_did_jwk_resolves_key_with_and_without_fragment() -> None:
    with_fragment = did.resolve_verification_key(DID_JWK_P256 + "#0")
    without = did.resolve_verification_key(DID_JWK_P256, relationship="authentication")
    assert with_fragment.kid == without.kid == DID_JWK_P256 + "#0"
    assert with_fragment.thumbprint() == jose.key_from_jwk(DID_JWK_P256_JWK).thumbprint()
    assert did.verification_method_id(DID_JWK_P256) == DID_JWK_P256 + "#0"


@given(st.one_of(p256_scalars.map(lambda s: ("ES256", s)), ed25519_seeds.map(lambda b: ("Ed", b))))
def test_did_jwk_round_trip(material: tuple[str, object]) -> None:
    kind, value = material
    if kind == "ES256":
        public = ec.derive_private_key(value, ec.SECP256R1()).public_key()  # type: ignore[arg-type]
    else:
        public = ed25519.Ed25519PrivateKey.from_private_bytes(value).public_key()  # type: ignore[arg-type]
    key = jose.key_from_public_key(public)
    resolved = did.resolve_verification_key(did.encode_did_jwk(key) + "#0")
    assert resolved.thumbprint() == key.thumbprint()


def _did_jwk(jwk: dict) -> str:
    return "did:jwk:" + jose.b64url_encode(json.dumps(jwk).encode())


def test_did_jwk_rejects_private_key_material() -> None:
    private = jose.generate_key().private_jwk()
    with pytest.raises(did.DIDError, match="private key material"):
        did.resolve(_did_jwk(private))


def test_did_jwk_rejects_disallowed_key_type() -> None:
    with pytest.raises(did.DIDError, match="unsupported JWK key type"):
        did.resolve(DID_JWK_X25519)


def test_did_jwk_rejects_non_json() -> None:
    with pytest.raises(did.DIDError, match="base64url JSON"):
        did.resolve("did:jwk:" + jose.b64url_encode(b"not json"))


def test_did_jwk_rejects_non_object() -> None:
    with pytest.raises(did.DIDError, match="JWK object"):
        did.resolve("did:jwk:" + jose.b64url_encode(b"[1]"))


def test_did_jwk_rejects_fragment_other_than_0() -> None:
    with pytest.raises(did.DIDError, match="verification method not found"):
        did.resolve_verification_key(DID_JWK_P256 + "#1")


def test_did_jwk_use_enc_is_not_an_assertion_method() -> None:
    jwk = dict(DID_JWK_P256_JWK, use="enc")
    document = did.resolve(_did_jwk(jwk))
    assert "assertionMethod" not in document and "keyAgreement" in document
    with pytest.raises(did.DIDError, match="not listed under assertionMethod"):
        did.resolve_verification_key(_did_jwk(jwk) + "#0")


def test_did_jwk_use_sig_has_no_key_agreement() -> None:
    document = did.resolve(_did_jwk(dict(DID_JWK_P256_JWK, use="sig")))
    assert "keyAgreement" not in document and "assertionMethod" in document


# -- generic DID URL rules ----------------------------------------------------------------


def test_rejects_unsupported_method() -> None:
    with pytest.raises(did.DIDError, match="unsupported DID method"):
        did.resolve_verification_key("did:example:123#k")


@pytest.mark.parametrize("value", ["", "did:", "did:web", "DID:web:example.com", "urn:x:y"])
def test_rejects_malformed_did(value: str) -> None:
    with pytest.raises(did.DIDError, match="not a syntactically valid DID"):
        did.resolve(value)


def test_rejects_overlong_did_url() -> None:
    with pytest.raises(did.DIDError, match="reasonable length"):
        did.resolve("did:web:" + "a" * did.MAX_DID_URL_LENGTH)


def test_rejects_empty_fragment() -> None:
    with pytest.raises(did.DIDError, match="fragment is empty or malformed"):
        did.resolve_verification_key(DID_JWK_P256 + "#")


def test_resolve_rejects_did_url_with_fragment() -> None:
    with pytest.raises(did.DIDError, match="expected a DID, not a DID URL"):
        did.resolve(DID_JWK_P256 + "#0")


def test_rejects_unknown_relationship() -> None:
    with pytest.raises(did.DIDError, match="unsupported verification relationship"):
        did.resolve_verification_key(DID_JWK_P256 + "#0", relationship="keyAgreement")


# -- did:web: DID -> URL ------------------------------------------------------------------


@pytest.mark.parametrize(("did_web", "url"), DID_WEB_URL_VECTORS)
def test_did_web_url_spec_examples(did_web: str, url: str) -> None:
    assert did.did_web_url(did_web) == url


def test_did_web_url_http_only_for_localhost_in_development() -> None:
    assert (
        did.did_web_url("did:web:localhost%3A8000") == "https://localhost:8000/.well-known/did.json"
    )
    assert (
        did.did_web_url("did:web:localhost%3A8000", allow_http_localhost=True)
        == "http://localhost:8000/.well-known/did.json"
    )
    assert did.did_web_url("did:web:example.com", allow_http_localhost=True).startswith("https:")


def test_did_web_url_loopback_ip_only_in_development() -> None:
    # `intyg up` names services by 127.0.0.1 and a port: allowed, over http, in development.
    assert (
        did.did_web_url("did:web:127.0.0.1%3A8404", allow_http_localhost=True)
        == "http://127.0.0.1:8404/.well-known/did.json"
    )
    assert (
        did.did_web_url("did:web:127.0.0.2%3A81:verifier", allow_http_localhost=True)
        == "http://127.0.0.2:81/verifier/did.json"
    )
    with pytest.raises(did.DIDError, match="must not use an IP address"):
        did.did_web_url("did:web:127.0.0.1%3A8404")
    for other in (
        "did:web:10.0.0.1",
        "did:web:192.168.1.1%3A80",
        "did:web:127.1",
        "did:web:2130706433",
    ):
        with pytest.raises(did.DIDError, match="must not use an IP address"):
            did.did_web_url(other, allow_http_localhost=True)


@pytest.mark.parametrize(
    ("did_web", "message"),
    [
        ("did:web:..", "not a valid DNS name"),
        ("did:web:.example.com", "not a valid DNS name"),
        ("did:web:-bad.example.com", "not a valid DNS name"),
        ("did:web:example.com%2Fevil", "must not contain percent-encoded"),
        ("did:web:evil.example%40good.example", "must not contain percent-encoded"),
        ("did:web:example.com%3A443%3A80", "more than one port"),
        ("did:web:example.com%3A0", "port is not valid"),
        ("did:web:example.com%3A99999", "port is not valid"),
        ("did:web:example.com%3Ahttp", "port is not valid"),
        ("did:web:127.0.0.1", "must not use an IP address"),
        ("did:web:2130706433", "must not use an IP address"),
        ("did:web:example.com::alice", "path segment is empty or not allowed"),
        ("did:web:example.com:..:admin", "path segment is empty or not allowed"),
        ("did:web:example.com:.", "path segment is empty or not allowed"),
        ("did:web:example.com:a%2Fb", "path segment is empty or not allowed"),
        ("did:web:example.com/evil", "path and query are not supported"),
        ("did:web:example.com?service=x", "path and query are not supported"),
        ("did:web:user@example.com", "not a syntactically valid DID"),
        ("did:web:example.com:", "not a syntactically valid DID"),
        ("did:web:[::1]", "not a syntactically valid DID"),
    ],
)
def test_did_web_url_rejects_abuse(did_web: str, message: str) -> None:
    with pytest.raises(did.DIDError, match=message):
        did.did_web_url(did_web)


def test_did_web_url_rejects_other_methods_and_fragments() -> None:
    with pytest.raises(did.DIDError, match="expected a did:web DID"):
        did.did_web_url(DID_JWK_P256)
    with pytest.raises(did.DIDError, match="expected a did:web DID"):
        did.did_web_url("did:web:example.com#key-1")


# -- did:web: resolution ------------------------------------------------------------------

DID_WEB = "did:web:issuer.example:af"
DID_WEB_DOC_URL = "https://issuer.example/af/did.json"


def _web_document(key: jose.Key, **changes: object) -> dict:
    jwk = {k: v for k, v in key.public_jwk().items() if k != "kid"}
    document: dict = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": DID_WEB,
        "verificationMethod": [
            {"id": "#key-1", "type": "JsonWebKey", "controller": DID_WEB, "publicKeyJwk": jwk},
            {
                "id": DID_WEB + "#key-2",
                "type": "Multikey",
                "controller": DID_WEB,
                "publicKeyMultibase": did.encode_multikey(key),
            },
        ],
        "assertionMethod": ["#key-1", DID_WEB + "#key-2"],
        "authentication": [DID_WEB + "#key-2"],
    }
    document.update(changes)
    return document


def _fetch(document: object, content_type: str = "application/did+json"):
    body = json.dumps(document).encode()
    return fetch_from_mapping({DID_WEB_DOC_URL: FetchResponse(body, content_type)})


@pytest.fixture(scope="module")
def web_key() -> jose.Key:
    return jose.generate_key()


def test_did_web_resolves_jwk_and_multikey_methods(web_key: jose.Key) -> None:
    fetch = _fetch(_web_document(web_key))
    first = did.resolve_verification_key(DID_WEB + "#key-1", fetch)
    second = did.resolve_verification_key(DID_WEB + "#key-2", fetch, relationship="authentication")
    assert first.kid == DID_WEB + "#key-1" and second.kid == DID_WEB + "#key-2"
    assert first.thumbprint() == second.thumbprint() == web_key.thumbprint()
    assert did.resolve(DID_WEB, fetch)["id"] == DID_WEB


def test_did_web_accepts_json_2020_and_embedded_methods(web_key: jose.Key) -> None:
    jwk = {k: v for k, v in web_key.public_jwk().items() if k != "kid"}
    embedded = {
        "id": "#auth",
        "type": "JsonWebKey2020",
        "controller": DID_WEB,
        "publicKeyJwk": jwk,
    }
    fetch = _fetch(_web_document(web_key, authentication=[embedded]))
    key = did.resolve_verification_key(DID_WEB + "#auth", fetch, relationship="authentication")
    assert key.thumbprint() == web_key.thumbprint()
    with pytest.raises(did.DIDError, match="not listed under assertionMethod"):
        did.resolve_verification_key(DID_WEB + "#auth", fetch)


def test_did_web_single_method_without_fragment(web_key: jose.Key) -> None:
    fetch = _fetch(_web_document(web_key))
    key = did.resolve_verification_key(DID_WEB, fetch, relationship="authentication")
    assert key.kid == DID_WEB + "#key-2"


def test_did_web_ambiguous_without_fragment(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="must name a verification method"):
        did.resolve_verification_key(DID_WEB, _fetch(_web_document(web_key)))


def test_did_web_needs_fetch() -> None:
    with pytest.raises(did.DIDError, match="needs a fetch function"):
        did.resolve_verification_key(DID_WEB + "#key-1")


def test_did_web_fetch_failure() -> None:
    with pytest.raises(did.DIDError, match="could not retrieve"):
        did.resolve_verification_key(DID_WEB + "#key-1", fetch_from_mapping({}))


def test_did_web_passes_accept_header(web_key: jose.Key) -> None:
    seen: list[tuple[str, str]] = []

    def fetch(url: str, accept: str) -> FetchResponse:
        seen.append((url, accept))
        return FetchResponse(json.dumps(_web_document(web_key)).encode(), "application/json")

    did.resolve_verification_key(DID_WEB + "#key-1", fetch)
    assert seen == [(DID_WEB_DOC_URL, "application/did+json, application/json")]


def test_did_web_rejects_unexpected_media_type(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="unexpected media type"):
        did.resolve(DID_WEB, _fetch(_web_document(web_key), "text/html"))


def test_did_web_rejects_oversized_document(web_key: jose.Key) -> None:
    document = _web_document(web_key, padding="x" * did.MAX_DID_DOCUMENT_BYTES)
    with pytest.raises(did.DIDError, match="larger than"):
        did.resolve(DID_WEB, _fetch(document))


def test_did_web_rejects_duplicate_json_members() -> None:
    body = b'{"id": "did:web:issuer.example:af", "id": "did:web:evil.example"}'
    fetch = fetch_from_mapping({DID_WEB_DOC_URL: body})
    with pytest.raises(did.DIDError, match="duplicate member name"):
        did.resolve(DID_WEB, fetch)


def test_did_web_rejects_non_object_document() -> None:
    with pytest.raises(did.DIDError, match="must be a JSON object"):
        did.resolve(DID_WEB, _fetch([DID_WEB]))


def test_did_web_rejects_id_mismatch(web_key: jose.Key) -> None:
    fetch = _fetch(_web_document(web_key, id="did:web:evil.example"))
    with pytest.raises(did.DIDError, match="id does not match the DID"):
        did.resolve_verification_key(DID_WEB + "#key-1", fetch)


def test_did_web_rejects_missing_method(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="verification method not found"):
        did.resolve_verification_key(DID_WEB + "#key-9", _fetch(_web_document(web_key)))


def test_did_web_rejects_method_outside_relationship(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="not listed under authentication"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key)), relationship="authentication"
        )


def test_did_web_rejects_foreign_controller(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0]["controller"] = "did:web:evil.example"
    with pytest.raises(did.DIDError, match="controller does not match"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_ignores_methods_of_other_dids(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0]["id"] = "did:web:evil.example#key-1"
    document["assertionMethod"] = ["did:web:evil.example#key-1"]
    with pytest.raises(did.DIDError, match="verification method not found"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_rejects_duplicate_method_ids(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][1]["id"] = "#key-1"
    with pytest.raises(did.DIDError, match="duplicate verification method ids"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_rejects_private_jwk(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0]["publicKeyJwk"] = web_key.private_jwk()
    with pytest.raises(did.DIDError, match="private key material"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_rejects_private_key_member(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0]["privateKeyJwk"] = web_key.private_jwk()
    with pytest.raises(did.DIDError, match="private key material"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_rejects_disallowed_jwk_type(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0]["publicKeyJwk"] = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    with pytest.raises(did.DIDError, match="unsupported JWK key type"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


@pytest.mark.parametrize(
    "method_changes",
    [
        {"type": "EcdsaSecp256k1VerificationKey2019"},
        {"type": "Multikey"},  # Multikey with publicKeyJwk
        {"publicKeyMultibase": "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"},  # both
    ],
)
def test_did_web_rejects_unsupported_method_type(web_key: jose.Key, method_changes: dict) -> None:
    document = _web_document(web_key)
    document["verificationMethod"][0].update(method_changes)
    with pytest.raises(did.DIDError, match="unsupported verification method type"):
        did.resolve_verification_key(DID_WEB + "#key-1", _fetch(document))


def test_did_web_rejects_malformed_arrays(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="verificationMethod must be an array"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key, verificationMethod={}))
        )
    with pytest.raises(did.DIDError, match="assertionMethod must be an array"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key, assertionMethod="#key-1"))
        )
    with pytest.raises(did.DIDError, match="entries must be strings or objects"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key, assertionMethod=[1]))
        )
    with pytest.raises(did.DIDError, match="verification method must be a JSON object"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key, verificationMethod=["#key-1"]))
        )
    with pytest.raises(did.DIDError, match="id must be a string"):
        did.resolve_verification_key(
            DID_WEB + "#key-1", _fetch(_web_document(web_key, verificationMethod=[{"id": 1}]))
        )


# -- verification_key: selection from a cached document ----------------------------------


def test_verification_key_accepts_any_listed_relationship(web_key: jose.Key) -> None:
    document = _web_document(web_key)
    both = ("authentication", "assertionMethod")
    key_1 = did.verification_key(document, DID_WEB + "#key-1", relationships=both)
    key_2 = did.verification_key(document, DID_WEB + "#key-2", relationships=both)
    assert key_1.thumbprint() == key_2.thumbprint() == web_key.thumbprint()
    assert key_1.kid == DID_WEB + "#key-1"
    with pytest.raises(did.DIDError, match="not listed under authentication"):
        did.verification_key(document, DID_WEB + "#key-1", relationships=("authentication",))


def test_verification_key_refuses_a_document_of_another_did(web_key: jose.Key) -> None:
    with pytest.raises(did.DIDError, match="id does not match the DID"):
        did.verification_key(_web_document(web_key), "did:web:evil.example#key-1")


def test_verification_key_refuses_unknown_relationships(web_key: jose.Key) -> None:
    for relationships in ((), ("keyAgreement",), ("authentication", "capabilityInvocation")):
        with pytest.raises(did.DIDError, match="relationship"):
            did.verification_key(
                _web_document(web_key), DID_WEB + "#key-1", relationships=relationships
            )


def test_parse_did_web_document_is_the_fetch_step(web_key: jose.Key) -> None:
    body = json.dumps(_web_document(web_key)).encode()
    parsed = did.parse_did_web_document(DID_WEB, FetchResponse(body, "application/did+json"))
    assert parsed["id"] == DID_WEB
    with pytest.raises(did.DIDError, match="too large|exceeds|bytes"):
        did.parse_did_web_document(
            DID_WEB, FetchResponse(b" " * did.MAX_DID_DOCUMENT_BYTES + body, "application/json")
        )
    with pytest.raises(did.DIDError, match="media type"):
        did.parse_did_web_document(DID_WEB, FetchResponse(body, "text/html"))
