"""Same-device answer over real loopback HTTP (OpenID4VP 1.0 §8.2, §13.3): the REAL verifier
makes a transaction with a ``same_device_redirect``, the wallet answers, and the verifier's
``redirect_uri`` (with the ``response_code``) reaches the browser as a page that moves on by
itself (meta refresh + a link), never as a 303: a browser applies the answer page's
``form-action 'self'`` to a redirect that answers the consent form, which would block a 303
to the verifier's origin. The browser journey (tests/system/test_browser_journeys.py, journey
B) follows it in Chromium; here the page itself and the code in it are checked."""

from __future__ import annotations

import html
import re

import httpx

from .conftest import API_KEY, World, accept_offer, csrf


def test_answer_page_moves_on_to_the_verifier_with_the_response_code(world: World) -> None:
    services = world.services
    browser = httpx.Client()
    services.login(browser)
    accept_offer(services, browser, services.offer(tx_code=False).link)
    return_url = f"{world.verifier_base}/return"  # http loopback: development only
    created = httpx.post(
        f"{world.verifier_base}/api/v1/transactions",
        json={"template": "registration_certificate", "same_device_redirect": return_url},
        headers=API_KEY,
    )
    assert created.status_code == 201, created.text
    transaction = created.json()
    opened = browser.get(
        f"{services.wallet_base}/authorize?{transaction['request_link'].split('?', 1)[1]}"
    )
    assert opened.status_code == 303, opened.text
    screen = browser.get(services.wallet_base + opened.headers["location"])
    approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert approve, screen.text

    done = browser.post(services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200, done.text  # a page, not a redirect
    assert "location" not in done.headers
    assert "form-action 'self'" in done.headers["content-security-policy"]
    assert "Uppgifterna har skickats" in done.text
    refresh = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', done.text)
    link = re.search(r'<a class="button" id="continue" href="([^"]+)">', done.text)
    assert refresh and link, done.text
    target = html.unescape(refresh[1])
    assert html.unescape(link[1]) == target
    assert target.startswith(f"{return_url}#response_code=")

    # The code in the page is the verifier's: it redeems the result, once.
    code = target.split("#response_code=", 1)[1]
    redeem = f"{world.verifier_base}/api/v1/transactions/{transaction['transaction_id']}/result"
    result = httpx.post(redeem, json={"response_code": code}, headers=API_KEY)
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "verified"
    assert httpx.post(redeem, json={"response_code": code}, headers=API_KEY).status_code == 400


def test_answer_page_without_redirect_stays(world: World) -> None:
    """A cross-device answer (no ``redirect_uri``): the page says it was sent, no refresh."""
    services = world.services
    browser = httpx.Client()
    services.login(browser)
    accept_offer(services, browser, services.offer(tx_code=False).link)
    created = httpx.post(
        f"{world.verifier_base}/api/v1/transactions",
        json={"template": "registration_certificate"},
        headers=API_KEY,
    )
    assert created.status_code == 201, created.text
    opened = browser.get(
        f"{services.wallet_base}/authorize?{created.json()['request_link'].split('?', 1)[1]}"
    )
    screen = browser.get(services.wallet_base + opened.headers["location"])
    approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert approve, screen.text
    done = browser.post(services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200 and "Uppgifterna har skickats" in done.text
    assert 'http-equiv="refresh"' not in done.text and 'id="continue"' not in done.text
