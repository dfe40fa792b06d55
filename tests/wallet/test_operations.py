"""The wallet's metrics over real loopback HTTP (docs/running.md "Operations"): consents given,
declined and withdrawn are counted where the record is written (wallet/consents.py), eID logins
where the relying party completes them (intyg/web/oidc.py), and the verifier's outcomes."""

from __future__ import annotations

import re

import httpx
from prometheus_client import REGISTRY

from .conftest import World, authorize, csrf, receive_and_authorize


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consents(event: str) -> float:
    return sample("intyg_consents_total", event=event)


def test_consents_logins_and_answers_are_counted(world: World) -> None:
    services = world.services
    provider = services.wallet.settings.eid.name  # type: ignore[union-attr]
    before = {event: consents(event) for event in ("given", "declined", "withdrawn")}
    logins = sample("intyg_eid_logins_total", provider=provider, outcome="completed")
    verified = sample(
        "intyg_verifications_total", template="registration_certificate", outcome="verified"
    )
    errors = sample(
        "intyg_verifications_total", template="registration_certificate", outcome="wallet_error"
    )

    browser = httpx.Client()
    consent_path, _ = receive_and_authorize(world, browser)  # logs in with the eID
    screen = browser.get(services.wallet_base + consent_path)
    approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert approve
    done = browser.post(services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200, done.text
    history = browser.get(f"{services.wallet_base}/consents")
    consent_id = re.search(r'href="/consents/(?!verify")([^"/]+)"', history.text)
    assert consent_id
    page = browser.get(f"{services.wallet_base}/consents/{consent_id[1]}")
    withdrawn = browser.post(
        f"{services.wallet_base}/consents/{consent_id[1]}/withdraw",
        data={"csrf_token": csrf(page.text)},
    )
    assert withdrawn.status_code == 200, withdrawn.text

    second_path, _ = authorize(world, browser)
    second = browser.get(services.wallet_base + second_path)
    decline = re.search(r'action="(/presentations/[^"]+/decline)"', second.text)
    assert decline
    declined = browser.post(
        services.wallet_base + decline[1], data={"csrf_token": csrf(second.text)}
    )
    assert declined.status_code == 200

    after = {event: consents(event) for event in before}
    assert {event: after[event] - before[event] for event in before} == {
        "given": 1,
        "declined": 1,
        "withdrawn": 1,
    }
    assert sample("intyg_eid_logins_total", provider=provider, outcome="completed") == logins + 1
    assert (
        sample("intyg_verifications_total", template="registration_certificate", outcome="verified")
        == verified + 1
    )
    assert (
        sample(
            "intyg_verifications_total", template="registration_certificate", outcome="wallet_error"
        )
        == errors + 1
    )
