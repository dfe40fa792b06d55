"""Credential offers for a person's record (OpenID4VCI 1.0 §4.1; protocols.md §1.3).

:func:`create_offer` stores a :class:`~issuer.models.CredentialOffer` row and returns what
the agency hands out: the ``credential_offer_uri`` (``https://<issuer>/offers/<offer_id>``),
the same-device link ``openid-credential-offer://?credential_offer_uri=...`` (also the QR
code's content) and, when asked for, the ``tx_code`` to send out of band.

What is stored (models.py rules): the ``pre-authorized_code`` and the ``tx_code`` only as
:func:`~issuer.models.digest`. The offer document served at the ``credential_offer_uri``
must still carry the code, so the code is not random but ``HMAC-SHA256(k, offer_id)`` with
``k`` derived from the master key (:func:`intyg.web.sessions.derive_key`): the
``offer_id`` alone, e.g. from a database dump, redeems nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import segno
import sqlalchemy as sa

from intyg import jose
from intyg.web import db
from intyg.web.sessions import derive_key

from .models import AFRegistration, CredentialOffer, MYHAward, Person, digest

if TYPE_CHECKING:
    from .app import IssuerContext

__all__ = [
    "OFFER_SCHEME",
    "PRE_AUTHORIZED_GRANT",
    "CreatedOffer",
    "OfferError",
    "check_tx_code",
    "create_offer",
    "offer_document",
    "offer_link",
    "pre_authorized_code",
    "qr_svg",
]

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
OFFER_SCHEME = "openid-credential-offer://"
CODE_KEY_PURPOSE = "intyg/issuer/pre-authorized-code/v1"
_CODE_KEY = "offers.code_key"
#: §4.1.1: ``description`` at most 300 characters; Swedish, the agency's language.
TX_CODE_DESCRIPTION = "Ange koden som {agency} har skickat till dig separat."


class OfferError(ValueError):
    """An offer could not be made or served; the message names the rule, never a value."""


@dataclass(frozen=True)
class CreatedOffer:
    """A new offer. ``tx_code`` is the plain code for out-of-band delivery (or None)."""

    offer_id: str
    offer_uri: str
    link: str
    tx_code: str | None
    expires_at: int
    configuration_ids: tuple[str, ...]


def _code_key(ctx: IssuerContext) -> bytes:
    key = ctx.extras.get(_CODE_KEY)
    if key is None:
        key = ctx.extras[_CODE_KEY] = derive_key(ctx.store.current, CODE_KEY_PURPOSE)
    return key  # type: ignore[no-any-return]


def pre_authorized_code(ctx: IssuerContext, offer_id: str) -> str:
    """The offer's ``pre-authorized_code``: HMAC of the ``offer_id`` (never stored)."""
    mac = hmac.new(_code_key(ctx), offer_id.encode("ascii"), hashlib.sha256).digest()
    return jose.b64url_encode(mac)


def _tx_code(length: int) -> str:
    return f"{secrets.randbelow(10**length):0{length}d}"


def tx_code_digest(ctx: IssuerContext, offer_id: str, tx_code: str) -> str:
    """What is stored for a ``tx_code``: a keyed hash bound to its offer.

    A plain SHA-256 of six digits is reversed from a database dump in a million guesses; the
    key (derived from the master key, never in the database) and the offer id prevent that.
    """
    message = f"tx_code\x00{offer_id}\x00{tx_code}".encode()
    return jose.b64url_encode(hmac.new(_code_key(ctx), message, hashlib.sha256).digest())


def check_tx_code(ctx: IssuerContext, offer: CredentialOffer, tx_code: str) -> bool:
    """Constant-time comparison of a submitted ``tx_code`` with the stored digest."""
    if offer.tx_code_hash is None:
        return False
    sent = tx_code_digest(ctx, offer.offer_id, tx_code)
    return hmac.compare_digest(sent.encode(), offer.tx_code_hash.encode())


def offer_link(offer_uri: str) -> str:
    """The same-device / QR form, by reference (§4.1: ``credential_offer_uri``)."""
    return f"{OFFER_SCHEME}?credential_offer_uri={quote(offer_uri, safe='')}"


def _configuration_ids(ctx: IssuerContext, requested: Sequence[str] | None) -> tuple[str, ...]:
    """§4.1.1: non-empty, unique, each one of the agency's configurations."""
    if requested is None:
        return ctx.agency.configuration_ids
    ids = tuple(requested)
    if not ids:
        raise OfferError("configuration_ids must not be empty")
    if len(set(ids)) != len(ids):
        raise OfferError("configuration_ids must be unique")
    if not set(ids) <= set(ctx.agency.configuration_ids):
        raise OfferError("unknown credential configuration")
    return ids


def _check_record(unit: db.Session, ctx: IssuerContext, person: Person, record_id: int) -> None:
    model = AFRegistration if ctx.agency.key == "af" else MYHAward
    row = unit.get(model, record_id)
    if row is None or row.person_id != person.id:
        raise OfferError("no such record for this person")


def create_offer(
    unit: db.Session,
    ctx: IssuerContext,
    person: Person,
    record_id: int,
    configuration_ids: Sequence[str] | None = None,
    *,
    tx_code: bool,
    ttl: int | None = None,
) -> CreatedOffer:
    """Store a single-use, short-lived offer for one of ``person``'s records.

    ``configuration_ids`` defaults to every configuration of the agency (both formats);
    ``ttl`` defaults to ``offer_ttl``. With ``tx_code`` a numeric code of
    ``tx_code_length`` digits is made; only its digest is stored.
    """
    ids = _configuration_ids(ctx, configuration_ids)
    _check_record(unit, ctx, person, record_id)
    assert person.id is not None
    offer_id = secrets.token_urlsafe(32)
    code = _tx_code(ctx.settings.tx_code_length) if tx_code else None
    now = ctx.clock()
    expires_at = now + (ctx.settings.offer_ttl if ttl is None else ttl)
    unit.add(
        CredentialOffer(
            offer_id=offer_id,
            pre_authorized_code_hash=digest(pre_authorized_code(ctx, offer_id)),
            tx_code_hash=tx_code_digest(ctx, offer_id, code) if code is not None else None,
            person_id=person.id,
            record_id=record_id,
            configuration_ids=list(ids),
            created_at=now,
            expires_at=expires_at,
        )
    )
    unit.flush()
    offer_uri = ctx.settings.url(f"/offers/{offer_id}")
    return CreatedOffer(offer_id, offer_uri, offer_link(offer_uri), code, expires_at, ids)


def offer_document(unit: db.Session, ctx: IssuerContext, offer_id: str) -> dict[str, Any]:
    """The ``credential_offer`` object behind ``/offers/{offer_id}`` (§4.1.1, §4.1.3).

    Refused (OfferError) when unknown, expired or already redeemed.
    """
    row = unit.scalars(
        sa.select(CredentialOffer).where(CredentialOffer.offer_id == offer_id)
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= ctx.clock():
        raise OfferError("no such offer, or it has expired or been used")
    grant: dict[str, Any] = {"pre-authorized_code": pre_authorized_code(ctx, row.offer_id)}
    if row.tx_code_hash is not None:
        grant["tx_code"] = {
            "input_mode": "numeric",
            "length": ctx.settings.tx_code_length,
            "description": TX_CODE_DESCRIPTION.format(agency=ctx.agency.name["sv"]),
        }
    return {
        "credential_issuer": ctx.settings.issuer_identifier,
        "credential_configuration_ids": list(row.configuration_ids),
        "grants": {PRE_AUTHORIZED_GRANT: grant},
    }


def qr_svg(link: str, *, title: str | None = None) -> str:
    """The link as a standalone SVG QR code (error correction M, quiet zone 4 modules).

    ``viewBox`` instead of a fixed size, so a page scales it; the link is also in
    ``<desc>`` for tools that read SVG text."""
    buffer = io.BytesIO()
    segno.make(link, error="m", micro=False).save(
        buffer,
        kind="svg",
        xmldecl=False,
        svgns=True,
        omitsize=True,
        border=4,
        title=title,
        desc=link,
        dark="#000000",
        light="#ffffff",
    )
    return buffer.getvalue().decode("utf-8")
