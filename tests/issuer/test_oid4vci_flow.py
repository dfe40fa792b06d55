"""OpenID4VCI 1.0 end to end: a third-party wallet (tests/issuer/wallet_sim.py) through both
grants, for both agencies and both formats; results verified with intyg's core and with the
``sd-jwt`` reference implementation (issue 3 "Must show"; security.md T034, T048, T051-T054).

The harness here (:class:`Harness`, :func:`make_harness`) is shared with the negative and
concurrency tests.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier

from eid.app import create_app as create_eid_app
from eid.settings import EidClient, EidSettings
from intyg import jose, oid4vci, sdjwt, sdjwt_vc, status, vcdm, x509
from intyg.web import db
from intyg.web.oidc import OidcConfig
from issuer import offers, records
from issuer.app import IssuerContext, create_app
from issuer.models import (
    AccessToken,
    AuditEntry,
    CNonce,
    CredentialOffer,
    Issuance,
    MYHQualification,
    Person,
    StatusEntry,
)
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import ISSUER_URL, Clock, make_settings
from tests.issuer.wallet_sim import Wallet, WalletProvider

EID_CLIENT = "intyg-issuer"
EID_SECRET = "issuer-eid-secret-0123456789"
ANNA = ("198112189884", "Anna", "Andersson", "1981-12-18")
AGENCY_CONFIGURATIONS = {
    "af": ("RegistrationCertificate_dc+sd-jwt", "RegistrationCertificate_jwt_vc_json"),
    "myh": ("QualificationAttestation_dc+sd-jwt", "QualificationAttestation_jwt_vc_json"),
}


# -- harness -------------------------------------------------------------------------------


@dataclass
class Harness:
    """A started issuer behind a TestClient, a trusted wallet provider and helpers."""

    client: TestClient
    ctx: IssuerContext
    provider: WalletProvider
    clock: Clock

    @property
    def agency(self) -> str:
        return self.ctx.settings.agency

    @property
    def sd_jwt_id(self) -> str:
        return AGENCY_CONFIGURATIONS[self.agency][0]

    @property
    def vcdm_id(self) -> str:
        return AGENCY_CONFIGURATIONS[self.agency][1]

    def wallet(self, **overrides: Any) -> Wallet:
        values: dict[str, Any] = {"provider": self.provider}
        values.update(overrides)
        return Wallet(self.client, ISSUER_URL, **values)

    def person(self, number: str | None = None) -> tuple[Person, int]:
        """A person with a record: the first sample person, or ``number`` (created)."""
        with db.session(self.ctx.engine) as unit:
            if number is None:
                people = list(unit.scalars(sa.select(Person).order_by(Person.id)))  # type: ignore[arg-type]
                person = people[0]
            else:
                person = self.add_person(unit, number)
            assert person.id is not None
            if self.agency == "af":
                registration = records.find_registration(unit, person.id)
                assert registration is not None and registration.id is not None
                return person, registration.id
            award = records.find_awards(unit, person.id)[0]
            assert award.id is not None
            return person, award.id

    def add_person(self, unit: db.Session, number: str) -> Person:
        _, given, family, born = next(p for p in (ANNA,) if p[0] == number)
        now = self.clock()
        person = self.ctx.person_vault().upsert(
            unit, number, given_name=given, family_name=family, birthdate=born, now=now
        )
        if self.agency == "af":
            records.upsert_registration(
                unit,
                person,
                records.RegistrationInput(
                    registered=True,
                    category_code="11",
                    category_label="Arbetslös",
                    registered_since=datetime.date(2026, 1, 12),
                    office="Arbetsförmedlingen Lund",
                ),
                now,
            )
        else:
            qualification = unit.scalars(
                sa.select(MYHQualification).where(MYHQualification.status == "Aktiv")  # type: ignore[arg-type]
            ).first()
            assert qualification is not None
            records.award_qualification(
                unit,
                person,
                qualification.qualification_id,
                qualification.data["claims"]["decision_date"],
                now,
            )
        return person

    def offer(
        self,
        *,
        tx_code: bool = False,
        configuration_ids: list[str] | None = None,
        ttl: int | None = None,
        number: str | None = None,
    ) -> offers.CreatedOffer:
        person, record_id = self.person(number)
        with db.session(self.ctx.engine) as unit:
            return offers.create_offer(
                unit, self.ctx, person, record_id, configuration_ids, tx_code=tx_code, ttl=ttl
            )

    def counts(self) -> dict[str, int]:
        """What a refused request must not change (security.md conventions)."""
        with db.session(self.ctx.engine, write=False) as unit:

            def count(model: Any, *where: Any) -> int:
                return unit.scalar(sa.select(sa.func.count()).select_from(model).where(*where))  # type: ignore[no-any-return]

            return {
                "issuances": count(Issuance),
                "status_entries": count(StatusEntry),
                "access_tokens": count(AccessToken),
                "used_nonces": count(CNonce, CNonce.used_at.is_not(None)),  # type: ignore[union-attr]
                "used_offers": count(CredentialOffer, CredentialOffer.used_at.is_not(None)),  # type: ignore[union-attr]
                "audit": count(AuditEntry),
            }

    def anchor(self) -> x509.Certificate:
        pem = self.ctx.keys.trust_anchor_pem()
        assert pem is not None
        return x509.cert_from_pem(pem)

    def x5c_key(self, header: Any, claims: Any = None) -> jose.Key:
        return x509.validate_x5c(header["x5c"], [self.anchor()], now=self.clock()).key


@contextmanager
def make_harness(
    database_url: str,
    tmp_path: Path,
    clock: Clock,
    *,
    agency: str = "af",
    engine: sa.Engine | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    provider = WalletProvider()
    settings = make_settings(
        database_url,
        tmp_path,
        agency=agency,
        dev_sample_data=True,
        trusted_wallet_providers=(provider.write_anchor(tmp_path),),
        **overrides,
    )
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app, base_url=ISSUER_URL) as client:
        yield Harness(client, app.state.issuer, provider, clock)


@pytest.fixture(params=["af", "myh"])
def harness(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, clock: Clock
) -> Iterator[Harness]:
    with make_harness(database_url, tmp_path, clock, agency=request.param) as made:
        yield made


@pytest.fixture
def af(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Harness]:
    with make_harness(database_url, tmp_path, clock) as made:
        yield made


# -- verification with the core and the reference implementation ----------------------------


def verify_sd_jwt_vc(h: Harness, credential: str, holder: jose.Key) -> sdjwt_vc.VerifiedVC:
    """intyg's core: x5c to the issuer's dev CA, then a presentation with key binding."""
    resolver = sdjwt_vc.X5CKeyResolver(lambda chain, header: h.x5c_key(header))
    plain = sdjwt_vc.verify_vc(credential, resolver, require_key_binding=False, now=h.clock())
    assert plain.issuer == ISSUER_URL
    presentation = sdjwt_vc.present_vc(
        credential,
        sdjwt_vc.disclosable_claims(credential),
        holder_key=holder,
        aud="x509_san_dns:verifier.example",
        nonce="n-0S6_WzA2Mj",
    )
    return sdjwt_vc.verify_vc(
        presentation,
        resolver,
        audience="x509_san_dns:verifier.example",
        nonce="n-0S6_WzA2Mj",
        now=h.clock(),
    )


def reference_verify(h: Harness, credential: str, holder: jose.Key) -> dict[str, Any]:
    """The IETF ``sd-jwt`` reference verifier (it ignores ``typ``), issuance and KB form."""
    issuer_key = JWK(**h.x5c_key(sdjwt.parse(credential).jws.header).public_jwk())
    payload = SDJWTVerifier(credential, lambda iss, header: issuer_key).get_verified_payload()
    presentation = sdjwt.present(
        credential, [("given_name",)], holder_key=holder, aud="https://verifier.example", nonce="n1"
    )
    shown = SDJWTVerifier(
        presentation,
        lambda iss, header: issuer_key,
        expected_aud="https://verifier.example",
        expected_nonce="n1",
    ).get_verified_payload()
    assert "personal_identity_number" not in shown and shown["given_name"]
    return payload  # type: ignore[no-any-return]


def token_status(h: Harness, reference: Any) -> int:
    response = h.client.get(reference.uri)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/statuslist+jwt")
    key = h.x5c_key(jose.parse_jws(response.text).header)
    return status.status_of(reference, response.text, key, now=h.clock())


def bitstring_statuses(h: Harness, credential: dict[str, Any]) -> list[Any]:
    results = []
    for entry in credential["credentialStatus"]:
        response = h.client.get(entry["statusListCredential"])
        assert response.status_code == 200
        verified = vcdm.verify_credential(response.text, h.x5c_key, now=h.clock())
        results.append(status.bitstring_status(entry, verified.claims))
    return results


def check_sd_jwt_vc(h: Harness, credential: str, holder: jose.Key) -> sdjwt_vc.VerifiedVC:
    verified = verify_sd_jwt_vc(h, credential, holder)
    claims = verified.claims
    assert verified.header["typ"] == "dc+sd-jwt" and verified.header["x5c"]
    assert claims["cnf"]["jwk"] == {k: holder.public_jwk()[k] for k in claims["cnf"]["jwk"]}
    assert jose.jwk_thumbprint(claims["cnf"]["jwk"]) == holder.thumbprint()
    assert claims["iat"] % 86_400 == 0 and claims["exp"] % 86_400 == 0  # T051
    disclosed = {path[0] for path in verified.disclosed_paths}
    assert {"personal_identity_number", "given_name", "family_name", "birthdate"} <= disclosed
    assert not disclosed & {"iss", "exp", "cnf", "vct", "status", "iat"}
    # Decoys: the issuer-signed payload has more digests than disclosures at the top.
    parsed = sdjwt.parse(credential)
    top = [d for d in parsed.disclosures if d.name is not None and d.name in claims]
    assert len(parsed.jws.claims()["_sd"]) > len(top)
    assert token_status(h, verified.status) == status.VALID
    payload = reference_verify(h, credential, holder)
    assert payload["personal_identity_number"] == claims["personal_identity_number"]
    assert payload["vct"] == claims["vct"]
    return verified


def check_vcdm(h: Harness, credential: str, holder: jose.Key) -> vcdm.VerifiedCredential:
    verified = vcdm.verify_credential(credential, h.x5c_key, now=h.clock())
    assert verified.header["typ"] == "vc+jwt" and verified.header["x5c"]
    assert verified.issuer == ISSUER_URL
    assert verified.holder_key is not None
    assert verified.holder_key.thumbprint() == holder.thumbprint()
    document = verified.credential
    assert h.ctx.agency.type_name in document["type"]
    schema = h.client.get(document["credentialSchema"]["id"])
    assert schema.status_code == 200 and schema.json()["type"] == "object"
    results = bitstring_statuses(h, document)
    assert [r.purpose for r in results] == ["revocation", "suspension"]
    assert not any(r.status for r in results)
    return verified


# -- metadata (T034) ------------------------------------------------------------------------


def test_metadata_documents(harness: Harness) -> None:
    wallet = harness.wallet()
    metadata = wallet.metadata()
    assert metadata.credential_issuer == ISSUER_URL
    assert set(metadata.credential_configurations) == set(AGENCY_CONFIGURATIONS[harness.agency])
    assert metadata.batch_size == harness.ctx.settings.batch_size
    assert metadata.nonce_endpoint == ISSUER_URL + "/nonce"
    sd = metadata.configuration(harness.sd_jwt_id)
    assert sd["format"] == "dc+sd-jwt" and sd["vct"] == harness.ctx.agency.vct
    assert sd["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"] == ["ES256"]
    labels = {
        tuple(c["path"]): {d["locale"]: d["name"] for d in c["display"]}
        for c in sd["credential_metadata"]["claims"]
    }
    assert labels[("personal_identity_number",)] == {
        "sv": "Personnummer",
        "en": "Personal identity number",
    }
    jwt_vc = metadata.configuration(harness.vcdm_id)
    assert jwt_vc["credential_definition"]["type"][-1] == harness.ctx.agency.type_name
    assert all(c["path"][0] == "credentialSubject" for c in jwt_vc["credential_metadata"]["claims"])
    server = wallet.as_metadata()
    assert server["issuer"] == ISSUER_URL
    assert server["require_pushed_authorization_requests"] is True
    assert server["code_challenge_methods_supported"] == ["S256"]
    assert "attest_jwt_client_auth" in server["token_endpoint_auth_methods_supported"]
    assert server["pre-authorized_grant_anonymous_access_supported"] is True
    assert server["authorization_response_iss_parameter_supported"] is True
    assert set(server["scopes_supported"]) == {
        c["scope"] for c in metadata.credential_configurations.values()
    }
    urls = [v for v in server.values() if isinstance(v, str) and "://" in v]
    assert all(u.startswith("https://") for u in urls)


def test_path_inserted_well_known(database_url: str, tmp_path: Path, clock: Clock) -> None:
    with make_harness(database_url, tmp_path, clock, public_base_url=ISSUER_URL + "/af") as h:
        document = h.client.get("/.well-known/openid-credential-issuer/af")
        assert document.status_code == 200
        assert document.json()["credential_issuer"] == ISSUER_URL + "/af"
        assert h.client.get("/.well-known/openid-credential-issuer").status_code == 404
        server = h.client.get("/.well-known/oauth-authorization-server/af")
        assert server.json()["issuer"] == ISSUER_URL + "/af"


# -- pre-authorized code flow ---------------------------------------------------------------


@pytest.mark.parametrize("tx_code", [True, False])
def test_pre_authorized_both_formats(harness: Harness, tx_code: bool) -> None:
    """One offer, one token, both formats from the same record (issue 3 item 1)."""
    created = harness.offer(tx_code=tx_code)
    wallet = harness.wallet()
    offer = wallet.resolve_offer(created.link)
    assert offer.credential_issuer == ISSUER_URL
    assert set(offer.credential_configuration_ids) == set(AGENCY_CONFIGURATIONS[harness.agency])
    assert (offer.pre_authorized_code.tx_code is not None) is tx_code  # type: ignore[union-attr]
    response = wallet.token_request(wallet.pre_authorized_form(offer, created.tx_code))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = oid4vci.parse_token_response(response.json())
    assert token.token_type == "DPoP"

    sd = wallet.request_credentials(token, configuration_id=harness.sd_jwt_id)
    assert sd.response.headers["cache-control"] == "no-store"  # T048
    verified = check_sd_jwt_vc(harness, sd.credentials[0], sd.keys[0])
    assert verified.vct == harness.ctx.agency.vct

    jwt = wallet.request_credentials(token, configuration_id=harness.vcdm_id)
    document = check_vcdm(harness, jwt.credentials[0], jwt.keys[0]).credential
    subject = document["credentialSubject"]
    assert subject["personal_identity_number"] == verified.claims["personal_identity_number"]

    assert wallet.notify(token, sd.notification_id or "", "credential_accepted").status_code == 204
    again = wallet.notify(token, sd.notification_id or "", "credential_accepted")
    assert again.status_code == 204  # idempotent
    with db.session(harness.ctx.engine, write=False) as unit:
        rows = list(unit.scalars(sa.select(Issuance)))
        assert len(rows) == 2
        assert {r.format for r in rows} == {"dc+sd-jwt", "jwt_vc_json"}
        assert {r.notification_event for r in rows} == {"credential_accepted", None}
        audit_rows = list(unit.scalars(sa.select(AuditEntry)))
    issued = [a for a in audit_rows if a.action == "credential.issued"]
    assert len(issued) == 2
    number = verified.claims["personal_identity_number"]
    assert all(number not in str(a.details) + str(a.subject) + a.actor for a in audit_rows)


def test_batch_issuance_is_unlinkable(harness: Harness) -> None:
    """T051, T054: distinct keys yield distinct salts, status indices and cnf keys."""
    created = harness.offer()
    wallet = harness.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
    batch = wallet.request_credentials(token, configuration_id=harness.sd_jwt_id, count=3)
    assert len(batch.credentials) == 3
    salts: list[str] = []
    indices = set()
    cnf = set()
    for credential, key in zip(batch.credentials, batch.keys, strict=True):
        verified = check_sd_jwt_vc(harness, credential, key)
        salts += [d.salt for d in sdjwt.parse(credential).disclosures]
        indices.add(verified.claims["status"]["status_list"]["idx"])
        cnf.add(jose.jwk_thumbprint(verified.claims["cnf"]["jwk"]))
        assert len(jose.b64url_decode(salts[-1])) >= 16
    assert len(salts) == len(set(salts))
    assert len(indices) == 3 and len(cnf) == 3
    assert sorted(indices) != list(range(min(indices), min(indices) + 3))
    vc_batch = wallet.request_credentials(token, configuration_id=harness.vcdm_id, count=2)
    vc_indices = {
        vcdm.verify_credential(c, harness.x5c_key, now=harness.clock()).credential[
            "credentialStatus"
        ][0]["statusListIndex"]
        for c in vc_batch.credentials
    }
    assert len(vc_indices) == 2


def test_key_attestation_accepted(af: Harness) -> None:
    created = af.offer()
    wallet = af.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
    issued = wallet.request_credentials(token, configuration_id=af.sd_jwt_id, attest_keys=True)
    check_sd_jwt_vc(af, issued.credentials[0], issued.keys[0])


def test_attested_wallet_on_pre_authorized_grant(af: Harness) -> None:
    """A wallet may authenticate on the pre-authorized grant; proofs then carry its iss."""
    created = af.offer()
    wallet = af.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(created.link), attest=True)
    issued = wallet.request_credentials(
        token, configuration_id=af.sd_jwt_id, client_id=wallet.client_id
    )
    assert len(issued.credentials) == 1


def test_bearer_tokens_when_dpop_is_off(database_url: str, tmp_path: Path, clock: Clock) -> None:
    with make_harness(database_url, tmp_path, clock, haip=False) as h:
        created = h.offer()
        wallet = h.wallet(use_dpop=False)
        token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
        assert token.token_type == "Bearer"
        issued = wallet.request_credentials(token, configuration_id=h.sd_jwt_id)
        check_sd_jwt_vc(h, issued.credentials[0], issued.keys[0])


def test_offer_document_and_expiry(af: Harness) -> None:
    """T056: unguessable id, JSON only, no-store; expired or unknown -> 404."""
    created = af.offer(ttl=60)
    assert len(created.offer_id) >= 22
    response = af.client.get(created.offer_uri)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert "personal_identity_number" not in response.text
    assert af.client.get(f"/offers/{created.offer_id[:-1]}x").status_code == 404
    af.clock.advance(61)
    expired = af.client.get(created.offer_uri)
    assert expired.status_code == 404 and expired.json()["error"] == "not_found"


def test_revocation_shows_in_served_status_list(af: Harness) -> None:
    created = af.offer()
    wallet = af.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
    issued = wallet.request_credentials(token, configuration_id=af.sd_jwt_id)
    verified = verify_sd_jwt_vc(af, issued.credentials[0], issued.keys[0])
    with db.session(af.ctx.engine) as unit:
        row = unit.scalars(sa.select(Issuance)).one()
        from issuer import status as issuer_status

        issuer_status.set_status(unit, row, issuer_status.INVALID, af.clock())
    af.clock.advance(af.ctx.settings.status_ttl_seconds)
    assert token_status(af, verified.status) == status.INVALID


# -- authorization code flow with PAR, PKCE, wallet attestation and eID ---------------------


@pytest.fixture
def eid_issuer(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, clock: Clock
) -> Iterator[tuple[Harness, Callable[[str, Wallet], httpx.Response]]]:
    """The development eID on a loopback port and an issuer that logs people in with it.
    The parameter is the agency, with ``-generated-key`` for an issuer that has no master
    key configured, only ``dev_generate_master_key``."""
    param = getattr(request, "param", "af")
    agency = param.split("-")[0]
    keys: dict[str, Any] = {}
    if param.endswith("-generated-key"):
        keys = {"master_key": None, "dev_generate_master_key": True}
    op_socket, op_base = bound_socket()
    eid_settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[
            EidClient(
                client_id=EID_CLIENT,
                client_secret=EID_SECRET,
                redirect_uris=(
                    f"{ISSUER_URL}/authorize/callback",
                    f"{ISSUER_URL}/login/callback",
                ),
            )
        ],
    )
    config = OidcConfig(
        discovery_url=f"{op_base}/.well-known/openid-configuration",
        client_id=EID_CLIENT,
        client_secret=EID_SECRET,
        redirect_uri=f"{ISSUER_URL}/login/callback",
    )
    with (
        serve(create_eid_app(eid_settings), op_socket),
        make_harness(database_url, tmp_path, clock, agency=agency, eid=config, **keys) as h,
    ):
        browser = httpx.Client()

        def login(authorize_url: str, wallet: Wallet, person: str = "anna") -> httpx.Response:
            """The person's browser: issuer -> eID picker -> issuer callback -> wallet."""
            started = h.client.get(authorize_url, follow_redirects=False)
            assert started.status_code == 303, started.text
            picker = browser.get(started.headers["location"])
            assert picker.status_code == 200
            transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
            assert transaction
            decided = browser.post(
                f"{op_base}/authorize", data={"transaction": transaction.group(1), "person": person}
            )
            assert decided.status_code == 302
            callback = urlsplit(decided.headers["location"])
            assert f"{callback.scheme}://{callback.netloc}" == ISSUER_URL
            return h.client.get(decided.headers["location"], follow_redirects=False)

        yield h, login  # type: ignore[misc]
        browser.close()


REDIRECT = "https://wallet.example/cb"


@pytest.mark.parametrize("eid_issuer", ["af", "myh"], indirect=True)
def test_authorization_code_flow_with_scope(eid_issuer: Any) -> None:
    h, login = eid_issuer
    with db.session(h.ctx.engine) as unit:
        h.add_person(unit, ANNA[0])
    wallet = h.wallet()
    scope = " ".join(c.scope for c in h.ctx.agency.configurations)
    pushed, start = wallet.push_authorization(redirect_uri=REDIRECT, scope=scope)
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.headers["cache-control"] == "no-store"
    answer = login(start.authorize_url, wallet)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(REDIRECT + "?")
    params = wallet.authorization_response(answer.headers["location"])
    assert params["iss"] == ISSUER_URL and params["state"] == start.state  # RFC 9207
    response = wallet.authorization_code_token(params["code"], start)
    assert response.status_code == 200, response.text
    token = oid4vci.parse_token_response(response.json())
    sd = wallet.request_credentials(token, configuration_id=h.sd_jwt_id, client_id=wallet.client_id)
    verified = check_sd_jwt_vc(h, sd.credentials[0], sd.keys[0])
    assert verified.claims["personal_identity_number"] == ANNA[0]
    jwt = wallet.request_credentials(token, configuration_id=h.vcdm_id)
    check_vcdm(h, jwt.credentials[0], jwt.keys[0])
    # The code is single use (T019/T028 for codes).
    replay = wallet.authorization_code_token(params["code"], start)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("eid_issuer", ["af-generated-key"], indirect=True)
def test_authorization_code_flow_with_a_generated_master_key(eid_issuer: Any) -> None:
    """The eID login of the code flow uses the key the issuer runs with, also one generated
    in development (``dev_generate_master_key``, no ``master_key`` configured)."""
    h, login = eid_issuer
    assert h.ctx.settings.master_key is None
    with db.session(h.ctx.engine) as unit:
        h.add_person(unit, ANNA[0])
    wallet = h.wallet()
    pushed, start = wallet.push_authorization(
        redirect_uri=REDIRECT, scope=h.ctx.agency.configurations[0].scope
    )
    assert pushed.status_code == 201 and start is not None, pushed.text
    answer = login(start.authorize_url, wallet)
    assert answer.status_code == 303, answer.text
    params = wallet.authorization_response(answer.headers["location"])
    response = wallet.authorization_code_token(params["code"], start)
    assert response.status_code == 200, response.text


def test_authorization_code_flow_with_authorization_details(eid_issuer: Any) -> None:
    h, login = eid_issuer
    with db.session(h.ctx.engine) as unit:
        h.add_person(unit, ANNA[0])
    wallet = h.wallet()
    details = [
        {
            "type": "openid_credential",
            "credential_configuration_id": h.sd_jwt_id,
            "locations": [ISSUER_URL],
        }
    ]
    _, start = wallet.push_authorization(redirect_uri=REDIRECT, authorization_details=details)
    assert start is not None
    params = wallet.authorization_response(login(start.authorize_url, wallet).headers["location"])
    response = wallet.authorization_code_token(params["code"], start)
    assert response.status_code == 200, response.text
    token = oid4vci.parse_token_response(response.json())
    assert token.authorization_details is not None
    (granted,) = token.authorization_details
    assert granted.credential_configuration_id == h.sd_jwt_id
    issued = wallet.request_credentials(
        token, credential_identifier=granted.credential_identifiers[0]
    )
    check_sd_jwt_vc(h, issued.credentials[0], issued.keys[0])
    # With credential_identifiers granted, configuration ids are refused (§8.2).
    refused = wallet.credential_request(token, {"credential_configuration_id": h.sd_jwt_id})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_credential_request"


def test_person_without_records_gets_access_denied(eid_issuer: Any) -> None:
    h, login = eid_issuer
    wallet = h.wallet()
    _, start = wallet.push_authorization(
        redirect_uri=REDIRECT, scope=h.ctx.agency.configurations[0].scope
    )
    answer = login(start.authorize_url, wallet, "erik")
    params = wallet.authorization_response(answer.headers["location"])
    assert params["error"] == "access_denied" and params["iss"] == ISSUER_URL
    assert "code" not in params
