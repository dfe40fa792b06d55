"""The person's credentials: list, detail, status, delete (issue 4 item 7; T074, T083).

Every function takes the ``account_id`` from :func:`wallet.accounts.current_account` and
filters by it. The list is one indexed query over :class:`~wallet.models.WalletCredential`
(no decryption: its display fields are not personal data); the detail opens one sealed
instance to show the claims with labels from the type metadata.

Status (protocols.md §5): Token Status List for SD-JWT VC, Bitstring Status List for
``jwt_vc_json``; the list is fetched through the guarded outbound client, its signature
checked with the issuer's ``x5c`` chain against our trust anchors, and the result cached
on the card for ``status_cache_seconds``. Failure to check shows "unknown", never "valid".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from intyg import jose, schemas, sdjwt, vcdm
from intyg import status as core_status
from intyg.fetch import FetchError
from intyg.web import db
from intyg.web.crypto_store import record_aad

from .app import WalletContext
from .issuance import CREDENTIAL_PURPOSE, SD_JWT_VC, issuer_key_resolver
from .models import CredentialInstance, HolderKey, WalletCredential

__all__ = [
    "CredentialDetail",
    "ListItem",
    "delete_credential",
    "detail",
    "list_credentials",
    "refresh_status",
]

log = logging.getLogger("wallet.credentials")

VALID, REVOKED, SUSPENDED, EXPIRED, UNKNOWN = "valid", "revoked", "suspended", "expired", "unknown"


class ListItem(Protocol):
    """One card of the list page, in the page language (plain columns, migration 0003)."""

    public_id: str
    name: str
    issuer: str
    received_at: int
    expires_at: int | None
    status: str


def effective_status(status: str, expires_at: int | None, now: int) -> str:
    if status == VALID and expires_at is not None and expires_at <= now:
        return EXPIRED
    return status


def _list_columns(language: str) -> tuple[Any, ...]:
    suffix = "en" if language == "en" else "sv"
    return (
        WalletCredential.public_id,
        getattr(WalletCredential, f"name_{suffix}").label("name"),
        getattr(WalletCredential, f"issuer_name_{suffix}").label("issuer"),
        WalletCredential.received_at,
        WalletCredential.expires_at,
        WalletCredential.status,
    )


def list_credentials(
    ctx: WalletContext, account_id: int, language: str = "sv"
) -> Sequence[ListItem]:
    """One query on ``ix_credentials_account_received``, string columns only; newest first."""
    with db.session(ctx.engine, write=False) as unit:
        rows = unit.execute(
            sa.select(*_list_columns(language))
            .where(WalletCredential.account_id == account_id)  # type: ignore[arg-type]
            .order_by(WalletCredential.received_at.desc(), WalletCredential.id.desc())  # type: ignore[attr-defined,union-attr]
        ).all()
    # The rows themselves (named like ListItem's fields): no per-card object to build.
    return rows  # type: ignore[return-value]


def _card(unit: db.Session, account_id: int, public_id: str) -> WalletCredential | None:
    return unit.scalars(
        sa.select(WalletCredential).where(
            WalletCredential.public_id == public_id,  # type: ignore[arg-type]
            WalletCredential.account_id == account_id,  # type: ignore[arg-type]
        )
    ).first()


@dataclass(frozen=True)
class CredentialDetail:
    card: WalletCredential
    claims: list[tuple[str, str]]
    status: str


def _instances(unit: db.Session, card: WalletCredential) -> list[CredentialInstance]:
    return list(
        unit.scalars(
            sa.select(CredentialInstance)
            .where(
                CredentialInstance.credential_id == card.id,  # type: ignore[arg-type]
                CredentialInstance.account_id == card.account_id,  # type: ignore[arg-type]
            )
            .order_by(CredentialInstance.id)  # type: ignore[arg-type]
        )
    )


def open_instance(ctx: WalletContext, instance: CredentialInstance) -> str:
    assert instance.id is not None
    sealed = ctx.store.open(instance.sealed_credential, record_aad(CREDENTIAL_PURPOSE, instance.id))
    return sealed.decode("ascii")


def _claims(card: WalletCredential, text: str) -> dict[str, Any]:
    if card.format == SD_JWT_VC:
        parsed = sdjwt.parse(text)
        claims, _ = sdjwt.process(jose.parse_jws(parsed.issuer_jwt).claims(), parsed.disclosures)
        return {
            k: v
            for k, v in claims.items()
            if k not in ("iss", "iat", "nbf", "exp", "cnf", "vct", "status", "vct#integrity")
        }
    _, payload = vcdm.decode_unverified(text)
    subject = payload.get("credentialSubject")
    subject = subject[0] if isinstance(subject, list) and subject else subject
    return {k: v for k, v in (subject or {}).items() if k != "id"}


def _flatten(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        out: list[tuple[tuple[Any, ...], Any]] = []
        for key, item in value.items():
            out.extend(_flatten(item, (*path, key)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = []
        for index, item in enumerate(value):
            out.extend(_flatten(item, (*path, index)))
        return out
    if isinstance(value, list):
        return [(path, ", ".join(str(v) for v in value))]
    return [(path, value)]


def _labels(card: WalletCredential, language: str) -> dict[Any, str]:
    if card.format != SD_JWT_VC or not card.vct:
        return {}
    try:
        return dict(schemas.claim_display(card.vct, language))
    except (schemas.SchemaError, ValueError):
        return {}


def _label(labels: dict[Any, str], path: tuple[Any, ...]) -> str:
    for length in range(len(path), 0, -1):
        generic = tuple(None if isinstance(p, int) else p for p in path[:length])
        for candidate in (path[:length], generic):
            if candidate in labels:
                rest = [str(p) for p in path[length:] if not isinstance(p, int)]
                return " / ".join([labels[candidate], *rest])
    return " / ".join(str(p) for p in path if not isinstance(p, int))


def detail(
    ctx: WalletContext, account_id: int, public_id: str, language: str
) -> CredentialDetail | None:
    """The card, its claims with human labels, and a fresh status (None: not yours)."""
    refresh_status(ctx, account_id, public_id)
    with db.session(ctx.engine, write=False) as unit:
        card = _card(unit, account_id, public_id)
        if card is None:
            return None
        instances = _instances(unit, card)
        unit.expunge(card)
    claims: list[tuple[str, str]] = []
    if instances:
        labels = _labels(card, language)
        values = _claims(card, open_instance(ctx, instances[0]))
        claims = [(_label(labels, path), str(value)) for path, value in _flatten(values)]
    return CredentialDetail(
        card, claims, effective_status(card.status, card.expires_at, ctx.clock())
    )


# -- status (protocols.md §5) --------------------------------------------------------------


def _token_status(ctx: WalletContext, card: WalletCredential, reference: dict[str, Any]) -> int:
    uri = reference.get("uri")
    if not isinstance(uri, str):
        raise core_status.StatusError("status reference without uri")
    token = core_status.fetch_status_list_token(uri, ctx.outbound.fetch)
    header = jose.parse_jws(token).header
    key = issuer_key_resolver(ctx, card.credential_issuer)(header, {})
    return core_status.status_of(
        {"status_list": {"uri": uri, "idx": reference.get("idx")}}, token, key, now=ctx.clock()
    )


def _bitstring_status(ctx: WalletContext, card: WalletCredential, reference: dict[str, Any]) -> int:
    entry = {k: v for k, v in reference.items() if k != "kind"}
    parsed = core_status.parse_bitstring_status_entry(entry)
    response = ctx.outbound.fetch(parsed.list_credential, "application/vc+jwt")
    token = response.body.decode("ascii").strip()
    verified = vcdm.verify_credential(
        token, issuer_key_resolver(ctx, card.credential_issuer), now=ctx.clock()
    )
    result = core_status.bitstring_status(parsed, verified.claims)
    if result.status == 0:
        return 0
    return 2 if result.purpose == "suspension" else 1


def _status_of(ctx: WalletContext, card: WalletCredential, instances: list[Any]) -> str:
    worst = 0
    for instance in instances:
        reference = instance.status_reference
        if not reference:
            continue
        if reference.get("kind") == "token_status_list":
            value = _token_status(ctx, card, reference)
        else:
            value = _bitstring_status(ctx, card, reference)
        if value == 1:
            return REVOKED
        worst = max(worst, value)
    return SUSPENDED if worst == 2 else VALID


def refresh_status(
    ctx: WalletContext, account_id: int, public_id: str, force: bool = False
) -> None:
    """Fetch the status of the card's instances unless checked recently; fail closed."""
    now = ctx.clock()
    with db.session(ctx.engine, write=False) as unit:
        card = _card(unit, account_id, public_id)
        if card is None:
            return
        fresh = card.status_checked_at is not None and (
            now - card.status_checked_at < ctx.settings.status_cache_seconds
        )
        if card.status == REVOKED or (fresh and not force):
            return
        instances = _instances(unit, card)
        unit.expunge(card)
    try:
        status = _status_of(ctx, card, instances)
    except (core_status.StatusError, FetchError, ValueError) as exc:
        log.info("status check failed: %s", type(exc).__name__)
        status = UNKNOWN
    with db.session(ctx.engine) as unit:
        unit.execute(
            sa.update(WalletCredential)
            .where(
                WalletCredential.id == card.id,  # type: ignore[arg-type]
                WalletCredential.account_id == account_id,  # type: ignore[arg-type]
            )
            .values(status=status, status_checked_at=now)
        )


def delete_credential(ctx: WalletContext, account_id: int, public_id: str) -> bool:
    """Delete the card, its instances and their holder keys (T083)."""
    with db.session(ctx.engine) as unit:
        card = _card(unit, account_id, public_id)
        if card is None:
            return False
        key_ids = [i.holder_key_id for i in _instances(unit, card)]
        unit.execute(
            sa.delete(CredentialInstance).where(
                CredentialInstance.credential_id == card.id,  # type: ignore[arg-type]
                CredentialInstance.account_id == account_id,  # type: ignore[arg-type]
            )
        )
        if key_ids:
            unit.execute(
                sa.delete(HolderKey).where(
                    HolderKey.id.in_(key_ids),  # type: ignore[union-attr]
                    HolderKey.account_id == account_id,  # type: ignore[arg-type]
                )
            )
        unit.delete(card)
    return True
