"""The employer page in headless Chromium (Debian's ``chromium`` driven by Playwright with
``executable_path``; no browser download) at phone size: log in, ask for a registration
certificate, see the QR code; a wallet (the reference SD-JWT holder) answers; the page shows
"verified" with the registration date without a reload by hand. Saves a screenshot to
``test-artifacts/verifier-result.png``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.system.browser import CHROMIUM, LAUNCH_ARGS, artifacts_dir, requires_chromium
from tests.verifier.flows import post_response
from tests.verifier.test_pages import PASSWORD, registration, running_verifier, wallet_request

playwright_sync = pytest.importorskip("playwright.sync_api")

ARTIFACTS = artifacts_dir()

# Skips outside CI without chromium; in CI (which installs it) a missing browser fails.
pytestmark = requires_chromium


def test_employer_page_on_a_phone(tmp_path: Path, trust_file: Path, pki, holder, status_lists):
    ARTIFACTS.mkdir(exist_ok=True)
    database_url = f"sqlite:///{tmp_path / 'verifier.sqlite3'}"
    with (
        running_verifier(tmp_path, database_url, trust_file) as verifier,
        playwright_sync.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page = context.new_page()
            page.goto(f"{verifier.base}/")
            page.get_by_label("Användarnamn").fill("dev-user")
            page.get_by_label("Lösenord").fill(PASSWORD)
            page.get_by_role("button", name="Logga in").click()
            page.wait_for_url(f"{verifier.base}/")
            assert page.get_by_text("Utvecklare").is_visible()
            page.get_by_role("button", name="Be om intyg").first.click()
            qr = page.locator("figure.qr svg")
            qr.wait_for()
            assert qr.is_visible() and qr.bounding_box()["width"] <= 390  # type: ignore[index]
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            tid = page.url.rsplit("/", 1)[1]
            # The wallet on "another device": fetch the request object, present, post.
            with httpx.Client(base_url=verifier.base) as wallet:
                request = wallet_request(wallet, tid)
                presentation = registration(pki, holder, status_lists, request)
                answer = post_response(wallet, request, {"registration": [presentation]})
                assert answer.status_code == 200, answer.text
            verified = page.get_by_role("heading", name="✓ Verifierat")
            verified.wait_for(timeout=15_000)  # the page's own polling reloads it
            assert page.get_by_text("2026-01-12").is_visible()
            assert page.get_by_text("Inskriven sedan").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / "verifier-result.png"), full_page=True)
        finally:
            browser.close()
