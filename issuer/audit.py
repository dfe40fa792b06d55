"""Append-only audit log: who did what to which object, when (issue 3 §6).

Entries name objects by reference (``issuance:<uuid>``, ``person:<id>``, ``offer:<id>``),
never by personal identity number: :func:`record` refuses any text that contains a valid
personnummer or samordningsnummer, in the actor, subject or anywhere in ``details`` (UUID
references made by :func:`reference` excepted: they cannot hold one, but can look like one).
There is no update or delete here on purpose.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from intyg.web import db
from intyg.web.audit import AuditError, check_no_personal_numbers

from .db import Unit
from .models import AuditEntry

__all__ = [
    "AuditError",
    "Reference",
    "append",
    "checked",
    "entries",
    "record",
    "reference",
    "written",
]

logger = logging.getLogger("issuer.audit")
_ENTRIES = AuditEntry.__table__  # type: ignore[attr-defined]
_INSERT = db.Prepared(sa.insert(_ENTRIES).returning(_ENTRIES.c.id))


class Reference(str):
    """A reference to an object with a UUID (``issuance:5b0c…``), made by :func:`reference`.

    It is not scanned for personal numbers: a random UUID's ``8-4`` hex groups now and then
    read as ``YYYYMMDD-NNNN`` with a valid check digit (about one issuance in a thousand),
    and it cannot carry one. References to other identifiers stay plain strings, scanned.
    """


def _is_uuid(identifier: object) -> bool:
    if isinstance(identifier, uuid.UUID):
        return True
    if not isinstance(identifier, str) or len(identifier) != 36:
        return False
    try:
        return str(uuid.UUID(identifier)) == identifier
    except ValueError:
        return False


def reference(kind: str, identifier: object) -> str:
    """A subject reference such as ``issuance:5b0c…`` or ``person:12``."""
    text = f"{kind}:{identifier}"
    return Reference(text) if kind.isidentifier() and _is_uuid(identifier) else text


def _check(value: Any) -> None:
    if isinstance(value, Reference):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_no_personal_numbers(str(key), 1)
            if not isinstance(item, Reference):
                check_no_personal_numbers(item, 1)
        return
    check_no_personal_numbers(value)


def record(
    unit: Unit,
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction (so it commits with the action)."""
    values = _values(actor, action, now, subject, details)
    return AuditEntry(id=_insert(unit, values), **values)


def append(
    unit: Unit,
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """:func:`record` for hot paths: the same checks and row, only the new entry's id back."""
    return _insert(unit, _values(actor, action, now, subject, details))


def checked(
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of an entry, checked as :func:`record` checks them, for a caller that
    writes the row itself in its transaction (then calls :func:`written`)."""
    return _values(actor, action, now, subject, details)


def written(values: Mapping[str, Any]) -> None:
    """Log an entry made from :func:`checked` values once it is written."""
    logger.info("audit %s by %s on %s", values["action"], values["actor"], values["subject"] or "-")


def _values(
    actor: str, action: str, now: int, subject: str | None, details: Mapping[str, Any] | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "at": now,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": dict(details or {}),
    }
    for name in ("actor", "action", "subject", "details"):
        _check(values[name])
    if subject is not None:
        values["subject"] = str(subject)  # a plain str for the driver
    return values


def _insert(unit: Unit, values: dict[str, Any]) -> int:
    # A Core INSERT ... RETURNING: the row is only ever appended, the ORM unit of work
    # (identity map, flush bookkeeping) would buy nothing.
    entry_id: int = _INSERT.first(unit, values)[0]  # type: ignore[index]
    written(values)
    return entry_id


def entries(
    unit: db.Session,
    *,
    subject: str | None = None,
    action: str | None = None,
    since: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first, filtered by subject reference, action and time."""
    query = sa.select(AuditEntry)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)  # type: ignore[attr-defined, union-attr]
    return list(unit.scalars(query))
