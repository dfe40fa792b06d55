"""The wallet in headless Chromium (Debian's ``chromium`` driven by Playwright with
``executable_path``; no browser download), phone viewport 390x844, real servers on
loopback: log in through the eID picker -> accept an offer from the real AF issuer (the
wallet's ``/offer?credential_offer_uri=...`` link) -> answer the real verifier's request
(consent screen -> approve) -> the consent history shows the record. Saves a screenshot to
``test-artifacts/wallet-consent-history.png``."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from intyg.web import db
from tests.system.browser import CHROMIUM, LAUNCH_ARGS, artifacts_dir, requires_chromium
from wallet import consents
from wallet.models import Account

from .conftest import ANNA, API_KEY, World, verifier_result

playwright_sync = pytest.importorskip("playwright.sync_api")

ARTIFACTS = artifacts_dir()

# Skips outside CI without chromium; in CI (which installs it) a missing browser fails.
pytestmark = requires_chromium


def test_login_offer_consent_history_on_a_phone(world: World) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    services = world.services
    base = services.wallet_base
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page = context.new_page()
            visited: list[str] = []
            page.on("request", lambda request: visited.append(request.url))

            # Log in: the wallet's login page -> the eID person picker -> back.
            page.goto(f"{base}/")
            page.get_by_role("link", name="Logga in med BankID/Freja (eID)").click()
            page.locator('button[name="person"][value="anna"]').click()
            page.wait_for_url(f"{base}/")
            assert page.get_by_text("Du har inga intyg ännu.").is_visible()

            # An offer by reference from the real AF issuer, opened as a same-device link.
            created = services.offer(tx_code=False)
            query = created.link.split("?", 1)[1]
            assert query.startswith("credential_offer_uri=")
            page.goto(f"{base}/offer?{query}")
            assert page.get_by_role("heading", name="Vill du ta emot intyget?").is_visible()
            page.get_by_role("button", name="Ta emot").click()
            page.wait_for_url(f"{base}/")
            assert page.get_by_text("Arbetsförmedlingen").first.is_visible()

            # The verifier's request: consent screen -> approve.
            transaction = httpx.post(
                f"{world.verifier_base}/api/v1/transactions",
                json={"template": "registration_certificate"},
                headers=API_KEY,
            ).json()
            page.goto(f"{base}/authorize?{transaction['request_link'].split('?', 1)[1]}")
            assert page.get_by_role("heading", name="Vill du dela uppgifter?").is_visible()
            assert page.get_by_text("Utvecklingsarbetsgivaren AB").first.is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.get_by_role("button", name="Godkänn och dela").click()
            page.get_by_text("Uppgifterna har skickats.").wait_for()
            result = verifier_result(world, transaction["transaction_id"])
            assert result["status"] == "verified", result

            # The consent history shows the record; the chain verifies.
            page.goto(f"{base}/consents")
            assert page.get_by_role("heading", name="Dina samtycken").is_visible()
            assert page.get_by_text("Utvecklingsarbetsgivaren AB").first.is_visible()
            assert page.get_by_text("Levererad").first.is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / "wallet-consent-history.png"), full_page=True)
            assert ANNA not in page.content()
            assert all(ANNA not in url and ANNA[2:] not in url for url in visited)
        finally:
            browser.close()
    with db.session(services.wallet.engine, write=False) as unit:
        account_id = unit.scalars(sa.select(Account.id)).one()
    records = consents.list_records(services.wallet, account_id)
    assert len(records) == 1 and records[0].delivery_status == "delivered"
    assert consents.verify_chain(services.wallet, records[0].account_id).ok
