"""Back-office API through the real app (TestClient) on SQLite and, when configured,
PostgreSQL: client authentication, scopes, records, offers, issuances, status changes seen
in the served status lists, all-or-nothing bulk import and audit rows without numbers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg import jose
from intyg import status as core_status
from intyg.web import db
from issuer import audit, backoffice
from issuer import status as issuer_status
from issuer.app import IssuerContext, create_app
from issuer.models import (
    AuditEntry,
    BackOfficeClient,
    CredentialOffer,
    Issuance,
    Person,
    StatusListRow,
)
from issuer.records import record_issuance
from tests.issuer.conftest import ISSUER_URL, Clock, make_settings

SECRET = "dev-secret-0123456789"
ANNA = "198112189884"
ERIK = "198503152376"
BAD_LUHN = "198112189885"
QUALIFICATION = "3f0c8b2e-6d1a-4c57-9e2b-8a4d7c1e5f90"
UNKNOWN_QUALIFICATION = "00000000-0000-4000-8000-000000000000"
PREFIX = "/backoffice/v1"


def registration(number: str = ANNA, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personal_identity_number": number,
        "given_name": "Anna",
        "family_name": "Andersson",
        "birthdate": "1981-12-18",
        "registered": True,
        "registration_category": {"code": "11", "label": "Arbetslös"},
        "registered_since": "2026-01-12",
        "office": "Arbetsförmedlingen Malmö",
    }
    body.update(overrides)
    return body


def award(number: str = ANNA, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personal_identity_number": number,
        "given_name": "Anna",
        "family_name": "Andersson",
        "birthdate": "1981-12-18",
        "qualification_id": QUALIFICATION,
        "awarded_on": "2024-06-14",
    }
    body.update(overrides)
    return body


def make_client(
    database_url: str, tmp_path: Path, clock: Clock, agency: str = "af"
) -> Iterator[TestClient]:
    settings = make_settings(
        database_url,
        tmp_path,
        agency=agency,
        dev_backoffice_secret=SECRET,
        dev_sample_data=agency == "myh",
    )
    engine = db.create_engine(database_url)
    app = create_app(settings, clock=clock, engine=engine)
    try:
        with TestClient(app, base_url=ISSUER_URL) as client:
            yield client
    finally:
        engine.dispose()


@pytest.fixture
def af(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    yield from make_client(database_url, tmp_path, clock, "af")


@pytest.fixture
def myh(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    yield from make_client(database_url, tmp_path, clock, "myh")


def context(client: TestClient) -> IssuerContext:
    return client.app.state.issuer  # type: ignore[attr-defined,no-any-return]


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def get_token(client: TestClient, scope: str | None = None, secret: str = SECRET) -> Any:
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return client.post(f"{PREFIX}/token", data=form, headers=basic("dev-backoffice", secret))


def bearer(client: TestClient, scope: str | None = None) -> dict[str, str]:
    response = get_token(client, scope)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def audit_rows(client: TestClient) -> list[AuditEntry]:
    with db.session(context(client).engine, write=False) as unit:
        return list(unit.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)))


def assert_no_numbers(text: str) -> None:
    for number in (ANNA, ERIK, BAD_LUHN, ANNA[2:], ERIK[2:]):
        assert number not in text


def issue(client: TestClient, person_reference: str, record_id: int, fmt: str) -> str:
    """Write an issuance the way the credential endpoint does (status entry + row)."""
    ctx = context(client)
    kind = issuer_status.TSL if fmt == "dc+sd-jwt" else issuer_status.BITSTRING
    with db.session(ctx.engine) as unit:
        person = unit.scalars(sa.select(Person).where(Person.lookup_key == person_reference)).one()
        allocation = issuer_status.allocate(unit, ctx.settings, kind, ctx.clock())
        return record_issuance(
            unit,
            person_id=person.id,
            record_id=record_id,
            configuration_id=f"RegistrationCertificate_{fmt}",
            credential_format=fmt,
            allocation=allocation,
            kid="kid",
            proof_hash=jose.sha256_b64url(f"{record_id}{fmt}{ctx.clock()}"),
            issued_at=ctx.clock(),
            expires_at=ctx.clock() + 3600,
        )


# -- authentication ------------------------------------------------------------------------


def test_token_and_call(af: TestClient) -> None:
    response = get_token(af)
    body = response.json()
    assert response.status_code == 200 and body["token_type"] == "Bearer"
    assert body["expires_in"] == 300 and set(body["scope"].split()) == set(backoffice.ALL_SCOPES)
    assert response.headers["cache-control"] == "no-store"
    listed = af.get(f"{PREFIX}/issuances", headers=bearer(af))
    assert listed.status_code == 200 and listed.json() == {"issuances": []}


def test_no_token(af: TestClient) -> None:
    response = af.get(f"{PREFIX}/issuances")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="backoffice"'


def test_wrong_secret(af: TestClient) -> None:
    response = get_token(af, secret="wrong")
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    assert response.headers["www-authenticate"].startswith("Basic")


def test_unknown_client(af: TestClient) -> None:
    response = af.post(
        f"{PREFIX}/token", data={"grant_type": "client_credentials"}, headers=basic("x", "y")
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_wrong_grant_type_and_scope(af: TestClient) -> None:
    response = af.post(
        f"{PREFIX}/token", data={"grant_type": "password"}, headers=basic("dev-backoffice", SECRET)
    )
    assert response.json()["error"] == "unsupported_grant_type"
    assert get_token(af, "records:write admin").json()["error"] == "invalid_scope"


def test_expired_token(af: TestClient, clock: Clock) -> None:
    headers = bearer(af)
    clock.advance(301)
    response = af.get(f"{PREFIX}/issuances", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "the token is invalid or expired",
    }
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_forged_token(af: TestClient) -> None:
    response = af.get(f"{PREFIX}/issuances", headers={"Authorization": "Bearer abc.def"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_wrong_scope(af: TestClient) -> None:
    response = af.get(f"{PREFIX}/issuances", headers=bearer(af, "records:write"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "this call needs the scope issuances:read",
    }
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_api_key(af: TestClient) -> None:
    ok = af.get(f"{PREFIX}/issuances", headers={"X-API-Key": f"dev-backoffice:{SECRET}"})
    assert ok.status_code == 200
    bad = af.get(f"{PREFIX}/issuances", headers={"X-API-Key": "dev-backoffice:nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"


def test_operator_client_scopes_rotation_and_disable(af: TestClient) -> None:
    ctx = context(af)
    with db.session(ctx.engine) as unit:
        secret = backoffice.create_client(
            unit, client_id="case-system", name="Case", scopes=["records:write"], now=ctx.clock()
        )
        stored = unit.get(BackOfficeClient, "case-system")
        assert stored is not None and secret not in stored.secret_hash
    form = {"grant_type": "client_credentials"}
    token = af.post(f"{PREFIX}/token", data=form, headers=basic("case-system", secret)).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert af.get(f"{PREFIX}/issuances", headers=headers).status_code == 403
    with db.session(ctx.engine) as unit:
        backoffice.rotate_client_secret(unit, "case-system", ctx.clock())
    # Rotating the secret ends the tokens made with the old one.
    assert (
        af.put(f"{PREFIX}/registrations", json=registration(), headers=headers).status_code == 401
    )
    with db.session(ctx.engine) as unit:
        backoffice.disable_client(unit, "case-system", ctx.clock())
    refused = af.post(f"{PREFIX}/token", data=form, headers=basic("case-system", secret))
    assert refused.status_code == 401


# -- AF records ----------------------------------------------------------------------------


def test_put_and_get_registration(af: TestClient) -> None:
    headers = bearer(af)
    response = af.put(f"{PREFIX}/registrations", json=registration(), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["registered_since"] == "2026-01-12" and body["programme"] is None
    assert_no_numbers(response.text)
    reference = body["person"]
    again = af.put(
        f"{PREFIX}/registrations",
        json=registration(
            programme={"code": "AP", "label": "Arbetspraktik", "since": "2026-02-01"}
        ),
        headers=headers,
    )
    assert again.json()["person"] == reference and again.json()["record_id"] == body["record_id"]
    fetched = af.get(f"{PREFIX}/registrations/{reference}", headers=headers)
    assert fetched.status_code == 200 and fetched.json()["programme"]["code"] == "AP"
    assert af.get(f"{PREFIX}/registrations/unknown", headers=headers).status_code == 404
    rows = audit_rows(af)
    puts = [r for r in rows if r.action == "backoffice.registration.put"]
    assert len(puts) == 2 and puts[0].subject == puts[1].subject
    assert all(r.actor == "backoffice:dev-backoffice" for r in rows if r.action.endswith(".put"))
    assert_no_numbers(json.dumps([(r.actor, r.subject, r.details) for r in rows]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (registration(BAD_LUHN), "personal_identity_number"),
        (registration(registered="yes"), "registered"),
        (registration(registered_since="2026-13-01"), "registered_since"),
        (registration(extra=1), "extra"),
        ({k: v for k, v in registration().items() if k != "given_name"}, "given_name"),
    ],
)
def test_registration_refused_names_the_field(af: TestClient, body: Any, field: str) -> None:
    response = af.put(f"{PREFIX}/registrations", json=body, headers=bearer(af))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["error_description"]
    assert_no_numbers(response.text)
    with db.session(context(af).engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(Person)) == 0


def test_strict_json_and_media_type(af: TestClient) -> None:
    headers = {**bearer(af), "Content-Type": "application/json"}
    duplicate = b'{"given_name": "a", "given_name": "b"}'
    response = af.put(f"{PREFIX}/registrations", content=duplicate, headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    form = af.put(f"{PREFIX}/registrations", data={"a": "b"}, headers=bearer(af))
    assert form.status_code == 415


def test_body_size_limit(af: TestClient) -> None:
    big = registration(office="x" * 300_000)
    response = af.put(f"{PREFIX}/registrations", json=big, headers=bearer(af))
    assert response.status_code == 413


def test_wrong_agency(af: TestClient) -> None:
    response = af.post(f"{PREFIX}/awards", json=award(), headers=bearer(af))
    assert response.status_code == 404


# -- MYH records and catalogue -------------------------------------------------------------


def test_post_and_get_awards(myh: TestClient) -> None:
    headers = bearer(myh)
    response = myh.post(f"{PREFIX}/awards", json=award(), headers=headers)
    assert response.status_code == 201, response.text
    reference = response.json()["person"]
    listed = myh.get(f"{PREFIX}/awards/{reference}", headers=headers).json()
    assert listed["awards"][0]["qualification_id"] == QUALIFICATION
    assert listed["awards"][0]["title"]
    unknown = myh.post(
        f"{PREFIX}/awards", json=award(qualification_id=UNKNOWN_QUALIFICATION), headers=headers
    )
    assert unknown.status_code == 400
    assert unknown.json()["error_description"] == "qualification_id is not in the catalogue"


def test_catalogue_import(myh: TestClient) -> None:
    headers = bearer(myh, "catalogue:write")
    sample = json.loads(
        Path("issuer/catalogue/myh-qualifications.sample.json").read_text(encoding="utf-8")
    )
    response = myh.post(f"{PREFIX}/catalogue", json=sample, headers=headers)
    assert response.status_code == 200
    assert response.json()["updated"] == len(sample["qualifications"])
    broken = {"qualifications": [sample["qualifications"][0], {"status": "Aktiv"}]}
    refused = myh.post(f"{PREFIX}/catalogue", json=broken, headers=headers)
    assert refused.status_code == 400
    assert [e["row"] for e in refused.json()["errors"]] == [1]
    assert (
        myh.post(
            f"{PREFIX}/catalogue", json=sample, headers=bearer(myh, "records:write")
        ).status_code
        == 403
    )


# -- bulk import ---------------------------------------------------------------------------

CSV_HEADER = (
    "personal_identity_number,given_name,family_name,birthdate,registered,"
    "category_code,category_label,registered_since\n"
)


def test_bulk_registrations_csv(af: TestClient) -> None:
    csv_body = (
        CSV_HEADER
        + f"{ANNA},Anna,Andersson,1981-12-18,true,11,Arbetslös,2026-01-12\n"
        + f"{ERIK},Erik,Johansson,1985-03-15,true,11,Arbetslös,2025-11-01\n"
    )
    headers = {**bearer(af), "Content-Type": "text/csv"}
    response = af.post(f"{PREFIX}/import/registrations", content=csv_body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 2
    assert_no_numbers(response.text)


def test_bulk_registrations_all_or_nothing_with_report(af: TestClient) -> None:
    csv_body = (
        CSV_HEADER
        + f"{ANNA},Anna,Andersson,1981-12-18,true,11,Arbetslös,2026-01-12\n"
        + f"{BAD_LUHN},Bad,Number,1981-12-18,true,11,Arbetslös,2026-01-12\n"
        + f"{ERIK},Erik,Johansson,1985-03-15,true,11,Arbetslös,2025-13-45\n"
    )
    headers = {**bearer(af), "Content-Type": "text/csv"}
    response = af.post(f"{PREFIX}/import/registrations", content=csv_body, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"] == "2 record(s) refused; nothing was imported"
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (2, "personal_identity_number"),
        (3, "registered_since"),
    ]
    assert_no_numbers(response.text)
    with db.session(context(af).engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(Person)) == 0


def test_bulk_awards_json_all_or_nothing(myh: TestClient) -> None:
    rows = [
        award(),
        award(ERIK, qualification_id=UNKNOWN_QUALIFICATION),
        award(ERIK, awarded_on="14/06/2024"),
        award(BAD_LUHN),
    ]
    response = myh.post(f"{PREFIX}/import/awards", json=rows, headers=bearer(myh))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [
        (2, "qualification_id"),
        (3, "awarded_on"),
        (4, "personal_identity_number"),
    ]
    assert_no_numbers(response.text)
    with db.session(context(myh).engine, write=False) as unit:
        persons = unit.scalar(sa.select(sa.func.count()).select_from(Person))
    assert persons == 2  # the sample data's people only; nothing of this import
    ok = myh.post(f"{PREFIX}/import/awards", json=rows[:1], headers=bearer(myh))
    assert ok.status_code == 200 and ok.json()["imported"] == 1


def test_bulk_import_refuses_non_array_and_bad_csv_header(af: TestClient) -> None:
    response = af.post(f"{PREFIX}/import/registrations", json={"a": 1}, headers=bearer(af))
    assert response.status_code == 400
    headers = {**bearer(af), "Content-Type": "text/csv"}
    bad = af.post(f"{PREFIX}/import/registrations", content="nope,x\n1,2\n", headers=headers)
    assert bad.status_code == 400 and "CSV header" in bad.json()["error_description"]


# -- offers --------------------------------------------------------------------------------


def test_create_offer(af: TestClient) -> None:
    headers = bearer(af)
    reference = af.put(f"{PREFIX}/registrations", json=registration(), headers=headers).json()[
        "person"
    ]
    response = af.post(f"{PREFIX}/offers", json={"person": reference}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["credential_offer_uri"] == f"{ISSUER_URL}/offers/{body['offer_id']}"
    assert body["link"].startswith("openid-credential-offer://?credential_offer_uri=https%3A")
    assert body["qr_svg"].startswith("<svg") and body["tx_code"].isdigit()
    assert len(body["tx_code"]) == 6 and len(body["configuration_ids"]) == 2
    without = af.post(
        f"{PREFIX}/offers",
        json={"person": reference, "tx_code": False, "configuration_ids": ["nope"]},
        headers=headers,
    )
    assert without.status_code == 400
    assert without.json()["error_description"] == "unknown credential configuration"
    scoped = af.post(
        f"{PREFIX}/offers", json={"person": reference}, headers=bearer(af, "records:write")
    )
    assert scoped.status_code == 403
    with db.session(context(af).engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(CredentialOffer)) == 1
    assert "backoffice.offer.create" in [r.action for r in audit_rows(af)]


# -- issuances and status ------------------------------------------------------------------


def test_revoke_suspend_unsuspend_in_served_lists(af: TestClient, clock: Clock) -> None:
    headers = bearer(af)
    body = af.put(f"{PREFIX}/registrations", json=registration(), headers=headers).json()
    sd = issue(af, body["person"], body["record_id"], "dc+sd-jwt")
    vc = issue(af, body["person"], body["record_id"], "jwt_vc_json")
    ctx = context(af)
    with db.session(ctx.engine, write=False) as unit:
        sd_row, vc_row = unit.get(Issuance, sd), unit.get(Issuance, vc)
        vc_list = unit.get(StatusListRow, vc_row.status_list_id)
        suspension_id = vc_list.suspension_list_id

    def tsl_value() -> int:
        served = af.get(f"/statuslists/{sd_row.status_list_id}")
        claims = jose.parse_jws(served.text).claims()
        decoded = core_status.StatusList.decode(claims["status_list"])
        return decoded.get(sd_row.status_idx)

    def bit(list_id: int) -> int:
        served = af.get(f"/status/{list_id}")
        subject = jose.parse_jws(served.text).claims()["credentialSubject"]
        return core_status.BitstringStatusList.decode(subject["encodedList"]).get(vc_row.status_idx)

    assert tsl_value() == core_status.VALID
    listed = af.get(f"{PREFIX}/issuances", params={"person": body["person"]}, headers=headers)
    assert {i["id"] for i in listed.json()["issuances"]} == {sd, vc}
    assert_no_numbers(listed.text)

    suspended = af.post(f"{PREFIX}/issuances/{sd}/suspend", headers=headers)
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    clock.advance(6)
    assert tsl_value() == core_status.SUSPENDED
    assert (
        af.post(f"{PREFIX}/issuances/{sd}/unsuspend", headers=headers).json()["status"] == "valid"
    )
    clock.advance(6)
    assert tsl_value() == core_status.VALID
    assert af.post(f"{PREFIX}/issuances/{vc}/unsuspend", headers=headers).status_code == 409

    assert af.post(f"{PREFIX}/issuances/{vc}/suspend", headers=headers).status_code == 200
    clock.advance(6)
    assert bit(suspension_id) == 1
    assert af.post(f"{PREFIX}/issuances/{vc}/revoke", headers=headers).json()["status"] == "revoked"
    clock.advance(6)
    assert bit(vc_row.status_list_id) == 1 and bit(suspension_id) == 0
    again = af.post(f"{PREFIX}/issuances/{vc}/unsuspend", headers=headers)
    assert again.status_code == 409
    assert af.post(f"{PREFIX}/issuances/{vc}/suspend", headers=headers).status_code == 409

    revoked = af.get(f"{PREFIX}/issuances", params={"status": "revoked"}, headers=headers).json()
    assert [i["id"] for i in revoked["issuances"]] == [vc]
    today = af.get(
        f"{PREFIX}/issuances",
        params={"issued_from": "2000-01-01", "issued_to": "2000-01-02"},
        headers=headers,
    )
    assert today.json() == {"issuances": []}
    assert af.post(f"{PREFIX}/issuances/unknown/revoke", headers=headers).status_code == 404
    assert (
        af.post(f"{PREFIX}/issuances/{sd}/revoke", headers=bearer(af, "issuances:read")).status_code
        == 403
    )

    with db.session(ctx.engine, write=False) as unit:
        entries = audit.entries(unit, subject=audit.reference("issuance", vc))
    assert [e.action for e in entries] == [
        "backoffice.issuance.revoke",
        "backoffice.issuance.suspend",
    ]
    assert all(e.actor == "backoffice:dev-backoffice" for e in entries)
    assert_no_numbers(json.dumps([(r.actor, r.subject, r.details) for r in audit_rows(af)]))


def test_openapi_documents_the_back_office(af: TestClient) -> None:
    spec = af.get("/openapi.json").json()
    paths = spec["paths"]
    assert "put" in paths["/backoffice/v1/registrations"]
    body = paths["/backoffice/v1/registrations"]["put"]["requestBody"]["content"]
    assert "personal_identity_number" in body["application/json"]["schema"]["properties"]
    assert (
        "text/csv" in paths["/backoffice/v1/import/registrations"]["post"]["requestBody"]["content"]
    )
    assert not any("{personal" in path for path in paths)
