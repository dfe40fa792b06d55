"""``intyg demo``: journeys A and B against a running ``intyg up``, over the real HTTP APIs.

Two scripted actors (design.md "The two reference journeys"; issue 6 item 2):

- **the employer** uses the verifier's employer API (docs/verifier.md) with the development
  API client, and the agencies' back-office APIs (docs/issuer.md) create the offers;
- **the person** (Anna Andersson) drives the wallet's pages with an HTTP client exactly as a
  browser would: the eID person picker, the offer page with its tx_code, the consent screen.

It is a client, not a service: it reads ``<data>/dev-secrets.json`` written by ``intyg up``
and never touches a database.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

__all__ = ["DemoError", "Endpoints", "run_demo"]

PERSON_ID = "anna"
PERSON = {
    "personal_identity_number": "198112189884",
    "given_name": "Anna",
    "family_name": "Andersson",
}
QUALIFICATION_ID = "3f0c8b2e-6d1a-4c57-9e2b-8a4d7c1e5f90"
TIMEOUT = 20.0


class DemoError(RuntimeError):
    """A journey step failed; the message names the step and what the service answered."""


@dataclass(frozen=True)
class Endpoints:
    eid: str
    issuer_af: str
    issuer_myh: str
    wallet: str
    verifier: str


# -- HTML forms, as a browser sees them -------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """Forms with the values a browser would submit (hidden, text, checked boxes/radios)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms or "name" not in a:
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button"):
                self.forms[-1].fields[a["name"]] = a.get("value", "on" if kind != "text" else "")
        elif tag == "button":
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms_of(page: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


def form_with(response: httpx.Response, action_pattern: str) -> Form:
    for form in forms_of(response.text):
        if re.search(action_pattern, form.action):
            form.action = urljoin(str(response.url), form.action)
            return form
    raise DemoError(
        f"no form {action_pattern!r} on {response.url.path} (HTTP {response.status_code})"
    )


def page_text(page: str) -> str:
    """The visible text of a page's <main> (or body), one line per block."""
    main = re.search(r"<main.*?>(.*)</main>", page, re.S)
    body = main.group(1) if main else page
    body = re.sub(r"<(script|style).*?</\1>", "", body, flags=re.S)
    body = re.sub(r"<(br|/p|/h\d|/li|/section|/div)\s*/?>", "\n", body)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# -- the actors ------------------------------------------------------------------------------


def _ok(response: httpx.Response, step: str, expected: tuple[int, ...] = (200, 201)) -> None:
    if response.status_code not in expected:
        detail = (
            response.text[:500]
            if "json" in response.headers.get("content-type", "")
            else (page_text(response.text)[:500])
        )
        raise DemoError(f"{step}: HTTP {response.status_code}: {detail}")


class Person:
    """Anna with a browser-like client (cookies, redirects) on the wallet's pages."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.browser = httpx.Client(follow_redirects=True, timeout=TIMEOUT)

    def log_in_to_wallet(self) -> str:
        picker = self.browser.get(self.endpoints.wallet + "/login", params={"next": "/"})
        _ok(picker, "wallet login: eID picker")
        form = form_with(picker, r"authorize")
        if (("person", PERSON_ID)) not in form.buttons:
            raise DemoError("the eID picker does not offer the test person")
        landed = self.browser.post(form.action, data={**form.fields, "person": PERSON_ID})
        _ok(landed, "wallet login: eID callback")
        if not str(landed.url).startswith(self.endpoints.wallet):
            raise DemoError(f"login ended at {landed.url.host}:{landed.url.port}, not the wallet")
        return page_text(landed.text)

    def accept_offer(self, link: str, tx_code: str | None) -> str:
        add = self.browser.get(self.endpoints.wallet + "/add")
        _ok(add, "wallet: add-a-link page")
        form = form_with(add, r"/add$")
        offer = self.browser.post(form.action, data={**form.fields, "link": link})
        _ok(offer, "wallet: the offer")
        accept = form_with(offer, r"/accept$")
        if tx_code is not None:
            accept.fields["tx_code"] = tx_code
        stored = self.browser.post(accept.action, data=accept.fields)
        _ok(stored, "wallet: accepting the offer")
        return page_text(stored.text)

    def answer(self, request_link: str) -> tuple[str, str, str | None]:
        """Open the verifier's request, consent with the defaults. -> (consent screen,
        outcome page, consent record id)."""
        query = urlsplit(request_link).query
        screen = self.browser.get(self.endpoints.wallet + "/authorize?" + query)
        _ok(screen, "wallet: opening the verifier's request")
        approve = form_with(screen, r"/approve$")
        outcome = self.browser.post(approve.action, data=approve.fields)
        _ok(outcome, "wallet: consenting")
        found = re.search(r'href="/consents/([^"/]+)"', outcome.text)
        return page_text(screen.text), page_text(outcome.text), found.group(1) if found else None

    def consent_record(self, consent_id: str) -> str:
        record = self.browser.get(f"{self.endpoints.wallet}/consents/{consent_id}")
        _ok(record, "wallet: consent record")
        return page_text(record.text)


class Agency:
    """An agency's back office (client credentials) making records and offers."""

    def __init__(self, base: str, secret: str) -> None:
        self.base = base
        self.client = httpx.Client(timeout=TIMEOUT)
        token = self.client.post(
            base + "/backoffice/v1/token",
            data={"grant_type": "client_credentials"},
            auth=("dev-backoffice", secret),
        )
        _ok(token, f"back office token at {base}")
        self.client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def record(self, path: str, body: Mapping[str, Any], method: str = "POST") -> dict[str, Any]:
        response = self.client.request(method, self.base + "/backoffice/v1" + path, json=body)
        _ok(response, f"back office {path}")
        return dict(response.json())

    def offer(self, person: str, record_id: int) -> dict[str, Any]:
        body = {"person": person, "record_id": record_id, "tx_code": True}
        return self.record("/offers", body)


class Employer:
    """The HR system on the verifier's employer API."""

    def __init__(self, base: str, client_id: str, secret: str) -> None:
        self.base = base
        self.client = httpx.Client(timeout=TIMEOUT, headers={"X-API-Key": f"{client_id}:{secret}"})

    def ask(self, template: str) -> dict[str, Any]:
        response = self.client.post(self.base + "/api/v1/transactions", json={"template": template})
        _ok(response, f"verifier: creating a {template} request")
        return dict(response.json())

    def result(self, transaction_id: str) -> dict[str, Any]:
        response = self.client.get(f"{self.base}/api/v1/transactions/{transaction_id}")
        _ok(response, "verifier: the result")
        return dict(response.json())


# -- the journeys ----------------------------------------------------------------------------


def _journey(
    say: Callable[[str], None], person: Person, employer: Employer, label: str, template: str
) -> dict[str, Any]:
    say(f"[{label}] employer asks for proof ({template}) through the verifier API")
    transaction = employer.ask(template)
    say(f"      request_link: {transaction['request_link'][:100]}...")
    say(f"[{label}] person opens the request in the wallet and consents")
    screen, outcome, consent_id = person.answer(transaction["request_link"])
    say(_indent(screen, 12))
    lines = outcome.splitlines()
    say(f"      wallet says: {lines[1] if len(lines) > 1 else outcome}")
    view = employer.result(transaction["transaction_id"])
    result = view.get("result") or {}
    say(f"[{label}] verifier result: status={view['status']}")
    checks = ", ".join(
        f"{c['name']}{'' if c['status'] == 'ok' else ' ' + c['status'].upper()}"
        for c in result.get("checks", [])
    )
    say(f"      checks: {checks}")
    claims = (result.get("claims") or {}).get("credentials")
    say(_indent(json.dumps(claims, indent=2, ensure_ascii=False), 6))
    if consent_id:
        say(f"[{label}] the wallet's consent record {consent_id}:")
        say(_indent(person.consent_record(consent_id), 6))
    if view["status"] != "verified":
        raise DemoError(f"journey {label}: the verifier says {view['status']}")
    return view


def _indent(text: str, width: int, limit: int = 40) -> str:
    lines = text.splitlines()[:limit]
    return "\n".join(" " * width + line for line in lines)


def run_demo(endpoints: Endpoints, secrets: Mapping[str, Any], say: Callable[[str], None]) -> None:
    """Journeys A and B; raises :class:`DemoError` at the first step that fails."""
    person = Person(endpoints)
    say("1. Anna logs in to the wallet with the development eID")
    say(_indent(person.log_in_to_wallet(), 6, 6))

    say("2. Arbetsförmedlingen's back office records her registration and makes an offer")
    af = Agency(endpoints.issuer_af, secrets["backoffice"]["issuer-af"])
    registration = af.record(
        "/registrations",
        {**PERSON, "registered": True, "registered_since": "2025-09-01",
         "registration_category": {"code": "11", "label": "Öppet arbetslös"}},
        method="PUT",
    )  # fmt: skip
    offer = af.offer(registration["person"], registration["record_id"])
    say(
        f"      offer link {offer['link'][:80]}..., tx_code sent to Anna by SMS: {offer['tx_code']}"
    )
    say("3. Anna adds the registration certificate to her wallet")
    say(_indent(person.accept_offer(offer["link"], offer.get("tx_code")), 6, 8))

    employer = Employer(
        endpoints.verifier, secrets["employer_api"]["client_id"], secrets["employer_api"]["secret"]
    )
    _journey(say, person, employer, "A", "registration_certificate")

    say("4. MYH's back office records her qualification and makes an offer")
    myh = Agency(endpoints.issuer_myh, secrets["backoffice"]["issuer-myh"])
    award = myh.record("/awards", {**PERSON, "qualification_id": QUALIFICATION_ID,
                                   "awarded_on": "2025-06-13"})  # fmt: skip
    offer = myh.offer(award["person"], award["record_id"])
    say("5. Anna adds the qualification attestation to her wallet")
    say(_indent(person.accept_offer(offer["link"], offer.get("tx_code")), 6, 8))
    _journey(say, person, employer, "B", "work_practice")
    say("Both journeys verified.")


def load_secrets(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "dev-secrets.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError:
        raise DemoError(f"{path} not found: start `intyg up` first (same data folder)") from None
