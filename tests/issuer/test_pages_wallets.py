"""The person's offer page with known wallets (OpenID4VCI 1.0 §4.1): an "Öppna i <wallet>" /
"Open in <wallet>" button carrying the offer to the wallet's Credential Offer Endpoint next to
the QR code, the ``openid-credential-offer://`` link kept for other wallets; and the rules
for configuring wallets (https outside development)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.responses import Response
from fastapi.testclient import TestClient
from pydantic import ValidationError

from issuer.pages import page_sessions
from issuer.settings import IssuerSettings
from tests.issuer.conftest import make_settings
from tests.issuer.test_pages import ANNA, ANNA_MASKED, add_records, csrf

WALLET = {
    "name": {"sv": "Exempelplånboken", "en": "the Example Wallet"},
    "credential_offer_endpoint": "https://wallet.example/offer",
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> IssuerSettings:
    return make_settings(database_url, tmp_path, wallets=[WALLET])


def _log_in(client: TestClient) -> None:
    """Anna's page session, as the eID callback makes it (login itself: test_pages.py)."""
    ctx = client.app.state.issuer  # type: ignore[attr-defined]
    add_records(ctx)
    carrier = Response()
    page_sessions(ctx).issue(
        carrier,
        ctx.person_vault().lookup_key(ANNA),
        {"name": "Anna Andersson", "masked": ANNA_MASKED},
        now=ctx.clock(),
    )
    name, value = carrier.headers["set-cookie"].split(";", 1)[0].split("=", 1)
    client.cookies.set(name, value)


def _offer_page(client: TestClient) -> str:
    page = client.get("/").text
    record = re.search(r'name="record" value="(\d+)"', page)
    assert record, page
    offer = client.post("/wallet-offer", data={"csrf_token": csrf(page), "record": record[1]})
    assert offer.status_code == 200, offer.text
    return offer.text


def _buttons(page: str) -> dict[str, str]:
    found = re.findall(r'<a class="button" href="([^"]+)">([^<]+)</a>', page)
    return {html.unescape(text): html.unescape(href) for href, text in found}


def test_offer_page_opens_the_known_wallet(client: TestClient) -> None:
    _log_in(client)
    page = _offer_page(client)
    assert '<figure class="qr"' in page and 'class="copy"' in page  # QR and paste stay
    buttons = _buttons(page)
    assert len(buttons) == 2
    known = buttons["Öppna i Exempelplånboken"]
    generic = buttons["Öppna i en annan plånbok på den här enheten"]
    assert known.startswith("https://wallet.example/offer?credential_offer_uri=")
    assert generic.startswith("openid-credential-offer://?credential_offer_uri=")
    # The same offer, by reference, for both (OpenID4VCI §4.1.3).
    assert parse_qs(urlsplit(known).query) == parse_qs(urlsplit(generic).query)
    (offer_uri,) = parse_qs(urlsplit(known).query)["credential_offer_uri"]
    assert offer_uri.startswith("https://issuer.test/offers/")
    assert client.get(urlsplit(offer_uri).path).status_code == 200

    client.get("/?lang=en")
    english = _offer_page(client)
    assert '<figure class="qr"' in english
    assert set(_buttons(english)) == {
        "Open in the Example Wallet",
        "Open in another wallet on this device",
    }


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ("production", "http://127.0.0.1:8403/offer"),
        ("development", "http://wallet.example/offer"),
        ("development", "https://wallet.example/offer?from=issuer"),
        ("development", "openid-credential-offer://"),
    ],
)
def test_wallet_endpoint_rules(environment: str, endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="wallets"):
        make_settings(
            f"sqlite:///{tmp_path / 'i.sqlite3'}",
            tmp_path,
            environment=environment,
            wallets=[{**WALLET, "credential_offer_endpoint": endpoint}],
        )


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [("production", "https://wallet.example/offer"), ("development", "http://localhost:1/offer")],
)
def test_wallet_endpoint_accepted(environment: str, endpoint: str, tmp_path: Path) -> None:
    wallet: dict[str, Any] = {**WALLET, "credential_offer_endpoint": endpoint}
    settings = make_settings(
        f"sqlite:///{tmp_path / 'i.sqlite3'}", tmp_path, environment=environment, wallets=[wallet]
    )
    assert settings.wallets[0].credential_offer_endpoint == endpoint
