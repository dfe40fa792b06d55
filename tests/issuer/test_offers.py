"""issuer/offers.py: stored hashes only, tx_code shape, offer document (OpenID4VCI §4.1.1),
single use and expiry, QR SVG."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from intyg.web import db
from issuer import offers
from issuer.app import IssuerContext
from issuer.models import CredentialOffer, Person, digest
from issuer.records import RegistrationInput, upsert_registration
from tests.issuer.conftest import ISSUER_URL, Clock

NUMBER = "198112189884"


def person_with_registration(ctx: IssuerContext) -> tuple[Person, int]:
    with db.session(ctx.engine) as unit:
        person = ctx.person_vault().upsert(
            unit,
            NUMBER,
            given_name="Anna",
            family_name="Andersson",
            birthdate="1981-12-18",
            now=ctx.clock(),
        )
        row = upsert_registration(
            unit,
            person,
            RegistrationInput(
                registered=True,
                category_code="11",
                category_label="Arbetslös",
                registered_since=datetime.date(2026, 1, 12),
            ),
            ctx.clock(),
        )
        assert row.id is not None
        return person, row.id


def make(ctx: IssuerContext, *, tx_code: bool, **kwargs: object) -> offers.CreatedOffer:
    person, record_id = person_with_registration(ctx)
    with db.session(ctx.engine) as unit:
        return offers.create_offer(unit, ctx, person, record_id, tx_code=tx_code, **kwargs)  # type: ignore[arg-type]


def stored(ctx: IssuerContext, offer_id: str) -> CredentialOffer:
    with db.session(ctx.engine, write=False) as unit:
        return unit.scalars(
            sa.select(CredentialOffer).where(CredentialOffer.offer_id == offer_id)
        ).one()


def document(ctx: IssuerContext, offer_id: str) -> dict[str, object]:
    with db.session(ctx.engine, write=False) as unit:
        return offers.offer_document(unit, ctx, offer_id)


def test_offer_uri_and_link(ctx: IssuerContext) -> None:
    offer = make(ctx, tx_code=True)
    assert offer.offer_uri == f"{ISSUER_URL}/offers/{offer.offer_id}"
    parts = urlsplit(offer.link)
    assert offer.link.startswith("openid-credential-offer://?")
    assert parse_qs(parts.query) == {"credential_offer_uri": [offer.offer_uri]}
    assert offer.expires_at == ctx.clock() + ctx.settings.offer_ttl
    assert offer.configuration_ids == ctx.agency.configuration_ids


def test_stored_row_holds_only_hashes(ctx: IssuerContext) -> None:
    offer = make(ctx, tx_code=True)
    row = stored(ctx, offer.offer_id)
    code = document(ctx, offer.offer_id)["grants"][offers.PRE_AUTHORIZED_GRANT][  # type: ignore[index]
        "pre-authorized_code"
    ]
    assert row.pre_authorized_code_hash == digest(code)
    # Keyed and bound to the offer: a dump alone cannot be brute-forced over 10^6 codes.
    assert row.tx_code_hash != digest(offer.tx_code or "")
    assert row.tx_code_hash == offers.tx_code_digest(ctx, offer.offer_id, offer.tx_code or "")
    values = [str(v) for v in row.model_dump().values()]
    assert code not in values and offer.tx_code not in values
    assert offers.check_tx_code(ctx, row, offer.tx_code or "")
    assert not offers.check_tx_code(ctx, row, "000000" if offer.tx_code != "000000" else "111111")
    other = make(ctx, tx_code=True)
    assert offers.tx_code_digest(ctx, other.offer_id, offer.tx_code or "") != row.tx_code_hash


def test_tx_code_shape(ctx: IssuerContext) -> None:
    codes = {make(ctx, tx_code=True).tx_code for _ in range(5)}
    assert all(c is not None and c.isdigit() and len(c) == 6 for c in codes)
    assert len(codes) > 1


def test_offer_document_shape(ctx: IssuerContext) -> None:
    offer = make(ctx, tx_code=True)
    doc = document(ctx, offer.offer_id)
    assert doc["credential_issuer"] == ISSUER_URL
    assert doc["credential_configuration_ids"] == list(ctx.agency.configuration_ids)
    grant = doc["grants"][offers.PRE_AUTHORIZED_GRANT]  # type: ignore[index]
    assert set(grant) == {"pre-authorized_code", "tx_code"}
    assert grant["tx_code"]["input_mode"] == "numeric" and grant["tx_code"]["length"] == 6
    assert "Arbetsförmedlingen" in grant["tx_code"]["description"]
    assert len(grant["tx_code"]["description"]) <= 300


def test_offer_without_tx_code(ctx: IssuerContext) -> None:
    offer = make(ctx, tx_code=False, configuration_ids=["RegistrationCertificate_dc+sd-jwt"])
    assert offer.tx_code is None and stored(ctx, offer.offer_id).tx_code_hash is None
    doc = document(ctx, offer.offer_id)
    assert doc["credential_configuration_ids"] == ["RegistrationCertificate_dc+sd-jwt"]
    assert "tx_code" not in doc["grants"][offers.PRE_AUTHORIZED_GRANT]  # type: ignore[index]


def test_offer_expires(ctx: IssuerContext, clock: Clock) -> None:
    offer = make(ctx, tx_code=False, ttl=60)
    clock.advance(60)
    with pytest.raises(offers.OfferError):
        document(ctx, offer.offer_id)


def test_used_offer_is_not_served(ctx: IssuerContext) -> None:
    offer = make(ctx, tx_code=False)
    code = document(ctx, offer.offer_id)["grants"][offers.PRE_AUTHORIZED_GRANT][  # type: ignore[index]
        "pre-authorized_code"
    ]
    with db.session(ctx.engine) as unit:
        assert db.consume_once(
            unit, CredentialOffer, "pre_authorized_code_hash", digest(code), now=ctx.clock()
        )
    with pytest.raises(offers.OfferError):
        document(ctx, offer.offer_id)


def test_unknown_offer(ctx: IssuerContext) -> None:
    with pytest.raises(offers.OfferError):
        document(ctx, "nope")


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([], "configuration_ids must not be empty"),
        (["RegistrationCertificate_dc+sd-jwt"] * 2, "configuration_ids must be unique"),
        (["QualificationAttestation_dc+sd-jwt"], "unknown credential configuration"),
    ],
)
def test_configuration_ids_refused(ctx: IssuerContext, ids: list[str], message: str) -> None:
    with pytest.raises(offers.OfferError, match=message):
        make(ctx, tx_code=False, configuration_ids=ids)


def test_record_of_another_person_refused(ctx: IssuerContext) -> None:
    _, record_id = person_with_registration(ctx)
    with db.session(ctx.engine) as unit:
        other = ctx.person_vault().upsert(
            unit,
            "198503152376",
            given_name="Erik",
            family_name="Johansson",
            birthdate="1985-03-15",
            now=ctx.clock(),
        )
        with pytest.raises(offers.OfferError, match="no such record"):
            offers.create_offer(unit, ctx, other, record_id, tx_code=False)


def test_qr_svg_is_svg_with_the_link() -> None:
    link = offers.offer_link(f"{ISSUER_URL}/offers/abc")
    svg = offers.qr_svg(link, title="QR")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
    assert root.find("{http://www.w3.org/2000/svg}desc").text == link  # type: ignore[union-attr]
    assert svg.count("<path") >= 1
