"""Wallet-initiated issuance end to end over real loopback HTTP (OpenID4VCI 1.0 §5):
the development eID, the REAL AF and MYH issuers (PAR, PKCE S256, wallet attestation,
DPoP, RFC 9207 ``iss``, eID login at the issuer) and the wallet, each a uvicorn server.

The person logs in at the wallet, opens "Hämta intyg" (both issuers with their display
names, sv and en), picks a credential, the wallet pushes the request and sends the browser
to the issuer, the person picks themselves in the eID person picker, the issuer redirects
to the wallet's callback, the wallet redeems the code and stores the verified credential,
and shows it. Then the refusals at the page: the callback replayed, a forged ``state`` or
``iss``, an issuer ``access_denied``, a callback without a wallet login. A headless
Chromium run (Playwright, Debian ``chromium``) walks the same journey, where the move
from the wallet's form to the issuer (and on to the eID) must not trip the page's
``form-action 'self'``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from eid.app import create_app as create_eid_app
from eid.settings import EidClient, EidSettings
from intyg.web import db
from intyg.web.oidc import OidcConfig
from issuer.app import IssuerContext
from issuer.app import create_app as create_issuer_app
from issuer.app import startup as issuer_startup
from issuer.app import system_clock as issuer_clock
from issuer.models import MYHQualification, Person
from issuer.records import award_qualification
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import make_settings as make_issuer_settings
from tests.system.browser import CHROMIUM, LAUNCH_ARGS, requires_chromium, screenshot
from wallet.app import WalletContext, create_app, startup
from wallet.models import IssuanceSession, WalletCredential

from .conftest import ANNA, WALLET_CLIENT, WALLET_SECRET, _people, csrf, make_wallet_settings
from .test_authorization_rules import _register

AF_SD_JWT = "RegistrationCertificate_dc+sd-jwt"
MYH_SD_JWT = "QualificationAttestation_dc+sd-jwt"


@dataclass
class Journey:
    """eID, both issuers and the wallet on loopback ports; the URLs a browser visited."""

    wallet: WalletContext
    wallet_base: str
    op_base: str
    issuers: dict[str, IssuerContext]
    bases: dict[str, str]
    urls: list[str] = field(default_factory=list)

    def pick_person(self, browser: httpx.Client, picker_url: str, person: str) -> httpx.Response:
        """The eID person picker (BankID stand-in): choose ``person``; the OP's redirect."""
        self.urls.append(picker_url)
        picker = browser.get(picker_url)
        transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
        assert transaction, picker.text
        decided = browser.post(
            f"{self.op_base}/authorize", data={"transaction": transaction[1], "person": person}
        )
        assert decided.status_code == 302, decided.text
        self.urls.append(decided.headers["location"])
        return decided

    def login(self, browser: httpx.Client, person: str = "anna") -> None:
        started = browser.get(f"{self.wallet_base}/login")
        assert started.status_code == 303
        decided = self.pick_person(browser, started.headers["location"], person)
        assert browser.get(decided.headers["location"]).status_code == 303

    def get_credential(
        self, browser: httpx.Client, agency: str, configuration: str, person: str = "anna"
    ) -> str:
        """ "Hämta intyg" -> PAR -> issuer -> eID -> issuer callback: the authorization
        response URL at the wallet (not opened yet)."""
        page = browser.get(f"{self.wallet_base}/get")
        assert page.status_code == 200, page.text
        started = browser.post(
            f"{self.wallet_base}/get",
            data={
                "csrf_token": csrf(page.text),
                "issuer": self.bases[agency],
                "configuration": configuration,
            },
        )
        # A page that moves on (meta refresh + link): no redirect after a form (CSP).
        assert started.status_code == 200, started.text
        link = re.search(r'id="continue" href="([^"]+)"', started.text)
        assert link, started.text
        target = html.unescape(link[1])
        assert f'<meta http-equiv="refresh" content="0;url={link[1]}">' in started.text
        self.urls.append(target)
        assert target.startswith(f"{self.bases[agency]}/authorize?client_id=")
        at_issuer = browser.get(target)
        assert at_issuer.status_code == 303, at_issuer.text
        decided = self.pick_person(browser, at_issuer.headers["location"], person)
        back = browser.get(decided.headers["location"])  # the issuer's eID callback
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        self.urls.append(location)
        assert location.startswith(f"{self.wallet_base}/get/callback?")
        return location

    def cards(self) -> list[WalletCredential]:
        with db.session(self.wallet.engine, write=False) as unit:
            return list(unit.scalars(sa.select(WalletCredential)))


def _award(issuer: IssuerContext, number: str) -> None:
    """A MYH award at EQF level 5 or higher for ``number``."""
    with db.session(issuer.engine) as unit:
        person = unit.scalars(
            sa.select(Person).where(Person.lookup_key == issuer.person_vault().lookup_key(number))
        ).one()
        qualification = next(
            q
            for q in unit.scalars(
                sa.select(MYHQualification).where(MYHQualification.status == "Aktiv")  # type: ignore[arg-type]
            )
            if (q.data["claims"].get("eqf_level") or 0) >= 5
        )
        award_qualification(
            unit,
            person,
            qualification.qualification_id,
            qualification.data["claims"]["decision_date"],
            issuer.clock(),
        )


@contextmanager
def journey_services(tmp_path: Path, database_url: str) -> Iterator[Journey]:
    sockets = {name: bound_socket() for name in ("eid", "af", "myh", "wallet")}
    bases = {name: base for name, (_, base) in sockets.items()}
    op_base, wallet_base = bases["eid"], bases["wallet"]
    secrets = {agency: f"{agency}-eid-secret-0123456789" for agency in ("af", "myh")}
    eid_settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[
            EidClient(
                client_id=WALLET_CLIENT,
                client_secret=WALLET_SECRET,
                redirect_uris=(f"{wallet_base}/login/callback",),
            ),
            *(
                EidClient(
                    client_id=f"issuer-{agency}",
                    client_secret=secrets[agency],
                    redirect_uris=(f"{bases[agency]}/authorize/callback",),
                )
                for agency in ("af", "myh")
            ),
        ],
    )
    wallet_ca = tmp_path / "wallet" / "wallet-provider-ca.pem"
    with ExitStack() as stack:
        issuers: dict[str, IssuerContext] = {}
        apps = {}
        anchors = []
        for agency in ("af", "myh"):
            settings = make_issuer_settings(
                f"sqlite:///{tmp_path / f'e2e-{agency}.sqlite3'}",
                tmp_path / agency,
                public_base_url=bases[agency],
                agency=agency,
                dev_sample_data=agency == "myh",
                trusted_wallet_providers=(wallet_ca,),
                eid=OidcConfig(
                    discovery_url=f"{op_base}/.well-known/openid-configuration",
                    client_id=f"issuer-{agency}",
                    client_secret=secrets[agency],
                    redirect_uri=f"{bases[agency]}/login/callback",
                ),
            )
            engine = db.create_engine(settings.sqlalchemy_url())
            stack.callback(engine.dispose)
            apps[agency] = create_issuer_app(settings, clock=issuer_clock, engine=engine)
            issuers[agency] = apps[agency].state.issuer
            issuer_startup(issuers[agency])
            _people(issuers[agency])
            anchor = tmp_path / f"{agency}-ca.pem"
            anchor.write_text(issuers[agency].keys.trust_anchor_pem() or "")
            anchors.append(anchor)
        _register(issuers["af"], ANNA)
        _award(issuers["myh"], ANNA)
        wallet_settings = make_wallet_settings(
            database_url,
            tmp_path / "wallet",
            public_base_url=wallet_base,
            issuer_trust_anchors=tuple(anchors),
            credential_issuers=(bases["af"], bases["myh"]),
            eid=OidcConfig(
                name="eid-wallet",
                discovery_url=f"{op_base}/.well-known/openid-configuration",
                client_id=WALLET_CLIENT,
                client_secret=WALLET_SECRET,
                redirect_uri=f"{wallet_base}/login/callback",
            ),
        )
        wallet_engine = db.create_engine(database_url)
        stack.callback(wallet_engine.dispose)
        wallet_app = create_app(wallet_settings, engine=wallet_engine)
        wallet: WalletContext = wallet_app.state.wallet
        startup(wallet)
        stack.enter_context(serve(create_eid_app(eid_settings), sockets["eid"][0]))
        for agency in ("af", "myh"):
            stack.enter_context(serve(apps[agency], sockets[agency][0]))
        stack.enter_context(serve(wallet_app, sockets["wallet"][0]))
        yield Journey(wallet, wallet_base, op_base, issuers, bases)


@pytest.fixture
def journey(tmp_path: Path, database_url: str) -> Iterator[Journey]:
    with journey_services(tmp_path, database_url) as running:
        yield running


def _with(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_get_a_credential_from_both_issuers(journey: Journey) -> None:
    browser = httpx.Client()
    journey.login(browser)
    home = browser.get(f"{journey.wallet_base}/")
    assert 'href="/get"' in home.text and "Hämta intyg" in home.text

    # The list: both issuers by their display names, their credentials, sv and en.
    page = browser.get(f"{journey.wallet_base}/get")
    assert "Arbetsförmedlingen" in page.text and "Myndigheten för yrkeshögskolan" in page.text
    for agency in ("af", "myh"):
        assert f'value="{journey.bases[agency]}"' in page.text
        assert urlsplit(journey.bases[agency]).netloc in page.text
    assert page.text.count('action="/get"') == 4  # two configurations per issuer
    assert "form-action 'self';" in page.headers["content-security-policy"]
    english = browser.get(f"{journey.wallet_base}/get?lang=en")
    assert "Get a credential" in english.text and "Swedish Public Employment" in english.text
    assert browser.get(f"{journey.wallet_base}/get?lang=sv").status_code == 200  # back to sv
    # Only a listed issuer, only with the page's CSRF token; nothing started otherwise.
    for data, status in (
        ({"csrf_token": csrf(page.text), "issuer": "https://evil.example"}, 404),
        ({"issuer": journey.bases["af"]}, 403),
        ({"csrf_token": csrf(home.text) + "x", "issuer": journey.bases["af"]}, 403),
    ):
        refused = browser.post(
            f"{journey.wallet_base}/get", data={**data, "configuration": AF_SD_JWT}
        )
        assert refused.status_code == status, refused.text
    with db.session(journey.wallet.engine, write=False) as unit:
        assert unit.scalars(sa.select(IssuanceSession)).first() is None

    # AF, SD-JWT VC: PAR, the issuer's eID login, the callback, the credential page.
    callback = journey.get_credential(browser, "af", AF_SD_JWT)
    shown = browser.get(callback)
    assert shown.status_code == 303, shown.text
    assert shown.headers["location"].startswith("/credentials/")
    detail = browser.get(journey.wallet_base + shown.headers["location"])
    assert detail.status_code == 200 and "2026-01-12" in detail.text and "Giltigt" in detail.text
    (card,) = journey.cards()
    assert card.configuration_id == AF_SD_JWT
    assert card.credential_issuer == journey.bases["af"]
    assert card.instance_count == journey.issuers["af"].settings.batch_size

    # The same callback again: refused, nothing more stored.
    replay = browser.get(callback)
    assert replay.status_code == 400 and "Svaret hör inte till" in replay.text
    assert len(journey.cards()) == 1

    # MYH, the qualification: a second card from the second issuer.
    shown = browser.get(journey.get_credential(browser, "myh", MYH_SD_JWT))
    assert shown.status_code == 303 and shown.headers["location"].startswith("/credentials/")
    assert {c.credential_issuer for c in journey.cards()} == set(
        journey.bases[a] for a in ("af", "myh")
    )
    listing = browser.get(f"{journey.wallet_base}/")
    assert listing.text.count('href="/credentials/') == 2

    # The personal number never appeared in a URL.
    assert all(ANNA not in url and ANNA[2:] not in url for url in journey.urls)


def test_forged_state_and_iss_refused_at_the_callback(journey: Journey) -> None:
    browser = httpx.Client()
    journey.login(browser)
    callback = journey.get_credential(browser, "af", AF_SD_JWT)
    forged_state = browser.get(_with(callback, state="forged-state-value"))
    assert forged_state.status_code == 400 and "Svaret hör inte till" in forged_state.text
    forged_iss = browser.get(_with(callback, iss=journey.bases["myh"], lang="en"))
    assert forged_iss.status_code == 400
    assert "came from another server than the issuer" in forged_iss.text
    # The refused answer burnt the flow: the genuine one cannot be used afterwards.
    assert browser.get(callback).status_code == 400
    assert journey.cards() == []
    with db.session(journey.wallet.engine, write=False) as unit:
        assert unit.scalars(sa.select(IssuanceSession.state)).all() == ["failed"]


def test_issuer_access_denied_shown_and_other_session_refused(journey: Journey) -> None:
    erik = httpx.Client()
    journey.login(erik, "erik")
    callback = journey.get_credential(erik, "af", AF_SD_JWT, person="erik")  # no AF record
    assert dict(parse_qsl(urlsplit(callback).query))["error"] == "access_denied"
    shown = erik.get(callback)
    assert shown.status_code == 400 and "inget intyg att hämta för dig" in shown.text
    english = erik.get(callback + "&lang=en")
    assert english.status_code == 400  # already used: a replay is refused in English too
    assert "does not belong to a fetch of yours" in english.text

    # Anna's flow answered into Erik's wallet session: refused (state bound to the session).
    anna = httpx.Client()
    journey.login(anna)
    anna_callback = journey.get_credential(anna, "af", AF_SD_JWT)
    assert erik.get(anna_callback).status_code == 400
    # Without a wallet login at all: refused, and nothing of the code in a login link.
    anonymous = httpx.get(anna_callback)
    assert anonymous.status_code == 401 and "Logga in och börja om" in anonymous.text
    assert "code=" not in anonymous.text
    assert journey.cards() == []
    # Anna's own session still completes it.
    assert anna.get(anna_callback).status_code == 303
    assert len(journey.cards()) == 1


# -- the same journey in headless Chromium -----------------------------------------------------


@requires_chromium
def test_get_a_credential_in_a_browser(journey: Journey) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")

    base = journey.wallet_base
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page = context.new_page()
            page.goto(f"{base}/")
            page.get_by_role("link", name="Logga in med BankID/Freja (eID)").click()
            page.locator('button[name="person"][value="anna"]').click()
            page.wait_for_url(f"{base}/")
            page.get_by_role("link", name="Hämta intyg").click()
            assert page.get_by_role("heading", name="Arbetsförmedlingen").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            screenshot(page, "wallet-get-credential")
            # The first "Hämta" button: AF's first configuration; PAR, then the issuer.
            page.locator(f'form:has(input[value="{AF_SD_JWT}"]) button').click()
            page.locator('button[name="person"][value="anna"]').click()
            page.wait_for_url(re.compile(re.escape(base) + r"/credentials/"))
            assert page.get_by_text("2026-01-12").first.is_visible()
            assert page.get_by_text("Giltigt").first.is_visible()
        finally:
            browser.close()
    assert len(journey.cards()) == 1
