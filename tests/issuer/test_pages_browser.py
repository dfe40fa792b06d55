"""The person's page in headless Chromium (Debian's ``chromium`` driven by Playwright with
``executable_path``; no browser download): log in through the eID picker on a phone-sized
viewport, see the credential, press "Add to wallet", see the QR code. Saves a screenshot to
``test-artifacts/issuer-person-page.png``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.issuer.test_pages import ANNA, ANNA_MASKED, running_issuer
from tests.system.browser import CHROMIUM, LAUNCH_ARGS, artifacts_dir, requires_chromium

playwright_sync = pytest.importorskip("playwright.sync_api")

ARTIFACTS = artifacts_dir()

# Skips outside CI without chromium; in CI (which installs it) a missing browser fails.
pytestmark = requires_chromium


def test_person_page_on_a_phone(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        running_issuer(tmp_path) as issuer,
        playwright_sync.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page = context.new_page()
            visited: list[str] = []
            page.on("request", lambda request: visited.append(request.url))
            page.goto(f"{issuer.base}/")
            page.get_by_role("link", name="Logga in med BankID/Freja (eID)").click()
            page.locator('button[name="person"][value="anna"]').click()
            page.wait_for_url(f"{issuer.base}/")
            assert page.get_by_text("Anna Andersson").is_visible()
            assert page.get_by_text(ANNA_MASKED).is_visible()
            assert page.get_by_role("heading", name="Inskrivningsintyg").is_visible()
            # Phone-friendly: nothing wider than the viewport.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.get_by_role("button", name="Hämta till plånboken").click()
            qr = page.locator("figure.qr svg")
            qr.wait_for()
            assert qr.is_visible() and qr.bounding_box()["width"] <= 390  # type: ignore[index]
            link = page.get_by_role("link", name="Öppna i plånboken på den här enheten")
            assert (link.get_attribute("href") or "").startswith("openid-credential-offer://")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / "issuer-person-page.png"), full_page=True)
            assert ANNA not in page.content()
            assert all(ANNA not in url and ANNA[2:] not in url for url in visited)
        finally:
            browser.close()
