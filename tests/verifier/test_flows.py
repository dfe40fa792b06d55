"""Both journeys end to end in-process: the employer API creates the request, a wallet
fetches the signed request object, the reference SD-JWT holder presents, the verifier
answers and the employer polls the result."""

from __future__ import annotations

from fastapi.testclient import TestClient

from intyg import jose

from .conftest import API_KEY
from .flows import poll, post_response, start, stored
from .helpers import (
    QUALIFICATION_DISCLOSE,
    REGISTRATION_DISCLOSE,
    issue,
    qualification_payload,
    reference_present,
    registration_payload,
)


def _registration(pki, holder, status_lists, request, disclose=REGISTRATION_DISCLOSE, **kw):
    ref = {"idx": 3, "uri": status_lists["af_uri"]}
    issued = issue(registration_payload(ref, **kw), pki.af, holder)
    return reference_present(
        issued, disclose, nonce=request.nonce, aud=request.client_id, holder=holder
    )


def test_journey_a_registration_certificate(client, engine, pki, holder, status_lists) -> None:
    created, request = start(client)
    assert created["qr_svg"].startswith("<svg")
    assert request.claims["response_mode"] == "direct_post.jwt"
    assert request.claims["client_id"].startswith("x509_hash:")
    assert request.claims["intyg_purpose"]["en"].startswith("Is the person registered")
    presentation = _registration(pki, holder, status_lists, request)
    response = post_response(client, request, {"registration": [presentation]})
    assert response.status_code == 200, response.text
    assert response.json() == {}
    view = poll(client, created["transaction_id"])
    assert view["status"] == "verified"
    result = view["result"]
    assert result["outcome"] == "verified" and result["failed_checks"] == []
    names = {check["name"] for check in result["checks"]}
    assert {"issuer_trusted_for_type", "key_binding", "status", "schema", "nonce_once"} <= names
    assert all(check["status"] != "failed" for check in result["checks"])
    claims = result["claims"]["credentials"]["registration"][0]
    assert claims["claims"] == {
        "registered": True,
        "registered_since": "2026-01-12",
        "registration_category": {"code": "11", "label": "Öppet arbetslös"},
    }
    assert claims["issuer"]["org_number"] == "202100-2114"
    assert stored(engine, created["transaction_id"]) == {
        "results": 1,
        "claims": 1,
        "rejections": 0,
        "rejection_kinds": [],
        "status": "verified",
        "used": True,
    }


def test_extra_disclosures_are_dropped_and_reported(
    client, engine, pki, holder, status_lists
) -> None:
    created, request = start(client)
    disclose = {**REGISTRATION_DISCLOSE, "given_name": True, "personal_identity_number": True}
    presentation = _registration(pki, holder, status_lists, request, disclose)
    assert post_response(client, request, {"registration": [presentation]}).status_code == 200
    result = poll(client, created["transaction_id"])["result"]
    kept = result["claims"]["credentials"]["registration"][0]["claims"]
    assert "given_name" not in kept and "personal_identity_number" not in kept
    dropped = {tuple(p) for item in result["dropped_claims"] for p in item["paths"]}
    assert dropped == {("given_name",), ("personal_identity_number",)}
    requested = next(c for c in result["checks"] if c["name"] == "requested_claims")
    assert requested["status"] == "ok" and "dropped" in requested["reason"]


def test_journey_b_two_credentials_one_request(client, engine, pki, holder, status_lists) -> None:
    created, request = start(client, "work_practice")
    query = request.claims["dcql_query"]
    assert [c["id"] for c in query["credentials"]] == ["registration", "qualification"]
    assert len(query["credential_sets"]) == 2
    registration = _registration(pki, holder, status_lists, request)
    qualification = reference_present(
        issue(
            qualification_payload({"idx": 5, "uri": status_lists["myh_uri"]}, 6), pki.myh, holder
        ),
        QUALIFICATION_DISCLOSE,
        nonce=request.nonce,
        aud=request.client_id,
        holder=holder,
    )
    vp_token = {"registration": [registration], "qualification": [qualification]}
    response = post_response(client, request, vp_token)
    assert response.status_code == 200, response.text
    result = poll(client, created["transaction_id"])["result"]
    assert result["outcome"] == "verified"
    issuers = {c["issuer"]["id"] for c in result["credentials"]}
    assert issuers == {"af", "myh"}
    qualification_claims = result["claims"]["credentials"]["qualification"][0]["claims"]
    assert qualification_claims["eqf_level"] == 6
    assert qualification_claims["awarding_body"] == {"name": "Exempelstadens Yrkeshögskola AB"}


def test_journey_b_eqf_below_5_is_rejected_even_if_wallet_ignores_values(
    client, engine, pki, holder, status_lists
) -> None:
    created, request = start(client, "work_practice")
    registration = _registration(pki, holder, status_lists, request)
    qualification = reference_present(
        issue(
            qualification_payload({"idx": 6, "uri": status_lists["myh_uri"]}, 4), pki.myh, holder
        ),
        QUALIFICATION_DISCLOSE,
        nonce=request.nonce,
        aud=request.client_id,
        holder=holder,
    )
    response = post_response(
        client, request, {"registration": [registration], "qualification": [qualification]}
    )
    assert "value_constraints" in response.json()["error_description"]
    assert response.status_code == 400
    assert stored(engine, created["transaction_id"])["claims"] == 0


def test_journey_b_missing_second_credential_is_rejected(
    client, engine, pki, holder, status_lists
) -> None:
    _, request = start(client, "work_practice")
    registration = _registration(pki, holder, status_lists, request)
    response = post_response(client, request, {"registration": [registration]})
    assert response.status_code == 400
    assert "requested_claims" in response.json()["error_description"]


def test_request_uri_fetched_twice_same_nonce_and_post_with_wallet_nonce(client, pki) -> None:
    created, request = start(client)
    path = "/request/" + created["transaction_id"]
    again = jose.parse_jws(client.get(path).text).claims()
    assert again["nonce"] == request.nonce and again["state"] == request.state
    posted = client.post(path, data={"wallet_nonce": "w-nonce-123", "wallet_metadata": "{}"})
    assert posted.status_code == 200
    assert posted.headers["content-type"].startswith("application/oauth-authz-req+jwt")
    claims = jose.parse_jws(posted.text).claims()
    assert claims["wallet_nonce"] == "w-nonce-123" and claims["nonce"] == request.nonce


def test_same_device_response_code_single_use_and_bound(
    client, engine, pki, holder, status_lists
) -> None:
    created, request = start(client, same_device_redirect="https://hr.example/done")
    presentation = _registration(pki, holder, status_lists, request)
    response = post_response(client, request, {"registration": [presentation]})
    redirect = response.json()["redirect_uri"]
    assert redirect.startswith("https://hr.example/done#response_code=")
    code = redirect.split("=", 1)[1]
    transaction_id = created["transaction_id"]
    # Polling alone shows no result (session fixation, T103).
    view = poll(client, transaction_id)
    assert view["status"] == "verified" and "result" not in view
    assert view["result_requires_response_code"] is True
    # Another transaction's id with this code fails; a guessed code fails.
    other, _ = start(client, same_device_redirect="https://hr.example/done")
    url = "/api/v1/transactions/{}/result"
    bad = client.post(
        url.format(other["transaction_id"]), json={"response_code": code}, headers=API_KEY
    )
    assert bad.status_code == 400
    guess = client.post(
        url.format(transaction_id), json={"response_code": "x" * 43}, headers=API_KEY
    )
    assert guess.status_code == 400
    redeemed = client.post(
        url.format(transaction_id), json={"response_code": code}, headers=API_KEY
    )
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["result"]["outcome"] == "verified"
    twice = client.post(url.format(transaction_id), json={"response_code": code}, headers=API_KEY)
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_grant"


def test_wallet_error_response_recorded_and_shown(client, engine) -> None:
    created, request = start(client)
    response = client.post(
        "/response",
        data={
            "error": "access_denied",
            "error_description": "user declined",
            "state": request.state,
        },
    )
    assert response.status_code == 200
    view = poll(client, created["transaction_id"])
    assert view["status"] == "error"
    assert view["wallet_error"]["error"] == "access_denied"
    assert stored(engine, created["transaction_id"])["rejection_kinds"] == ["wallet_error"]


def test_plain_direct_post_mode(
    database_url, tmp_path, trust_file, clock, pki, holder, status_lists
) -> None:
    from verifier.app import create_app

    from .conftest import VERIFIER_URL, make_settings

    settings = make_settings(database_url, tmp_path, trust_file, response_mode="direct_post")
    with TestClient(create_app(settings, clock=clock), base_url=VERIFIER_URL) as client:
        created, request = start(client)
        assert request.claims["response_mode"] == "direct_post"
        assert "jwks" not in request.claims["client_metadata"]
        presentation = _registration(pki, holder, status_lists, request)
        response = post_response(client, request, {"registration": [presentation]})
        assert response.status_code == 200, response.text
        assert poll(client, created["transaction_id"])["status"] == "verified"


def test_api_requires_authentication_and_own_transactions(client, ctx) -> None:
    assert (
        client.post(
            "/api/v1/transactions", json={"template": "registration_certificate"}
        ).status_code
        == 401
    )
    bad = {"X-API-Key": "dev-employer:wrong"}
    assert (
        client.post(
            "/api/v1/transactions", json={"template": "registration_certificate"}, headers=bad
        ).status_code
        == 401
    )
    # Client credentials -> bearer token.
    token = client.post(
        "/api/v1/token",
        data={"grant_type": "client_credentials"},
        auth=("dev-employer", "dev-employer-secret"),
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    made = client.post("/api/v1/transactions", json={"template": "work_practice"}, headers=bearer)
    assert made.status_code == 201
    # Another employer cannot read it.
    from intyg.web import db
    from verifier.employers import SCOPES, create_client, create_employer

    with db.session(ctx.engine) as unit:
        other = create_employer(unit, name="Annan AB", org_number="556111-2222", now=ctx.clock())
        secret = create_client(
            unit, employer_id=other.id, client_id="other", name="x", scopes=list(SCOPES), now=0
        )
    got = client.get(
        f"/api/v1/transactions/{made.json()['transaction_id']}",
        headers={"X-API-Key": f"other:{secret}"},
    )
    assert got.status_code == 404
    assert (
        client.post("/api/v1/transactions", json={"template": "nope"}, headers=API_KEY).status_code
        == 400
    )
    both = {"template": "work_practice", "dcql_query": {"credentials": []}}
    assert client.post("/api/v1/transactions", json=both, headers=API_KEY).status_code == 400


def test_custom_dcql_query(client, pki, holder, status_lists) -> None:
    from intyg.schemas import REGISTRATION_CERTIFICATE_VCT

    query = {
        "credentials": [
            {
                "id": "reg",
                "format": "dc+sd-jwt",
                "meta": {"vct_values": [REGISTRATION_CERTIFICATE_VCT]},
                "claims": [{"path": ["registered"]}],
            }
        ]
    }
    response = client.post(
        "/api/v1/transactions", json={"dcql_query": query, "purpose": "Test"}, headers=API_KEY
    )
    assert response.status_code == 201, response.text
    assert response.json()["template"] == "custom"


def test_readyz_and_healthz(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/dev/trust-anchor.pem").text.startswith("-----BEGIN CERTIFICATE-----")
