"""One negative test per rejection in issue 5's Must-show list. Each asserts the 4xx, the
named failing check, and that nothing was stored except the rejection record."""

from __future__ import annotations

import json
import time

import pytest

from intyg import jose, sdjwt, status
from intyg.web.outbound import OutboundPolicy  # noqa: F401 - documents the loopback policy

from .flows import failed_checks, post_response, start, stored
from .helpers import (
    REGISTRATION_DISCLOSE,
    issue,
    make_signer,
    qualification_payload,
    rebind,
    reference_present,
    registration_payload,
)


@pytest.fixture
def journey(client, pki, holder, status_lists):
    created, request = start(client)

    def present(payload=None, signer=None, disclose=REGISTRATION_DISCLOSE, **kw):
        payload = payload or registration_payload({"idx": 1, "uri": status_lists["af_uri"]}, **kw)
        issued = issue(payload, signer or pki.af, holder)
        return reference_present(
            issued, disclose, nonce=request.nonce, aud=request.client_id, holder=holder
        )

    return created, request, present


def _only_rejection(engine, created) -> None:
    assert stored(engine, created["transaction_id"]) == {
        "results": 0,
        "claims": 0,
        "rejections": 1,
        "rejection_kinds": ["presentation"],
        "status": "rejected",
        "used": True,
    }


def _reject(client, engine, created, request, presentation, check: str) -> str:
    response = post_response(client, request, {"registration": [presentation]})
    description = failed_checks(response)
    assert check in description, description
    _only_rejection(engine, created)
    return description


def test_tampered_disclosure(client, engine, journey) -> None:
    created, request, present = journey
    presentation = present()
    parts = presentation.split("~")
    disclosure = json.loads(jose.b64url_decode(parts[1]))
    disclosure[2] = "2020-01-01" if disclosure[1] == "registered_since" else not disclosure[2]
    parts[1] = jose.b64url_encode(json.dumps(disclosure).encode())
    _reject(client, engine, created, request, "~".join(parts), "disclosures")


def test_disclosure_not_in_the_credential(
    client, engine, journey, holder, pki, status_lists
) -> None:
    created, request, present = journey
    presentation = present()
    foreign = sdjwt.make_disclosure("Mallory", "given_name").encoded
    prefix = presentation[: presentation.rindex("~")]
    forged = rebind(
        prefix + "~" + foreign + "~", holder, aud=request.client_id, nonce=request.nonce
    )
    _reject(client, engine, created, request, forged, "disclosures")


def test_wrong_nonce(client, engine, journey, holder) -> None:
    created, request, present = journey
    presentation = rebind(present(), holder, aud=request.client_id, nonce="another-session-nonce")
    _reject(client, engine, created, request, presentation, "key_binding")


def test_wrong_aud(client, engine, journey, holder) -> None:
    created, request, present = journey
    unprefixed = request.client_id.split(":", 1)[1]
    presentation = rebind(present(), holder, aud=unprefixed, nonce=request.nonce)
    _reject(client, engine, created, request, presentation, "key_binding")


def test_replayed_presentation(client, engine, journey) -> None:
    created, request, present = journey
    form_token = {"registration": [present()]}
    first = post_response(client, request, form_token)
    assert first.status_code == 200, first.text
    again = post_response(client, request, form_token)
    assert "nonce_once" in failed_checks(again)
    after = stored(engine, created["transaction_id"])
    assert after["results"] == 1 and after["rejection_kinds"] == ["replay"]
    assert after["status"] == "verified"


def test_missing_kb_jwt(client, engine, journey) -> None:
    created, request, present = journey
    presentation = present()
    without = presentation[: presentation.rindex("~") + 1]
    _reject(client, engine, created, request, without, "key_binding")


def test_kb_signed_by_another_key(client, engine, journey) -> None:
    created, request, present = journey
    other = jose.generate_key("ES256")
    presentation = rebind(present(), other, aud=request.client_id, nonce=request.nonce)
    _reject(client, engine, created, request, presentation, "key_binding")


@pytest.mark.parametrize("age", [-3600, 3600])
def test_kb_iat_outside_window(client, engine, journey, holder, age) -> None:
    created, request, present = journey
    iat = int(time.time()) - age
    presentation = rebind(present(), holder, aud=request.client_id, nonce=request.nonce, iat=iat)
    _reject(client, engine, created, request, presentation, "key_binding")


def test_expired_credential(client, engine, journey, status_lists) -> None:
    created, request, present = journey
    now = int(time.time())
    payload = registration_payload(
        {"idx": 1, "uri": status_lists["af_uri"]}, iat=now - 7200, exp=now - 3600
    )
    description = _reject(client, engine, created, request, present(payload), "validity_times")
    assert "key_binding" not in description  # everything else still checked and fine


@pytest.mark.parametrize(
    ("value", "word"), [(status.INVALID, "revoked"), (status.SUSPENDED, "suspended")]
)
def test_revoked_and_suspended(
    client, engine, journey, pki, status_lists, status_server, value, word
) -> None:
    created, request, present = journey
    lst = status_lists["af"]
    lst.set(9, value)
    status_server.publish(f"af-{status_lists['name']}", lst, pki.af)
    presentation = present(registration_payload({"idx": 9, "uri": status_lists["af_uri"]}))
    _reject(client, engine, created, request, presentation, "status")
    checks = client.get(
        f"/api/v1/transactions/{created['transaction_id']}",
        headers={"X-API-Key": "dev-employer:dev-employer-secret"},
    ).json()["result"]["checks"]
    assert any(c["name"] == "status" and word in c["reason"] for c in checks)


def test_issuer_not_trusted(client, engine, journey, pki) -> None:
    created, request, present = journey
    payload = registration_payload(None, iss=pki.rogue.iss)
    _reject(client, engine, created, request, present(payload, pki.rogue), "issuer_trusted")


def test_trusted_issuer_not_for_that_type(client, engine, journey, pki) -> None:
    created, request, present = journey
    # MYH is trusted, but only for qualifications: it signs a registration certificate.
    payload = registration_payload(None, iss=pki.myh.iss)
    description = _reject(
        client, engine, created, request, present(payload, pki.myh), "issuer_trusted_for_type"
    )
    assert "issuer_trusted," not in description


def _resign(presentation: str, header: dict, sign) -> str:
    jwt, rest = presentation.split("~", 1)
    _, payload_segment, _ = jwt.split(".")
    header_segment = jose.b64url_encode(json.dumps(header).encode())
    signing_input = f"{header_segment}.{payload_segment}".encode()
    return f"{header_segment}.{payload_segment}.{jose.b64url_encode(sign(signing_input))}~{rest}"


def test_alg_none(client, engine, journey, pki) -> None:
    created, request, present = journey
    header = {"alg": "none", "typ": "dc+sd-jwt", **pki.af.header()}
    forged = _resign(present(), header, lambda data: b"\x00")
    _reject(client, engine, created, request, forged, "issuer_signature")


def test_hmac_with_the_public_key_as_secret(client, engine, journey, pki) -> None:
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    created, request, present = journey
    pem = pki.af.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "dc+sd-jwt", **pki.af.header()}
    forged = _resign(present(), header, lambda data: hmac.new(pem, data, hashlib.sha256).digest())
    _reject(client, engine, created, request, forged, "issuer_signature")


def test_status_list_signed_by_untrusted_key(client, engine, journey, pki, status_server) -> None:
    created, request, present = journey
    impostor = make_signer(pki.af.iss, "Impostor")  # same names, another CA
    uri = status_server.publish(
        "impostor-" + created["transaction_id"][:8], status.StatusList.create(16, 2), impostor
    )
    description = _reject(
        client,
        engine,
        created,
        request,
        present(registration_payload({"idx": 1, "uri": uri})),
        "status",
    )
    assert "issuer_trusted" not in description.split("checks:")[1].replace(
        "issuer_trusted_for_type", ""
    )


def test_status_unreachable_policy(client, engine, journey, status_server) -> None:
    created, request, present = journey
    uri = status_server.base + "/statuslists/down"
    _reject(
        client,
        engine,
        created,
        request,
        present(registration_payload({"idx": 1, "uri": uri})),
        "status",
    )


def test_oversize_body(client, engine, journey, ctx) -> None:
    created, _, _ = journey
    big = "a" * (ctx.settings.max_response_bytes + 10)
    response = client.post("/response", data={"response": big})
    assert response.status_code == 413
    assert stored(engine, created["transaction_id"])["rejections"] == 0
    assert stored(engine, created["transaction_id"])["used"] is False


def test_malformed_json(client, engine, journey) -> None:
    created, request, _ = journey
    response = post_response(client, request, '{"registration": ["abc"')
    assert "parse" in failed_checks(response)
    _only_rejection(engine, created)


def test_deeply_nested_json(client, engine, journey) -> None:
    created, request, _ = journey
    deep = "[" * 50_000 + "]" * 50_000  # fits the size limit, far past the depth limit
    response = post_response(client, request, deep)
    assert "parse" in failed_checks(response)
    _only_rejection(engine, created)


def test_json_sent_to_form_endpoint_and_get(client) -> None:
    assert client.post("/response", json={"vp_token": {}}).status_code == 415
    assert client.get("/response").status_code == 405


def test_unknown_state_stores_nothing(client, engine, journey) -> None:
    created, request, present = journey
    response = post_response(
        client, request, {"registration": [present()]}, state="unknown-" + "x" * 40
    )
    assert response.status_code == 400
    assert stored(engine, created["transaction_id"])["rejections"] == 0
    plain = client.post("/response", data={"vp_token": "{}", "state": "nope" * 10})
    assert plain.status_code == 400
    assert stored(engine, created["transaction_id"])["used"] is False


def test_expired_transaction_stores_nothing(client, engine, journey, clock, ctx) -> None:
    created, request, present = journey
    clock.advance(ctx.settings.transaction_ttl + 1)
    response = post_response(client, request, {"registration": [present()]})
    assert response.status_code == 400
    assert stored(engine, created["transaction_id"]) == {
        "results": 0,
        "claims": 0,
        "rejections": 0,
        "rejection_kinds": [],
        "status": "pending",
        "used": False,
    }


def test_error_body_has_no_claim_values(client, engine, journey, holder) -> None:
    _, request, present = journey
    presentation = rebind(present(), holder, aud="x509_hash:other", nonce=request.nonce)
    body = post_response(client, request, {"registration": [presentation]}).text
    for value in ("2026-01-12", "Öppet", "Elin", "200306062381"):
        assert value not in body


def test_wrong_credential_for_query(client, engine, journey, pki, holder, status_lists) -> None:
    created, request, _ = journey
    issued = issue(qualification_payload(None), pki.myh, holder)
    presentation = reference_present(
        issued, {"title": True}, nonce=request.nonce, aud=request.client_id, holder=holder
    )
    _reject(client, engine, created, request, presentation, "requested_claims")
