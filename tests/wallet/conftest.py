"""Fixtures for the wallet tests: a database per test on SQLite and, when
``INTYG_TEST_POSTGRES_URL`` is set, on PostgreSQL; wallet settings; and real servers on
loopback (development eID, the real AF issuer, the wallet) for the end-to-end tests."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from issuer.models import Person
from issuer.records import RegistrationInput, upsert_registration
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import Clock, database_url
from tests.issuer.conftest import make_settings as make_issuer_settings
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
