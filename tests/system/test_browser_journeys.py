"""Journeys A and B, a withdrawal and a revocation in headless Chromium across the real
servers of ``intyg up`` (issue 6 item 4; design.md "The two reference journeys").

One ``intyg up`` (free ports, a temporary data folder, SQLite) serves the whole module. The
person is on a phone-sized browser (390×844). The agencies' pages open the wallet with their
"Open in the intyg wallet" button (``intyg up`` names the wallet to the issuers and the
verifier); a person with the wallet on a second device pastes links instead (the AF offer in
journey B, the employer's request in journey A and the revocation, asked at a desktop).
Journey B is same-device: Anna applies on the employer's page on her phone, the wallet opens
from it and sends her back to the employer's result page (``response_code``). Journey A and
the withdrawal are in Swedish, journey B in English, and in the revocation a Swedish-speaking
person answers an English-speaking employer. Each test saves screenshots of its final pages
(``$INTYG_TEST_ARTIFACTS``, default ``test-artifacts/``; see ``tests/system/browser.py``).

The verifier may reuse a status list it fetched for ``status_cache_min_seconds`` (30 s by
default, T108), so "the next presentation after a revocation" would depend on when the
previous one was; this system's verifier caches lists for at most 1 s
(``INTYG_VERIFIER_STATUS_CACHE_*_SECONDS``, which ``intyg up`` passes on to it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eid.persons import PERSONS_BY_ID
from intyg.demo import Agency

from . import SERVICE_NAMES, Up, free_ports
from .browser import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    Employer,
    Person,
    fits_width,
    requires_chromium,
    screenshot,
)

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = requires_chromium

VERIFIER_SETTINGS = {
    "INTYG_VERIFIER_STATUS_CACHE_MIN_SECONDS": "0",
    "INTYG_VERIFIER_STATUS_CACHE_MAX_SECONDS": "1",
}
EMPLOYER_NAME = "Utvecklingsarbetsgivaren AB"
ANNA = PERSONS_BY_ID["anna"].number.twelve_digits
ERIK = PERSONS_BY_ID["erik"]


@dataclass(frozen=True)
class System:
    """A running ``intyg up``: its URLs, data folder and development secrets."""

    urls: dict[str, str]
    data_dir: Path
    secrets: dict[str, Any]
    browser: Any

    def person(self, person: str, language: str) -> Person:
        page = self.browser.new_context(**PHONE).new_page()
        return Person(page, self.urls, person, language)

    def employer(self, language: str, page: Any = None) -> Employer:
        """The employer's page at a desktop, or in ``page`` (a person's phone: same device)."""
        page = page or self.browser.new_context(**DESKTOP).new_page()
        employer = Employer(page, self.urls["verifier"], language)
        employer.log_in(**self.secrets["employer_page"])
        return employer

    def verifier_holds(self, transaction_id: str) -> tuple[bool, str | None]:
        """From the verifier's SQLite file (read-only): is a sealed ``disclosed_claims`` row
        kept for the transaction, and who deleted the claims (``results.claims_deleted_by``)."""
        database = self.data_dir / "verifier" / "verifier.sqlite3"
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            held = connection.execute(
                "SELECT count(*) FROM disclosed_claims WHERE transaction_id = ?",
                (transaction_id,),
            ).fetchone()[0]
            deleted = connection.execute(
                "SELECT claims_deleted_by FROM results WHERE transaction_id = ?",
                (transaction_id,),
            ).fetchone()
        finally:
            connection.close()
        return held == 1, deleted[0] if deleted else None


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    data = tmp_path_factory.mktemp("intyg-up") / "data"
    up = Up(data, ports, VERIFIER_SETTINGS)
    try:
        up.wait_ready()
        secrets = json.loads((data / "dev-secrets.json").read_text(encoding="utf-8"))
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                urls = {name: up.url(name) for name in SERVICE_NAMES}
                yield System(urls, data, secrets, browser)
            finally:
                browser.close()
    finally:
        assert up.stop() == 0, up.output
    assert "Traceback" not in up.output, up.output
    assert not (unhandled := _tracebacks(data / "logs")), "\n\n".join(unhandled)


def _tracebacks(logs: Path) -> list[str]:
    """Unhandled errors in the services' logs (a page may hide a 500 behind a calm message)."""
    found = []
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        found += [
            f"{log.name}:\n" + "\n".join(lines[max(0, at - 2) : at + 40])
            for at, line in enumerate(lines)
            if line.lstrip().startswith("Traceback")
        ]
    return found


# -- journey A: registration certificate (Swedish) -------------------------------------------


@dataclass(frozen=True)
class JourneyA:
    anna: Person
    employer: Employer


@pytest.fixture(scope="module")
def journey_a(system: System) -> JourneyA:
    """Anna adds her registration certificate with the AF page's "Open in the intyg wallet",
    the employer asks with template A, Anna pastes the request link, sees who and why,
    consents."""
    anna = system.person("anna", "sv")
    anna.log_in_at_issuer("issuer-af")
    assert anna.page.get_by_text("Anna Andersson").is_visible()
    assert fits_width(anna.page)
    anna.get_offer("Inskrivningsintyg")
    assert fits_width(anna.page)
    assert anna.page.get_by_role("link", name="Öppna i en annan plånbok").is_visible()
    screenshot(anna.page, "journey-a-agency-offer")
    anna.open_offer_in_wallet()  # the wallet asks for its own eID login first
    anna.accept_offer("Arbetsförmedlingen")
    assert anna.page.get_by_text("Inskrivningsintyg").first.is_visible()

    employer = system.employer("sv")
    link = employer.ask("registration_certificate")
    purpose = employer.page.locator("h1 + p").inner_text()
    assert purpose

    anna.open_request_by_pasting(link)
    consent_screen = anna.page.locator("main")
    assert anna.page.get_by_role("heading", name=f"Vem frågar: {EMPLOYER_NAME}").is_visible()
    assert consent_screen.get_by_text("Organisationsnummer: 556000-0001").is_visible()
    assert consent_screen.get_by_text(purpose).is_visible()  # why: the employer's purpose
    assert consent_screen.get_by_text("Inskriven sedan").is_visible()  # what is shared
    assert fits_width(anna.page)
    screenshot(anna.page, "journey-a-wallet-consent-screen")
    assert anna.consent() == anna.words["sent"]
    return JourneyA(anna, employer)


def test_journey_a_registration_certificate(journey_a: JourneyA) -> None:
    employer = journey_a.employer
    employer.wait_for_result("verified")
    result = employer.page.locator("#request")
    assert result.get_by_role("heading", name="Inskrivningsintyg").is_visible()
    assert result.get_by_text("Utfärdare: Arbetsförmedlingen").is_visible()
    assert result.locator("dt", has_text="Inskriven sedan").is_visible()
    assert result.locator("dd", has_text="2025-09-01").is_visible()  # the sample record
    assert result.get_by_text("Uppgifterna sparas till").is_visible()
    screenshot(employer.page, "journey-a-employer-verified")
    screenshot(journey_a.anna.page, "journey-a-wallet-sent")
    assert ANNA not in journey_a.anna.page.content()
    assert journey_a.anna.number_in_urls(ANNA) == []


# -- withdrawal (continues journey A) --------------------------------------------------------


def test_withdrawal_deletes_the_disclosed_claims(system: System, journey_a: JourneyA) -> None:
    anna, employer = journey_a.anna, journey_a.employer
    transaction_id = employer.transaction_id
    assert system.verifier_holds(transaction_id) == (True, None)

    anna.page.get_by_role("link", name=anna.words["consent"]).click()
    assert anna.page.get_by_role("heading", name=f"Samtycke: {EMPLOYER_NAME}").is_visible()
    shared = anna.page.locator("main section.card").filter(has_text="Vilka uppgifter")
    assert shared.get_by_text("Inskrivningsintyg", exact=True).is_visible()  # the type's name
    anna.page.get_by_role("button", name=anna.words["withdraw"]).click()
    anna.page.get_by_text("Mottagaren har raderat uppgifterna.").wait_for()
    assert anna.page.get_by_text(anna.words["withdrawn"]).is_visible()
    assert anna.page.get_by_role("button", name=anna.words["withdraw"]).count() == 0
    assert fits_width(anna.page)
    screenshot(anna.page, "withdrawal-wallet-consent-record")

    employer.page.reload()
    result = employer.page.locator("#request")
    assert result.get_by_text("Uppgifterna har raderats").is_visible()
    assert result.locator("dd", has_text="2025-09-01").count() == 0
    assert result.get_by_role("heading", name="✓ Verifierat").is_visible()  # the fact stays
    screenshot(employer.page, "withdrawal-employer-claims-deleted")
    assert system.verifier_holds(transaction_id) == (False, "holder")


# -- journey B: work-practice application (English, same device) ---------------------------


def test_journey_b_work_practice(system: System) -> None:
    anna = system.person("anna", "en")
    anna.open_wallet()
    anna.log_in_at_issuer("issuer-af")
    anna.get_offer("Registration certificate")
    anna.paste_offer_into_wallet()  # a cloud wallet: copy the link, paste it in the wallet
    anna.accept_offer("Swedish Public Employment Service")
    anna.log_in_at_issuer("issuer-myh")
    assert anna.page.get_by_text("Anna Andersson").is_visible()
    anna.get_offer("Software developer")
    anna.open_offer_in_wallet()
    anna.accept_offer("Swedish National Agency for Higher Vocational Education")

    # Anna applies on the employer's page on her phone: the same-device flow.
    employer = system.employer("en", page=anna.page)
    employer.ask_on_this_device("work_practice")
    purpose = employer.page.locator("h1 + p").inner_text()
    assert employer.page.get_by_role("link", name="Open another wallet").is_visible()
    assert fits_width(employer.page)
    screenshot(employer.page, "journey-b-employer-same-device")
    anna.open_request_in_wallet()
    consent_screen = anna.page.locator("main")
    assert anna.page.get_by_role("heading", name=f"Who asks: {EMPLOYER_NAME}").is_visible()
    assert consent_screen.get_by_text(purpose).is_visible()
    assert consent_screen.get_by_text("(Swedish Public Employment Service)").first.is_visible()
    assert consent_screen.get_by_text(
        "(Swedish National Agency for Higher Vocational Education)"
    ).first.is_visible()
    assert anna.page.get_by_role("button", name=anna.words["approve"]).count() == 1
    assert fits_width(anna.page)
    screenshot(anna.page, "journey-b-wallet-consent-screen")
    anna.consent_and_return(system.urls["verifier"])

    # Back at the employer's page through its redirect_uri: /return#response_code=... is
    # redeemed by the page and leaves no code in the address.
    assert anna.page.url == f"{system.urls['verifier']}/requests/{employer.transaction_id}"
    assert any(url.startswith(f"{system.urls['verifier']}/return") for url in anna.visited)
    employer.wait_for_result("verified")
    assert fits_width(employer.page)
    result = employer.page.locator("#request")
    assert result.get_by_role("heading", name="Registration certificate").is_visible()
    assert result.get_by_role("heading", name="Qualification").is_visible()
    assert result.locator("dd", has_text="2025-09-01").is_visible()
    assert result.locator("dt", has_text="EQF level").is_visible()
    assert result.get_by_text("The details are kept until").is_visible()
    screenshot(employer.page, "journey-b-employer-verified")
    assert anna.number_in_urls(ANNA) == []


# -- a revoked credential ------------------------------------------------------------------


def _revoke_registration_certificates(system: System) -> list[str]:
    """The AF back office (docs/issuer.md) as the agency's case system uses it: Erik is no
    longer registered, so his record changes and every valid credential issued from it is
    revoked. -> the revoked issuance ids."""
    af = Agency(system.urls["issuer-af"], system.secrets["backoffice"]["issuer-af"])
    record = af.record(
        "/registrations",
        {
            "personal_identity_number": ERIK.number.twelve_digits,
            "given_name": "Erik",
            "family_name": "Johansson",
            "registered": False,
            "registration_category": {"code": "11", "label": "Öppet arbetslös"},
        },
        method="PUT",
    )
    listed = af.client.get(
        af.base + "/backoffice/v1/issuances",
        params={"person": record["person"], "status": "valid"},
    )
    assert listed.status_code == 200, listed.text
    revoked = []
    for issuance in listed.json()["issuances"]:
        answer = af.client.post(f"{af.base}/backoffice/v1/issuances/{issuance['id']}/revoke")
        assert answer.status_code == 200 and answer.json()["status"] == "revoked", answer.text
        revoked.append(issuance["id"])
    return revoked


def test_revoked_credential_is_rejected_with_the_reason(system: System) -> None:
    erik = system.person("erik", "sv")
    erik.log_in_at_issuer("issuer-af")
    erik.get_offer("Inskrivningsintyg")
    erik.open_offer_in_wallet()
    erik.accept_offer("Arbetsförmedlingen")
    employer = system.employer("en")
    link = employer.ask("registration_certificate")

    assert _revoke_registration_certificates(system)

    erik.open_request_by_pasting(link)
    assert erik.consent().startswith("Avvisad av mottagaren")
    screenshot(erik.page, "revocation-wallet-rejected")

    employer.wait_for_result("rejected")
    result = employer.page.locator("#request")
    assert result.get_by_text("The credential has been revoked by its issuer.").is_visible()
    assert result.get_by_role("heading", name="✓ Verified").count() == 0
    screenshot(employer.page, "revocation-employer-rejected")
    assert system.verifier_holds(employer.transaction_id) == (False, None)

    erik.page.goto(f"{system.urls['issuer-af']}/")  # the agency's page says so too
    assert erik.page.get_by_text("Återkallat").first.is_visible()
