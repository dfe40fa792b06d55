"""The employer page: "Open in <wallet>" buttons for known wallets on the same-device page
(OpenID4VP 1.0 §5: the request at the wallet's authorization endpoint), the rules for
configuring them, the language kept on the way to the login page, a revoked or suspended
credential named in the rejected result (sv and en), and http ``same_device_redirect``
refused outside development."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError

from intyg import status
from intyg.web import db
from intyg.web.errors import ProtocolError
from verifier import templates, transactions
from verifier.app import VerifierContext, create_app
from verifier.employers import create_employer
from verifier.models import Transaction
from verifier.settings import VerifierSettings

from .conftest import VERIFIER_URL, Clock, make_settings
from .flows import post_response
from .helpers import StatusServer
from .test_pages import add_user, logged_in, new_request, registration, wallet_request

WALLET = {
    "name": {"sv": "Exempelplånboken", "en": "the Example Wallet"},
    "authorization_endpoint": "https://wallet.example/authorize",
    "credential_offer_endpoint": "https://wallet.example/offer",
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, trust_file: Path) -> VerifierSettings:
    return make_settings(database_url, tmp_path, trust_file, wallets=[WALLET])


@pytest.fixture
def browser(client: TestClient, ctx: VerifierContext) -> Iterator[TestClient]:
    add_user(ctx)
    with logged_in(client.app) as test_client:
        yield test_client


def _hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'<a class="button" href="([^"]+)"', page)]


# -- known wallets ---------------------------------------------------------------------------


def test_same_device_page_opens_the_known_wallet(browser: TestClient) -> None:
    tid = new_request(browser, mode="same_device")
    page = browser.get(f"/requests/{tid}").text
    assert "Öppna i Exempelplånboken" in page and "Öppna en annan plånbok" in page
    known, generic = _hrefs(page)
    assert generic.startswith("openid4vp://?")
    assert known.startswith("https://wallet.example/authorize?")
    # The same request (client_id, request_uri) as the custom-scheme link, nothing more.
    assert parse_qs(urlsplit(known).query) == parse_qs(urlsplit(generic).query)
    assert parse_qs(urlsplit(known).query)["request_uri"] == [f"{VERIFIER_URL}/request/{tid}"]
    english = browser.get(f"/requests/{tid}?lang=en").text
    assert "Open in the Example Wallet" in english and "Open another wallet" in english


def test_cross_device_page_has_no_wallet_button(browser: TestClient) -> None:
    """Another device scans the QR code; this device uses "the wallet on this device"."""
    page = browser.get(f"/requests/{new_request(browser)}").text
    assert "<svg" in page and "Exempelplånboken" not in page
    assert "wallet.example" not in page


def test_without_known_wallets_only_the_custom_scheme(
    database_url: str, tmp_path: Path, trust_file: Path, clock: Clock
) -> None:
    settings = make_settings(database_url, tmp_path, trust_file)
    engine = db.create_engine(database_url)
    app = create_app(settings, clock=clock, engine=engine)
    try:
        with TestClient(app, base_url=VERIFIER_URL):
            add_user(app.state.verifier)
            with logged_in(app) as plain:
                page = plain.get(f"/requests/{new_request(plain, mode='same_device')}").text
    finally:
        engine.dispose()
    assert [h.split("?")[0] for h in _hrefs(page)] == ["openid4vp://"]
    assert "Öppna plånboken" in page and "Öppna i " not in page


def _settings(environment: str, wallet: dict[str, Any], tmp_path: Path, trust: Path) -> Any:
    values: dict[str, Any] = {"dev_api_client_secret": None} if environment == "production" else {}
    return make_settings(
        f"sqlite:///{tmp_path / 'v.sqlite3'}",
        tmp_path,
        trust,
        environment=environment,
        wallets=[wallet],
        **values,
    )


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ("production", "http://127.0.0.1:8403/authorize"),  # http: development only
        ("production", "http://wallet.example/authorize"),
        ("development", "http://wallet.example/authorize"),  # http only to loopback
        ("development", "https://wallet.example/authorize?x=1"),  # the link adds the query
        ("development", "https://wallet.example/authorize#top"),
        ("development", "https://user@wallet.example/authorize"),
        ("development", "openid4vp://authorize"),
        ("development", "https://wallet example/authorize"),
        ("development", "https:///authorize"),
    ],
)
def test_wallet_endpoint_rules(
    environment: str, endpoint: str, tmp_path: Path, trust_file: Path
) -> None:
    with pytest.raises(ValidationError, match="wallets"):
        _settings(environment, {**WALLET, "authorization_endpoint": endpoint}, tmp_path, trust_file)


@pytest.mark.parametrize(
    "wallet",
    [
        {"name": {"sv": "Plånbok"}, "authorization_endpoint": "https://w.example/a"},  # no en
        {"name": {"sv": "", "en": "W"}, "authorization_endpoint": "https://w.example/a"},
        {"name": {"sv": "W", "en": "W"}},  # no endpoint
        {**WALLET, "logo": "https://w.example/logo.png"},  # unknown member
    ],
)
def test_wallet_entry_rules(wallet: dict[str, Any], tmp_path: Path, trust_file: Path) -> None:
    with pytest.raises(ValidationError, match="wallets"):
        _settings("development", wallet, tmp_path, trust_file)


def test_wallet_endpoints_accepted(tmp_path: Path, trust_file: Path) -> None:
    assert _settings("production", WALLET, tmp_path, trust_file).wallets[0].name.en
    loopback = {**WALLET, "authorization_endpoint": "http://127.0.0.1:8403/authorize"}
    assert _settings("development", loopback, tmp_path, trust_file).wallets


# -- the language on the way to the login page ------------------------------------------------


def test_language_kept_on_the_way_to_login(client: TestClient) -> None:
    start = client.get("/?lang=en", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"] == "/login?lang=en"
    assert "intyg_verifier_lang=en" in start.headers["set-cookie"]
    # The URL alone carries it (a browser that drops the cookie) ...
    with TestClient(client.app, base_url=VERIFIER_URL) as fresh:
        page = fresh.get(start.headers["location"])
        assert '<html lang="en">' in page.text and "Username" in page.text
    # ... and so does the cookie; a result page's link keeps it too.
    assert '<html lang="en">' in client.get("/", follow_redirects=True).text
    other = client.get("/requests/abc?lang=sv", follow_redirects=False)
    assert other.headers["location"] == "/login?lang=sv"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


# -- a revoked or suspended credential in words -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "swedish", "english"),
    [
        (
            status.INVALID,
            "Intyget har återkallats av utfärdaren.",
            "The credential has been revoked by its issuer.",
        ),
        (
            status.SUSPENDED,
            "Intyget är tillfälligt spärrat av utfärdaren.",
            "The credential is suspended by its issuer.",
        ),
    ],
)
def test_rejected_names_revoked_or_suspended(
    client: TestClient,
    browser: TestClient,
    pki: Any,
    holder: Any,
    status_lists: dict[str, Any],
    status_server: StatusServer,
    value: int,
    swedish: str,
    english: str,
) -> None:
    lst = status_lists["af"]
    lst.set(3, value)  # the index registration() issues with
    status_server.publish(f"af-{status_lists['name']}", lst, pki.af)
    tid = new_request(browser)
    request = wallet_request(client, tid)
    presentation = registration(pki, holder, status_lists, request)
    assert post_response(client, request, {"registration": [presentation]}).status_code == 400
    page = browser.get(f"/requests/{tid}").text
    assert "✗ Avvisat" in page and swedish in page
    assert "eller dess status kunde inte kontrolleras" not in page  # the general text
    page = browser.get(f"/requests/{tid}?lang=en").text
    assert "✗ Rejected" in page and english in page
    assert "could not be checked" not in page


def test_status_unknown_keeps_the_general_text(
    client: TestClient, browser: TestClient, pki: Any, holder: Any, status_server: StatusServer
) -> None:
    """A list that cannot be fetched is neither revoked nor suspended: the general words."""
    tid = new_request(browser)
    request = wallet_request(client, tid)
    missing = {"af_uri": status_server.url("missing-list")}
    presentation = registration(pki, holder, missing, request)
    assert post_response(client, request, {"registration": [presentation]}).status_code == 400
    page = browser.get(f"/requests/{tid}").text
    assert "Intyget är återkallat, spärrat eller dess status kunde inte kontrolleras." in page
    assert "återkallats av utfärdaren" not in page and "spärrat av utfärdaren" not in page
    english = browser.get(f"/requests/{tid}?lang=en").text
    assert "revoked, suspended or its status could not be checked" in english


# -- same_device_redirect: http outside development ---------------------------------------------


def _create(ctx: VerifierContext, redirect: str) -> Transaction:
    with db.session(ctx.engine) as unit:
        employer = create_employer(unit, name="Exempel AB", org_number="556000-0002", now=0)
        assert employer.id is not None
        return transactions.create_transaction(
            ctx,
            unit,
            employer_id=employer.id,
            client_id=None,
            template=templates.builtin("registration_certificate"),
            same_device_redirect=redirect,
        )


def test_http_redirect_refused_outside_development(
    database_url: str, tmp_path: Path, trust_file: Path, clock: Clock, engine: sa.Engine
) -> None:
    settings = make_settings(
        database_url, tmp_path, trust_file, environment="production", dev_api_client_secret=None
    )
    with TestClient(create_app(settings, clock=clock, engine=engine), base_url=VERIFIER_URL) as c:
        ctx: VerifierContext = c.app.state.verifier  # type: ignore[attr-defined]
        with pytest.raises(ProtocolError, match="https"):
            _create(ctx, "http://127.0.0.1:8404/return")
        assert _create(ctx, f"{VERIFIER_URL}/return").same_device_redirect == (
            f"{VERIFIER_URL}/return"
        )


def test_http_loopback_redirect_in_development(ctx: VerifierContext) -> None:
    """``intyg up``: the employer page's ``/return`` on loopback http."""
    assert _create(ctx, "http://127.0.0.1:8404/return").same_device_redirect


@pytest.mark.parametrize(
    "redirect", ["http://hr.example/return", "http://10.0.0.8/return", "http://[::2]/return"]
)
def test_http_redirect_to_another_host_refused_in_development(
    ctx: VerifierContext, redirect: str
) -> None:
    """Development allows plain http only back to loopback (the employer page of ``intyg up``)."""
    with pytest.raises(ProtocolError, match="loopback"):
        _create(ctx, redirect)
