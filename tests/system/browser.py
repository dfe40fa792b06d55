"""Headless Chromium on the pages of a running ``intyg up``: the person on a phone, the
employer at a desk (issue 6 item 4).

Debian's ``chromium`` driven by Playwright with ``executable_path`` (never a browser
download). :class:`Person` and :class:`Employer` do what people do on the pages: follow
links, press buttons, type into fields, paste links — and nothing a page does not offer.
On the same device the agency's and the employer's pages open this web wallet with their
"Open in the intyg wallet" buttons (``intyg up`` configures it as a known wallet,
``INTYG_*_WALLETS``). The one thing a person does outside the browser is done here by hand:
**copy and paste** (a person with the wallet on a second device): the link shown in a page's
read-only field goes into the wallet's ``/add`` (an offer) or ``/present`` (a request) form.

Screenshots go to ``$INTYG_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository
root, git-ignored); each path is printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE: Mapping[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: Mapping[str, Any] = {"viewport": {"width": 1280, "height": 800}}
#: How long the employer page may take to show a result (its own polling reloads it).
RESULT_TIMEOUT_MS = 20_000

# Outside CI a machine without chromium skips these tests (dev.py says so); CI installs
# chromium (.ci/run), so there a missing browser fails the tests instead of skipping them.
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed"
)

#: What the pages say, per language (the words a person looks for).
WORDS: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "eid_login": "Logga in med BankID/Freja (eID)",
        "add_to_wallet": "Hämta till plånboken",
        "open_in_wallet": "Öppna i intyg-plånboken",
        "use_this_device": "Använd plånboken på den här enheten",
        "offer_title": "Vill du ta emot intyget?",
        "accept": "Ta emot",
        "continue": "Fortsätt",
        "offer_link": "Länk till erbjudandet",
        "request_link": "Länk till begäran",
        "consent_title": "Vill du dela uppgifter?",
        "approve": "Godkänn och dela",
        "sent": "Uppgifterna har skickats.",
        "consent": "Samtycke",
        "withdraw": "Återkalla samtycket",
        "withdrawn": "Återkallat – mottagaren har raderat uppgifterna",
        "username": "Användarnamn",
        "password": "Lösenord",
        "log_in": "Logga in",
        "ask": "Be om intyg",
        "employer_link": "Länk till förfrågan",
        "verified": "✓ Verifierat",
        "rejected": "✗ Avvisat",
    },
    "en": {
        "eid_login": "Log in with BankID/Freja (eID)",
        "add_to_wallet": "Add to wallet",
        "open_in_wallet": "Open in the intyg wallet",
        "use_this_device": "Use the wallet on this device",
        "offer_title": "Do you want to receive this credential?",
        "accept": "Accept",
        "continue": "Continue",
        "offer_link": "Link to the offer",
        "request_link": "Link to the request",
        "consent_title": "Do you want to share information?",
        "approve": "Approve and share",
        "sent": "Your information was sent.",
        "consent": "Consent",
        "withdraw": "Withdraw the consent",
        "withdrawn": "Withdrawn – the recipient deleted the information",
        "username": "Username",
        "password": "Password",
        "log_in": "Log in",
        "ask": "Ask for proof",
        "employer_link": "Link to the request",
        "verified": "✓ Verified",
        "rejected": "✗ Rejected",
    },
}


def artifacts_dir() -> Path:
    folder = Path(
        os.environ.get("INTYG_TEST_ARTIFACTS")
        or Path(__file__).resolve().parents[2] / "test-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, name: str) -> Path:
    """The whole page as ``<artifacts>/<name>.png``; the path is printed."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def fits_width(page: Any) -> bool:
    """Nothing wider than the viewport (no sideways scrolling on a phone)."""
    width = page.viewport_size["width"]
    return bool(page.evaluate("document.documentElement.scrollWidth") <= width)


class Person:
    """Someone on a phone: an eID test person (``eid/persons.py`` id) in one language."""

    def __init__(self, page: Any, urls: Mapping[str, str], person: str, language: str) -> None:
        self.page = page
        self.urls = urls
        self.person = person
        self.language = language
        self.words = WORDS[language]
        self.visited: list[str] = []
        page.on("request", lambda request: self.visited.append(request.url))

    def open_wallet(self) -> None:
        """The wallet's start page in the person's language (remembered in a cookie)."""
        self.page.goto(f"{self.urls['wallet']}/?lang={self.language}")

    def pick_in_eid(self) -> None:
        """The development eID's person picker: choose who logs in."""
        self.page.locator(f'button[name="person"][value="{self.person}"]').click()

    def log_in_at_issuer(self, issuer: str) -> None:
        """An agency's page -> eID -> back, logged in, with the credentials listed."""
        base = self.urls[issuer]
        self.page.goto(f"{base}/?lang={self.language}")
        self.page.get_by_role("link", name=self.words["eid_login"]).click()
        self.pick_in_eid()
        self.page.wait_for_url(f"{base}/")

    def get_offer(self, credential_title: str) -> None:
        """Press "Add to wallet" on the card; the offer page shows a QR code and links."""
        card = self.page.locator("article.card").filter(
            has=self.page.get_by_role("heading", name=credential_title)
        )
        card.get_by_role("button", name=self.words["add_to_wallet"]).click()
        self.page.locator("figure.qr svg").wait_for()

    def open_offer_in_wallet(self) -> None:
        """The offer page's "Open in the intyg wallet" button (the wallet's ``/offer``); the
        wallet asks for its own eID login first when the person is not logged in there."""
        self.page.get_by_role("link", name=self.words["open_in_wallet"]).click()
        self.page.wait_for_url(f"{self.urls['wallet']}/**")
        self.log_in_to_wallet_if_asked()

    def paste_offer_into_wallet(self) -> None:
        """Copy the offer link from the agency's page, paste it at the wallet's ``/add``."""
        link = self.page.locator("input.copy").input_value()
        self.page.goto(f"{self.urls['wallet']}/add")
        self.log_in_to_wallet_if_asked()
        self.page.get_by_label(self.words["offer_link"]).fill(link)
        self.page.get_by_role("button", name=self.words["continue"]).click()

    def log_in_to_wallet_if_asked(self) -> None:
        """The wallet's login page (shown for any page while logged out) -> eID -> back."""
        login = self.page.get_by_role("link", name=self.words["eid_login"])
        if self.page.url.startswith(self.urls["wallet"]) and login.count():
            login.click()
            self.pick_in_eid()
            self.page.wait_for_url(f"{self.urls['wallet']}/**")

    def accept_offer(self, issuer_name: str) -> None:
        """The wallet's offer page: check who offers, accept; back at the list."""
        self.page.get_by_role("heading", name=self.words["offer_title"]).wait_for()
        assert self.page.get_by_role("heading", name=issuer_name).is_visible()
        assert fits_width(self.page)
        self.page.get_by_role("button", name=self.words["accept"]).click()
        self.page.wait_for_url(f"{self.urls['wallet']}/")

    def open_request_by_pasting(self, link: str) -> None:
        """The employer's request link pasted at the wallet's ``/present``."""
        self.page.goto(f"{self.urls['wallet']}/present")
        self.log_in_to_wallet_if_asked()
        self.page.get_by_label(self.words["request_link"]).fill(link)
        self.page.get_by_role("button", name=self.words["continue"]).click()
        self.page.get_by_role("heading", name=self.words["consent_title"]).wait_for()

    def open_request_in_wallet(self) -> None:
        """The employer's same-device page: "Open in the intyg wallet" (its ``/authorize``)."""
        self.page.get_by_role("link", name=self.words["open_in_wallet"]).click()
        self.page.wait_for_url(f"{self.urls['wallet']}/**")
        self.log_in_to_wallet_if_asked()
        self.page.get_by_role("heading", name=self.words["consent_title"]).wait_for()

    def consent(self) -> str:
        """Approve on the consent screen; -> what the wallet says became of the answer."""
        self.page.get_by_role("button", name=self.words["approve"]).click()
        outcome = self.page.locator("main p.notice[role=status]")
        outcome.wait_for()
        return outcome.inner_text()

    def consent_and_return(self, verifier: str) -> None:
        """Approve a same-device request: the wallet's answer page moves on by itself to the
        verifier's ``redirect_uri``, whose page redeems the code and shows the request."""
        self.page.get_by_role("button", name=self.words["approve"]).click()
        self.page.wait_for_url(f"{verifier}/requests/**", timeout=RESULT_TIMEOUT_MS)

    def number_in_urls(self, number: str) -> list[str]:
        """URLs this phone requested that carry the personal number (there must be none)."""
        return [url for url in self.visited if number in url or number[2:] in url]


class Employer:
    """The HR officer at a desk on the verifier's employer page, in one language."""

    def __init__(self, page: Any, base: str, language: str) -> None:
        self.page = page
        self.base = base
        self.language = language
        self.words = WORDS[language]

    def log_in(self, username: str, password: str) -> None:
        """The start page in the employer's language, which sends them to the login form."""
        self.page.goto(f"{self.base}/?lang={self.language}")
        self.page.wait_for_url(f"{self.base}/login**")
        self.page.get_by_label(self.words["username"]).fill(username)
        self.page.get_by_label(self.words["password"]).fill(password)
        self.page.get_by_role("button", name=self.words["log_in"]).click()
        self.page.wait_for_url(f"{self.base}/")

    def ask(self, template: str) -> str:
        """Ask for proof with a template; -> the request link the page shows."""
        choice = self.page.locator(f'form.card:has(input[name="template"][value="{template}"])')
        choice.get_by_role("button", name=self.words["ask"]).click()
        self.page.locator("figure.qr svg").wait_for()
        return self.page.get_by_label(self.words["employer_link"]).input_value()

    def ask_on_this_device(self, template: str) -> None:
        """Ask with a template, then "Use the wallet on this device": the same-device page."""
        self.ask(template)
        self.page.get_by_role("button", name=self.words["use_this_device"]).click()
        self.page.get_by_role("link", name=self.words["open_in_wallet"]).wait_for()

    @property
    def transaction_id(self) -> str:
        return self.page.url.rsplit("/", 1)[1]

    def wait_for_result(self, heading: str) -> None:
        """The page's own polling reloads it once the wallet has answered."""
        self.page.get_by_role("heading", name=self.words[heading]).wait_for(
            timeout=RESULT_TIMEOUT_MS
        )
