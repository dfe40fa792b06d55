"""End to end over real loopback HTTP (issue 4 "Must show"): eID login at the wallet ->
an offer from the REAL AF issuer -> the REAL verifier service (its trust list holding the
issuer's dev CA) creates a transaction through its employer API -> the wallet fetches and
verifies the signed request, shows the consent screen, the person approves -> the
verifier's result is ``verified`` with the disclosed claims -> the wallet's consent record
exists with a valid chain -> withdrawal -> the verifier's disclosed claims are gone."""

from __future__ import annotations

import json
import re

import httpx
import sqlalchemy as sa

from intyg.web import db
from wallet import consents
from wallet.models import ConsentKey, ConsentRecord, CredentialInstance

from .conftest import (
    World,
    accept_offer,
    authorize,
    csrf,
    receive_and_authorize,
    verifier_result,
)


def test_answer_request_consent_and_withdraw(world: World) -> None:
    services = world.services
    browser = httpx.Client()
    consent_path, transaction = receive_and_authorize(world, browser)

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

    view = verifier_result(world, transaction["transaction_id"])
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
    after = verifier_result(world, transaction["transaction_id"])
    assert after["result"]["claims"] is None and after["result"]["claims_deleted_by"] == "holder"
    report = consents.verify_chain(ctx, consent.account_id)
    assert report.ok and report.count == 3


def test_decline_tells_the_verifier(world: World) -> None:
    services = world.services
    browser = httpx.Client()
    consent_path, transaction = receive_and_authorize(world, browser)
    screen = browser.get(services.wallet_base + consent_path)
    decline = re.search(r'action="(/presentations/[^"]+/decline)"', screen.text)
    assert decline
    declined = browser.post(
        services.wallet_base + decline[1], data={"csrf_token": csrf(screen.text)}
    )
    assert declined.status_code == 200 and "Mottagaren har fått besked" in declined.text
    view = verifier_result(world, transaction["transaction_id"])
    assert view["status"] == "error", view
    with db.session(services.wallet.engine, write=False) as unit:
        kinds = [r.kind for r in unit.scalars(sa.select(ConsentRecord).order_by(ConsentRecord.seq))]
        keys = list(unit.scalars(sa.select(ConsentKey)))
    assert kinds == ["declined", "delivery"] and not keys


def test_journey_b_two_issuers_one_answer(world_b: World) -> None:
    """Journey B: AF registration + MYH qualification (EQF >= 5) -> the verifier's
    work-practice request (credential_sets) -> ONE consent screen with both -> one answer
    -> ``verified`` with both credentials' claims -> one record listing both."""
    world = world_b
    services = world.services
    base = services.wallet_base
    browser = httpx.Client()
    services.login(browser)
    accept_offer(services, browser, services.offer(tx_code=False).link)
    accept_offer(services, browser, world.myh_offer().link)
    home = browser.get(f"{base}/")
    assert "Myndigheten för yrkeshögskolan" in home.text and "Arbetsförmedlingen" in home.text

    consent_path, transaction = authorize(world, browser, "work_practice")
    screen = browser.get(base + consent_path)
    assert screen.status_code == 200, screen.text
    assert "arbetspraktik" in screen.text  # the purpose, in Swedish
    # Both requested credentials on the one screen, each with its labelled claims.
    assert screen.text.count("Ur intyget") >= 2, screen.text
    # Each choice says when it was received, so two of one type can be told apart.
    assert len(re.findall(r"mottaget \d{4}-\d\d-\d\d \d\d:\d\d UTC", screen.text)) >= 2
    approve = re.findall(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert len(approve) == 1  # one answer for both

    done = browser.post(base + approve[0], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200 and "Uppgifterna har skickats" in done.text, done.text

    view = verifier_result(world, transaction["transaction_id"])
    assert view["status"] == "verified", view
    claims = view["result"]["claims"]
    disclosed = json.dumps(claims)
    assert "registered" in disclosed and "eqf_level" in disclosed and "title" in disclosed
    eqf = re.search(r'"eqf_level": (\d+)', disclosed)
    assert eqf and int(eqf[1]) >= 5

    ctx = services.wallet
    with db.session(ctx.engine, write=False) as unit:
        records = list(unit.scalars(sa.select(ConsentRecord).order_by(ConsentRecord.seq)))
        keys = list(unit.scalars(sa.select(ConsentKey)))
    assert [r.kind for r in records] == ["consent", "delivery"]
    items = records[0].record["data_items"]
    assert sorted(i["credential_query"] for i in items) == ["qualification", "registration"]
    assert {i["credential_type"] for i in items} == {
        "https://intyg.example/vct/af-inskrivningsintyg/1",
        "https://intyg.example/vct/myh-kvalifikation/1",
    }
    assert {i["issuer"] for i in items} == {services.issuer_base, world.myh_base}
    assert len(keys) == 2 and records[0].delivery_status == "delivered"
    assert consents.verify_chain(ctx, records[0].account_id).ok
    history = browser.get(f"{base}/consents")
    assert "Levererad" in history.text
