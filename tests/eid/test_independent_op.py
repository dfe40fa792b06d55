"""intyg.web.oidc against an independent OpenID Provider: panva's ``oidc-provider`` (npm,
the certified Node.js OP library), configured like a Signicat-style broker: ``nin`` for the
personal number, ``freja_registration_level``, RS256 ID tokens and claims from userinfo.

Needs ``node`` and ``npm``; ``npm ci`` runs here when ``node_modules`` is missing (CI can run
it beforehand: ``npm ci --prefix tests/eid/independent_op``). Set
``INTYG_SKIP_NODE_INTEROP=1`` to skip on machines without node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from intyg.web.oidc import LOA3, MemoryReplayCache, OidcConfig, OidcError, OidcRelyingParty
from intyg.web.outbound import OutboundClient, OutboundPolicy
from tests.eid.servers import free_port

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent / "independent_op"
CLIENT_ID = "intyg-rp"
SECRET = "interop-secret-0123456789"
REDIRECT = "http://127.0.0.1:8299/login/callback"
ACCOUNTS = {
    "anna": {
        "nin": "198112189884",
        "nin_type": "PERSON",
        "nin_issuing_country": "SE",
        "given_name": "Anna",
        "family_name": "Andersson",
        "name": "Anna Andersson",
        "birthdate": "1981-12-18",
        "freja_registration_level": "PLUS",
    },
    "extended": {"nin": "198503152376", "freja_registration_level": "EXTENDED"},
    "bad-luhn": {"nin": "198112189885", "freja_registration_level": "PLUS"},
}


def _install() -> None:
    if os.environ.get("INTYG_SKIP_NODE_INTEROP") == "1":
        pytest.skip("INTYG_SKIP_NODE_INTEROP=1")
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("node and npm are needed for the independent OP test")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)


@pytest.fixture(scope="module")
def op() -> Iterator[str]:
    _install()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": SECRET,
        "REDIRECT_URI": REDIRECT,
        "ACCOUNTS": json.dumps(ACCOUNTS),
        "NODE_ENV": "test",
    }
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=HERE, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("listening"), "independent OP did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def make_rp(issuer: str) -> OidcRelyingParty:
    config = OidcConfig(
        name="broker",
        discovery_url=f"{issuer}/.well-known/openid-configuration",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        redirect_uri=REDIRECT,
        scopes=("openid", "nin", "profile", "freja"),
        personal_number_claim="nin",
        accepted_acr_values=(LOA3,),
        request_acr_values=(LOA3,),
        freja_level_claim="freja_registration_level",
    )
    return OidcRelyingParty(
        config,
        OutboundClient(OutboundPolicy(development=True)),
        login_key=b"K" * 32,
        replay_cache=MemoryReplayCache(),
        development=True,
    )


def browse_to_callback(authorization_url: str, account: str) -> dict[str, str]:
    """Play the browser: the OP's login and consent forms, until it redirects to us."""
    browser = httpx.Client()
    url = authorization_url
    for _ in range(10):
        response = browser.get(url)
        if response.status_code == 200:
            action = re.search(r'action="([^"]+)"', response.text)
            assert action, response.text[:200]
            response = browser.post(urljoin(url, action.group(1)), data={"account": account})
        assert response.status_code in (302, 303), response.text[:300]
        url = urljoin(url, response.headers["location"])
        if url.startswith(REDIRECT):
            return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    raise AssertionError("the OP never redirected back")


def login(issuer: str, account: str) -> Any:
    rp = make_rp(issuer)
    started = rp.begin_login("/")
    params = browse_to_callback(started.authorization_url, account)
    return rp, started, params, lambda: rp.complete_login(params, started.cookie_value)


def test_login_through_an_independent_op(op: str) -> None:
    _, _, params, complete = login(op, "anna")
    assert params["iss"] == op  # RFC 9207 from the other implementation too
    identity = complete().identity
    assert identity.personal_number.twelve_digits == "198112189884"
    assert identity.acr == LOA3
    assert (identity.given_name, identity.family_name) == ("Anna", "Andersson")
    assert identity.birthdate.isoformat() == "1981-12-18"


def test_independent_op_callback_replay_refused(op: str) -> None:
    _, _, _, complete = login(op, "anna")
    complete()
    with pytest.raises(OidcError) as caught:
        complete()
    assert caught.value.reason == "state_reused"


def test_independent_op_freja_level_too_low(op: str) -> None:
    _, _, _, complete = login(op, "extended")
    with pytest.raises(OidcError) as caught:
        complete()
    assert caught.value.reason == "assurance_too_low"


def test_independent_op_luhn_invalid_number(op: str) -> None:
    _, _, _, complete = login(op, "bad-luhn")
    with pytest.raises(OidcError) as caught:
        complete()
    assert caught.value.reason == "personal_number_invalid"
