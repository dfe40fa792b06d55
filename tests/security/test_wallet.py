"""The live cloud wallet: answering OpenID4VP requests from a relying party that misbehaves
(a loopback verifier whose certificate the wallet trusts), consent bypass, person A vs B
isolation, eID login, cookies and framing, receiving credentials from a misbehaving issuer,
SSRF through links, privacy of what it sends (security.md §1.5, §1.6, T085, T122, T123).

"Nothing stored" here: no presentation session, consent record, credential, key or
issuance session beyond the counts before; "nothing sent": the loopback verifier received
nothing at its ``response_uri``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from intyg import jose, oid4vci, sdjwt, strict_json
from intyg.demo import forms_of
from intyg.schemas import REGISTRATION_CERTIFICATE_VCT

from .actors import Issuing, WalletPerson
from .fakes import FakeIssuer, FakeVerifier, Loopback, Reply, b64, raw_jws
from .live import (
    PERSONAL_NUMBERS,
    TIMEOUT,
    WALLET_STATE,
    Live,
    Unchanged,
    assert_no_leak,
    eid_login,
    refused_page,
)

QUERY = {
    "credentials": [
        {
            "id": "registration",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [REGISTRATION_CERTIFICATE_VCT]},
            "claims": [{"path": ["registered"]}],
        }
    ]
}
NOTHING_SENT = "Inget skickades till mottagaren"
VERIFIER_TOLD = "Mottagaren har fått veta"


@pytest.fixture
def fake(live: Live, server: Loopback) -> FakeVerifier:
    return FakeVerifier(live, server)


def wallet_state() -> dict[str, tuple[str, ...]]:
    return {"wallet": WALLET_STATE}


# -- requests that are not authentic: stop, send nothing (T057, T058, T059, T064, T066) -----


def _inauthentic(f: FakeVerifier, case: str) -> str:
    claims = f.claims(QUERY)
    if case == "T057_bad_signature":
        return f.publish(case, f.signed(claims, key=jose.generate_key("ES256")))
    if case == "T001_alg_none":
        return f.publish(case, raw_jws({**f.header(), "alg": "none"}, claims))
    if case == "T002_hs256_with_the_certificate_key":
        from .fakes import public_key_secrets

        secret = public_key_secrets(f.key)["pem"]
        return f.publish(case, raw_jws({**f.header(), "alg": "HS256"}, claims, hmac_secret=secret))
    if case == "T057_no_typ":
        return f.publish(case, f.signed(claims, typ=None))
    if case == "T058_x509_san_dns_not_in_certificate":
        claims["client_id"] = "x509_san_dns:evil.example"
        return f.publish(case, f.signed(claims), client_id="x509_san_dns:evil.example")
    if case == "T058_x509_hash_not_the_leaf":
        wrong = "x509_hash:" + "A" * 43
        claims["client_id"] = wrong
        return f.publish(case, f.signed(claims), client_id=wrong)
    if case == "T058_client_id_differs_from_link":
        return f.publish(case, f.signed(claims), client_id="x509_hash:" + "B" * 43)
    if case == "T058_multi_signed_json_serialization":
        good = f.signed(claims)
        head, payload, signature = good.split(".")
        general = {
            "payload": payload,
            "signatures": [
                {"protected": head, "signature": signature},
                {"protected": head, "signature": signature[:-4] + "AAAA"},
            ],
        }
        return f.publish(case, strict_json.dumps(general))
    if case == "T059_redirect_uri_prefix_signed":
        uri = f"{f.server.base}/response"
        claims["client_id"] = f"redirect_uri:{uri}"
        return f.publish(case, f.signed(claims), client_id=f"redirect_uri:{uri}")
    if case == "T006_jwe_request_object":
        from intyg import jwe

        _, public = jwe.new_encryption_key()
        return f.publish(case, jwe.encrypt(claims, public, enc="A256GCM"))
    if case == "T066_pre_registered_client_unknown":
        claims["client_id"] = "some-verifier"
        return f.publish(case, f.signed(claims), client_id="some-verifier")
    if case == "T004_crit_unknown":
        return f.publish(case, f.signed(claims, crit=["x"], x=1))
    if case == "expired":
        return f.publish(case, f.signed({**claims, "iat": 999_000, "exp": 1_000_000}))
    if case == "untrusted_ca":
        from intyg import x509

        ca_key, ca = x509.make_ca("Other CA")
        leaf = x509.make_leaf(ca_key, ca, f.key, common_name="x")
        from intyg import oid4vp

        client_id = oid4vp.client_id_x509_hash(leaf)
        header = {**f.header(), "x5c": x509.x5c_from_certs([leaf])}
        return f.publish(
            case, raw_jws(header, {**claims, "client_id": client_id}, f.key), client_id=client_id
        )
    raise AssertionError(case)


INAUTHENTIC = [
    "T057_bad_signature",
    "T001_alg_none",
    "T002_hs256_with_the_certificate_key",
    "T057_no_typ",
    "T058_x509_san_dns_not_in_certificate",
    "T058_x509_hash_not_the_leaf",
    "T058_client_id_differs_from_link",
    "T058_multi_signed_json_serialization",
    "T059_redirect_uri_prefix_signed",
    "T006_jwe_request_object",
    "T066_pre_registered_client_unknown",
    "T004_crit_unknown",
    "expired",
    "untrusted_ca",
]


@pytest.mark.parametrize("case", INAUTHENTIC)
def test_inauthentic_requests_stop_and_send_nothing(
    live: Live, anna: WalletPerson, fake: FakeVerifier, case: str
) -> None:
    query = _inauthentic(fake, case)
    with Unchanged(live, wallet_state()):
        page = anna.open_request(query)
        refused_page(live, page, 400, NOTHING_SENT)
    assert fake.received == []


# -- authentic but unusable: the §8.5 error response, no presentation (T061-T067) -----------


def _unusable(f: FakeVerifier, case: str) -> tuple[str, str]:
    """-> (link query, expected error sent to the response_uri)."""
    changes: dict[str, Any] = {
        "T061_missing_nonce": {"nonce": None},
        "T062_dcql_query_and_scope": {"scope": "openid"},
        "T062_neither_dcql_query_nor_scope": {"dcql_query": None},
        "T063_transaction_data_unknown_type": {
            "transaction_data": [b64({"type": "x", "credential_ids": ["registration"]})]
        },
        "T063_transaction_data_no_match": {
            "transaction_data": [b64({"type": "payment", "credential_ids": ["nothing"]})]
        },
        "T059_redirect_uri_with_direct_post": {"redirect_uri": "https://x.test/"},
        "T067_direct_post_jwt_symmetric_key": {
            "response_mode": "direct_post.jwt",
            "client_metadata": {
                "jwks": {"keys": [{"kty": "oct", "k": "AAAA", "alg": "A256KW", "kid": "k"}]},
                "encrypted_response_enc_values_supported": ["A128GCM"],
            },
        },
        "T067_direct_post_jwt_private_key": {
            "response_mode": "direct_post.jwt",
            "client_metadata": {
                "jwks": {
                    "keys": [
                        {
                            **jose.generate_key("ES256").private_jwk(),
                            "alg": "ECDH-ES",
                            "use": "enc",
                            "kid": "k",
                        }
                    ]
                },
                "encrypted_response_enc_values_supported": ["A128GCM"],
            },
        },
        "T067_direct_post_jwt_wrong_alg": {
            "response_mode": "direct_post.jwt",
            "client_metadata": {
                "jwks": {
                    "keys": [
                        {
                            **jose.generate_key("ES256").public_jwk(),
                            "alg": "RSA1_5",
                            "use": "enc",
                            "kid": "k",
                        }
                    ]
                },
                "encrypted_response_enc_values_supported": ["A128GCM"],
            },
        },
        "T067_direct_post_jwt_no_keys": {"response_mode": "direct_post.jwt"},
        "unsupported_response_type": {"response_type": "code"},
    }[case]
    expected = {
        "T063_transaction_data_unknown_type": "invalid_transaction_data",
        "T063_transaction_data_no_match": "invalid_transaction_data",
        "unsupported_response_type": "unsupported_response_type",
    }.get(case, "invalid_request")
    return f.publish(case, f.signed(f.claims(QUERY, **changes))), expected


UNUSABLE = [
    "T061_missing_nonce",
    "T062_dcql_query_and_scope",
    "T062_neither_dcql_query_nor_scope",
    "T063_transaction_data_unknown_type",
    "T063_transaction_data_no_match",
    "T059_redirect_uri_with_direct_post",
    "T067_direct_post_jwt_symmetric_key",
    "T067_direct_post_jwt_private_key",
    "T067_direct_post_jwt_wrong_alg",
    "T067_direct_post_jwt_no_keys",
    "unsupported_response_type",
]


@pytest.mark.parametrize("case", UNUSABLE)
def test_authentic_but_unusable_requests_get_the_error_response(
    live: Live, anna: WalletPerson, fake: FakeVerifier, case: str
) -> None:
    query, expected = _unusable(fake, case)
    with Unchanged(live, wallet_state()):
        page = anna.open_request(query)
        refused_page(live, page, 400)
    for seen in fake.received:
        form = seen.form()
        assert "vp_token" not in form and "response" not in form  # never a presentation
        assert form["error"] == expected, form
    if not case.startswith("T067"):
        assert len(fake.received) == 1


@pytest.mark.parametrize(
    "case",
    [
        "T064_request_uri_method_PUT",
        "T064_request_uri_method_Post",
        "T068_duplicate_client_id",
        "T068_100kb_link",
        "T068_crlf_in_client_id",
        "T068_unicode_lookalike_client_id",
        "T068_request_and_request_uri",
    ],
)
def test_malformed_invocation_links(
    live: Live, anna: WalletPerson, fake: FakeVerifier, case: str
) -> None:
    good = fake.publish("good", fake.signed(fake.claims(QUERY)))
    query = {
        "T064_request_uri_method_PUT": good + "&request_uri_method=PUT",
        "T064_request_uri_method_Post": good + "&request_uri_method=Post",
        "T068_duplicate_client_id": good + "&client_id=" + quote("x509_hash:" + "C" * 43),
        "T068_100kb_link": good + "&x=" + "a" * 100_000,
        "T068_crlf_in_client_id": good.replace("client_id=", "client_id=%0D%0Ax"),
        "T068_unicode_lookalike_client_id": good.replace("x509_hash", quote("х509_hash")),
        "T068_request_and_request_uri": good + "&request=" + fake.signed(fake.claims(QUERY)),
    }[case]
    with Unchanged(live, wallet_state()):
        if len(query) > 8000:  # too long for a URL: pasted instead
            page = anna.post(
                "/present", {"csrf_token": anna.csrf(), "link": "openid4vp://?" + query}
            )
        else:
            page = anna.open_request(query)
        assert page.status_code in (400, 413), page.status_code
        assert_no_leak(live, page)
    assert fake.received == [] and len(fake.server.to("/request/good")) == 0


# -- consent (T069, T071, T072, T073, T122, T123) -------------------------------------------


def _pending(anna: WalletPerson, fake: FakeVerifier, name: str, **changes: Any) -> str:
    """Open a request from the fake verifier; -> the consent screen's path."""
    opened = anna.open_request(fake.publish(name, fake.signed(fake.claims(QUERY, **changes))))
    assert opened.status_code == 303, opened.text
    return str(opened.headers["location"])


def test_t069_approve_without_the_persons_csrf_token(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    """(a) a POST without the form's token, (b) a cross-site POST from another browser
    session with its own token: 403, nothing sent."""
    location = _pending(anna, fake, "consent-csrf")
    screen = anna.get(location)
    form = next(f for f in forms_of(screen.text) if f.action.endswith("/approve"))
    fields = {k: v for k, v in form.fields.items() if k != "csrf_token"}
    with Unchanged(live, wallet_state()):
        refused_page(live, anna.post(form.action, fields), 403)
        other = WalletPerson(live, "anna")  # Anna in another browser (attacker's page)
        forged = {**fields, "csrf_token": other.csrf()}
        refused_page(live, anna.post(form.action, forged), 403)
        no_cookie = httpx.post(anna.base + form.action, data=form.fields, timeout=TIMEOUT)
        assert no_cookie.status_code in (401, 403) and not fake.received
    assert fake.received == []


def test_t069_approval_is_single_use_and_bound_to_its_request(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    """(c) an approval replayed, or posted for another request, sends nothing more; (d) the
    verifier changing its request object after the screen changes nothing: what is sent is
    what the stored request asked and the person approved."""
    first = _pending(anna, fake, "r1")
    second = _pending(anna, fake, "r2")
    screen = anna.get(first)
    form = next(f for f in forms_of(screen.text) if f.action.endswith("/approve"))
    wide = {
        "credentials": [
            {
                **QUERY["credentials"][0],
                "claims": [{"path": ["personal_identity_number"]}, {"path": ["given_name"]}],
            }
        ]
    }
    fake.server.routes["/request/r1"] = lambda _: Reply(
        200, fake.signed(fake.claims(wide)), "application/oauth-authz-req+jwt"
    )
    assert anna.post(form.action, form.fields).status_code in (200, 303)
    assert len(fake.received) == 1
    sent = json.loads(fake.received[0].form()["vp_token"])["registration"][0]
    disclosed = {d.name for d in sdjwt.parse(sent).disclosures}
    assert disclosed == {"registered"}
    with Unchanged(live, {"wallet": ("consent_records", "consent_keys")}):
        again = anna.post(form.action, form.fields)
        refused_page(live, again, 409)
    assert len(fake.received) == 1
    # The approval form of r1 posted to r2's approve URL: r2 still needs its own screen.
    r2_action = second + "/approve"
    moved = anna.post(r2_action, form.fields)
    # Same person and session: the wallet may accept it only as r2's own consent, with
    # r2's claims; it never sends r1's presentation twice.
    if moved.status_code in (200, 303):
        assert len(fake.received) == 2
        second_vp = json.loads(fake.received[1].form()["vp_token"])["registration"][0]
        assert second_vp != sent
    else:
        assert moved.status_code in (400, 404, 409)
        assert len(fake.received) == 1


def test_t071_t072_t123_what_leaves_the_wallet(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    """Only the requested disclosure; ``sd_hash`` over exactly what was sent; the KB-JWT's
    ``aud`` is the full client id, ``nonce`` the request's, ``iat`` fresh, ``typ`` kb+jwt;
    the POST carries no cookie, no library User-Agent, no forwarded client address."""
    location = _pending(anna, fake, "inspect")
    outcome = anna.approve(location)
    assert outcome.status_code in (200, 303), outcome.text
    (seen,) = fake.received
    form = seen.form()
    vp = json.loads(form["vp_token"])["registration"][0]
    parsed = sdjwt.parse(vp)
    assert {d.name for d in parsed.disclosures} == {"registered"}
    kb = parsed.kb_jws
    assert kb is not None
    assert kb.header["typ"] == "kb+jwt"
    kb_claims = kb.claims()
    assert kb_claims["aud"] == fake.client_id  # full, with the x509_hash: prefix
    assert abs(kb_claims["iat"] - time.time()) < 300
    assert kb_claims["sd_hash"] == sdjwt.sd_hash(vp[: vp.rindex("~") + 1])
    served = jose.parse_jws(fake.server.routes["/request/inspect"](None).body).claims()  # type: ignore[arg-type]
    assert kb_claims["nonce"] == served["nonce"]
    headers = seen.headers
    assert "cookie" not in headers and "x-forwarded-for" not in headers
    assert headers.get("user-agent") == "intyg"
    for value in PERSONAL_NUMBERS:
        assert value not in seen.body.decode()


def test_t073_redirect_uri_from_the_verifier_is_not_followed_unless_https(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    for target in (
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://evil.example/x",
        "intent://x#Intent;end",
        "//evil.example/x",
    ):
        fake.response_reply = Reply(200, strict_json.dumps({"redirect_uri": target}))
        location = _pending(anna, fake, "redirect")
        outcome = anna.approve(location)
        assert outcome.status_code == 200, (target, outcome.status_code)
        assert "location" not in outcome.headers
        assert target not in outcome.text
        assert_no_leak(live, outcome)


def test_t122_two_verifiers_get_different_instances(
    live: Live, anna: WalletPerson, server: Loopback
) -> None:
    """The same credential type presented to verifier A and verifier B: different issuer
    signatures and ``cnf`` keys (the wallet holds a batch)."""
    other_server = Loopback()
    try:
        a, b = FakeVerifier(live, server), FakeVerifier(live, other_server)
        keys, signatures = set(), set()
        for fake in (a, b):
            anna.approve(_pending(anna, fake, "t122"))
            vp = json.loads(fake.received[-1].form()["vp_token"])["registration"][0]
            payload = sdjwt.decode_unverified(vp).claims
            keys.add(jose.jwk_thumbprint(payload["cnf"]["jwk"]))
            signatures.add(sdjwt.parse(vp).issuer_jwt.rsplit(".", 1)[1])
        assert len(keys) == 2 and len(signatures) == 2
    finally:
        other_server.close()


# -- person A vs person B (T074) --------------------------------------------------------------


def _ids(live: Live, table: str, person_account: int) -> list[str]:
    return [
        str(r[0])
        for r in live.rows(
            "wallet", f"SELECT public_id FROM {table} WHERE account_id = :a", a=person_account
        )
    ]


def test_t074_person_b_cannot_reach_person_a(
    live: Live, anna: WalletPerson, erik: WalletPerson, fake: FakeVerifier
) -> None:
    location = _pending(anna, fake, "idor")  # a pending request of Anna's
    anna.approve(_pending(anna, fake, "idor-consent"))
    account = live.scalar(
        "wallet", "SELECT account_id FROM credentials WHERE public_id = :p", p=anna.credential_id
    )
    credential = anna.credential_id
    consents = _ids(live, "consent_records", account)
    presentations = _ids(live, "presentation_sessions", account)
    issuances = _ids(live, "issuance_sessions", account)
    assert consents and presentations and issuances
    pending = location.rsplit("/", 1)[1]
    csrf = erik.csrf()
    with Unchanged(live, wallet_state()):
        for path in (
            f"/credentials/{credential}",
            f"/consents/{consents[0]}",
            f"/presentations/{pending}",
            f"/issuance/{issuances[0]}",
        ):
            page = erik.get(path)
            refused_page(live, page, 404)
            assert "Anna" not in page.text
        for path in (
            f"/credentials/{credential}/delete",
            f"/presentations/{pending}/approve",
            f"/presentations/{pending}/decline",
            f"/consents/{consents[0]}/withdraw",
            f"/issuance/{issuances[0]}/accept",
            f"/issuance/{issuances[0]}/decline",
        ):
            refused_page(live, erik.post(path, {"csrf_token": csrf}), 404)
    assert anna.get(f"/credentials/{credential}").status_code == 200


# -- eID login, session and framing (T076-T079) ----------------------------------------------


def _callback_of(live: Live, person: str) -> tuple[httpx.Client, str]:
    """Run a login up to the eID's redirect; -> (browser, the callback URL not yet visited)."""
    browser = live.browser()
    started = browser.get(live.url("wallet") + "/login")
    picker = browser.get(started.headers["location"])
    form = next(f for f in forms_of(picker.text) if "authorize" in f.action)
    decided = browser.post(
        httpx.URL(str(picker.url)).join(form.action), data={**form.fields, "person": person}
    )
    return browser, str(decided.headers["location"])


def test_t076_callback_with_the_attackers_code_and_state(live: Live) -> None:
    """The attacker's own callback URL (code + state) opened in the victim's browser: the
    state is not bound to that browser, so no login happens."""
    _, attackers_callback = _callback_of(live, "erik")
    victim = live.browser()
    victim.get(live.url("wallet") + "/login")  # the victim started a login of her own
    with Unchanged(live, wallet_state()):
        page = victim.get(attackers_callback)
        refused_page(live, page, 400)
        assert victim.get(live.url("wallet") + "/").text.count("Erik") == 0


def test_t076_callback_without_state_and_replayed(live: Live) -> None:
    """No ``state``: refused (and the login attempt is over); a used callback again:
    refused (``state`` single use)."""
    browser, callback = _callback_of(live, "anna")
    without_state = re.sub(r"([?&])state=[^&]*", r"\1", callback)
    with Unchanged(live, wallet_state()):
        refused_page(live, browser.get(without_state), 400)
        refused_page(live, browser.get(callback), 400)  # the failed attempt ended it
    browser, callback = _callback_of(live, "anna")
    first = browser.get(callback)
    assert first.status_code == 303
    replay = browser.get(callback)
    refused_page(live, replay, 400)


def test_t077_mix_up_and_low_assurance(live: Live) -> None:
    """``iss`` of another OP in the authorization response; a LoA2 eID (Maja)."""
    browser, callback = _callback_of(live, "anna")
    mixed = re.sub(r"([?&]iss=)[^&]*", r"\1" + quote("https://other-op.example", safe=""), callback)
    with Unchanged(live, {"wallet": ("accounts",)}):
        refused_page(live, browser.get(mixed), 400)
        maja, maja_callback = _callback_of(live, "maja")
        refused_page(live, maja.get(maja_callback), 400)


def test_t078_session_id_rotated_at_login_and_old_cookies_dead(live: Live) -> None:
    browser = live.browser()
    started = browser.get(live.url("wallet") + "/login")
    pre_login = dict(browser.cookies)
    landed = eid_login(live.browser(), live.url("wallet") + "/login", "anna")
    assert landed.status_code == 303
    browser2 = live.browser()
    eid_login(browser2, live.url("wallet") + "/login", "anna")
    session_cookies = [c for c in browser2.cookies.jar if c.name.endswith("intyg_wallet")]
    assert len(session_cookies) == 1
    first_value = session_cookies[0].value
    eid_login(browser2, live.url("wallet") + "/login", "anna")
    second = next(c for c in browser2.cookies.jar if c.name.endswith("intyg_wallet"))
    assert second.value != first_value  # a fresh session at every login
    # The pre-login cookie never authenticates.
    anonymous = httpx.Client(timeout=TIMEOUT, cookies=pre_login)
    assert anonymous.get(live.url("wallet") + "/credentials/x").status_code == 401
    assert started.status_code in (302, 303)


def test_t078_session_cookie_flags(live: Live) -> None:
    browser = live.browser()
    landed = eid_login(browser, live.url("wallet") + "/login", "anna")
    cookie = next(
        v for k, v in landed.headers.multi_items() if k == "set-cookie" and "intyg_wallet=" in v
    )
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    # Development on http://127.0.0.1: no Secure flag, no __Host- prefix (README: production).
    assert "secure" not in flags


@pytest.mark.parametrize("path", ["/", "/consents", "/settings", "/add", "/present"])
def test_t079_pages_cannot_be_framed(live: Live, anna: WalletPerson, path: str) -> None:
    page = anna.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "no-store" in page.headers["cache-control"]


def test_t079_consent_screen_cannot_be_framed(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    screen = anna.get(_pending(anna, fake, "framed"))
    assert screen.status_code == 200
    assert screen.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in screen.headers["content-security-policy"]


# -- receiving from a misbehaving issuer (T081-T083) -----------------------------------------


@pytest.fixture
def fake_issuer(live: Live, server: Loopback) -> FakeIssuer:
    return FakeIssuer(live, server)


def _add(anna: WalletPerson, link: str) -> httpx.Response:
    return anna.post("/add", {"csrf_token": anna.csrf(), "link": link})


def test_control_fake_issuer_credentials_are_stored(
    live: Live, anna: WalletPerson, fake_issuer: FakeIssuer
) -> None:
    """The honest case of the fake issuer: trusted chain, stored, ``credential_accepted``."""
    credential_id = anna.receive(fake_issuer.offer_link())
    assert credential_id or anna.get("/").status_code == 200
    assert fake_issuer.notifications[-1]["event"] == "credential_accepted"


def test_t081_metadata_of_another_issuer_stops_the_flow(
    live: Live, anna: WalletPerson, fake_issuer: FakeIssuer
) -> None:
    fake_issuer.metadata["credential_issuer"] = live.url("issuer-af")
    with Unchanged(live, wallet_state()):
        refused_page(live, _add(anna, fake_issuer.offer_link()), 400)
    assert fake_issuer.server.to("/token") == []


def test_t081_offer_page_shows_the_real_host_the_tx_code_goes_to(
    live: Live, anna: WalletPerson, fake_issuer: FakeIssuer
) -> None:
    offer = json.loads(
        json.dumps(
            oid4vci.credential_offer(
                fake_issuer.base,
                [fake_issuer.configuration_id],
                pre_authorized_code="fake-pre-authorized-code",
                tx_code={"length": 6, "input_mode": "numeric"},
            )
        )
    )
    fake_issuer.metadata["display"] = [{"name": "Arbetsförmedlingen", "locale": "sv"}]
    added = _add(anna, oid4vci.offer_link(offer))
    assert added.status_code == 303
    page = anna.get(added.headers["location"])
    host = fake_issuer.base.split("//", 1)[1]
    assert host in page.text  # the real host, next to whatever name the metadata claims
    assert fake_issuer.server.to("/token") == []  # nothing sent before the person accepts


def _mint(
    fake_issuer: FakeIssuer, case: str, real_issuer: str
) -> Callable[[list[dict[str, Any]]], list[str]]:
    def mint(jwks: list[dict[str, Any]]) -> list[str]:
        good = fake_issuer.issue(jwks[0])
        if case == "bad_signature":
            jwt, rest = good.split("~", 1)
            from .fakes import flip_signature_bit

            return [flip_signature_bit(jwt) + "~" + rest, *fake_issuer.good(jwks[1:])]
        if case == "cnf_not_our_key":
            return [fake_issuer.issue(jose.generate_key("ES256").public_jwk()) for _ in jwks]
        if case == "sd_jwt_with_kb":
            holder = jose.generate_key("ES256")
            bound = fake_issuer.issue(holder.public_jwk())
            return [
                sdjwt.present(bound, [("registered",)], holder_key=holder, aud="x", nonce="n")
            ] * len(jwks)
        if case == "issuer_key_unresolvable":
            return [fake_issuer.issue(j, header={"kid": "nowhere"}) for j in jwks]
        if case == "unreferenced_disclosure":
            extra = b64([sdjwt.new_salt(), "given_name", "Mallory"])
            return [c + extra + "~" for c in fake_issuer.good(jwks)]
        if case == "another_issuer_named":
            payload = fake_issuer.payload(iss=real_issuer)
            return [fake_issuer.issue(j, payload) for j in jwks]
        if case == "wrong_vct":
            payload = fake_issuer.payload(vct="https://intyg.example/vct/other/1")
            return [fake_issuer.issue(j, payload) for j in jwks]
        if case == "alg_none":
            jwt, rest = good.split("~", 1)
            head = json.loads(jose.b64url_decode(jwt.split(".")[0]))
            return [
                raw_jws({**head, "alg": "none"}, jose.b64url_decode(jwt.split(".")[1]).decode())
                + "~"
                + rest
            ] * len(jwks)
        raise AssertionError(case)

    return mint


@pytest.mark.parametrize(
    "case",
    [
        "bad_signature",
        "cnf_not_our_key",
        "sd_jwt_with_kb",
        "issuer_key_unresolvable",
        "unreferenced_disclosure",
        "another_issuer_named",
        "wrong_vct",
        "alg_none",
    ],
)
def test_t082_bad_credentials_are_not_stored(
    live: Live, anna: WalletPerson, fake_issuer: FakeIssuer, case: str
) -> None:
    fake_issuer.mint = _mint(fake_issuer, case, live.url("issuer-af"))
    added = _add(anna, fake_issuer.offer_link())
    assert added.status_code == 303, added.text
    form = next(
        f
        for f in forms_of(anna.get(added.headers["location"]).text)
        if f.action.endswith("/accept")
    )
    with Unchanged(
        live,
        {"wallet": ("credentials", "credential_instances", "holder_keys WHERE state = 'bound'")},
    ):
        accepted = anna.post(form.action, form.fields)
        refused_page(live, accepted, 502)
    assert fake_issuer.notifications[-1]["event"] == "credential_failure"
    assert live.count("wallet", "holder_keys WHERE state = 'proof_sent'") == 0


def test_t083_holder_keys_one_per_instance_and_deleted_with_the_credential(
    live: Live, af: Issuing
) -> None:
    person = WalletPerson(live, "bjorn")
    bjorn = Issuing.start(
        live,
        "issuer-af",
        {"personal_identity_number": "196606011358", "given_name": "Björn", "family_name": "Åberg"},
    )
    created = bjorn.offer(tx_code=True, configuration_ids=[bjorn.sd_jwt_id])
    credential_id = person.receive(created["link"], created["tx_code"])
    card = live.scalar("wallet", "SELECT id FROM credentials WHERE public_id = :p", p=credential_id)
    instances = live.count("wallet", f"credential_instances WHERE credential_id = {int(card)}")
    keys = live.scalar(
        "wallet",
        "SELECT count(DISTINCT holder_key_id) FROM credential_instances WHERE credential_id = :c",
        c=card,
    )
    assert instances == keys >= 2
    detail = person.get(f"/credentials/{credential_id}")
    assert '"d"' not in detail.text and "private" not in detail.text.lower()
    key_ids = [
        r[0]
        for r in live.rows(
            "wallet",
            "SELECT holder_key_id FROM credential_instances WHERE credential_id = :c",
            c=card,
        )
    ]
    deleted = person.post(f"/credentials/{credential_id}/delete", {"csrf_token": csrf_of(detail)})
    assert deleted.status_code == 303
    left = live.count("wallet", f"holder_keys WHERE id IN ({','.join(map(str, key_ids))})")
    assert left == 0


def csrf_of(page: httpx.Response) -> str:
    from .live import csrf

    return csrf(page.text)


# -- SSRF through links (T085) ----------------------------------------------------------------

SSRF_TARGETS = {
    "link_local_metadata": "https://169.254.169.254/latest/meta-data",
    "link_local_http": "http://169.254.169.254/latest/meta-data",
    "private_http": "http://10.0.0.1/x",
    "decimal_ip": "http://2130706433/x",
    "octal_ip": "http://0177.0.0.1/x",
    "short_ip": "http://127.1/x",
    "userinfo": "http://user@127.0.0.1:1/x",
    "file_scheme": "file:///etc/passwd",
    "gopher_scheme": "gopher://127.0.0.1:25/x",
    "unspecified": "https://0.0.0.0/x",
    "ipv6_mapped_link_local": "https://[::ffff:169.254.169.254]/x",
    "multicast": "https://224.0.0.1/x",
    "http_to_public_name": "http://example.com/x",
}


@pytest.mark.parametrize("target", sorted(SSRF_TARGETS))
def test_t085_offer_uri_to_forbidden_addresses(live: Live, anna: WalletPerson, target: str) -> None:
    """``credential_offer_uri`` chosen by a stranger: refused before any connection."""
    link = "openid-credential-offer://?" + urlencode({"credential_offer_uri": SSRF_TARGETS[target]})
    with Unchanged(live, wallet_state()):
        page = _add(anna, link)
        refused_page(live, page, 400)
        same_device = anna.get("/offer?" + link.split("?", 1)[1])
        refused_page(live, same_device, 400)


@pytest.mark.parametrize("target", sorted(SSRF_TARGETS))
def test_t085_request_uri_to_forbidden_addresses(
    live: Live, anna: WalletPerson, fake: FakeVerifier, target: str
) -> None:
    query = urlencode({"client_id": fake.client_id, "request_uri": SSRF_TARGETS[target]})
    with Unchanged(live, wallet_state()):
        refused_page(live, anna.open_request(query), 400)


def test_t085_response_uri_to_a_forbidden_address(
    live: Live, anna: WalletPerson, fake: FakeVerifier
) -> None:
    """An authentic request whose ``response_uri`` is cloud metadata: the presentation is
    never delivered there (refused by the outbound guard or at the request)."""
    claims = fake.claims(QUERY, response_uri="http://169.254.169.254/latest")
    opened = anna.open_request(fake.publish("metadata", fake.signed(claims)))
    if opened.status_code == 303:
        outcome = anna.approve(opened.headers["location"])
        assert outcome.status_code in (200, 502), outcome.text
        assert_no_leak(live, outcome)
    else:
        refused_page(live, opened, 400)


# -- the database and the logs (T084, T111) ---------------------------------------------------


def test_t084_wallet_database_holds_no_personal_data_in_clear(
    live: Live, anna: WalletPerson
) -> None:
    if live.backend != "sqlite":
        dump = "\n".join(
            str(row)
            for table in (
                "credentials",
                "credential_instances",
                "holder_keys",
                "issuance_sessions",
                "consent_records",
                "accounts",
            )
            for row in live.rows("wallet", f"SELECT * FROM {table}")
        )
    else:
        dump = "".join(
            (live.data / "wallet" / name).read_bytes().decode("latin-1")
            for name in ("wallet.sqlite3", "wallet.sqlite3-wal")
            if (live.data / "wallet" / name).exists()
        )
    for value in (*PERSONAL_NUMBERS, "2025-09-01", '"d":', "Andersson"):
        assert value not in dump, value


def test_t084_t111_logs_hold_no_secrets_or_personal_numbers(live: Live, anna: WalletPerson) -> None:
    """Every service's log after the suite's traffic so far: no personal number, no
    development secret, no access token or pre-authorized code, no traceback."""
    for path in (live.data / "logs").glob("*.log"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for value in (*PERSONAL_NUMBERS, *live.secrets()):
            assert value not in text, (path.name, value[:4])
        assert "Traceback" not in text, path.name
