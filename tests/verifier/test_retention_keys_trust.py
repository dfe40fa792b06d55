"""Withdrawal (deletion endpoint), the purge job, the signing keys and client identifier
prefixes, the trust list rules, and a full journey over a real uvicorn server."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from intyg import jose, oid4vp, x509
from intyg.schemas import REGISTRATION_CERTIFICATE_VCT
from verifier import retention
from verifier.app import create_app
from verifier.models import DisclosedClaims, Result
from verifier.trust import TrustError, TrustListError, load_trust_list, parse_trust_list

from .conftest import VERIFIER_URL, make_settings
from .flows import poll, post_response, start, stored
from .helpers import (
    REGISTRATION_DISCLOSE,
    issue,
    read_request_object,
    reference_present,
    registration_payload,
    response_form,
)


def _verified(client, pki, holder, status_lists):
    created, request = start(client)
    issued = issue(registration_payload({"idx": 2, "uri": status_lists["af_uri"]}), pki.af, holder)
    presentation = reference_present(
        issued, REGISTRATION_DISCLOSE, nonce=request.nonce, aud=request.client_id, holder=holder
    )
    assert post_response(client, request, {"registration": [presentation]}).status_code == 200
    return created, request


def _deletion_request(key: jose.Key, request, **claims) -> str:
    body = {"aud": request.client_id, "iat": int(time.time()), "state": request.state, **claims}
    header = {"typ": "intyg-deletion+jwt", "jwk": key.public_jwk()}
    return jose.encode_jws(body, key, header)


def _claims_rows(engine, transaction_id: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count())
            .select_from(DisclosedClaims)
            .where(DisclosedClaims.transaction_id == transaction_id)
        ).scalar_one()


def test_withdrawal_deletes_disclosed_claims(client, engine, pki, holder, status_lists) -> None:
    created, request = _verified(client, pki, holder, status_lists)
    transaction_id = created["transaction_id"]
    assert _claims_rows(engine, transaction_id) == 1
    stranger = jose.generate_key("ES256")
    refused = client.post(
        "/deletion", data={"deletion_request": _deletion_request(stranger, request)}
    )
    assert refused.status_code == 400
    wrong_aud = _deletion_request(holder, request, aud="x509_hash:someone-else")
    assert client.post("/deletion", data={"deletion_request": wrong_aud}).status_code == 400
    assert _claims_rows(engine, transaction_id) == 1
    accepted = client.post(
        "/deletion", data={"deletion_request": _deletion_request(holder, request)}
    )
    assert accepted.status_code == 200, accepted.text
    assert _claims_rows(engine, transaction_id) == 0
    with engine.connect() as connection:
        result = connection.execute(
            sa.select(Result).where(Result.transaction_id == transaction_id)
        ).one()
    assert result.claims_deleted_by == "holder" and result.outcome == "verified"
    view = poll(client, transaction_id)
    assert view["status"] == "verified" and view["result"]["claims"] is None


def test_purge_deletes_claims_past_retention(
    client, engine, ctx, clock, pki, holder, status_lists
) -> None:
    created, _ = _verified(client, pki, holder, status_lists)
    transaction_id = created["transaction_id"]
    assert retention.purge(ctx)["claims"] == 0
    clock.advance(30 * 86_400 + 1)  # registration_certificate keeps claims 30 days
    counts = retention.purge(ctx)
    assert counts["claims"] == 1 and counts["transaction_secrets"] >= 1
    assert _claims_rows(engine, transaction_id) == 0
    assert stored(engine, transaction_id)["results"] == 1  # the fact of the verification stays


@pytest.mark.parametrize("prefix", ["x509_san_dns", "decentralized_identifier"])
def test_other_client_id_prefixes(database_url, tmp_path, trust_file, clock, prefix) -> None:
    settings = make_settings(database_url, tmp_path, trust_file, client_id_prefix=prefix)
    with TestClient(create_app(settings, clock=clock), base_url=VERIFIER_URL) as client:
        created = client.post(
            "/api/v1/transactions",
            json={"template": "registration_certificate"},
            headers={"X-API-Key": "dev-employer:dev-employer-secret"},
        ).json()
        jwt = client.get("/request/" + created["transaction_id"]).text
        jws = jose.parse_jws(jwt)
        if prefix == "x509_san_dns":
            assert created["client_id"] == "x509_san_dns:verifier.test"
            leaf = x509.validate_x5c(
                jws.header["x5c"],
                x509.certs_from_pem(client.get("/dev/trust-anchor.pem").text),
                dns_name="verifier.test",
            )
            jose.verify_signature(jws, leaf.key)
        else:
            assert created["client_id"] == "decentralized_identifier:did:web:verifier.test"
            assert jws.header["kid"] == "did:web:verifier.test#key-1" and "x5c" not in jws.header
            document = client.get("/.well-known/did.json").json()
            jwk = document["verificationMethod"][0]["publicKeyJwk"]
            jose.verify_signature(jws, jose.key_from_jwk(jwk))


def test_keys_survive_restart_and_client_id_is_x509_hash(
    database_url, tmp_path, trust_file, clock
) -> None:
    settings = make_settings(database_url, tmp_path, trust_file)
    ids = []
    for _ in range(2):
        with TestClient(create_app(settings, clock=clock), base_url=VERIFIER_URL) as client:
            ctx = client.app.state.verifier
            signer = ctx.keys.signer()
            leaf = x509.certs_from_x5c(list(signer.x5c))[0]
            assert signer.client_id == oid4vp.client_id_x509_hash(leaf)
            assert len(signer.x5c) == 1  # no trust anchor in x5c (HAIP)
            ids.append(signer.client_id)
    assert ids[0] == ids[1]


def test_pending_transaction_survives_restart(
    database_url, tmp_path, trust_file, clock, pki, holder, status_lists
) -> None:
    settings = make_settings(database_url, tmp_path, trust_file)
    with TestClient(create_app(settings, clock=clock), base_url=VERIFIER_URL) as client:
        _, request = start(client)
    with TestClient(create_app(settings, clock=clock), base_url=VERIFIER_URL) as client:
        issued = issue(
            registration_payload({"idx": 4, "uri": status_lists["af_uri"]}), pki.af, holder
        )
        presentation = reference_present(
            issued, REGISTRATION_DISCLOSE, nonce=request.nonce, aud=request.client_id, holder=holder
        )
        assert post_response(client, request, {"registration": [presentation]}).status_code == 200


def test_trust_list_rules(pki, tmp_path: Path) -> None:
    document = pki.trust_list()
    document["issuers"][1]["vct"].append(REGISTRATION_CERTIFICATE_VCT)
    with pytest.raises(TrustListError, match="only Arbetsförmedlingen"):
        parse_trust_list(document)
    yaml_file = tmp_path / "trust.yaml"
    anchor = tmp_path / "af.pem"
    anchor.write_text(pki.af.ca_pem)
    yaml_file.write_text(
        "issuers:\n  - id: af\n    org_number: '202100-2114'\n"
        f"    vct: ['{REGISTRATION_CERTIFICATE_VCT}']\n    trust_anchors: [af.pem]\n"
    )
    trust = load_trust_list(yaml_file)
    assert trust.issuers[0].trust_anchors
    now = int(time.time())
    claims = {"iss": pki.af.iss, "vct": REGISTRATION_CERTIFICATE_VCT}
    assert (
        trust.key_resolver(now=now)(pki.af.header(), claims).thumbprint() == pki.af.key.thumbprint()
    )
    with pytest.raises(TrustError) as caught:
        trust.identify({"jwk": pki.af.key.public_jwk()}, claims, now=now)
    assert caught.value.check == "issuer_trusted"
    with pytest.raises(TrustError, match="not named"):
        trust.identify(pki.af.header(), {**claims, "iss": "https://elsewhere.test"}, now=now)
    with pytest.raises(TrustError) as caught:
        trust.key_resolver(now=now)(pki.af.header(), {**claims, "vct": "urn:other"})
    assert caught.value.check == "issuer_trusted_for_type"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_journey_over_real_uvicorn_server(
    database_url, tmp_path, trust_file, pki, holder, status_lists
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, tmp_path, trust_file, public_base_url=base)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(100):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            key = {"X-API-Key": "dev-employer:dev-employer-secret"}
            created = http.post(
                "/api/v1/transactions", json={"template": "registration_certificate"}, headers=key
            ).json()
            request = read_request_object(http.get(created["request_uri"]).text)
            assert request.claims["response_uri"] == base + "/response"
            issued = issue(
                registration_payload({"idx": 7, "uri": status_lists["af_uri"]}), pki.af, holder
            )
            presentation = reference_present(
                issued,
                REGISTRATION_DISCLOSE,
                nonce=request.nonce,
                aud=request.client_id,
                holder=holder,
            )
            answer = http.post(
                request.claims["response_uri"],
                data=response_form(request, {"registration": [presentation]}),
            )
            assert answer.status_code == 200, answer.text
            view = http.get(f"/api/v1/transactions/{created['transaction_id']}", headers=key).json()
            assert view["result"]["outcome"] == "verified"
            replay = http.post(
                request.claims["response_uri"],
                data=response_form(request, {"registration": [presentation]}),
            )
            assert (
                replay.status_code == 400
                and "nonce_once" in json.loads(replay.text)["error_description"]
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_replicas_create_one_development_employer(ctx) -> None:
    """Replicas starting together on one empty database (docker-compose): the development
    employer and its API client are created once, and no replica fails to start."""
    from concurrent.futures import ThreadPoolExecutor

    from intyg.web import db
    from verifier import employers
    from verifier.models import ApiClient, Employer

    _, org_number = employers.DEV_EMPLOYER
    with db.session(ctx.engine) as unit:  # back to the empty database of a first start
        unit.execute(sa.delete(ApiClient))
        unit.execute(sa.delete(Employer).where(Employer.org_number == org_number))
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        employers.ensure_dev_employer(ctx)

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(start) for _ in range(8)]:
            future.result()  # an IntegrityError here is a replica that failed to start
    with db.session(ctx.engine) as unit:
        found = unit.scalars(sa.select(Employer).where(Employer.org_number == org_number)).all()
        assert len(found) == 1
        assert unit.get(ApiClient, employers.DEV_CLIENT_ID) is not None
