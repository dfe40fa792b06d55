"""Refusals of the OpenID4VCI endpoints: one test per rule (issue 3 "Must show"; security.md
T001, T007, T008, T019, T021, T022, T027-T033, T036, T038, T039, T041-T044, T046, T048, T114).

Every test asserts the exact status and error code AND that nothing was stored: issuances,
status entries, access tokens, consumed nonces and offers, audit rows are counted before and
after (security.md conventions: "a rejected request changes nothing that matters").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from intyg import dpop, jose, oid4vci, strict_json
from intyg.web import db
from issuer.models import CNonce
from tests.issuer.test_oid4vci_flow import (  # noqa: F401 (fixtures)
    ANNA,
    REDIRECT,
    Harness,
    af,
    eid_issuer,
    harness,
)
from tests.issuer.wallet_sim import Wallet

PROOF_TYP = oid4vci.PROOF_TYP


def refused(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body.get("error_description"), body
    assert response.headers["cache-control"] == "no-store"
    return body  # type: ignore[no-any-return]


class Unchanged:
    """``with Unchanged(h): ...``: the database counts must be equal afterwards."""

    def __init__(self, h: Harness) -> None:
        self.h = h

    def __enter__(self) -> Unchanged:
        self.before = self.h.counts()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            assert self.h.counts() == self.before


@pytest.fixture
def ready(af: Harness) -> Iterator[tuple[Harness, Wallet, oid4vci.TokenResponse, str]]:  # noqa: F811
    """A DPoP-bound token for the AF SD-JWT VC configuration only, and a fresh c_nonce."""
    created = af.offer(configuration_ids=[af.sd_jwt_id])
    wallet = af.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
    yield af, wallet, token, wallet.nonce()


def body_with(proofs: list[str], configuration_id: str = "RegistrationCertificate_dc+sd-jwt"):
    return {"credential_configuration_id": configuration_id, "proofs": {"jwt": proofs}}


def b64json(value: Any) -> str:
    return jose.b64url_encode(strict_json.dumps(value).encode())


def claims(c_nonce: str, **overrides: Any) -> dict[str, Any]:
    values = {"aud": "https://issuer.test", "iat": int(time.time()), "nonce": c_nonce}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def signed(key: jose.Key, payload: dict[str, Any], **header: Any) -> str:
    full = {"typ": PROOF_TYP, "jwk": key.public_jwk(), **header}
    return jose.encode_jws(payload, key, {k: v for k, v in full.items() if v is not None})


def alg_none(key: jose.Key, c_nonce: str) -> str:
    header = {"alg": "none", "typ": PROOF_TYP, "jwk": key.public_jwk()}
    return f"{b64json(header)}.{b64json(claims(c_nonce))}."


def other_key(key: jose.Key, c_nonce: str) -> str:
    return jose.encode_jws(
        claims(c_nonce),
        jose.generate_key("ES256"),
        {"typ": PROOF_TYP, "jwk": key.public_jwk()},
    )


def flipped_bit(key: jose.Key, c_nonce: str) -> str:
    proof = signed(key, claims(c_nonce))
    head, payload, signature = proof.split(".")
    raw = bytearray(jose.b64url_decode(signature))
    raw[5] ^= 0x01
    return f"{head}.{payload}.{jose.b64url_encode(bytes(raw))}"


PROOF_CASES: dict[str, Callable[[jose.Key, str], str]] = {
    "stale_iat": lambda k, n: signed(k, claims(n, iat=int(time.time()) - 3600)),  # T041
    "future_iat": lambda k, n: signed(k, claims(n, iat=int(time.time()) + 10 * 365 * 86400)),
    "wrong_aud": lambda k, n: signed(k, claims(n, aud="https://issuer.ex")),  # T017
    "aud_array": lambda k, n: signed(k, claims(n, aud=["https://issuer.test", "https://x"])),
    "wrong_typ": lambda k, n: signed(k, claims(n), typ="JWT"),
    "alg_none": alg_none,  # T001
    "signed_by_other_key": other_key,
    "flipped_signature_bit": flipped_bit,  # T038
    "jwk_and_kid": lambda k, n: signed(k, claims(n), kid="key-1"),  # T007
    "private_jwk": lambda k, n: signed(k, claims(n), jwk=k.private_jwk()),  # T008
    "no_key": lambda k, n: signed(k, claims(n), jwk=None),
    "no_nonce": lambda k, n: signed(k, claims(n, nonce=None)),
    "iss_on_anonymous_token": lambda k, n: signed(k, claims(n, iss="https://wallet.example")),
    "missing_iat": lambda k, n: signed(k, claims(n, iat=None)),
}


@pytest.mark.parametrize("case", sorted(PROOF_CASES))
def test_bad_proof_is_invalid_proof(ready: Any, case: str) -> None:
    h, wallet, token, c_nonce = ready
    proof = PROOF_CASES[case](jose.generate_key("ES256"), c_nonce)
    with Unchanged(h):
        refused(wallet.credential_request(token, body_with([proof])), 400, "invalid_proof")
    # The nonce was not consumed by the refusal: a good proof with it still works.
    good = wallet.proof(jose.generate_key("ES256"), c_nonce)
    assert wallet.credential_request(token, body_with([good])).status_code == 200


def test_replayed_nonce(ready: Any) -> None:
    """T036: the same request again, after a success."""
    h, wallet, token, c_nonce = ready
    body = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    assert wallet.credential_request(token, body).status_code == 200
    with Unchanged(h):
        refused(wallet.credential_request(token, body), 400, "invalid_nonce")
        fresh = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
        refused(wallet.credential_request(token, fresh), 400, "invalid_nonce")


def test_unknown_and_expired_nonce(ready: Any) -> None:
    h, wallet, token, c_nonce = ready
    with Unchanged(h):
        unknown = body_with([wallet.proof(jose.generate_key("ES256"), "not-a-nonce")])
        refused(wallet.credential_request(token, unknown), 400, "invalid_nonce")
    h.clock.advance(h.ctx.settings.c_nonce_ttl)
    created = h.offer(configuration_ids=[h.sd_jwt_id])
    fresh_token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
    late = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    with Unchanged(h):
        refused(wallet.credential_request(fresh_token, late), 400, "invalid_nonce")


def _flip(c_nonce: str, position: int) -> str:
    raw = bytearray(jose.b64url_decode(c_nonce))
    raw[position] ^= 1
    return jose.b64url_encode(bytes(raw))


def test_forged_nonce(ready: Any) -> None:
    """A ``c_nonce`` is MAC'd by the issuer: a changed random part, a later expiry, a changed
    MAC, a truncated or extended one, or a nonce of another issuer are unknown, and nothing
    is stored; the genuine one still works afterwards."""
    h, wallet, token, c_nonce = ready
    raw = jose.b64url_decode(c_nonce)
    forged = [
        _flip(c_nonce, 0),  # random part
        _flip(c_nonce, 23),  # expiry (low byte: later or earlier)
        _flip(c_nonce, len(raw) - 1),  # MAC
        jose.b64url_encode(raw[:-1]),
        jose.b64url_encode(raw + b"\0"),
        jose.b64url_encode(raw[:16] + (2**40).to_bytes(8, "big") + raw[24:]),
        jose.b64url_encode(bytes(len(raw))),
        c_nonce + "=",
    ]
    with Unchanged(h):
        for value in forged:
            body = body_with([wallet.proof(jose.generate_key("ES256"), value)])
            refused(wallet.credential_request(token, body), 400, "invalid_nonce")
    good = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    assert wallet.credential_request(token, good).status_code == 200


def test_nonce_endpoint_stores_nothing(ready: Any) -> None:
    """The nonce endpoint writes no row; a ``c_nonce`` is recorded only when redeemed."""
    h, wallet, _, _ = ready

    def stored() -> int:
        with db.session(h.ctx.engine, write=False) as unit:
            return unit.scalar(sa.select(sa.func.count()).select_from(CNonce))  # type: ignore[no-any-return]

    before = stored()
    nonces = {wallet.nonce() for _ in range(5)}
    assert stored() == before and len(nonces) == 5


def test_missing_proofs(ready: Any) -> None:
    """T039."""
    h, wallet, token, _ = ready
    with Unchanged(h):
        body = {"credential_configuration_id": h.sd_jwt_id}
        refused(wallet.credential_request(token, body), 400, "invalid_proof")
        empty = {"credential_configuration_id": h.sd_jwt_id, "proofs": {"jwt": []}}
        refused(wallet.credential_request(token, empty), 400, "invalid_proof")


def test_batch_rules(ready: Any) -> None:
    """T043: more proofs than batch_size, one key twice, different nonces."""
    h, wallet, token, c_nonce = ready
    key = jose.generate_key("ES256")
    too_many = [
        wallet.proof(jose.generate_key("ES256"), c_nonce)
        for _ in range(h.ctx.settings.batch_size + 1)
    ]
    other_nonce = wallet.nonce()
    with Unchanged(h):
        refused(wallet.credential_request(token, body_with(too_many)), 400, "invalid_proof")
        same_key = [wallet.proof(key, c_nonce), wallet.proof(key, c_nonce)]
        refused(wallet.credential_request(token, body_with(same_key)), 400, "invalid_proof")
        mixed = [
            wallet.proof(jose.generate_key("ES256"), c_nonce),
            wallet.proof(jose.generate_key("ES256"), other_nonce),
        ]
        refused(wallet.credential_request(token, body_with(mixed)), 400, "invalid_proof")


def test_configuration_not_covered_by_token(ready: Any) -> None:
    """A token from an offer for the SD-JWT VC only cannot fetch the VCDM credential
    (§8.3.1.1: an RFC 6750 ``insufficient_scope`` refusal)."""
    h, wallet, token, c_nonce = ready
    proof = wallet.proof(jose.generate_key("ES256"), c_nonce)
    with Unchanged(h):
        response = wallet.credential_request(token, body_with([proof], h.vcdm_id))
        refused(response, 403, "insufficient_scope")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_request_shape_errors(ready: Any) -> None:
    """T044: unknown configuration, identifier without granted identifiers, both, neither."""
    h, wallet, token, c_nonce = ready
    proofs = {"jwt": [wallet.proof(jose.generate_key("ES256"), c_nonce)]}
    cases = [
        (
            {"credential_configuration_id": "Unknown_dc+sd-jwt", "proofs": proofs},
            "unknown_credential_configuration",
        ),
        ({"credential_identifier": "x", "proofs": proofs}, "invalid_credential_request"),
        (
            {
                "credential_identifier": "x",
                "credential_configuration_id": h.sd_jwt_id,
                "proofs": proofs,
            },
            "invalid_credential_request",
        ),
        ({"proofs": proofs}, "invalid_credential_request"),
        ([], "invalid_credential_request"),
    ]
    with Unchanged(h):
        for body, error in cases:
            refused(wallet.credential_request(token, body), 400, error)


def test_malformed_and_duplicate_key_json(ready: Any) -> None:
    """Malformed JSON and T114 duplicate members: invalid_credential_request."""
    h, wallet, token, c_nonce = ready
    proof = wallet.proof(jose.generate_key("ES256"), c_nonce)
    duplicate = (
        f'{{"credential_configuration_id": "{h.sd_jwt_id}", '
        f'"credential_configuration_id": "{h.vcdm_id}", "proofs": {{"jwt": ["{proof}"]}}}}'
    ).encode()
    with Unchanged(h):
        for raw in (b'{"proofs": ', duplicate, b"\xff\xfe", b"NaN"):
            response = wallet.credential_request(token, None, raw=raw)
            refused(response, 400, "invalid_credential_request")


def test_oversize_body(ready: Any) -> None:
    h, wallet, token, c_nonce = ready
    body = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    body["padding"] = "x" * (h.ctx.settings.max_body_bytes + 1)
    with Unchanged(h):
        refused(wallet.credential_request(token, body), 413, "invalid_request")


def test_wrong_media_types(ready: Any) -> None:
    h, wallet, token, c_nonce = ready
    body = strict_json.dumps(body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)]))
    with Unchanged(h):
        response = wallet.credential_request(
            token, None, raw=body.encode(), headers={"Content-Type": "text/plain"}
        )
        refused(response, 415, "invalid_request")
        form = wallet.http.post(
            wallet.url("/token"), content=b"{}", headers={"Content-Type": "application/json"}
        )
        refused(form, 415, "invalid_request")


def test_claims_smuggled_into_the_request_are_ignored(ready: Any) -> None:
    """T046: the credential comes from the record, never from the request."""
    h, wallet, token, c_nonce = ready
    key = jose.generate_key("ES256")
    body = body_with([wallet.proof(key, c_nonce)])
    body.update({"credentialSubject": {"given_name": "Mallory"}, "given_name": "Mallory"})
    body["claims"] = {"registered": False}
    response = wallet.credential_request(token, body)
    assert response.status_code == 200, response.text
    from tests.issuer.test_oid4vci_flow import verify_sd_jwt_vc

    verified = verify_sd_jwt_vc(h, response.json()["credentials"][0]["credential"], key)
    assert verified.claims["given_name"] != "Mallory"
    assert verified.claims["registered"] is True


# -- access token presentation (T031-T033) ---------------------------------------------------


def test_token_in_query_string(ready: Any) -> None:
    """T031."""
    h, wallet, token, c_nonce = ready
    body = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    url = wallet.url("/credential") + "?access_token=" + token.access_token
    with Unchanged(h):
        response = wallet.http.post(url, json=body)
        refused(response, 400, "invalid_request")


def test_missing_unknown_and_expired_token(ready: Any) -> None:
    """T032: 401 with a challenge."""
    h, wallet, token, c_nonce = ready
    body = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    with Unchanged(h):
        bare = wallet.http.post(wallet.url("/credential"), json=body)
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"].startswith("DPoP")
        unknown = wallet.credential_request(oid4vci.TokenResponse("nope", "DPoP"), body)
        refused(unknown, 401, "invalid_token")
        h.clock.advance(h.ctx.settings.access_token_ttl)
        expired = wallet.credential_request(token, body)
        refused(expired, 401, "invalid_token")
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]


def dpop_case(wallet: Wallet, token: oid4vci.TokenResponse, case: str) -> dict[str, str]:
    url = wallet.url("/credential")
    auth = {"Authorization": f"DPoP {token.access_token}"}
    if case == "missing":
        return auth
    if case == "bearer_scheme":
        return {
            **wallet.dpop_headers("POST", url, token.access_token),
            "Authorization": f"Bearer {token.access_token}",
        }
    overrides: dict[str, Any] = {
        "wrong_htu": {"htu": wallet.url("/nonce")},
        "wrong_htm": {"method": "GET"},
        "no_ath": {"access_token": None},
        "wrong_ath": {"access_token": "another-token"},
        "other_key": {"key": jose.generate_key("ES256")},
        "stale": {"iat": int(time.time()) - 3600},
    }[case]
    method = overrides.pop("method", "POST")
    access_token = overrides.pop("access_token", token.access_token)
    htu = overrides.pop("htu", url)
    return {**auth, **wallet.dpop_headers(method, htu, access_token, **overrides)}


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "bearer_scheme",
        "wrong_htu",
        "wrong_htm",
        "no_ath",
        "wrong_ath",
        "other_key",
        "stale",
    ],
)
def test_wrong_dpop_at_the_credential_endpoint(ready: Any, case: str) -> None:
    """T033: 401 invalid_dpop_proof (or invalid_token for the Bearer scheme) + DPoP challenge."""
    h, wallet, token, c_nonce = ready
    body = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    headers = dpop_case(wallet, token, case)
    with Unchanged(h):
        response = wallet.http.post(wallet.url("/credential"), json=body, headers=headers)
        error = "invalid_token" if case == "bearer_scheme" else "invalid_dpop_proof"
        refused(response, 401, error)
        assert response.headers["www-authenticate"].startswith("DPoP")


def test_replayed_dpop_proof(ready: Any) -> None:
    h, wallet, token, c_nonce = ready
    url = wallet.url("/credential")
    headers = {
        "Authorization": f"DPoP {token.access_token}",
        **wallet.dpop_headers("POST", url, token.access_token),
    }
    first = body_with([wallet.proof(jose.generate_key("ES256"), c_nonce)])
    assert wallet.http.post(url, json=first, headers=headers).status_code == 200
    second = body_with([wallet.proof(jose.generate_key("ES256"), wallet.nonce())])
    with Unchanged(h):
        refused(wallet.http.post(url, json=second, headers=headers), 401, "invalid_dpop_proof")


# -- token endpoint: pre-authorized code (T019, T021, T022) ---------------------------------


def test_missing_dpop_at_the_token_endpoint(af: Harness) -> None:  # noqa: F811
    created = af.offer()
    wallet = af.wallet(use_dpop=False)
    offer = wallet.resolve_offer(created.link)
    with Unchanged(af):
        refused(wallet.token_request(wallet.pre_authorized_form(offer)), 400, "invalid_dpop_proof")
        bad = af.wallet().token_request(
            wallet.pre_authorized_form(offer), dpop_overrides={"htu": "https://issuer.test/x"}
        )
        refused(bad, 400, "invalid_dpop_proof")
    assert af.wallet().token_request(wallet.pre_authorized_form(offer)).status_code == 200


def test_tx_code_brute_force(af: Harness) -> None:  # noqa: F811
    """T021: after tx_code_max_attempts wrong codes the code is dead, even for the right one."""
    created = af.offer(tx_code=True)
    assert created.tx_code is not None
    wallet = af.wallet()
    offer = wallet.resolve_offer(created.link)
    wrong = f"{(int(created.tx_code) + 1) % 10 ** len(created.tx_code):0{len(created.tx_code)}d}"
    with Unchanged(af):
        for _ in range(af.ctx.settings.tx_code_max_attempts):
            refused(
                wallet.token_request(wallet.pre_authorized_form(offer, wrong)), 400, "invalid_grant"
            )
        right = wallet.token_request(wallet.pre_authorized_form(offer, created.tx_code))
        refused(right, 400, "invalid_grant")


def test_tx_code_right_after_some_wrong_attempts(af: Harness) -> None:  # noqa: F811
    created = af.offer(tx_code=True)
    wallet = af.wallet()
    offer = wallet.resolve_offer(created.link)
    for _ in range(af.ctx.settings.tx_code_max_attempts - 1):
        refused(
            wallet.token_request(wallet.pre_authorized_form(offer, "000000x")), 400, "invalid_grant"
        )
    assert wallet.pre_authorized_token(offer, created.tx_code).access_token


def test_tx_code_presence(af: Harness) -> None:  # noqa: F811
    """T022: missing when required, sent when not offered: invalid_request."""
    with_code, without = af.offer(tx_code=True), af.offer(tx_code=False)
    wallet = af.wallet()
    with Unchanged(af):
        missing = wallet.token_request(
            wallet.pre_authorized_form(wallet.resolve_offer(with_code.link))
        )
        refused(missing, 400, "invalid_request")
        extra = wallet.token_request(
            wallet.pre_authorized_form(wallet.resolve_offer(without.link), "123456")
        )
        refused(extra, 400, "invalid_request")


def test_reused_unknown_and_expired_pre_authorized_code(af: Harness) -> None:  # noqa: F811
    """T019 and expiry: invalid_grant, no second token."""
    created = af.offer()
    wallet = af.wallet()
    offer = wallet.resolve_offer(created.link)
    assert wallet.pre_authorized_token(offer).access_token
    with Unchanged(af):
        refused(wallet.token_request(wallet.pre_authorized_form(offer)), 400, "invalid_grant")
        form = wallet.pre_authorized_form(offer)
        form["pre-authorized_code"] = "x" + form["pre-authorized_code"][1:]
        refused(wallet.token_request(form), 400, "invalid_grant")
    late = af.offer()
    late_offer = wallet.resolve_offer(late.link)
    af.clock.advance(af.ctx.settings.offer_ttl)
    with Unchanged(af):
        late_form = wallet.pre_authorized_form(late_offer)
        response = wallet.token_request(late_form, dpop_overrides={"iat": af.clock()})
        refused(response, 400, "invalid_grant")


def test_token_request_shape(af: Harness) -> None:  # noqa: F811
    wallet = af.wallet()
    with Unchanged(af):
        refused(wallet.token_request({"grant_type": "password"}), 400, "unsupported_grant_type")
        refused(wallet.token_request({"client_id": "x"}), 400, "invalid_request")
        refused(
            wallet.token_request({"grant_type": oid4vci.PRE_AUTHORIZED_CODE_GRANT}),
            400,
            "invalid_request",
        )


def test_nonce_response_is_not_cached(af: Harness) -> None:  # noqa: F811
    """T048 for the nonce endpoint; values are unique and long (T024)."""
    responses = [af.client.post("/nonce") for _ in range(5)]
    assert all(r.headers["cache-control"] == "no-store" for r in responses)
    values = {r.json()["c_nonce"] for r in responses}
    assert len(values) == 5 and all(len(v) >= 22 for v in values)


def test_unknown_notification_id(ready: Any) -> None:
    h, wallet, token, _ = ready
    with Unchanged(h):
        refused(
            wallet.notify(token, "unknown", "credential_accepted"), 400, "invalid_notification_id"
        )
        url = wallet.url("/notification")
        bad = wallet.http.post(
            url,
            json={"notification_id": "x", "event": "nope"},
            headers=wallet.auth_headers(token, url),
        )
        refused(bad, 400, "invalid_notification_request")


# -- authorization code flow (T027-T029, HAIP client authentication) ------------------------


def test_par_requires_wallet_attestation_and_s256(af: Harness) -> None:  # noqa: F811
    wallet = af.wallet()
    scope = af.ctx.agency.configurations[0].scope
    response, _ = wallet.push_authorization(redirect_uri=REDIRECT, scope=scope, attest=False)
    refused(response, 401, "invalid_client")
    plain, _ = wallet.push_authorization(
        redirect_uri=REDIRECT,
        scope=scope,
        extra={"code_challenge_method": "plain", "code_challenge": "a" * 43},
    )
    refused(plain, 400, "invalid_request")  # T027
    untrusted = Wallet(
        af.client, af.ctx.settings.issuer_identifier, provider=type(af.provider)("Rogue Provider")
    )
    rogue, _ = untrusted.push_authorization(redirect_uri=REDIRECT, scope=scope)
    refused(rogue, 401, "invalid_client")
    unknown_scope, _ = wallet.push_authorization(redirect_uri=REDIRECT, scope="openid")
    refused(unknown_scope, 400, "invalid_scope")
    fragment, _ = wallet.push_authorization(redirect_uri=REDIRECT + "#x", scope=scope)
    refused(fragment, 400, "invalid_request")


def test_authorize_refusals_are_pages(af: Harness) -> None:  # noqa: F811
    """T029: a redirect URI that differs from the pushed one, an unknown request_uri or a
    request without PAR (HAIP) get an error page, never a redirect."""
    wallet = af.wallet()
    _, start = wallet.push_authorization(
        redirect_uri=REDIRECT, scope=af.ctx.agency.configurations[0].scope
    )
    assert start is not None
    for url in (
        start.authorize_url + "&redirect_uri=https%3A%2F%2Fwallet.example%2Fcb%2Fx",
        start.authorize_url.replace("request_uri=urn", "request_uri=urnx"),
        af.client.base_url.join(
            "/authorize?client_id=x&response_type=code&redirect_uri=https%3A%2F%2Fevil.example"
        ).__str__(),
        start.authorize_url.replace(
            wallet.client_id.replace(":", "%3A").replace("/", "%2F"), "other"
        ),
    ):
        page = af.client.get(url, follow_redirects=False)
        assert page.status_code in (400, 503), url
        assert "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")


@pytest.fixture
def code_for(eid_issuer: Any) -> Any:  # noqa: F811
    h, login = eid_issuer
    from intyg.web import db

    with db.session(h.ctx.engine) as unit:
        h.add_person(unit, ANNA[0])

    def start() -> tuple[Harness, Wallet, Any, str]:
        wallet = h.wallet()
        _, pushed = wallet.push_authorization(
            redirect_uri=REDIRECT, scope=h.ctx.agency.configurations[0].scope
        )
        answer = login(pushed.authorize_url, wallet)
        code = wallet.authorization_response(answer.headers["location"])["code"]
        return h, wallet, pushed, code

    return start


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_verifier": oid4vci.new_pkce_verifier()}, "invalid_grant"),  # T027
        ({"code_verifier": None}, "invalid_grant"),
        ({"redirect_uri": REDIRECT + "/other"}, "invalid_grant"),  # T028
        ({"redirect_uri": None}, "invalid_grant"),
    ],
)
def test_code_bound_to_verifier_and_redirect_uri(code_for: Any, overrides: Any, error: str) -> None:
    h, wallet, pushed, code = code_for()
    with Unchanged(h):
        refused(wallet.authorization_code_token(code, pushed, overrides=overrides), 400, error)
    # The code is burnt by the failed attempt (RFC 9700 §4.5).
    refused(wallet.authorization_code_token(code, pushed), 400, "invalid_grant")


def test_code_bound_to_client(code_for: Any) -> None:
    """T028: another (attested) client cannot redeem the code; HAIP needs attestation."""
    h, _, pushed, code = code_for()
    other = h.wallet(client_id="https://other-wallet.example")
    with Unchanged(h):
        refused(
            other.authorization_code_token(code, pushed, overrides={"client_id": None}),
            400,
            "invalid_grant",
        )
    h2, wallet2, pushed2, code2 = code_for()
    with Unchanged(h2):
        refused(
            wallet2.authorization_code_token(code2, pushed2, attest=False), 401, "invalid_client"
        )


def test_code_bound_to_dpop_key(code_for: Any) -> None:
    h, wallet, pushed, code = code_for()
    wallet.dpop_key = jose.generate_key("ES256")  # a different key than at PAR
    with Unchanged(h):
        response = wallet.authorization_code_token(code, pushed)
        assert response.status_code in (400, 401)
        assert response.json()["error"] in ("invalid_dpop_proof", "invalid_grant", "invalid_client")


# keep the import used for linters
_ = dpop
