"""Fixtures for the wallet tests: a database per test on SQLite and, when
``INTYG_TEST_POSTGRES_URL`` is set, on PostgreSQL; wallet settings; and real servers on
loopback (development eID, the real AF issuer, the wallet) for the end-to-end tests."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from eid.app import create_app as create_eid_app
from eid.settings import EidClient, EidSettings
from intyg.web import db
from intyg.web.crypto_store import generate_master_key
from intyg.web.oidc import OidcConfig
from issuer import offers
from issuer.app import IssuerContext
from issuer.app import create_app as create_issuer_app
from issuer.app import startup as issuer_startup
from issuer.app import system_clock as issuer_clock
from issuer.models import MYHQualification, Person
from issuer.records import RegistrationInput, award_qualification, upsert_registration
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import Clock, database_url
from tests.issuer.conftest import make_settings as make_issuer_settings
from verifier.app import VerifierContext
from verifier.app import create_app as create_verifier_app
from verifier.app import startup as verifier_startup
from verifier.settings import VerifierSettings
from wallet.app import WalletContext, create_app, startup
from wallet.settings import WalletSettings

ANNA = "198112189884"
ERIK = "198503152376"
WALLET_CLIENT = "wallet"
WALLET_SECRET = "wallet-eid-secret-0123456789"

__all__ = ["Clock", "database_url"]


def make_wallet_settings(database_url: str, data_dir: Path, **overrides: object) -> WalletSettings:
    values: dict[str, object] = {
        "environment": "development",
        "public_base_url": "http://127.0.0.1:8200",
        "master_key": generate_master_key(),
        "database_url": database_url,
        "data_dir": data_dir,
    }
    values.update(overrides)
    return WalletSettings(**values)  # type: ignore[arg-type]


@dataclass
class Running:
    """eID, issuer and wallet on loopback ports."""

    wallet: WalletContext
    wallet_base: str
    issuer: IssuerContext
    issuer_base: str
    op_base: str
    urls: list[str] = field(default_factory=list)

    def login(
        self, browser: httpx.Client, person: str = "anna", next_path: str = ""
    ) -> httpx.Response:
        """Log in through the eID picker; every URL the browser visits is kept."""
        start = f"{self.wallet_base}/login" + (f"?next={next_path}" if next_path else "")
        started = browser.get(start)
        assert started.status_code == 303, started.text
        self.urls.append(started.headers["location"])
        picker = browser.get(started.headers["location"])
        transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
        assert transaction
        decided = browser.post(
            f"{self.op_base}/authorize", data={"transaction": transaction[1], "person": person}
        )
        assert decided.status_code == 302
        self.urls.append(decided.headers["location"])
        callback = browser.get(decided.headers["location"])
        if callback.status_code == 303:
            self.urls.append(callback.headers["location"])
        return callback

    def offer(self, personal_number: str = ANNA, *, tx_code: bool = True) -> offers.CreatedOffer:
        """A real offer from the issuer's back-office function (both formats)."""
        ctx = self.issuer
        now = ctx.clock()
        with db.session(ctx.engine) as unit:
            person = unit.scalars(
                sa.select(Person).where(
                    Person.lookup_key == ctx.person_vault().lookup_key(personal_number)
                )
            ).one()
            record = upsert_registration(
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
            assert record.id is not None
            return offers.create_offer(unit, ctx, person, record.id, tx_code=tx_code)


def _people(ctx: IssuerContext) -> None:
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        for number, given, family, born in (
            (ANNA, "Anna", "Andersson", "1981-12-18"),
            (ERIK, "Erik", "Johansson", "1985-03-15"),
        ):
            ctx.person_vault().upsert(
                unit, number, given_name=given, family_name=family, birthdate=born, now=now
            )


@contextmanager
def running_services(
    tmp_path: Path,
    database_url: str,
    prepare: Callable[[IssuerContext], dict[str, object]] | None = None,
    **wallet_overrides: object,
) -> Iterator[Running]:
    """``prepare(issuer_ctx)`` runs after the issuer started and returns more wallet
    settings (the presentation tests start a verifier that trusts the issuer's CA there)."""
    op_socket, op_base = bound_socket()
    issuer_socket, issuer_base = bound_socket()
    wallet_socket, wallet_base = bound_socket()
    redirect = f"{wallet_base}/login/callback"
    eid_settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[
            EidClient(
                client_id=WALLET_CLIENT, client_secret=WALLET_SECRET, redirect_uris=(redirect,)
            )
        ],
    )
    issuer_dir = tmp_path / "issuer"
    issuer_settings = make_issuer_settings(
        f"sqlite:///{tmp_path / 'e2e-issuer.sqlite3'}", issuer_dir, public_base_url=issuer_base
    )
    issuer_engine = db.create_engine(issuer_settings.sqlalchemy_url())
    issuer_app = create_issuer_app(issuer_settings, clock=issuer_clock, engine=issuer_engine)
    issuer_ctx: IssuerContext = issuer_app.state.issuer
    issuer_startup(issuer_ctx)
    _people(issuer_ctx)
    anchor = tmp_path / "issuer-ca.pem"
    anchor.write_text(issuer_ctx.keys.trust_anchor_pem() or "")
    values: dict[str, object] = {
        "public_base_url": wallet_base,
        "issuer_trust_anchors": (anchor,),
        "eid": OidcConfig(
            name="eid-wallet",
            discovery_url=f"{op_base}/.well-known/openid-configuration",
            client_id=WALLET_CLIENT,
            client_secret=WALLET_SECRET,
            redirect_uri=redirect,
        ),
    }
    values.update(wallet_overrides)
    if prepare is not None:
        values.update(prepare(issuer_ctx))
    wallet_settings = make_wallet_settings(database_url, tmp_path / "wallet", **values)
    wallet_engine = db.create_engine(database_url)
    wallet_app = create_app(wallet_settings, engine=wallet_engine)
    wallet_ctx: WalletContext = wallet_app.state.wallet
    startup(wallet_ctx)
    try:
        with (
            serve(create_eid_app(eid_settings), op_socket),
            serve(issuer_app, issuer_socket),
            serve(wallet_app, wallet_socket),
        ):
            yield Running(wallet_ctx, wallet_base, issuer_ctx, issuer_base, op_base)
    finally:
        issuer_engine.dispose()
        wallet_engine.dispose()


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Running]:
    with running_services(tmp_path, database_url) as running:
        yield running


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match[1]


# -- the real verifier (journeys A and B) ---------------------------------------------------

API_SECRET = "dev-employer-secret-0123456789"
API_KEY = {"X-API-Key": f"dev-employer:{API_SECRET}"}


@dataclass
class World:
    services: Running
    verifier: VerifierContext
    verifier_base: str
    #: Journey B: the real MYH issuer too (``world_b``).
    myh: IssuerContext | None = None
    myh_base: str = ""

    def myh_offer(self, personal_number: str = ANNA) -> offers.CreatedOffer:
        """A real MYH offer: a catalogue qualification at EQF level 5 or higher awarded."""
        ctx = self.myh
        assert ctx is not None
        with db.session(ctx.engine) as unit:
            person = unit.scalars(
                sa.select(Person).where(
                    Person.lookup_key == ctx.person_vault().lookup_key(personal_number)
                )
            ).one()
            qualification = next(
                q
                for q in unit.scalars(
                    sa.select(MYHQualification).where(MYHQualification.status == "Aktiv")  # type: ignore[arg-type]
                )
                if (q.data["claims"].get("eqf_level") or 0) >= 5
            )
            award = award_qualification(
                unit,
                person,
                qualification.qualification_id,
                qualification.data["claims"]["decision_date"],
                ctx.clock(),
            )
            assert award.id is not None
            return offers.create_offer(unit, ctx, person, award.id, tx_code=False)


def _start_myh(stack: ExitStack, tmp_path: Path) -> tuple[IssuerContext, str]:
    """The real MYH issuer (sample catalogue loaded) on a loopback port."""
    sock, base = bound_socket()
    settings = make_issuer_settings(
        f"sqlite:///{tmp_path / 'e2e-myh.sqlite3'}",
        tmp_path / "myh",
        public_base_url=base,
        agency="myh",
        dev_sample_data=True,
    )
    engine = db.create_engine(settings.sqlalchemy_url())
    stack.callback(engine.dispose)
    app = create_issuer_app(settings, clock=issuer_clock, engine=engine)
    ctx: IssuerContext = app.state.issuer
    issuer_startup(ctx)
    _people(ctx)
    stack.enter_context(serve(app, sock))
    return ctx, base


def _start_verifier(
    stack: ExitStack, tmp_path: Path, issuers: dict[str, IssuerContext], **overrides: object
) -> tuple[VerifierContext, str, Path]:
    trust_dir = tmp_path / "verifier" / "trust"
    trust_dir.mkdir(parents=True)
    for agency, issuer in issuers.items():  # the verifier's dev trust list file names
        (trust_dir / f"{agency}-dev-ca.pem").write_text(issuer.keys.trust_anchor_pem() or "")
    sock, base = bound_socket()
    settings = VerifierSettings(
        environment="development",
        public_base_url=base,
        master_key=generate_master_key(),
        database_url=f"sqlite:///{tmp_path / 'e2e-verifier.sqlite3'}",
        data_dir=tmp_path / "verifier",
        dev_trust_anchor_dir=trust_dir,
        dev_api_client_secret=API_SECRET,
        status_cache_min_seconds=0,
        **overrides,  # type: ignore[arg-type]
    )
    engine = db.create_engine(settings.sqlalchemy_url())
    stack.callback(engine.dispose)
    app = create_verifier_app(settings, engine=engine)
    ctx: VerifierContext = app.state.verifier
    verifier_startup(ctx)
    stack.enter_context(serve(app, sock))
    anchor = tmp_path / "verifier-ca.pem"
    anchor.write_text(ctx.keys.trust_anchor_pem() or "")
    return ctx, base, anchor


@contextmanager
def make_world(
    tmp_path: Path,
    database_url: str,
    *,
    with_myh: bool = False,
    verifier_overrides: dict[str, object] | None = None,
    registry_match: Callable[[VerifierContext], list[str]] | None = None,
) -> Iterator[World]:
    """eID, AF issuer, wallet and the real verifier (and with ``with_myh`` the MYH issuer,
    trusted by the wallet and by the verifier). ``verifier_overrides``: more verifier
    settings (e.g. the ``decentralized_identifier`` prefix); ``registry_match``: the wallet
    registry's match keys for the verifier (default its client id; empty: unknown)."""
    started: dict[str, object] = {}
    with ExitStack() as stack:

        def prepare(issuer: IssuerContext) -> dict[str, object]:
            issuers = {"af": issuer}
            more: dict[str, object] = {}
            if with_myh:
                myh, myh_base = _start_myh(stack, tmp_path)
                issuers["myh"] = myh
                started.update(myh=myh, myh_base=myh_base)
                anchors = []
                for agency, running in issuers.items():
                    path = tmp_path / f"wallet-{agency}-ca.pem"
                    path.write_text(running.keys.trust_anchor_pem() or "")
                    anchors.append(path)
                more["issuer_trust_anchors"] = tuple(anchors)
            ctx, base, anchor = _start_verifier(
                stack, tmp_path, issuers, **(verifier_overrides or {})
            )
            match = registry_match(ctx) if registry_match else [ctx.keys.client_id]
            started.update(ctx=ctx, base=base)
            registry = tmp_path / "registry.json"
            registry.write_text(
                json.dumps(
                    {
                        "verifiers": [
                            {
                                "match": match,
                                "name": {"sv": "Utvecklingsarbetsgivaren AB", "en": "Dev Employer"},
                                "organisation_number": "556677-8899",
                                "needs": [
                                    {
                                        "vct": "https://intyg.example/vct/af-inskrivningsintyg/1",
                                        "claims": [["registered"], ["registered_since"]],
                                    }
                                ],
                            }
                        ]
                    }
                )
            )
            return {
                "verifier_trust_anchors": (anchor,),
                "verifier_registry_file": registry,
                **more,
            }

        with running_services(tmp_path, database_url, prepare=prepare) as services:
            yield World(
                services,
                started["ctx"],  # type: ignore[arg-type]
                started["base"],  # type: ignore[arg-type]
                started.get("myh"),  # type: ignore[arg-type]
                started.get("myh_base", ""),  # type: ignore[arg-type]
            )


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    with make_world(tmp_path, database_url) as running:
        yield running


@pytest.fixture
def world_b(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Journey B: the AF and the MYH issuer."""
    with make_world(tmp_path, database_url, with_myh=True) as running:
        yield running


def accept_offer(services: Running, browser: httpx.Client, link: str) -> None:
    """Open an issuer's offer link at the wallet's offer endpoint and accept it."""
    offer = browser.get(f"{services.wallet_base}/offer?{link.split('?', 1)[1]}")
    assert offer.status_code == 303, offer.text
    page = browser.get(services.wallet_base + offer.headers["location"])
    action = re.search(r'action="(/issuance/[^"]+/accept)"', page.text)
    assert action, page.text
    accepted = browser.post(services.wallet_base + action[1], data={"csrf_token": csrf(page.text)})
    assert accepted.status_code == 303, accepted.text


def authorize(
    world: World, browser: httpx.Client, template: str = "registration_certificate"
) -> tuple[str, dict]:
    """A transaction at the real verifier's employer API, opened at the wallet's
    authorization endpoint; the consent screen's path and the transaction."""
    transaction = httpx.post(
        f"{world.verifier_base}/api/v1/transactions", json={"template": template}, headers=API_KEY
    )
    assert transaction.status_code == 201, transaction.text
    created_tx = transaction.json()
    link = created_tx["request_link"]
    assert link.startswith("openid4vp://")
    # Same-device form of the link: the wallet's own authorization endpoint.
    services = world.services
    response = browser.get(f"{services.wallet_base}/authorize?{link.split('?', 1)[1]}")
    assert response.status_code == 303, response.text
    return response.headers["location"], created_tx


def receive_and_authorize(world: World, browser: httpx.Client) -> tuple[str, dict]:
    """Log in, accept the AF offer, create a verifier transaction; the wallet's consent URL."""
    services = world.services
    services.login(browser)
    accept_offer(services, browser, services.offer(tx_code=False).link)
    return authorize(world, browser)


def verifier_result(world: World, transaction_id: str) -> dict:
    response = httpx.get(
        f"{world.verifier_base}/api/v1/transactions/{transaction_id}", headers=API_KEY
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
