"""The person's page over real loopback HTTP: the development eID (uvicorn) and the issuer
(uvicorn), login through the eID picker, credentials with their status, "Add to wallet",
CSRF refusals, sv/en, and the personal number masked and never in a URL or a log."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from eid.app import create_app as create_eid_app
from eid.settings import EidClient, EidSettings
from intyg.web import db
from intyg.web.oidc import OidcConfig
from issuer import status as issuer_status
from issuer.app import IssuerContext, create_app, startup, system_clock
from issuer.models import AuditEntry, CredentialOffer
from issuer.records import RegistrationInput, record_issuance, upsert_registration
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import make_settings

ANNA = "198112189884"
ANNA_MASKED = "19811218-****"
CLIENT_ID = "issuer-af"
SECRET = "issuer-eid-secret-0123456789"


@dataclass
class RunningIssuer:
    ctx: IssuerContext
    base: str
    op_base: str
    urls: list[str] = field(default_factory=list)

    def login(self, browser: httpx.Client, person: str = "anna") -> httpx.Response:
        """Log in through the eID picker; every URL the browser visits is kept."""
        started = browser.get(f"{self.base}/login")
        assert started.status_code == 303
        self.urls.append(started.headers["location"])
        picker = browser.get(started.headers["location"])
        assert picker.status_code == 200
        transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
        assert transaction
        decided = browser.post(
            f"{self.op_base}/authorize",
            data={"transaction": transaction.group(1), "person": person},
        )
        assert decided.status_code == 302
        self.urls.append(decided.headers["location"])
        callback = browser.get(decided.headers["location"])
        if callback.status_code == 303:
            self.urls.append(callback.headers["location"])
        return callback


def add_records(ctx: IssuerContext) -> int:
    """Anna's registration, one credential issued from it and one revoked."""
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        person = ctx.person_vault().upsert(
            unit, ANNA, given_name="Anna", family_name="Andersson", birthdate="1981-12-18", now=now
        )
        row = upsert_registration(
            unit,
            person,
            RegistrationInput(
                registered=True,
                category_code="11",
                category_label="Arbetslös",
                registered_since=datetime.date(2026, 1, 12),
                office="Arbetsförmedlingen Malmö",
            ),
            now,
        )
        for fmt, kind in (("dc+sd-jwt", issuer_status.TSL), ("jwt_vc_json", "bitstring")):
            issued = record_issuance(
                unit,
                person_id=person.id,  # type: ignore[arg-type]
                record_id=row.id,
                configuration_id=f"RegistrationCertificate_{fmt}",
                credential_format=fmt,
                allocation=issuer_status.allocate(unit, ctx.settings, kind, now),
                kid="kid",
                proof_hash=f"proof-{fmt}",
                issued_at=now,
                expires_at=now + 3600,
            )
            if fmt == "jwt_vc_json":
                issuer_status.set_status(unit, issued, issuer_status.INVALID, now)
        assert row.id is not None
        return row.id


@contextmanager
def running_issuer(tmp_path: Path, database_url: str | None = None) -> Iterator[RunningIssuer]:
    """The development eID and an AF issuer on loopback ports, configured for each other."""
    op_socket, op_base = bound_socket()
    issuer_socket, base = bound_socket()
    redirect = f"{base}/login/callback"
    eid_settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[EidClient(client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=(redirect,))],
    )
    settings = make_settings(
        database_url or f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        tmp_path,
        public_base_url=base,
        eid=OidcConfig(
            name="eid-af",
            discovery_url=f"{op_base}/.well-known/openid-configuration",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            redirect_uri=redirect,
        ),
    )
    engine = db.create_engine(settings.sqlalchemy_url())
    app = create_app(settings, clock=system_clock, engine=engine)
    ctx: IssuerContext = app.state.issuer
    startup(ctx)
    add_records(ctx)
    try:
        with serve(create_eid_app(eid_settings), op_socket), serve(app, issuer_socket):
            yield RunningIssuer(ctx, base, op_base)
    finally:
        engine.dispose()


@pytest.fixture
def issuer(tmp_path: Path, database_url: str) -> Iterator[RunningIssuer]:
    with running_issuer(tmp_path, database_url) as running:
        yield running


def offers_count(ctx: IssuerContext) -> int:
    with db.session(ctx.engine, write=False) as unit:
        return int(unit.scalar(sa.select(sa.func.count()).select_from(CredentialOffer)) or 0)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_login_page_sv_default(issuer: RunningIssuer) -> None:
    page = httpx.get(f"{issuer.base}/")
    assert page.status_code == 200
    assert '<html lang="sv">' in page.text and 'name="viewport"' in page.text
    assert "Logga in med BankID/Freja (eID)" in page.text and "Arbetsförmedlingen" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    css = httpx.get(f"{issuer.base}/static/issuer.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_login_shows_credentials_and_add_to_wallet(
    issuer: RunningIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = httpx.Client()
    callback = issuer.login(browser)
    assert callback.status_code == 303 and callback.headers["location"] == "/"
    cookie = next(c for c in browser.cookies.jar if c.name == "intyg_issuer_af")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert "samesite=lax" in callback.headers["set-cookie"].lower()
    page = browser.get(f"{issuer.base}/")
    assert "Anna Andersson" in page.text and ANNA_MASKED in page.text
    assert ANNA not in page.text and ANNA[2:] not in page.text
    assert "Inskriven sedan" in page.text and "2026-01-12" in page.text
    assert "Utfärdat" in page.text and "Återkallat" in page.text
    assert "Hämta till plånboken" in page.text
    record = re.search(r'name="record" value="(\d+)"', page.text)
    assert record

    offer = browser.post(
        f"{issuer.base}/wallet-offer", data={"csrf_token": csrf(page.text), "record": record[1]}
    )
    assert offer.status_code == 200, offer.text
    assert "<svg" in offer.text and 'href="openid-credential-offer://?credential_offer_uri=' in (
        offer.text
    )
    assert offer.headers["cache-control"] == "no-store"
    with db.session(issuer.ctx.engine, write=False) as unit:
        row = unit.scalars(sa.select(CredentialOffer)).one()
        actions = [e.action for e in unit.scalars(sa.select(AuditEntry))]
    assert row.tx_code_hash is None
    assert row.expires_at - row.created_at == issuer.ctx.settings.page_offer_ttl
    assert "page.offer.create" in actions
    assert row.offer_id in offer.text

    logout = browser.post(f"{issuer.base}/logout", data={"csrf_token": csrf(page.text)})
    assert logout.status_code == 303
    assert "Logga in med" in browser.get(f"{issuer.base}/").text

    assert all(ANNA not in url and ANNA[2:] not in url for url in issuer.urls)
    assert ANNA not in caplog.text and ANNA[2:] not in caplog.text


def test_csrf_missing_or_wrong_refused(issuer: RunningIssuer) -> None:
    browser = httpx.Client()
    issuer.login(browser)
    page = browser.get(f"{issuer.base}/")
    record = re.search(r'name="record" value="(\d+)"', page.text)
    assert record
    missing = browser.post(f"{issuer.base}/wallet-offer", data={"record": record[1]})
    assert missing.status_code == 403
    wrong = browser.post(
        f"{issuer.base}/wallet-offer", data={"csrf_token": "x" * 43, "record": record[1]}
    )
    assert wrong.status_code == 403
    # A token from another session (another browser) does not pass either.
    other = httpx.Client()
    issuer.login(other, "erik")
    foreign = csrf(other.get(f"{issuer.base}/").text)
    assert (
        browser.post(
            f"{issuer.base}/wallet-offer", data={"csrf_token": foreign, "record": record[1]}
        ).status_code
        == 403
    )
    assert browser.post(f"{issuer.base}/logout", data={"a": "1"}).status_code == 403
    assert offers_count(issuer.ctx) == 0
    # Not logged in at all: no session, no offer.
    anonymous = httpx.post(f"{issuer.base}/wallet-offer", data={"csrf_token": "a", "record": "1"})
    assert anonymous.status_code == 403 and offers_count(issuer.ctx) == 0


def test_other_persons_record_refused(issuer: RunningIssuer) -> None:
    browser = httpx.Client()
    issuer.login(browser, "erik")
    page = browser.get(f"{issuer.base}/")
    assert "Vi har inga uppgifter om dig" in page.text
    response = browser.post(
        f"{issuer.base}/wallet-offer", data={"csrf_token": csrf(page.text), "record": "1"}
    )
    assert response.status_code == 404 and offers_count(issuer.ctx) == 0


def test_english_page(issuer: RunningIssuer) -> None:
    browser = httpx.Client()
    issuer.login(browser)
    page = browser.get(f"{issuer.base}/", params={"lang": "en"})
    assert '<html lang="en">' in page.text
    assert "Your credentials" in page.text and "Add to wallet" in page.text
    assert "Revoked" in page.text and "Registered since" in page.text
    assert "Swedish Public Employment Service" in page.text
    # The choice is remembered.
    assert "Add to wallet" in browser.get(f"{issuer.base}/").text
    assert "Hämta till plånboken" in browser.get(f"{issuer.base}/?lang=sv").text


def test_low_assurance_login_refused(issuer: RunningIssuer) -> None:
    browser = httpx.Client()
    response = issuer.login(browser, "maja")
    assert response.status_code == 400
    assert "för låg tillitsnivå" in response.text
    assert not any(c.name == "intyg_issuer_af" for c in browser.cookies.jar)


def test_login_not_configured(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    settings = make_settings(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path)
    with TestClient(create_app(settings), base_url="https://issuer.test") as client:
        page = client.get("/")
        assert "Inloggning är inte konfigurerad" in page.text
        assert client.get("/login").status_code == 404
