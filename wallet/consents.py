"""Consent records: an append-only, hash-chained log per person (issue 4 item 6;
security.md I4, L09, T086).

Each row of ``consent_records`` is one event, structured after ISO/IEC TS 27560 (consent
record information structure): ``consent`` (the person approved a request: who asked, why,
which claims of which credentials — paths and types, never values), ``declined``,
``delivery`` (what became of a consent's or decline's answer) and ``withdrawal``.

Chain: ``record_hash = SHA-256(prev_hash || "\\n" || canonical JSON of record)``, with
``prev_hash`` of the first record 64 zeros and ``seq`` counting 1, 2, ... per account. The
record is never updated; a delivery outcome is a new ``delivery`` record. The row's
``delivery_status`` column is a cache for the lists, and :func:`verify_chain` checks it
against the chain too, so editing it is detected like editing a record.

Writers lock the account row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write
transaction already serialises), so two answers at once cannot fork the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from intyg.web import db, metrics

from .app import WalletContext
from .models import Account, ConsentKey, ConsentRecord, new_public_id

__all__ = [
    "CONSENT",
    "DECLINED",
    "DELIVERY",
    "GENESIS",
    "WITHDRAWAL",
    "ChainReport",
    "append",
    "canonical",
    "chain_hash",
    "check_rows",
    "events_about",
    "get_record",
    "list_records",
    "lock_account",
    "verify_chain",
]

CONSENT, DECLINED, DELIVERY, WITHDRAWAL = "consent", "declined", "delivery", "withdrawal"
#: ``intyg_consents_total{event}`` per record kind (deliveries are not consents).
CONSENT_EVENTS = {CONSENT: "given", DECLINED: "declined", WITHDRAWAL: "withdrawn"}
PENDING = "pending"
GENESIS = "0" * 64
RECORD_SCHEMA = "intyg-consent-record/1 (ISO/IEC TS 27560)"


def canonical(record: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the bytes the chain hashes."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, record: Any) -> str:
    material = prev_hash.encode("ascii") + b"\n" + canonical(record).encode("utf-8")
    return hashlib.sha256(material).hexdigest()


def _iso(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat().replace("+00:00", "Z")


def lock_account(unit: db.Session, account_id: int) -> str:
    """Lock the account row for the transaction (serialises chain writers); its key."""
    key = unit.scalar(
        sa.select(Account.account_key)
        .where(Account.id == account_id)  # type: ignore[arg-type]
        .with_for_update()
    )
    if key is None:
        raise LookupError("no such account")
    return key  # type: ignore[no-any-return]


def append(
    ctx: WalletContext,
    unit: db.Session,
    account_id: int,
    kind: str,
    body: dict[str, Any],
    *,
    delivery_status: str,
    subject_id: str | None = None,
) -> ConsentRecord:
    """Append one record to the person's chain inside ``unit`` (the caller commits).

    ``body`` gets the common ISO/IEC TS 27560 fields: record id, data subject (the account
    reference, never the personal number), time.
    """
    account_key = lock_account(unit, account_id)
    last = unit.execute(
        sa.select(ConsentRecord.seq, ConsentRecord.record_hash)
        .where(ConsentRecord.account_id == account_id)  # type: ignore[arg-type]
        .order_by(ConsentRecord.seq.desc())  # type: ignore[attr-defined]
        .limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    now = ctx.clock()
    public_id = new_public_id()
    record = {
        "schema": RECORD_SCHEMA,
        "record_id": public_id,
        "kind": kind,
        "data_subject": {"wallet_account": account_key},
        "time": _iso(now),
        "timestamp": now,
        **body,
    }
    if subject_id is not None:
        record["about"] = subject_id
    row = ConsentRecord(
        public_id=public_id,
        account_id=account_id,
        seq=seq,
        prev_hash=prev,
        record_hash=chain_hash(prev, record),
        record=record,
        delivery_status=delivery_status,
        created_at=now,
        kind=kind,
        subject_id=subject_id,
    )
    unit.add(row)
    unit.flush()
    if kind in CONSENT_EVENTS:
        metrics.CONSENTS.labels(CONSENT_EVENTS[kind]).inc()
    return row


def set_status(unit: db.Session, account_id: int, public_id: str, status: str) -> None:
    """The cached status column of a consent/declined row (checked by :func:`verify_chain`)."""
    unit.execute(
        sa.update(ConsentRecord)
        .where(
            ConsentRecord.public_id == public_id,  # type: ignore[arg-type]
            ConsentRecord.account_id == account_id,  # type: ignore[arg-type]
        )
        .values(delivery_status=status)
    )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(ctx: WalletContext, account_id: int) -> ChainReport:
    """Recompute every hash and link of the person's chain, and the status cache."""
    with db.session(ctx.engine, write=False) as unit:
        rows = list(
            unit.execute(
                sa.select(
                    ConsentRecord.seq,
                    ConsentRecord.prev_hash,
                    ConsentRecord.record_hash,
                    ConsentRecord.record,
                    ConsentRecord.public_id,
                    ConsentRecord.kind,
                    ConsentRecord.subject_id,
                    ConsentRecord.delivery_status,
                )
                .where(ConsentRecord.account_id == account_id)  # type: ignore[arg-type]
                .order_by(ConsentRecord.seq)  # type: ignore[arg-type]
            )
        )
    return check_rows(rows)


ChainRow = tuple[int, str, str, dict[str, Any], str, str, str | None, str]
"""``(seq, prev_hash, record_hash, record, public_id, kind, subject_id, delivery_status)``."""


def check_rows(rows: Sequence[ChainRow]) -> ChainReport:
    """Check a chain in ``seq`` order: links, hashes, rows against records, status cache
    (shared by :func:`verify_chain` and the import of a backup, wallet/backup.py)."""
    prev = GENESIS
    expected_status: dict[str, str] = {}
    columns: dict[str, tuple[int, str]] = {}
    for index, (seq, prev_hash, record_hash, record, public_id, kind, subject, status) in enumerate(
        rows, start=1
    ):
        if seq != index:
            return ChainReport(False, len(rows), seq, "a record is missing or out of order")
        if prev_hash != prev:
            return ChainReport(False, len(rows), seq, "the link to the previous record is broken")
        if chain_hash(prev, record) != record_hash:
            return ChainReport(False, len(rows), seq, "the record was changed")
        if record.get("record_id") != public_id or record.get("kind") != kind:
            return ChainReport(False, len(rows), seq, "the record does not match its row")
        if record.get("about") != subject:
            return ChainReport(False, len(rows), seq, "the record does not match its row")
        if kind in (CONSENT, DECLINED):
            expected_status[public_id] = record.get("delivery_status", PENDING)
            columns[public_id] = (seq, status)
        elif kind == DELIVERY and subject in expected_status:
            expected_status[subject] = record.get("status", "")
        prev = record_hash
    for public_id, (seq, status) in columns.items():
        if expected_status[public_id] != status:
            return ChainReport(False, len(rows), seq, "the delivery status was changed")
    return ChainReport(True, len(rows))


def list_records(ctx: WalletContext, account_id: int) -> list[ConsentRecord]:
    """Consents and declines, newest first (delivery/withdrawal events are shown inside)."""
    with db.session(ctx.engine, write=False) as unit:
        rows = list(
            unit.scalars(
                sa.select(ConsentRecord)
                .where(
                    ConsentRecord.account_id == account_id,  # type: ignore[arg-type]
                    ConsentRecord.kind.in_((CONSENT, DECLINED)),  # type: ignore[attr-defined]
                )
                .order_by(ConsentRecord.seq.desc())  # type: ignore[attr-defined]
            )
        )
        for row in rows:
            unit.expunge(row)
    return rows


def get_record(ctx: WalletContext, account_id: int, public_id: str) -> ConsentRecord | None:
    with db.session(ctx.engine, write=False) as unit:
        row = unit.scalars(
            sa.select(ConsentRecord).where(
                ConsentRecord.public_id == public_id,  # type: ignore[arg-type]
                ConsentRecord.account_id == account_id,  # type: ignore[arg-type]
            )
        ).first()
        if row is not None:
            unit.expunge(row)
    return row


def events_about(ctx: WalletContext, account_id: int, public_id: str) -> list[ConsentRecord]:
    with db.session(ctx.engine, write=False) as unit:
        rows = list(
            unit.scalars(
                sa.select(ConsentRecord)
                .where(
                    ConsentRecord.account_id == account_id,  # type: ignore[arg-type]
                    ConsentRecord.subject_id == public_id,  # type: ignore[arg-type]
                )
                .order_by(ConsentRecord.seq)  # type: ignore[arg-type]
            )
        )
        for row in rows:
            unit.expunge(row)
    return rows


def withdrawn(ctx: WalletContext, account_id: int, public_id: str) -> bool:
    """A consent counts as withdrawn once the verifier confirmed the deletion."""
    return any(
        e.kind == WITHDRAWAL and e.delivery_status == "confirmed"
        for e in events_about(ctx, account_id, public_id)
    )


def keys_of(ctx: WalletContext, account_id: int, consent_row_id: int) -> list[ConsentKey]:
    with db.session(ctx.engine, write=False) as unit:
        rows = list(
            unit.scalars(
                sa.select(ConsentKey)
                .where(
                    ConsentKey.account_id == account_id,  # type: ignore[arg-type]
                    ConsentKey.consent_id == consent_row_id,  # type: ignore[arg-type]
                )
                .order_by(ConsentKey.id)  # type: ignore[arg-type]
            )
        )
        for row in rows:
            unit.expunge(row)
    return rows
