"""Verifications are counted by template and outcome where the result is committed
(verifier/transactions.py; docs/running.md "Operations"), and /readyz follows the
request-signing key. SQLite and PostgreSQL."""

from __future__ import annotations

import json

import sqlalchemy as sa
from prometheus_client import REGISTRY

from intyg import jose
from intyg.web import db
from verifier.models import SigningKey

from .flows import post_response, start
from .helpers import REGISTRATION_DISCLOSE, issue, reference_present, registration_payload

TEMPLATE = "registration_certificate"


def verifications(outcome: str, template: str = TEMPLATE) -> float:
    labels = {"template": template, "outcome": outcome}
    return REGISTRY.get_sample_value("intyg_verifications_total", labels) or 0.0


def present(pki, holder, request, status_uri: str) -> str:
    payload = registration_payload({"idx": 3, "uri": status_uri})
    issued = issue(payload, pki.af, holder)
    return reference_present(
        issued, REGISTRATION_DISCLOSE, nonce=request.nonce, aud=request.client_id, holder=holder
    )


def test_outcomes_are_counted(client, pki, holder, status_lists, status_server) -> None:
    names = ("verified", "rejected", "rejected_status_unknown", "wallet_error")
    before = {name: verifications(name) for name in names}

    _, request = start(client)
    presentation = present(pki, holder, request, status_lists["af_uri"])
    assert post_response(client, request, {"registration": [presentation]}).status_code == 200
    replay = post_response(client, request, {"registration": [presentation]})
    assert replay.status_code == 400  # a replay is no new verification

    _, request = start(client)
    parts = present(pki, holder, request, status_lists["af_uri"]).split("~")
    disclosure = json.loads(jose.b64url_decode(parts[1]))
    disclosure[2] = "tampered"
    parts[1] = jose.b64url_encode(json.dumps(disclosure).encode())
    tampered = post_response(client, request, {"registration": ["~".join(parts)]})
    assert tampered.status_code == 400

    _, request = start(client)
    unreachable = present(pki, holder, request, status_server.base + "/statuslists/down")
    assert post_response(client, request, {"registration": [unreachable]}).status_code == 400

    _, request = start(client)
    declined = client.post("/response", data={"error": "access_denied", "state": request.state})
    assert declined.status_code == 200

    after = {name: verifications(name) for name in names}
    assert {name: after[name] - before[name] for name in names} == {
        "verified": 1,
        "rejected": 1,
        "rejected_status_unknown": 1,
        "wallet_error": 1,
    }
    scraped = client.get("/metrics").text
    assert 'intyg_verifications_total{outcome="verified",template="registration_certificate"}' in (
        scraped
    )


def test_readiness_needs_the_request_signing_key(client, engine, ctx) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    with db.session(engine) as unit:
        unit.execute(sa.update(SigningKey).values(active=False))
    ctx.keys._signer = None  # as a new replica would find it: read once per process
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["check"] == "keys"
