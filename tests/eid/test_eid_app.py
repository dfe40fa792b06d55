"""The development eID's own behaviour (OIDC Core §3.1, RFC 6749 §4.1, RFC 7636, RFC 9207)."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from eid.app import create_app
from eid.persons import PERSONS_BY_ID, TEST_PERSONS
from eid.server import COORDINATION_NUMBER, PERSONAL_IDENTITY_NUMBER
from eid.settings import EidClient, EidSettings, ProductionRefused
from eid.store import EidStore
from intyg import jose, personnummer

ISSUER = "http://127.0.0.1:8100"
REDIRECT = "http://127.0.0.1:8200/login/callback"
SECRET = "wallet-secret-0123456789"
SCOPE = (
    "openid https://id.oidc.se/scope/naturalPersonNumber https://id.oidc.se/scope/naturalPersonInfo"
)
VERIFIER = "v" * 43 + "erifier-0123456789"


def settings(**overrides: Any) -> EidSettings:
    values: dict[str, Any] = {
        "environment": "development",
        "public_base_url": ISSUER,
        "clients": [EidClient(client_id="wallet", client_secret=SECRET, redirect_uris=(REDIRECT,))],
    }
    return EidSettings(**{**values, **overrides})


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(settings()), base_url=ISSUER)


def auth_params(**overrides: Any) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "wallet",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "state-1",
        "nonce": f"nonce-{id(overrides)}-{len(overrides)}-{sorted(overrides.items())!s}",
        "code_challenge": jose.sha256_b64url(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def redirect_query(response: Any) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def pick(client: TestClient, person: str | None = "anna", **overrides: Any) -> dict[str, str]:
    page = client.get("/authorize", params=auth_params(**overrides))
    assert page.status_code == 200, page.text
    transaction = re.search(r'name="transaction" value="([^"]+)"', page.text).group(1)
    form = {"transaction": transaction, **({"person": person} if person else {"cancel": "1"})}
    return redirect_query(client.post("/authorize", data=form, follow_redirects=False))


def token(client: TestClient, code: str, *, verifier: str = VERIFIER, **kwargs: Any) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier:
        data["code_verifier"] = verifier
    data.update(kwargs.pop("data", {}))
    auth = kwargs.pop("auth", ("wallet", SECRET))
    return client.post("/token", data=data, auth=auth, **kwargs)


def id_token_claims(client: TestClient, id_token: str) -> dict[str, Any]:
    jwk = client.get("/jwks").json()["keys"][0]
    _, claims = jose.verify_jws(id_token, jose.key_from_jwk(jwk), algorithms={"ES256"})
    return claims


# -- start-up --------------------------------------------------------------------------------


def test_production_settings_refused() -> None:
    with pytest.raises(ValidationError, match="never runs"):
        settings(environment="production")


def test_default_environment_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTYG_EID_ENVIRONMENT", raising=False)
    with pytest.raises(ValidationError):
        EidSettings()


def test_create_app_refuses_production() -> None:
    production = EidSettings.model_construct(environment="production")
    with pytest.raises(ProductionRefused):
        create_app(production)


# -- discovery and keys ----------------------------------------------------------------------


def test_discovery(client: TestClient) -> None:
    doc = client.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == ISSUER
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert PERSONAL_IDENTITY_NUMBER in doc["claims_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_jwks_has_the_public_key_only(client: TestClient) -> None:
    (jwk,) = client.get("/jwks").json()["keys"]
    assert jwk["kty"] == "EC" and jwk["alg"] == "ES256" and "d" not in jwk


def test_configured_signing_key() -> None:
    key = jose.generate_key("ES256", kid="fixed")
    app = create_app(settings(signing_key_jwk=jose.strict_json.dumps(key.private_jwk())))
    (jwk,) = TestClient(app, base_url=ISSUER).get("/jwks").json()["keys"]
    assert jwk["kid"] == "fixed" and jwk["x"] == key.public_jwk()["x"]


# -- the person picker -------------------------------------------------------------------


def test_picker_is_labelled_and_lists_persons(client: TestClient) -> None:
    page = client.get("/authorize", params=auth_params())
    assert "Utvecklings-eID — endast för test" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for person in TEST_PERSONS:
        assert person.given_name in page.text
    english = client.get("/authorize", params=auth_params(ui_locales="en"))
    assert "Development eID — test only" in english.text


def test_picker_transaction_is_single_use(client: TestClient) -> None:
    page = client.get("/authorize", params=auth_params())
    transaction = re.search(r'name="transaction" value="([^"]+)"', page.text).group(1)
    first = client.post(
        "/authorize", data={"transaction": transaction, "person": "anna"}, follow_redirects=False
    )
    assert first.status_code == 302
    second = client.post(
        "/authorize", data={"transaction": transaction, "person": "anna"}, follow_redirects=False
    )
    assert second.status_code == 400 and "location" not in second.headers


# -- authorization request refusals ----------------------------------------------------------


def test_wrong_redirect_uri_gets_an_error_page_not_a_redirect(client: TestClient) -> None:
    response = client.get(
        "/authorize",
        params=auth_params(redirect_uri="https://evil.example/cb"),
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert "Utvecklings-eID" in response.text


def test_redirect_uri_prefix_match_refused(client: TestClient) -> None:
    response = client.get(
        "/authorize", params=auth_params(redirect_uri=REDIRECT + "/x"), follow_redirects=False
    )
    assert response.status_code == 400 and "location" not in response.headers


def test_unknown_client_gets_an_error_page(client: TestClient) -> None:
    response = client.get(
        "/authorize", params=auth_params(client_id="nobody"), follow_redirects=False
    )
    assert response.status_code == 400 and "location" not in response.headers


def test_missing_redirect_uri_gets_an_error_page(client: TestClient) -> None:
    response = client.get(
        "/authorize", params=auth_params(redirect_uri=None), follow_redirects=False
    )
    assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain", "code_challenge": VERIFIER},
        {"code_challenge_method": None},
        {"nonce": None},
    ],
)
def test_pkce_s256_and_nonce_required(client: TestClient, overrides: dict[str, Any]) -> None:
    query = redirect_query(
        client.get("/authorize", params=auth_params(**overrides), follow_redirects=False)
    )
    assert query["error"] == "invalid_request"
    assert query["state"] == "state-1" and query["iss"] == ISSUER


def test_repeated_parameter_refused(client: TestClient) -> None:
    response = client.get("/authorize?client_id=wallet&client_id=other&response_type=code")
    assert response.status_code == 400


def test_nonce_cannot_be_used_twice(client: TestClient) -> None:
    pick(client, nonce="same-nonce")
    query = redirect_query(
        client.get("/authorize", params=auth_params(nonce="same-nonce"), follow_redirects=False)
    )
    assert query["error"] == "invalid_request"


def test_cancel_returns_access_denied(client: TestClient) -> None:
    query = pick(client, None)
    assert query["error"] == "access_denied" and query["state"] == "state-1"


# -- code and token ----------------------------------------------------------------------------


def test_code_flow_and_id_token(client: TestClient) -> None:
    query = pick(client, "anna", nonce="nonce-echo")
    assert query["state"] == "state-1" and query["iss"] == ISSUER
    response = token(client, query["code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = id_token_claims(client, body["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == "wallet"
    assert claims["nonce"] == "nonce-echo"
    assert claims[PERSONAL_IDENTITY_NUMBER] == "198112189884"
    assert claims["acr"] == "http://id.elegnamnden.se/loa/1.0/loa3"
    assert (claims["given_name"], claims["family_name"], claims["birthdate"]) == (
        "Anna",
        "Andersson",
        "1981-12-18",
    )
    assert claims["sub"] != "198112189884" and "1981121898" not in claims["sub"]
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json()[PERSONAL_IDENTITY_NUMBER] == "198112189884"
    assert info.json()["sub"] == claims["sub"]


def test_client_secret_post(client: TestClient) -> None:
    query = pick(client)
    data = {"client_id": "wallet", "client_secret": SECRET}
    assert token(client, query["code"], auth=None, data=data).status_code == 200


def test_wrong_client_secret(client: TestClient) -> None:
    query = pick(client)
    response = token(client, query["code"], auth=("wallet", "wrong"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_code_is_single_use(client: TestClient) -> None:
    query = pick(client)
    assert token(client, query["code"]).status_code == 200
    again = token(client, query["code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_concurrent_redemption_has_one_winner() -> None:
    store = EidStore()
    store.put("code", "c", {"x": 1}, 60)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.take("code", "c"))) for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1


def test_expired_code_refused() -> None:
    client = TestClient(create_app(settings(code_lifetime_seconds=0)), base_url=ISSUER)
    query = pick(client)
    assert token(client, query["code"]).json()["error"] == "invalid_grant"


def test_wrong_code_verifier_refused_and_code_burned(client: TestClient) -> None:
    query = pick(client)
    wrong = token(client, query["code"], verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert token(client, query["code"]).json()["error"] == "invalid_grant"


def test_missing_code_verifier_refused(client: TestClient) -> None:
    query = pick(client)
    assert token(client, query["code"], verifier="").json()["error"] == "invalid_request"


def test_redirect_uri_mismatch_at_token_endpoint(client: TestClient) -> None:
    query = pick(client)
    response = token(client, query["code"], data={"redirect_uri": "http://127.0.0.1:8200/other"})
    assert response.json()["error"] == "invalid_grant"


def test_userinfo_needs_a_live_token(client: TestClient) -> None:
    assert client.get("/userinfo").status_code == 401
    assert client.get("/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_coordination_number_person(client: TestClient) -> None:
    claims = id_token_claims(
        client, token(client, pick(client, "lars-olof")["code"]).json()["id_token"]
    )
    assert claims[COORDINATION_NUMBER] == "197010632391"
    assert PERSONAL_IDENTITY_NUMBER not in claims


def test_lower_loa_person(client: TestClient) -> None:
    claims = id_token_claims(client, token(client, pick(client, "maja")["code"]).json()["id_token"])
    assert claims["acr"] == "http://id.elegnamnden.se/loa/1.0/loa2"


# -- test persons --------------------------------------------------------------------------


def test_test_persons() -> None:
    assert 6 <= len(TEST_PERSONS) <= 8
    assert len(PERSONS_BY_ID) == len(TEST_PERSONS)
    for person in TEST_PERSONS:
        assert personnummer.is_valid(person.number.twelve_digits)
    assert sum(p.is_coordination_number for p in TEST_PERSONS) == 1
    assert any("+" in p.number.ten_digits() for p in TEST_PERSONS)
    assert any(not p.acr.endswith("loa3") for p in TEST_PERSONS)
