"""Issuer token endpoint, pre-authorized code, tx_code, access tokens and metadata against the
live AF issuer (security.md §1.2: T019, T021, T022, T024, T026, T031-T034)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from intyg import jose, oid4vci

from .actors import Issuing, proof_body
from .live import ISSUER_STATE, TIMEOUT, Live, Unchanged, assert_no_leak, refused


def state(af: Issuing) -> dict[str, tuple[str, ...]]:
    return {af.agency: ISSUER_STATE}


def test_t019_pre_authorized_code_redeemed_twice(live: Live, af: Issuing) -> None:
    wallet = af.wallet()
    offer = wallet.resolve_offer(af.offer()["link"])
    assert wallet.pre_authorized_token(offer).access_token
    with Unchanged(live, state(af)):
        again = wallet.token_request(wallet.pre_authorized_form(offer))
        refused(live, again, 400, "invalid_grant")
        other_wallet = af.wallet().token_request(wallet.pre_authorized_form(offer))
        refused(live, other_wallet, 400, "invalid_grant")


def test_t019_unknown_pre_authorized_code(live: Live, af: Issuing) -> None:
    wallet = af.wallet()
    offer = wallet.resolve_offer(af.offer()["link"])
    form = wallet.pre_authorized_form(offer)
    form["pre-authorized_code"] = "x" + form["pre-authorized_code"][1:]
    with Unchanged(live, state(af)):
        refused(live, wallet.token_request(form), 400, "invalid_grant")
    assert wallet.pre_authorized_token(offer).access_token  # the real code still works


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def test_t021_tx_code_guessing_kills_the_code(live: Live, af: Issuing) -> None:
    created = af.offer(tx_code=True)
    wallet = af.wallet()
    offer = wallet.resolve_offer(created["link"])
    wrong = _wrong(created["tx_code"])
    with Unchanged(live, state(af)):
        for _ in range(5):  # tx_code_max_attempts (default)
            response = wallet.token_request(wallet.pre_authorized_form(offer, wrong))
            refused(live, response, 400, "invalid_grant")
        right = wallet.token_request(wallet.pre_authorized_form(offer, created["tx_code"]))
        refused(live, right, 400, "invalid_grant")
    attempts = live.scalar(
        af.agency,
        "SELECT tx_code_attempts FROM credential_offers WHERE offer_id = :o",
        o=created["offer_id"],
    )
    assert attempts == 5


def test_t021_parallel_guesses_cannot_exceed_the_cap(live: Live, af: Issuing) -> None:
    """20 wrong guesses at once: the counter stops at the cap, the right code is refused."""
    from concurrent.futures import ThreadPoolExecutor

    created = af.offer(tx_code=True)
    wallet = af.wallet()
    offer = wallet.resolve_offer(created["link"])
    wrong = _wrong(created["tx_code"])

    def guess(_: int) -> int:
        guesser = af.wallet()
        return guesser.token_request(guesser.pre_authorized_form(offer, wrong)).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(guess, range(20)))
    assert set(statuses) <= {400, 503}, statuses
    attempts = live.scalar(
        af.agency,
        "SELECT tx_code_attempts FROM credential_offers WHERE offer_id = :o",
        o=created["offer_id"],
    )
    assert attempts == 5
    right = wallet.token_request(wallet.pre_authorized_form(offer, created["tx_code"]))
    refused(live, right, 400, "invalid_grant")


def test_t022_tx_code_missing_or_not_offered(live: Live, af: Issuing) -> None:
    with_code, without = af.offer(tx_code=True), af.offer(tx_code=False)
    wallet = af.wallet()
    with Unchanged(live, state(af)):
        missing = wallet.token_request(
            wallet.pre_authorized_form(wallet.resolve_offer(with_code["link"]))
        )
        refused(live, missing, 400, "invalid_request")
        extra = wallet.token_request(
            wallet.pre_authorized_form(wallet.resolve_offer(without["link"]), "123456")
        )
        refused(live, extra, 400, "invalid_request")


def test_t024_values_are_long_and_unique(live: Live, af: Issuing) -> None:
    """A sample (100 c_nonces, 5 offers and tokens): unique, >= 128 bits of base64url; the
    tx_code has the length and input mode the offer announces."""
    with httpx.Client(timeout=TIMEOUT) as client:
        nonces = [client.post(af.url + "/nonce").json()["c_nonce"] for _ in range(100)]
    assert len(set(nonces)) == 100 and min(map(len, nonces)) >= 22
    codes, tokens = set(), set()
    for _ in range(5):
        created = af.offer(tx_code=True)
        wallet = af.wallet()
        offer = wallet.resolve_offer(created["link"])
        assert offer.pre_authorized_code is not None
        spec = offer.pre_authorized_code.tx_code
        assert spec is not None and spec.length == len(created["tx_code"])
        assert spec.input_mode == "numeric" and created["tx_code"].isdigit()
        code = offer.pre_authorized_code.pre_authorized_code
        codes.add(code)
        assert len(jose.b64url_decode(code)) >= 16
        token = wallet.pre_authorized_token(offer, created["tx_code"]).access_token
        tokens.add(token)
        assert len(token) >= 22
    assert len(codes) == 5 and len(tokens) == 5


def test_t026_identity_offer_from_another_device_needs_the_tx_code(live: Live, af: Issuing) -> None:
    """Offer injection: the QR code (with a tx_code) scanned by another device fails at the
    token endpoint without the code sent out of band."""
    created = af.offer(tx_code=True)
    attacker = af.wallet()
    offer = attacker.resolve_offer(created["link"])
    with Unchanged(live, state(af)):
        refused(
            live,
            attacker.token_request(attacker.pre_authorized_form(offer)),
            400,
            "invalid_request",
        )
        guess = attacker.token_request(attacker.pre_authorized_form(offer, "000000"))
        refused(live, guess, 400, "invalid_grant")


def _ready(af: Issuing) -> tuple[Any, oid4vci.TokenResponse, dict[str, Any]]:
    wallet, token = af.token()
    body = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), wallet.nonce())])
    return wallet, token, body


def test_t031_access_token_in_the_query_string(live: Live, af: Issuing) -> None:
    wallet, token, body = _ready(af)
    with Unchanged(live, state(af)):
        url = f"{af.url}/credential?access_token={token.access_token}"
        response = wallet.http.post(url, json=body)
        refused(live, response, 400, "invalid_request")
        assert token.access_token not in response.text


def test_t032_missing_unknown_and_foreign_tokens(live: Live, af: Issuing, myh: Issuing) -> None:
    wallet, _, body = _ready(af)
    _, myh_token = myh.token()
    url = af.url + "/credential"
    with Unchanged(live, state(af)):
        bare = wallet.http.post(url, json=body)
        refused(live, bare, 401)
        assert bare.headers["www-authenticate"].startswith("DPoP")
        unknown = wallet.credential_request(oid4vci.TokenResponse("x" * 43, "DPoP"), body)
        refused(live, unknown, 401, "invalid_token")
        assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
        # A token of the MYH issuer (another audience) at the AF issuer.
        foreign = wallet.credential_request(myh_token, body)
        refused(live, foreign, 401, "invalid_token")


DPOP_CASES = [
    "missing",
    "bearer_scheme",
    "wrong_htu",
    "wrong_htm",
    "no_ath",
    "wrong_ath",
    "other_key",
    "stale",
    "future",
    "alg_none",
]


def _dpop_headers(wallet: Any, token: oid4vci.TokenResponse, case: str) -> dict[str, str]:
    url = wallet.url("/credential")
    auth = {"Authorization": f"DPoP {token.access_token}"}
    if case == "missing":
        return auth
    if case == "bearer_scheme":
        return {
            **wallet.dpop_headers("POST", url, token.access_token),
            "Authorization": f"Bearer {token.access_token}",
        }
    if case == "alg_none":
        from .fakes import raw_jws

        header = {"typ": "dpop+jwt", "alg": "none", "jwk": wallet.dpop_key.public_jwk()}
        claims = {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": "j" * 22}
        return {**auth, "DPoP": raw_jws(header, claims)}
    now = int(time.time())
    overrides: dict[str, Any] = {
        "wrong_htu": {"htu": wallet.url("/nonce")},
        "wrong_htm": {"method": "GET"},
        "no_ath": {"access_token": None},
        "wrong_ath": {"access_token": "another-token"},
        "other_key": {"key": jose.generate_key("ES256")},
        "stale": {"iat": now - 3600},
        "future": {"iat": now + 3600},
    }[case]
    method = overrides.pop("method", "POST")
    access_token = overrides.pop("access_token", token.access_token)
    htu = overrides.pop("htu", url)
    return {**auth, **wallet.dpop_headers(method, htu, access_token, **overrides)}


@pytest.mark.parametrize("case", DPOP_CASES)
def test_t033_wrong_dpop_at_the_credential_endpoint(live: Live, af: Issuing, case: str) -> None:
    wallet, token, body = _ready(af)
    with Unchanged(live, state(af)):
        response = wallet.http.post(
            af.url + "/credential", json=body, headers=_dpop_headers(wallet, token, case)
        )
        error = "invalid_token" if case == "bearer_scheme" else "invalid_dpop_proof"
        refused(live, response, 401, error)
        assert response.headers["www-authenticate"].startswith("DPoP")


def test_t033_replayed_dpop_jti(live: Live, af: Issuing) -> None:
    wallet, token, body = _ready(af)
    url = af.url + "/credential"
    headers = {
        "Authorization": f"DPoP {token.access_token}",
        **wallet.dpop_headers("POST", url, token.access_token),
    }
    assert wallet.http.post(url, json=body, headers=headers).status_code == 200
    second = proof_body(af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), wallet.nonce())])
    with Unchanged(live, state(af)):
        refused(
            live, wallet.http.post(url, json=second, headers=headers), 401, "invalid_dpop_proof"
        )


def test_t033_dpop_required_at_the_token_endpoint(live: Live, af: Issuing) -> None:
    created = af.offer()
    plain = af.wallet(use_dpop=False)
    offer = plain.resolve_offer(created["link"])
    with Unchanged(live, state(af)):
        refused(
            live, plain.token_request(plain.pre_authorized_form(offer)), 400, "invalid_dpop_proof"
        )
        wrong_htu = af.wallet().token_request(
            plain.pre_authorized_form(offer), dpop_overrides={"htu": af.url + "/x"}
        )
        refused(live, wrong_htu, 400, "invalid_dpop_proof")
    # The refusals did not burn the code.
    assert af.wallet().token_request(plain.pre_authorized_form(offer)).status_code == 200


def test_t034_metadata_names_the_identifier_exactly(live: Live, af: Issuing) -> None:
    """``credential_issuer`` and the AS ``issuer`` are byte-identical to the identifier and
    every endpoint lives under it. (https is enforced outside development: README.)"""
    for name in ("issuer-af", "issuer-myh"):
        base = live.url(name)
        metadata = httpx.get(oid4vci.well_known_url(base), timeout=TIMEOUT)
        assert metadata.json()["credential_issuer"] == base
        checked = oid4vci.check_issuer_metadata(metadata.json(), base, allow_http=True, haip=True)
        assert checked.credential_issuer == base
        as_url = oid4vci.well_known_url(base, oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER)
        authorization_server = httpx.get(as_url, timeout=TIMEOUT).json()
        assert authorization_server["issuer"] == base
        urls = [
            v
            for k, v in {**metadata.json(), **authorization_server}.items()
            if k.endswith("_endpoint") or k == "jwks_uri"
        ]
        assert urls and all(isinstance(u, str) and u.startswith(base + "/") for u in urls)
        assert_no_leak(live, metadata)


def test_t048_token_nonce_and_credential_replies_are_not_cached(live: Live, af: Issuing) -> None:
    wallet = af.wallet()
    offer = wallet.resolve_offer(af.offer()["link"])
    token_response = wallet.token_request(wallet.pre_authorized_form(offer))
    nonce = wallet.http.post(af.url + "/nonce")
    token = oid4vci.parse_token_response(token_response.json())
    body = proof_body(
        af.sd_jwt_id, [wallet.proof(jose.generate_key("ES256"), nonce.json()["c_nonce"])]
    )
    credential = wallet.credential_request(token, body)
    offer_doc = httpx.get(af.offer()["credential_offer_uri"], timeout=TIMEOUT)
    for response in (token_response, nonce, credential, offer_doc):
        assert response.status_code == 200, response.text
        assert "no-store" in response.headers["cache-control"], response.request.url
