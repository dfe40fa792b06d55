"""End to end over real loopback HTTP: eID login at the wallet -> an offer with a tx_code
from the REAL issuer (issuer.offers.create_offer) -> the wallet fetches it by reference,
shows it, asks for the code, runs token (DPoP) / nonce / credential (batch, fresh keys) ->
credentials verified, sealed, listed, shown; isolation between two people."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from intyg import jose, sdjwt
from intyg.web import db
from issuer.models import Issuance
from wallet.models import Account, CredentialInstance, HolderKey, KeyState, WalletCredential

from .conftest import ANNA, Running, csrf


def _accept_flow(
    services: Running, browser: httpx.Client, link: str, tx_code: str
) -> httpx.Response:
    offer_page = browser.get(f"{services.wallet_base}/offer?{link.split('?', 1)[1]}")
    assert offer_page.status_code == 303, offer_page.text
    session_url = services.wallet_base + offer_page.headers["location"]
    page = browser.get(session_url)
    assert page.status_code == 200
    return page


def test_login_accept_offer_list_and_detail(
    services: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = httpx.Client()
    assert services.login(browser).status_code == 303
    home = browser.get(f"{services.wallet_base}/")
    assert "Anna Andersson" in home.text and "19811218-****" in home.text
    assert "Du har inga intyg ännu." in home.text

    created = services.offer(tx_code=True)
    assert created.tx_code is not None
    page = _accept_flow(services, browser, created.link, created.tx_code)
    host = services.issuer_base.split("//", 1)[1]
    assert "Arbetsförmedlingen" in page.text and host in page.text
    assert 'name="tx_code"' in page.text and 'inputmode="numeric"' in page.text
    action = re.search(r'action="(/issuance/[^"]+/accept)"', page.text)
    assert action

    # A wrong code: shown again, nothing stored; the right code then works.
    wrong = browser.post(
        services.wallet_base + action[1],
        data={
            "csrf_token": csrf(page.text),
            "tx_code": "000000" if created.tx_code != "000000" else "111111",
        },
    )
    assert wrong.status_code == 400 and "Koden godtogs inte" in wrong.text
    done = browser.post(
        services.wallet_base + action[1],
        data={"csrf_token": csrf(page.text), "tx_code": created.tx_code},
    )
    assert done.status_code == 303, done.text

    listing = browser.get(f"{services.wallet_base}/")
    assert listing.text.count('href="/credentials/') == 2
    assert "Giltigt" in listing.text

    ctx = services.wallet
    with db.session(ctx.engine, write=False) as unit:
        cards = list(unit.scalars(sa.select(WalletCredential)))
        instances = list(unit.scalars(sa.select(CredentialInstance)))
        keys = list(unit.scalars(sa.select(HolderKey)))
        accounts = list(unit.scalars(sa.select(Account)))
    batch = services.issuer.settings.batch_size
    assert {c.format for c in cards} == {"dc+sd-jwt", "jwt_vc_json"}
    assert len(instances) == 2 * batch and all(c.instance_count == batch for c in cards)
    # One fresh key per instance, all bound (I5, T083, T122).
    assert len(keys) == 2 * batch and {k.state for k in keys} == {KeyState.BOUND}
    assert len({k.thumbprint for k in keys}) == len(keys)
    assert len(accounts) == 1 and ANNA not in accounts[0].account_key
    # Sealed at rest (T084): no credential text, no private key in clear.
    for instance in instances:
        assert (
            instance.sealed_credential.startswith("v1.") and "~" not in instance.sealed_credential
        )
    for key in keys:
        assert key.sealed_private_jwk.startswith("v1.") and '"d"' not in key.sealed_private_jwk
    # The issuer was told (credential_accepted).
    with db.session(services.issuer.engine, write=False) as unit:
        issued = list(unit.scalars(sa.select(Issuance)))
    assert len(issued) == 2 * batch

    sd_card = next(c for c in cards if c.format == "dc+sd-jwt")
    detail = browser.get(f"{services.wallet_base}/credentials/{sd_card.public_id}")
    assert detail.status_code == 200
    assert "2026-01-12" in detail.text and "Giltigt" in detail.text
    english = browser.get(f"{services.wallet_base}/credentials/{sd_card.public_id}?lang=en")
    assert "Valid" in english.text and "Contents" in english.text

    # The stored instances really are ours: cnf = the holder key, issuer-signed.
    from wallet.credentials import open_instance

    sd_instance = next(i for i in instances if i.credential_id == sd_card.id)
    text = open_instance(ctx, sd_instance)
    claims, _ = sdjwt.process(
        jose.parse_jws(sdjwt.parse(text).issuer_jwt).claims(), sdjwt.parse(text).disclosures
    )
    bound = next(k for k in keys if k.id == sd_instance.holder_key_id)
    assert jose.jwk_thumbprint(claims["cnf"]["jwk"]) == bound.thumbprint

    # The offer is single use: the same link again fails at the token endpoint.
    again = browser.get(f"{services.wallet_base}/offer?{created.link.split('?', 1)[1]}")
    assert again.status_code in (303, 400)

    # Nothing personal in URLs or logs.
    assert all(ANNA not in url and ANNA[2:] not in url for url in services.urls)
    assert ANNA not in caplog.text and created.tx_code not in caplog.text


def test_revoked_credential_shown_revoked(services: Running) -> None:
    from issuer import status as issuer_status

    browser = httpx.Client()
    services.login(browser)
    created = services.offer(tx_code=False)
    page = _accept_flow(services, browser, created.link, "")
    action = re.search(r'action="(/issuance/[^"]+/accept)"', page.text)
    assert action and 'name="tx_code"' not in page.text
    assert (
        browser.post(
            services.wallet_base + action[1], data={"csrf_token": csrf(page.text)}
        ).status_code
        == 303
    )
    ictx = services.issuer
    with db.session(ictx.engine) as unit:
        for row in unit.scalars(sa.select(Issuance)):
            issuer_status.set_status(unit, row, issuer_status.INVALID, ictx.clock())
    ictx.publisher.__dict__.pop("_cache", None)
    with db.session(services.wallet.engine, write=False) as unit:
        cards = list(unit.scalars(sa.select(WalletCredential)))
    for card in cards:
        detail = browser.get(f"{services.wallet_base}/credentials/{card.public_id}")
        assert detail.status_code == 200
        assert "Återkallat" in detail.text or "Status okänd" in detail.text, card.format


def test_person_b_cannot_see_or_use_a(services: Running) -> None:
    anna, erik = httpx.Client(), httpx.Client()
    services.login(anna)
    services.login(erik, "erik")
    created = services.offer(tx_code=False)
    page = _accept_flow(services, anna, created.link, "")
    session_path = re.search(r'action="(/issuance/[^"]+)/accept"', page.text)
    assert session_path
    erik_home = erik.get(f"{services.wallet_base}/")
    # Erik cannot view, accept or decline Anna's pending offer (404 as if it did not exist).
    assert erik.get(services.wallet_base + session_path[1]).status_code == 404
    for verb in ("accept", "decline"):
        response = erik.post(
            f"{services.wallet_base}{session_path[1]}/{verb}",
            data={"csrf_token": csrf(erik_home.text)},
        )
        assert response.status_code == 404
    assert (
        anna.post(
            f"{services.wallet_base}{session_path[1]}/accept", data={"csrf_token": csrf(page.text)}
        ).status_code
        == 303
    )
    with db.session(services.wallet.engine, write=False) as unit:
        card_ids = list(unit.scalars(sa.select(WalletCredential.public_id)))
    assert card_ids
    for card_id in card_ids:
        assert erik.get(f"{services.wallet_base}/credentials/{card_id}").status_code == 404
        assert (
            erik.post(
                f"{services.wallet_base}/credentials/{card_id}/delete",
                data={"csrf_token": csrf(erik_home.text)},
            ).status_code
            == 404
        )
        assert anna.get(f"{services.wallet_base}/credentials/{card_id}").status_code == 200
    assert 'href="/credentials/' not in erik.get(f"{services.wallet_base}/").text
    # Anna's CSRF token does not work in Erik's session.
    assert (
        erik.post(
            f"{services.wallet_base}/credentials/{card_ids[0]}/delete",
            data={"csrf_token": csrf(page.text)},
        ).status_code
        == 403
    )


def test_paste_link_and_login_first(services: Running) -> None:
    browser = httpx.Client()
    created = services.offer(tx_code=False)
    query = created.link.split("?", 1)[1]
    # Not logged in: the offer endpoint shows the login page and comes back after login.
    anonymous = browser.get(f"{services.wallet_base}/offer?{query}")
    assert anonymous.status_code == 401 and "Logga in" in anonymous.text
    callback = services.login(browser, next_path=quote(f"/offer?{query}", safe=""))
    assert callback.status_code == 303 and callback.headers["location"].startswith("/offer?")
    # Paste-a-link form (QR shown on another device).
    add = browser.get(f"{services.wallet_base}/add")
    assert add.status_code == 200 and 'name="link"' in add.text
    response = browser.post(
        f"{services.wallet_base}/add", data={"csrf_token": csrf(add.text), "link": created.link}
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/issuance/")
    missing_csrf = browser.post(f"{services.wallet_base}/add", data={"link": created.link})
    assert missing_csrf.status_code == 403
    decline_page = browser.get(services.wallet_base + response.headers["location"])
    declined = browser.post(
        services.wallet_base + response.headers["location"] + "/decline",
        data={"csrf_token": csrf(decline_page.text)},
    )
    assert declined.status_code == 200 and "Inget skickades" in declined.text
