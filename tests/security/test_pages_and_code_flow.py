"""The issuer's authorization code flow against the live issuer and eID (T027-T029 and HAIP
client authentication), and the browser-facing pages of the issuer, wallet and verifier:
CSRF on every state-changing form, cookie flags, framing, open redirects (T078, T079,
BCP §4.11)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from intyg import jose, oid4vci, x509
from intyg.demo import forms_of
from tests.issuer.wallet_sim import AuthorizationStart, Wallet, WalletProvider

from .actors import Issuing, WalletPerson
from .live import (
    ISSUER_STATE,
    TIMEOUT,
    WALLET_STATE,
    Live,
    Unchanged,
    assert_no_leak,
    csrf,
    eid_login,
    refused,
    refused_page,
)

REDIRECT = "https://wallet.example/cb"


def trusted_provider(live: Live) -> WalletProvider:
    """A wallet provider under the wallet's development CA, which the issuers trust
    (``TRUSTED_WALLET_PROVIDERS``): its attestations authenticate the wallet simulator."""
    ca_key, ca_pem = live.sealed_key("wallet", "provider_keys", "dev_ca", "wallet/provider-key")
    provider = WalletProvider.__new__(WalletProvider)
    provider.ca_key, provider.ca_cert = ca_key, x509.cert_from_pem(ca_pem)
    provider.key = jose.generate_key("ES256")
    provider.cert = x509.make_leaf(
        ca_key,
        provider.ca_cert,
        provider.key,
        common_name="simulated wallet attestation",
        organization="intyg wallet",
        country="SE",
        san_dns=["wallet.example"],
    )
    provider.x5c = x509.x5c_from_certs([provider.cert])
    return provider


@pytest.fixture(scope="module")
def provider(live: Live) -> WalletProvider:
    return trusted_provider(live)


def _wallet(af: Issuing, provider: WalletProvider | None, **kwargs: Any) -> Wallet:
    return Wallet(httpx.Client(timeout=TIMEOUT), af.url, provider=provider, **kwargs)


def _scope(af: Issuing) -> str:
    metadata = httpx.get(oid4vci.well_known_url(af.url), timeout=TIMEOUT).json()
    return str(metadata["credential_configurations_supported"][af.sd_jwt_id]["scope"])


def _log_in_at_the_issuer(live: Live, start: AuthorizationStart, person: str = "anna") -> str:
    """The person's browser from ``/authorize`` through the eID picker back to the issuer;
    -> the ``Location`` the issuer finally sends (the wallet's redirect URI + code)."""
    browser = live.browser()
    response = browser.get(start.authorize_url)
    eid_host = urlsplit(live.url("eid")).netloc
    for _ in range(10):
        assert response.status_code in (200, 302, 303), response.text
        if response.status_code == 200:  # the eID picker
            form = next(f for f in forms_of(response.text) if "authorize" in f.action)
            response = browser.post(
                httpx.URL(str(response.url)).join(form.action),
                data={**form.fields, "person": person},
            )
            continue
        location = response.headers["location"]
        target = urlsplit(location)
        if target.netloc not in (eid_host, urlsplit(start.authorize_url).netloc) and target.netloc:
            return str(location)
        response = browser.get(httpx.URL(str(response.url)).join(location))
    raise AssertionError("the login did not come back to the wallet")


def _code(location: str) -> str:
    return Wallet.authorization_response(location)["code"]


def _start(af: Issuing, wallet: Wallet) -> AuthorizationStart:
    response, start = wallet.push_authorization(redirect_uri=REDIRECT, scope=_scope(af))
    assert start is not None, response.text
    return start


def test_control_code_flow_works(live: Live, af: Issuing, provider: WalletProvider) -> None:
    wallet = _wallet(af, provider)
    start = _start(af, wallet)
    code = _code(_log_in_at_the_issuer(live, start))
    assert wallet.authorization_code_token(code, start).status_code == 200


def test_par_refusals(live: Live, af: Issuing, provider: WalletProvider) -> None:
    """HAIP: wallet attestation required (and from a trusted provider); PKCE S256 only
    (T027); exact redirect URIs without fragments; known scopes."""
    scope = _scope(af)
    wallet = _wallet(af, provider)
    with Unchanged(live, {af.agency: ISSUER_STATE}):
        unattested, _ = _wallet(af, None).push_authorization(
            redirect_uri=REDIRECT, scope=scope, attest=False
        )
        refused(live, unattested, 401, "invalid_client")
        rogue, _ = _wallet(af, WalletProvider("Rogue")).push_authorization(
            redirect_uri=REDIRECT, scope=scope
        )
        refused(live, rogue, 401, "invalid_client")
        for extra in (
            {"code_challenge_method": "plain", "code_challenge": "a" * 43},
            {"code_challenge_method": "S256", "code_challenge": ""},
        ):
            plain, _ = wallet.push_authorization(redirect_uri=REDIRECT, scope=scope, extra=extra)
            refused(live, plain, 400, "invalid_request")
        fragment, _ = wallet.push_authorization(redirect_uri=REDIRECT + "#x", scope=scope)
        refused(live, fragment, 400, "invalid_request")
        unknown, _ = wallet.push_authorization(redirect_uri=REDIRECT, scope="openid")
        refused(live, unknown, 400, "invalid_scope")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),  # T027 wrong verifier
        ({"code_verifier": None}, "invalid_grant"),  # T027 verifier missing
        ({"redirect_uri": REDIRECT + "/other"}, "invalid_grant"),  # T028 redirect URI Y
        ({"redirect_uri": None}, "invalid_grant"),
    ],
    ids=[
        "T027_wrong_verifier",
        "T027_missing_verifier",
        "T028_other_redirect_uri",
        "T028_no_redirect_uri",
    ],
)
def test_code_bound_to_pkce_and_redirect_uri(
    live: Live, af: Issuing, provider: WalletProvider, overrides: dict[str, Any], error: str
) -> None:
    wallet = _wallet(af, provider)
    start = _start(af, wallet)
    code = _code(_log_in_at_the_issuer(live, start))
    with Unchanged(live, {af.agency: ISSUER_STATE}):
        refused(live, wallet.authorization_code_token(code, start, overrides=overrides), 400, error)
    # The code is burnt by the failed attempt (RFC 9700 §4.5).
    refused(live, wallet.authorization_code_token(code, start), 400, "invalid_grant")


def test_t028_code_of_client_a_redeemed_by_client_b(
    live: Live, af: Issuing, provider: WalletProvider
) -> None:
    wallet = _wallet(af, provider)
    start = _start(af, wallet)
    code = _code(_log_in_at_the_issuer(live, start))
    other = _wallet(af, provider, client_id="https://other-wallet.example")
    with Unchanged(live, {af.agency: ISSUER_STATE}):
        refused(
            live,
            other.authorization_code_token(code, start, overrides={"client_id": None}),
            400,
            "invalid_grant",
        )
    refused(live, wallet.authorization_code_token(code, start), 400, "invalid_grant")


def test_t028_code_bound_to_the_dpop_key(live: Live, af: Issuing, provider: WalletProvider) -> None:
    wallet = _wallet(af, provider)
    start = _start(af, wallet)
    code = _code(_log_in_at_the_issuer(live, start))
    wallet.dpop_key = jose.generate_key("ES256")
    with Unchanged(live, {af.agency: ISSUER_STATE}):
        response = wallet.authorization_code_token(code, start)
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] in ("invalid_dpop_proof", "invalid_grant", "invalid_client")
        assert_no_leak(live, response)


def test_t029_authorize_never_redirects_to_an_unchecked_uri(
    live: Live, af: Issuing, provider: WalletProvider
) -> None:
    wallet = _wallet(af, provider)
    start = _start(af, wallet)
    client = quote(wallet.client_id, safe="")
    evil = [
        start.authorize_url + "&redirect_uri=" + quote(REDIRECT + "/x", safe=""),
        start.authorize_url + "&redirect_uri=" + quote("https://wallet.example:444/cb", safe=""),
        start.authorize_url + "&redirect_uri=" + quote("https://user@wallet.example/cb", safe=""),
        start.authorize_url + "&redirect_uri=" + quote("https://wallet.example/c%62", safe=""),
        start.authorize_url
        + "&redirect_uri="
        + quote("https://evil.example/?r=" + REDIRECT, safe=""),
        start.authorize_url.replace("request_uri=urn", "request_uri=urnx"),
        f"{af.url}/authorize?client_id={client}&response_type=code&redirect_uri="
        + quote("https://evil.example", safe=""),
        start.authorize_url.replace(client, "other"),
        start.authorize_url + "&client_id=other",
    ]
    for url in evil:
        page = httpx.get(url, timeout=TIMEOUT)
        assert page.status_code in (400, 503), (url, page.status_code)
        assert "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")
        assert_no_leak(live, page)


def test_eid_refuses_unregistered_redirect_uris(live: Live) -> None:
    """The development eID: an unregistered redirect URI gets an error page, not a redirect
    (exact match, BCP §4.1)."""
    wallet_callback = live.url("wallet") + "/login/callback"
    for redirect in (
        wallet_callback + "/x",
        "https://evil.example/cb",
        wallet_callback.replace("127.0.0.1", "localhost"),
    ):
        query = httpx.QueryParams(
            {
                "client_id": "wallet",
                "response_type": "code",
                "redirect_uri": redirect,
                "scope": "openid",
                "state": "s" * 22,
                "nonce": "n" * 22,
                "code_challenge": "c" * 43,
                "code_challenge_method": "S256",
            }
        )
        page = httpx.get(f"{live.url('eid')}/authorize?{query}", timeout=TIMEOUT)
        assert page.status_code == 400 and "location" not in page.headers, redirect
        assert_no_leak(live, page)


# -- CSRF on every state-changing form -----------------------------------------------------


def test_wallet_forms_need_the_sessions_csrf_token(live: Live, anna: WalletPerson) -> None:
    other = WalletPerson(live, "erik")
    foreign_token = other.csrf()
    consents = [
        r[0] for r in live.rows("wallet", "SELECT public_id FROM consent_records LIMIT 1")
    ] or ["x"]
    paths = [
        "/logout",
        "/add",
        "/present",
        "/settings/export",
        "/settings/import",
        "/settings/delete",
        f"/credentials/{anna.credential_id}/delete",
        f"/consents/{consents[0]}/withdraw",
        "/presentations/x/approve",
        "/presentations/x/decline",
        "/issuance/x/accept",
        "/issuance/x/decline",
    ]
    with Unchanged(live, {"wallet": WALLET_STATE}):
        for path in paths:
            for data in ({}, {"csrf_token": foreign_token}, {"csrf_token": "x" * 43}):
                fields = {**data, "confirm": "RADERA", "passphrase": "p" * 20, "link": "x"}
                response = anna.post(path, fields)
                refused_page(live, response, 403)
    assert anna.get("/").status_code == 200  # still logged in, account still there


def test_issuer_page_forms_need_the_csrf_token(live: Live, af: Issuing) -> None:
    browser = live.browser()
    landed = eid_login(browser, af.url + "/login", "anna")
    assert landed.status_code == 303
    page = browser.get(af.url + "/")
    assert page.status_code == 200
    record = next(
        (f.fields.get("record") for f in forms_of(page.text) if f.action.endswith("/wallet-offer")),
        "1",
    )
    with Unchanged(live, {af.agency: ISSUER_STATE}):
        for path in ("/wallet-offer", "/logout"):
            for token in (None, "x" * 43):
                data = {"record": record or "1", **({"csrf_token": token} if token else {})}
                refused_page(live, browser.post(af.url + path, data=data), 403)
        # Another site's page posting with the victim's cookies but without the token:
        anonymous = httpx.post(
            af.url + "/wallet-offer", data={"record": record or "1"}, timeout=TIMEOUT
        )
        assert anonymous.status_code in (401, 403)


def test_verifier_page_forms_need_the_csrf_token(live: Live) -> None:
    base = live.url("verifier")
    browser = live.browser()
    login_page = browser.get(base + "/login")
    assert login_page.status_code == 200
    with Unchanged(live, {"verifier": ("transactions", "audit_log")}):
        for path, data in (
            ("/login", {"username": "dev-user", "password": "p" * 20}),
            ("/requests", {"template": "registration_certificate", "mode": "cross_device"}),
            ("/logout", {}),
            ("/return", {"response_code": "x" * 43}),
        ):
            for token in (None, "x" * 43):
                form = {**data, **({"csrf_token": token} if token else {})}
                response = browser.post(base + path, data=form)
                assert response.status_code in (400, 401, 403, 415), (path, response.status_code)
                assert "location" not in response.headers or path == "/logout"
                assert_no_leak(live, response)


# -- cookies, framing, open redirects (T078, T079) -----------------------------------------


def test_t078_issuer_session_rotates_and_cookie_flags(live: Live, af: Issuing) -> None:
    browser = live.browser()
    first = eid_login(browser, af.url + "/login", "anna")
    second = eid_login(browser, af.url + "/login", "anna")
    cookies = []
    for landed in (first, second):
        cookie = next(
            v
            for k, v in landed.headers.multi_items()
            if k == "set-cookie" and "intyg" in v and "Max-Age=0" not in v
        )
        cookies.append(cookie.split(";")[0])
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=lax" in flags
    assert cookies[0] != cookies[1]


@pytest.mark.parametrize("service", ["issuer-af", "verifier", "wallet", "eid"])
def test_t079_pages_are_not_framable(live: Live, service: str) -> None:
    path = {"issuer-af": "/", "verifier": "/login", "wallet": "/", "eid": "/authorize"}[service]
    page = httpx.get(live.url(service) + path, timeout=TIMEOUT)
    assert page.headers["content-type"].startswith("text/html"), service
    frame = page.headers.get("x-frame-options", "") + page.headers.get(
        "content-security-policy", ""
    )
    assert "DENY" in frame or "frame-ancestors 'none'" in frame, (service, page.headers)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
    ],
)
def test_open_redirect_after_wallet_login(live: Live, target: str) -> None:
    """``/login?next=...`` comes back to a local path only."""
    browser = live.browser()
    landed = eid_login(
        browser, live.url("wallet") + "/login?next=" + quote(target, safe=""), "anna"
    )
    assert landed.status_code == 303
    location = landed.headers["location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil.example" not in location.split("?")[0].replace("/%2F%2Fevil.example", "")
    assert "\\" not in location and not location.lower().startswith("/javascript")


@pytest.mark.parametrize("service", ["wallet", "issuer-af"])
def test_t078_a_copy_of_the_cookie_is_dead_after_logout(live: Live, service: str) -> None:
    """Logout is a privilege change: the session id dies with it, also in a copy of the
    cookie taken before (the cookies are stateless: the service records ended sessions)."""
    base = live.url(service)
    browser = live.browser()
    assert eid_login(browser, base + "/login", "anna").status_code == 303
    stolen = httpx.Client(timeout=TIMEOUT, cookies=dict(browser.cookies))
    protected = "/"
    before = stolen.get(base + protected)
    assert before.status_code == 200 and "Anna" in before.text
    page = browser.get(base + protected)
    form = next(f for f in forms_of(page.text) if f.action.endswith("/logout"))
    assert browser.post(base + "/logout", data=form.fields).status_code == 303
    after = stolen.get(base + protected)
    assert "Anna" not in after.text, service
    assert after.status_code in (200, 401), after.status_code  # the login page
    again = stolen.post(base + "/logout", data=form.fields)
    assert again.status_code == 403


def _employer_login(live: Live, browser: httpx.Client) -> httpx.Response:
    """The development employer page user (``dev-secrets.json`` ``employer_page``) logs in."""
    base = live.url("verifier")
    form = next(f for f in forms_of(browser.get(base + "/login").text) if f.action == "/login")
    return browser.post(base + "/login", data={**form.fields, **live.dev_secrets["employer_page"]})


def test_t078_verifier_session_rotates_and_a_copy_is_dead_after_logout(live: Live) -> None:
    """The employer page: a fresh session id at login; logout ends that id, also in a copy
    of the cookie taken before (recorded in ``ended_sessions``); other sessions live on."""
    base = live.url("verifier")
    browser, other = live.browser(), live.browser()
    browser.get(base + "/login")
    anonymous = browser.cookies.get("intyg_verifier")
    landed = _employer_login(live, browser)
    assert landed.status_code == 303 and landed.headers["location"] == "/", landed.text
    assert browser.cookies.get("intyg_verifier") not in (None, anonymous)
    assert _employer_login(live, other).status_code == 303
    stolen = httpx.Client(timeout=TIMEOUT, cookies=dict(browser.cookies))
    home = stolen.get(base + "/")
    assert home.status_code == 200 and "/logout" in home.text  # the copy works before
    token = csrf(home.text)
    created = browser.post(
        base + "/requests",
        data={"template": "registration_certificate", "mode": "cross_device", "csrf_token": token},
    )
    assert created.status_code == 303, created.text
    status_path = created.headers["location"] + "/status"
    stolen.cookies.update(dict(browser.cookies))  # with the request binding cookie
    assert stolen.get(base + status_path).status_code == 200

    ended = live.count("verifier", "ended_sessions")
    assert browser.post(base + "/logout", data={"csrf_token": token}).status_code == 303
    assert live.count("verifier", "ended_sessions") == ended + 1

    start = stolen.get(base + "/")
    assert start.status_code == 303 and start.headers["location"] == "/login"
    assert stolen.get(base + status_path).status_code == 404
    with Unchanged(live, {"verifier": ("transactions", "audit_log", "ended_sessions")}):
        for path, data in (
            ("/requests", {"template": "registration_certificate", "mode": "cross_device"}),
            ("/return", {"response_code": "x" * 43}),
            ("/logout", {}),
        ):
            refused_page(live, stolen.post(base + path, data={**data, "csrf_token": token}), 403)
    page = other.get(base + "/")  # another session of the same user is not logged out
    assert page.status_code == 200 and "/logout" in page.text
