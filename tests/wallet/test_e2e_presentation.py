"""End to end over real loopback HTTP (issue 4 "Must show"): eID login at the wallet ->
an offer from the REAL AF issuer -> the REAL verifier service (its trust list holding the
issuer's dev CA) creates a transaction through its employer API -> the wallet fetches and
verifies the signed request, shows the consent screen, the person approves -> the
verifier's result is ``verified`` with the disclosed claims -> the wallet's consent record
exists with a valid chain -> withdrawal -> the verifier's disclosed claims are gone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from intyg.web import db
from intyg.web.crypto_store import generate_master_key
from issuer.app import IssuerContext
from tests.eid.servers import bound_socket, serve
from verifier.app import VerifierContext
from verifier.app import create_app as create_verifier_app
from verifier.app import startup as verifier_startup
from verifier.settings import VerifierSettings
from wallet import consents
from wallet.models import ConsentKey, ConsentRecord, CredentialInstance

from .conftest import Running, csrf, running_services

API_SECRET = "dev-employer-secret-0123456789"
API_KEY = {"X-API-Key": f"dev-employer:{API_SECRET}"}
REGISTRATION_VCT = "registration"


@dataclass
class World:
    services: Running
    verifier: VerifierContext
    verifier_base: str


def _start_verifier(
    stack: ExitStack, tmp_path: Path, issuer: IssuerContext
) -> tuple[VerifierContext, str, Path]:
    trust_dir = tmp_path / "verifier" / "trust"
    trust_dir.mkdir(parents=True)
    (trust_dir / "af-dev-ca.pem").write_text(issuer.keys.trust_anchor_pem() or "")
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


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    started: dict[str, object] = {}
    with ExitStack() as stack:

        def prepare(issuer: IssuerContext) -> dict[str, object]:
            ctx, base, anchor = _start_verifier(stack, tmp_path, issuer)
            started.update(ctx=ctx, base=base)
            registry = tmp_path / "registry.json"
            registry.write_text(
                json.dumps(
                    {
                        "verifiers": [
                            {
                                "match": [ctx.keys.client_id],
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
            return {"verifier_trust_anchors": (anchor,), "verifier_registry_file": registry}

        with running_services(tmp_path, database_url, prepare=prepare) as services:
            yield World(services, started["ctx"], started["base"])  # type: ignore[arg-type]


def _receive(world: World, browser: httpx.Client) -> tuple[str, dict]:
    """Log in, accept the AF offer, create a verifier transaction; the wallet's consent URL."""
    services = world.services
    services.login(browser)
    created = services.offer(tx_code=False)
    offer = browser.get(f"{services.wallet_base}/offer?{created.link.split('?', 1)[1]}")
    page = browser.get(services.wallet_base + offer.headers["location"])
    action = re.search(r'action="(/issuance/[^"]+/accept)"', page.text)
    assert action
    accepted = browser.post(services.wallet_base + action[1], data={"csrf_token": csrf(page.text)})
    assert accepted.status_code == 303, accepted.text
    transaction = httpx.post(
        f"{world.verifier_base}/api/v1/transactions",
        json={"template": "registration_certificate"},
        headers=API_KEY,
    )
    assert transaction.status_code == 201, transaction.text
    created_tx = transaction.json()
    link = created_tx["request_link"]
    assert link.startswith("openid4vp://")
    # Same-device form of the link: the wallet's own authorization endpoint.
    authorize = browser.get(f"{services.wallet_base}/authorize?{link.split('?', 1)[1]}")
    assert authorize.status_code == 303, authorize.text
    return authorize.headers["location"], created_tx


def _result(world: World, transaction_id: str) -> dict:
    response = httpx.get(
        f"{world.verifier_base}/api/v1/transactions/{transaction_id}", headers=API_KEY
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_answer_request_consent_and_withdraw(world: World) -> None:
    services = world.services
    browser = httpx.Client()
    consent_path, transaction = _receive(world, browser)

    screen = browser.get(services.wallet_base + consent_path)
    assert screen.status_code == 200, screen.text
    # Who asks (registry match, org number), why (purpose in Swedish), what (labels).
    assert "Utvecklingsarbetsgivaren AB" in screen.text and "556677-8899" in screen.text
    assert "VARNING" not in screen.text
    assert "sedan när" in screen.text  # intyg_purpose sv
    # registration_category is beyond the registered need: flagged.
    assert "Begär mer än mottagaren har registrerat behov av" in screen.text
    approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert approve

    done = browser.post(services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200, done.text
    assert "Uppgifterna har skickats" in done.text

    view = _result(world, transaction["transaction_id"])
    assert view["status"] == "verified", view
    disclosed = json.dumps(view["result"]["claims"])
    assert "registered" in disclosed and "registration_category" in disclosed

    ctx = services.wallet
    with db.session(ctx.engine, write=False) as unit:
        records = list(unit.scalars(sa.select(ConsentRecord).order_by(ConsentRecord.seq)))
        keys = list(unit.scalars(sa.select(ConsentKey)))
        used = list(
            unit.scalars(
                sa.select(CredentialInstance).where(CredentialInstance.times_presented > 0)
            )
        )
    assert [r.kind for r in records] == ["consent", "delivery"]
    consent = records[0]
    assert consent.delivery_status == "delivered" and records[1].record["status"] == "delivered"
    record = consent.record
    assert record["legal_basis"] == "consent" and record["purpose"]["en"]
    assert record["controller"]["client_id"] == transaction["client_id"]
    assert record["controller"]["organisation_number"] == "556677-8899"
    items = record["data_items"]
    assert len(items) == 1 and ["registered"] in items[0]["claims"]
    assert "2026-01-12" not in json.dumps(record)  # paths and types, never the values
    assert record["delivery_status"] == "pending"  # as committed before sending (I4)
    assert len(keys) == 1 and len(used) == 1
    report = consents.verify_chain(ctx, consent.account_id)
    assert report.ok and report.count == 2

    history = browser.get(f"{services.wallet_base}/consents")
    assert "Utvecklingsarbetsgivaren AB" in history.text and "Levererad" in history.text
    checked = browser.get(f"{services.wallet_base}/consents/verify")
    assert "Historiken är oförändrad" in checked.text
    page = browser.get(f"{services.wallet_base}/consents/{consent.public_id}")
    assert page.status_code == 200 and "Återkalla samtycket" in page.text

    # The same request cannot be answered twice (L09).
    again = browser.post(services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert again.status_code == 409

    withdrawn = browser.post(
        f"{services.wallet_base}/consents/{consent.public_id}/withdraw",
        data={"csrf_token": csrf(page.text)},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert "Mottagaren har raderat uppgifterna" in withdrawn.text
    after = _result(world, transaction["transaction_id"])
    assert after["result"]["claims"] is None and after["result"]["claims_deleted_by"] == "holder"
    report = consents.verify_chain(ctx, consent.account_id)
    assert report.ok and report.count == 3


def test_decline_tells_the_verifier(world: World) -> None:
    services = world.services
    browser = httpx.Client()
    consent_path, transaction = _receive(world, browser)
    screen = browser.get(services.wallet_base + consent_path)
    decline = re.search(r'action="(/presentations/[^"]+/decline)"', screen.text)
    assert decline
    declined = browser.post(
        services.wallet_base + decline[1], data={"csrf_token": csrf(screen.text)}
    )
    assert declined.status_code == 200 and "Mottagaren har fått besked" in declined.text
    view = _result(world, transaction["transaction_id"])
    assert view["status"] == "error", view
    with db.session(services.wallet.engine, write=False) as unit:
        kinds = [r.kind for r in unit.scalars(sa.select(ConsentRecord).order_by(ConsentRecord.seq))]
        keys = list(unit.scalars(sa.select(ConsentKey)))
    assert kinds == ["declined", "delivery"] and not keys
