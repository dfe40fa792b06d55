"""The live issuer's credential, nonce, deferred and notification endpoints, key proofs in
every malformed shape, credential content, status lists and offers (security.md §1.1 for
the key-proof slot, §1.3, §1.4, T121, T124)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from intyg import jose, oid4vci, sdjwt, status, strict_json, vcdm, x509
from tests.issuer.wallet_sim import Wallet

from .actors import ERIK, Issuing, proof_body
from .fakes import b64, flip_signature_bit, public_key_secrets, raw_jws
from .live import ISSUER_STATE, TIMEOUT, Live, Unchanged, assert_no_leak, refused

PROOF_TYP = oid4vci.PROOF_TYP


@pytest.fixture(scope="module")
def ready(af: Issuing) -> Iterator[tuple[Wallet, oid4vci.TokenResponse]]:
    """One DPoP-bound token for the module's refusals (refusals never consume it)."""
    yield af.token()


def state(af: Issuing) -> dict[str, tuple[str, ...]]:
    return {af.agency: ISSUER_STATE}


# -- key proofs (T001-T018 in the proof slot, T038, T041, T042) ------------------------------


def _claims(af: Issuing, c_nonce: str, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"aud": af.url, "iat": int(time.time()), "nonce": c_nonce}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _header(key: jose.Key, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "ES256", "typ": PROOF_TYP, "jwk": key.public_jwk()}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def _signed(af: Issuing, key: jose.Key, c_nonce: str, **claims: Any) -> str:
    return raw_jws(_header(key), _claims(af, c_nonce, **claims), key)


def _p384_proof(af: Issuing, nonce: str, alg: str) -> str:
    """A P-384 key in the header, signed with it (ES384) or announced as ES256 (T003)."""
    private = ec.generate_private_key(ec.SECP384R1())
    numbers = private.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-384",
        "x": jose.b64url_encode(numbers.x.to_bytes(48, "big")),
        "y": jose.b64url_encode(numbers.y.to_bytes(48, "big")),
    }
    signing_input = f"{b64({'alg': alg, 'typ': PROOF_TYP, 'jwk': jwk})}.{b64(_claims(af, nonce))}"
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384())))
    return f"{signing_input}.{jose.b64url_encode(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def _rs256_proof(af: Issuing, nonce: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import padding

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = private.public_key().public_numbers().n
    jwk = {"kty": "RSA", "n": jose.b64url_encode(n.to_bytes(256, "big")), "e": "AQAB"}
    signing_input = (
        f"{b64({'alg': 'RS256', 'typ': PROOF_TYP, 'jwk': jwk})}.{b64(_claims(af, nonce))}"
    )
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{jose.b64url_encode(signature)}"


def _hmac_proof(af: Issuing, nonce: str, form: str) -> str:
    key = jose.generate_key("ES256")
    secret = public_key_secrets(key)[form]
    return raw_jws(_header(key, alg="HS256"), _claims(af, nonce), hmac_secret=secret)


def _jwe_in_proof_slot(af: Issuing, nonce: str) -> str:
    from intyg import jwe

    _, public = jwe.new_encryption_key()
    return jwe.encrypt(_claims(af, nonce), public, enc="A256GCM")


def _json_serialization(af: Issuing, nonce: str) -> str:
    key = jose.generate_key("ES256")
    compact = _signed(af, key, nonce)
    protected, payload, signature = compact.split(".")
    return strict_json.dumps(
        {
            "protected": protected,
            "payload": payload,
            "signature": signature,
            "header": {"alg": "none"},
        }
    )


def _duplicate(af: Issuing, nonce: str, where: str) -> str:
    key = jose.generate_key("ES256")
    header = json.dumps(_header(key))
    claims = json.dumps(_claims(af, nonce))
    if where == "header_alg":
        header = header[:-1] + ', "alg": "ES256"}'
    elif where == "payload_nonce":
        claims = claims[:-1] + ', "nonce": "' + nonce + '"}'
    else:
        claims = claims[:-1] + ', "aud": "' + af.url + '"}'
    return raw_jws(header, claims, key)


def _base64_case(af: Issuing, nonce: str, case: str) -> str:
    good = _signed(af, jose.generate_key("ES256"), nonce)
    head, payload, signature = good.split(".")
    return {
        "padding": f"{head}=.{payload}.{signature}",
        "plus_slash": f"{head}.{payload}.{signature[:-2]}+/",
        "whitespace": f"{head}. {payload}.{signature}",
        "non_ascii": f"{head}.{payload}ö.{signature}",
        "two_dots_only": f"{head}.{payload}",
        "four_dots": f"{head}.{payload}.{signature}..",
        "empty_segments": "..",
        "empty_signature_segment": f"{head}.{payload}.",
    }[case]


def _time_case(af: Issuing, nonce: str, case: str) -> str:
    key = jose.generate_key("ES256")
    now = int(time.time())
    if case in ("iat_1e309", "iat_5000_digits"):
        literal = "1e309" if case == "iat_1e309" else "1" * 5000
        claims = json.dumps({"aud": af.url, "nonce": nonce})[:-1] + f', "iat": {literal}}}'
        return raw_jws(_header(key), claims, key)
    value: Any = {"iat_string": str(now), "iat_float": now + 0.5, "iat_negative": -now}[case]
    return _signed(af, key, nonce, iat=value)


ProofCase = Callable[[Issuing, str], str]


def _cases() -> dict[str, ProofCase]:
    k = jose.generate_key
    cases: dict[str, ProofCase] = {
        "T001_alg_none": lambda a, n: raw_jws(_header(k(), alg="none"), _claims(a, n)),
        "T001_alg_None": lambda a, n: raw_jws(_header(k(), alg="None"), _claims(a, n)),
        "T001_alg_NONE": lambda a, n: raw_jws(_header(k(), alg="NONE"), _claims(a, n)),
        "T003_es384_header_p256_key": lambda a, n: (
            lambda key: raw_jws(_header(key, alg="ES384"), _claims(a, n), key)
        )(k()),
        "T003_p384_key_es384": lambda a, n: _p384_proof(a, n, "ES384"),
        "T003_p384_key_es256_header": lambda a, n: _p384_proof(a, n, "ES256"),
        "T003_rs256_rsa_key": _rs256_proof,
        "T003_eddsa_not_allowed": lambda a, n: (
            lambda key: raw_jws(_header(key, alg="EdDSA"), _claims(a, n), key)
        )(k("EdDSA")),
        "T004_crit_unknown": lambda a, n: (
            lambda key: raw_jws(_header(key, crit=["unknown"], unknown=1), _claims(a, n), key)
        )(k()),
        "T004_crit_cnf": lambda a, n: (
            lambda key: raw_jws(
                _header(key, crit=["cnf"], cnf={"jwk": key.public_jwk()}), _claims(a, n), key
            )
        )(k()),
        "T006_jwe_instead_of_jws": _jwe_in_proof_slot,
        "T007_jwk_and_kid": lambda a, n: (
            lambda key: raw_jws(_header(key, kid="key-1"), _claims(a, n), key)
        )(k()),
        "T007_jwk_and_x5c": lambda a, n: (
            lambda key: raw_jws(_header(key, x5c=["MIIB"]), _claims(a, n), key)
        )(k()),
        "T008_private_jwk": lambda a, n: (
            lambda key: raw_jws(_header(key, jwk=key.private_jwk()), _claims(a, n), key)
        )(k()),
        "T009_json_serialization": _json_serialization,
        "T013_oversized_header": lambda a, n: (
            lambda key: raw_jws(_header(key, pad="x" * 70_000), _claims(a, n), key)
        )(k()),
        "T016_duplicate_header_alg": lambda a, n: _duplicate(a, n, "header_alg"),
        "T016_duplicate_payload_nonce": lambda a, n: _duplicate(a, n, "payload_nonce"),
        "T016_duplicate_payload_aud": lambda a, n: _duplicate(a, n, "payload_aud"),
        "T017_aud_trailing_slash": lambda a, n: _signed(a, k(), n, aud=a.url + "/"),
        "T017_aud_prefix": lambda a, n: _signed(a, k(), n, aud=a.url[:-1]),
        "T017_aud_without_scheme": lambda a, n: _signed(a, k(), n, aud=a.url.split("//")[1]),
        "T017_aud_array_extra": lambda a, n: _signed(a, k(), n, aud=[a.url, "https://x.test"]),
        "T038_flipped_signature_bit": lambda a, n: flip_signature_bit(_signed(a, k(), n)),
        "T038_signed_by_another_key": lambda a, n: raw_jws(_header(k()), _claims(a, n), k()),
        "T041_iat_ten_years_ahead": lambda a, n: _signed(
            a, k(), n, iat=int(time.time()) + 315_360_000
        ),
        "T041_iat_stale": lambda a, n: _signed(a, k(), n, iat=int(time.time()) - 3600),
        "T042_iss_on_anonymous_token": lambda a, n: _signed(a, k(), n, iss="https://w.test"),
        "wrong_typ": lambda a, n: (
            lambda key: raw_jws(_header(key, typ="JWT"), _claims(a, n), key)
        )(k()),
        "no_nonce": lambda a, n: _signed(a, k(), n, nonce=None),
    }
    for form in ("pem", "der", "jwk", "openssh"):
        cases[f"T002_hs256_public_key_{form}"] = lambda a, n, f=form: _hmac_proof(a, n, f)
    for case in (
        "padding",
        "plus_slash",
        "whitespace",
        "non_ascii",
        "two_dots_only",
        "four_dots",
        "empty_segments",
        "empty_signature_segment",
    ):
        cases[f"T014_{case}"] = lambda a, n, c=case: _base64_case(a, n, c)
    for case in ("iat_string", "iat_float", "iat_negative", "iat_1e309", "iat_5000_digits"):
        cases[f"T018_{case}"] = lambda a, n, c=case: _time_case(a, n, c)
    return cases


PROOF_CASES = _cases()


@pytest.mark.parametrize("case", sorted(PROOF_CASES))
def test_bad_key_proof_is_invalid_proof(live: Live, af: Issuing, ready: Any, case: str) -> None:
    """Every malformed key proof: 400 ``invalid_proof``, nothing issued, the c_nonce not
    consumed (T001-T018 in the proof slot, T038, T041, T042)."""
    wallet, token = ready
    nonce = wallet.nonce()
    proof = PROOF_CASES[case](af, nonce)
    with Unchanged(live, state(af)):
        response = wallet.credential_request(token, proof_body(af.sd_jwt_id, [proof]))
        refused(live, response, 400, "invalid_proof")
        if case == "T008_private_jwk":
            private = json.loads(jose.b64url_decode(proof.split(".")[0]))["jwk"]["d"]
            assert private not in response.text


def test_t013_ten_megabyte_proof_is_413_before_decoding(
    live: Live, af: Issuing, ready: Any
) -> None:
    wallet, token = ready
    huge = "e" * (10 * 1024 * 1024) + ".e30.sig"
    with Unchanged(live, state(af)):
        response = wallet.credential_request(token, proof_body(af.sd_jwt_id, [huge]))
        refused(live, response, 413, "invalid_request")


# -- the credential request (T036, T037, T039, T043, T044, T046, T047) ----------------------


def _fresh(af: Issuing) -> tuple[Wallet, oid4vci.TokenResponse, str]:
    wallet, token = af.token()
    return wallet, token, wallet.nonce()


def test_t036_replayed_credential_request(live: Live, af: Issuing) -> None:
    wallet, token, nonce = _fresh(af)
    body = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), nonce)])
    assert wallet.credential_request(token, body).status_code == 200
    with Unchanged(live, state(af)):
        refused(live, wallet.credential_request(token, body), 400, "invalid_nonce")
        fresh_key = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), nonce)])
        refused(live, wallet.credential_request(token, fresh_key), 400, "invalid_nonce")


def test_t037_twenty_parallel_requests_with_one_proof(live: Live, af: Issuing) -> None:
    wallet, token, nonce = _fresh(af)
    body = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), nonce)])
    before = live.count(af.agency, "issuances")

    def send(_: int) -> httpx.Response:
        sender = Wallet(httpx.Client(timeout=TIMEOUT), af.url, dpop_key=wallet.dpop_key)
        return sender.credential_request(token, body)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(send, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    for response in responses:
        if response.status_code != 200:
            assert response.status_code in (400, 503), response.text
            if response.status_code == 400:
                assert response.json()["error"] == "invalid_nonce"
            assert_no_leak(live, response)
    assert live.count(af.agency, "issuances") == before + 1


def test_t039_no_proofs(live: Live, af: Issuing, ready: Any) -> None:
    wallet, token = ready
    with Unchanged(live, state(af)):
        for body in ({"credential_configuration_id": af.sd_jwt_id}, proof_body(af.sd_jwt_id, [])):
            refused(live, wallet.credential_request(token, body), 400, "invalid_proof")


def test_t043_batch_rules(live: Live, af: Issuing, ready: Any) -> None:
    wallet, token = ready
    nonce, other_nonce = wallet.nonce(), wallet.nonce()
    key = jose.generate_key("ES256")
    too_many = [wallet.proof(jose.generate_key("ES256"), nonce) for _ in range(6)]  # batch 5
    same_key = [wallet.proof(key, nonce), wallet.proof(key, nonce)]
    mixed = [
        wallet.proof(jose.generate_key("ES256"), nonce),
        wallet.proof(jose.generate_key("ES256"), other_nonce),
    ]
    with Unchanged(live, state(af)):
        for proofs in (too_many, same_key, mixed):
            response = wallet.credential_request(token, proof_body(af.sd_jwt_id, proofs))
            refused(live, response, 400, "invalid_proof")


def test_t043_batch_gets_one_credential_per_key(live: Live, af: Issuing) -> None:
    issued = af.credential(count=3)
    keys = {
        sdjwt.holder_key_from_cnf(sdjwt.decode_unverified(c).claims).thumbprint()
        for c in issued.credentials
    }
    assert keys == {k.thumbprint() for k in issued.keys}


def test_t044_unknown_or_uncovered_configuration(live: Live, af: Issuing, ready: Any) -> None:
    wallet, token = ready
    proofs = {"jwt": [wallet.proof(jose.generate_key("ES256"), wallet.nonce())]}
    cases = [
        (
            {"credential_configuration_id": "Unknown_dc+sd-jwt", "proofs": proofs},
            400,
            "unknown_credential_configuration",
        ),
        ({"credential_identifier": "x", "proofs": proofs}, 400, "invalid_credential_request"),
        (
            {
                "credential_identifier": "x",
                "credential_configuration_id": af.sd_jwt_id,
                "proofs": proofs,
            },
            400,
            "invalid_credential_request",
        ),
        ({"proofs": proofs}, 400, "invalid_credential_request"),
        # The token covers the SD-JWT VC only (RFC 6750 insufficient_scope, §8.3.1.1).
        ({"credential_configuration_id": af.vcdm_id, "proofs": proofs}, 403, "insufficient_scope"),
    ]
    with Unchanged(live, state(af)):
        for body, status_code, error in cases:
            refused(live, wallet.credential_request(token, body), status_code, error)


def test_t044_token_of_one_agency_for_another_agencys_credential(
    live: Live, af: Issuing, myh: Issuing
) -> None:
    """A MYH (diploma) token asking the MYH issuer for the AF identity-class credential."""
    wallet, token = myh.token()
    proofs = {"jwt": [wallet.proof(jose.generate_key("ES256"), wallet.nonce())]}
    with Unchanged(live, {myh.agency: ISSUER_STATE}):
        body = {"credential_configuration_id": af.sd_jwt_id, "proofs": proofs}
        refused(
            live, wallet.credential_request(token, body), 400, "unknown_credential_configuration"
        )


def test_t046_claims_smuggled_into_the_request_are_ignored(live: Live, af: Issuing) -> None:
    wallet, token, nonce = _fresh(af)
    key = jose.generate_key("ES256")
    body = proof_body(af.sd_jwt_id, [wallet.proof(key, nonce)])
    body.update(
        {
            "credentialSubject": {"given_name": "Mallory"},
            "given_name": "Mallory",
            "claims": {"registered": False},
            "birth_date": "2000-01-01",
        }
    )
    response = wallet.credential_request(token, body)
    assert response.status_code == 200, response.text
    claims = sdjwt.decode_unverified(response.json()["credentials"][0]["credential"]).claims
    assert claims["given_name"] == "Anna" and claims["registered"] is True
    assert "birth_date" not in claims


ENCRYPTION_CASES = {
    "unsupported_alg": {
        "jwk": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "alg": "RSA1_5"},
        "enc": "A256GCM",
    },
    "symmetric_jwk": {"jwk": {"kty": "oct", "k": "AAAA", "alg": "A256KW"}, "enc": "A256GCM"},
    "private_jwk": {
        "jwk": jose.generate_key("ES256").private_jwk() | {"alg": "ECDH-ES"},
        "enc": "A256GCM",
    },
    "unsupported_enc": {
        "jwk": jose.generate_key("ES256").public_jwk() | {"alg": "ECDH-ES"},
        "enc": "A128CBC-HS256",
    },
}


@pytest.mark.parametrize("case", sorted(ENCRYPTION_CASES))
def test_t047_response_encryption_parameters(
    live: Live, af: Issuing, ready: Any, case: str
) -> None:
    """The issuer offers no response encryption: any request for it is refused, never
    answered in clear."""
    wallet, token = ready
    body = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), wallet.nonce())])
    body["credential_response_encryption"] = ENCRYPTION_CASES[case]
    with Unchanged(live, state(af)):
        body_text = refused(
            live, wallet.credential_request(token, body), 400, "invalid_encryption_parameters"
        )
        assert "credential" not in body_text
        if case == "private_jwk":
            assert ENCRYPTION_CASES[case]["jwk"]["d"] not in json.dumps(body_text)


def test_t049_no_deferred_endpoint(live: Live, af: Issuing, ready: Any) -> None:
    """Deferred issuance is not offered: not in the metadata, the path does not exist."""
    metadata = httpx.get(oid4vci.well_known_url(af.url), timeout=TIMEOUT).json()
    assert "deferred_credential_endpoint" not in metadata
    wallet, token = ready
    with Unchanged(live, state(af)):
        response = wallet.http.post(
            af.url + "/deferred_credential",
            json={"transaction_id": "x" * 22},
            headers={"Authorization": f"DPoP {token.access_token}"},
        )
        refused(live, response, 404, "not_found")


def test_notification_refusals(live: Live, af: Issuing, ready: Any) -> None:
    wallet, token = ready
    url = af.url + "/notification"
    with Unchanged(live, state(af)):
        refused(
            live,
            wallet.notify(token, "unknown", "credential_accepted"),
            400,
            "invalid_notification_id",
        )
        bad = wallet.http.post(
            url,
            json={"notification_id": "x", "event": "nope"},
            headers=wallet.auth_headers(token, url),
        )
        refused(live, bad, 400, "invalid_notification_request")


def test_notification_of_another_person_is_unknown(live: Live, af: Issuing) -> None:
    """Notifications are scoped to the token's person: Erik's token cannot touch Anna's."""
    issued = af.credential()
    other_wallet, other_token = Issuing.start(live, "issuer-af", ERIK).token()
    assert issued.notification_id
    with Unchanged(live, state(af)):
        refused(
            live,
            other_wallet.notify(other_token, issued.notification_id, "credential_deleted"),
            400,
            "invalid_notification_id",
        )


# -- credential content (T051, T052, T121, T124) --------------------------------------------


def test_t051_t121_issued_sd_jwt_vc(live: Live, af: Issuing) -> None:
    issued = af.credential(count=3)
    salts: set[str] = set()
    for credential, key in zip(issued.credentials, issued.keys, strict=True):
        parsed = sdjwt.parse(credential)
        jws = jose.parse_jws(parsed.issuer_jwt)
        assert jws.header["typ"] == "dc+sd-jwt"
        payload = jws.claims()
        for name in ("iss", "exp", "cnf", "vct", "status", "iat"):
            assert name in payload, name
        disclosed_names = {d.name for d in parsed.disclosures}
        assert not disclosed_names & {"iss", "nbf", "exp", "cnf", "vct", "status", "iat"}
        assert jose.jwk_thumbprint(payload["cnf"]["jwk"]) == key.thumbprint()
        assert payload["iat"] % 86400 == 0 and payload["exp"] % 86400 == 0  # rounded to the day
        for disclosure in parsed.disclosures:
            assert len(jose.b64url_decode(disclosure.salt)) >= 16  # T121: >= 128-bit salts
            salts.add(disclosure.salt)
        top_level = [d for d in parsed.disclosures if d.digest in payload["_sd"]]
        assert len(payload["_sd"]) > len(top_level)  # decoys hide the claim count (T121)
        assert_no_leak_in_header(live, jws.header)
    assert len(salts) == sum(len(sdjwt.parse(c).disclosures) for c in issued.credentials)


def assert_no_leak_in_header(live: Live, header: dict[str, Any]) -> None:
    assert not {"jwk", "jku", "x5u"} & set(header)
    leaf = x509.certs_from_x5c(header["x5c"])[0]
    assert not leaf.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca


def test_t052_issued_vcdm_jwt(live: Live, af: Issuing) -> None:
    issued = af.credential(configuration_id=af.vcdm_id)
    header, payload = vcdm.decode_unverified(issued.credentials[0])
    assert header["typ"] == "vc+jwt"
    assert "vc" not in payload and "vp" not in payload
    issuer = payload["issuer"]
    issuer_id = issuer["id"] if isinstance(issuer, dict) else issuer
    if "iss" in payload:
        assert payload["iss"] == issuer_id
    valid_from, valid_until = vcdm.validity_period(payload)
    if "nbf" in payload or "iat" in payload:
        assert valid_from is not None
        assert int(valid_from.timestamp()) == payload.get("nbf", payload.get("iat"))
    if "exp" in payload:
        assert valid_until is not None and int(valid_until.timestamp()) == payload["exp"]


def test_t124_issuer_keeps_no_credential_or_holder_key(live: Live, af: Issuing) -> None:
    issued = af.credential()
    row = live.rows(af.agency, "SELECT * FROM issuances ORDER BY issued_at DESC LIMIT 1")[0]
    stored = json.dumps([str(v) for v in row])
    jws = sdjwt.parse(issued.credentials[0]).issuer_jwt
    assert jws.split(".")[2] not in stored
    holder = issued.keys[0].public_jwk()
    assert holder["x"] not in stored and issued.keys[0].thumbprint() not in stored


# -- status lists and offers (T053, T054, T056) ----------------------------------------------


def _status_token(live: Live, credential: str) -> tuple[status.StatusListReference, str]:
    reference = status.parse_status_reference(sdjwt.decode_unverified(credential).claims["status"])
    return reference, httpx.get(reference.uri, timeout=TIMEOUT).text


def _list_of(token: str, af_anchor: x509.Certificate, uri: str) -> status.StatusListToken:
    header = jose.parse_jws(token).header
    assert header["typ"] == "statuslist+jwt"
    key = x509.validate_x5c(header["x5c"], [af_anchor]).key
    return status.verify_status_list_token(token, key, uri=uri)


def test_t053_revoking_changes_only_that_bit(live: Live, af: Issuing) -> None:
    issued = af.credential()
    anchor = x509.cert_from_pem((live.data / "trust" / "af-dev-ca.pem").read_text())
    reference, before_token = _status_token(live, issued.credentials[0])
    before = _list_of(before_token, anchor, reference.uri)
    assert before.sub == reference.uri and before.iat and before.exp and before.ttl
    issuance = live.scalar(
        af.agency, "SELECT id FROM issuances WHERE notification_id = :n", n=issued.notification_id
    )
    revoked = af.back_office.client.post(f"{af.url}/backoffice/v1/issuances/{issuance}/revoke")
    assert revoked.status_code == 200, revoked.text
    deadline = time.monotonic() + 30
    while True:
        after = _list_of(httpx.get(reference.uri, timeout=TIMEOUT).text, anchor, reference.uri)
        if after.status(reference) != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert after.status(reference) == 1
    changed = [
        i
        for i in range(before.status_list.size)
        if before.status_list.get(i) != after.status_list.get(i)
    ]
    assert reference.idx in changed
    # Other bits may only change for credentials revoked meanwhile (none in this session).
    assert changed == [reference.idx]


def test_t054_parallel_issuances_get_distinct_unpredictable_indices(
    live: Live, af: Issuing
) -> None:
    with ThreadPoolExecutor(6) as pool:
        batches = list(pool.map(lambda _: af.credential(count=3), range(12)))
    indices = []
    for batch in batches:
        mine = sorted(
            status.parse_status_reference(sdjwt.decode_unverified(c).claims["status"]).idx
            for c in batch.credentials
        )
        assert all(b - a > 1 for a, b in itertools.pairwise(mine)), mine  # not adjacent
        indices += mine
    assert len(indices) == len(set(indices)) == 36
    rows = live.rows(
        af.agency,
        "SELECT status_list_id, status_idx, count(*) FROM issuances "
        "GROUP BY status_list_id, status_idx HAVING count(*) > 1",
    )
    assert rows == []


def test_t056_offer_uri_is_unguessable_single_use_and_minimal(live: Live, af: Issuing) -> None:
    created = af.offer()
    uri = created["credential_offer_uri"]
    offer_id = uri.rsplit("/", 1)[1]
    assert len(jose.b64url_decode(offer_id)) >= 16
    document = httpx.get(uri, timeout=TIMEOUT)
    assert document.status_code == 200
    assert set(document.json()) <= {"credential_issuer", "credential_configuration_ids", "grants"}
    assert_no_leak(live, document)
    assert "Anna" not in document.text
    neighbours = [
        offer_id[:-1] + ("A" if offer_id[-1] != "A" else "B"),
        offer_id + "0",
        "1",
        "' OR '1'='1",
    ]
    with Unchanged(live, state(af)):
        for guess in neighbours:
            refused(live, httpx.get(f"{af.url}/offers/{guess}", timeout=TIMEOUT), 404, "not_found")
    wallet = af.wallet()
    wallet.pre_authorized_token(wallet.resolve_offer(created["link"]))
    refused(live, httpx.get(uri, timeout=TIMEOUT), 404, "not_found")  # used: gone
