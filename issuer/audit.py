"""Append-only audit log: who did what to which object, when (issue 3 §6).

Entries name objects by reference (``issuance:<uuid>``, ``person:<id>``, ``offer:<id>``),
never by personal identity number: :func:`record` refuses any text that contains a valid
personnummer or samordningsnummer, in the actor, subject or anywhere in ``details``.
There is no update or delete here on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from intyg.web import db
from intyg.web.audit import AuditError, check_no_personal_numbers

from .models import AuditEntry

__all__ = ["AuditError", "entries", "record", "reference"]

logger = logging.getLogger("issuer.audit")


def reference(kind: str, identifier: object) -> str:
    """A subject reference such as ``issuance:5b0c…``."""
    return f"{kind}:{identifier}"


def record(
    unit: db.Session,
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction (so it commits with the action)."""
    for value in (actor, action, subject, dict(details or {})):
        check_no_personal_numbers(value)
    entry = AuditEntry(
        at=now, actor=actor, action=action, subject=subject, details=dict(details or {})
    )
    unit.add(entry)
    unit.flush()
    logger.info("audit %s by %s on %s", action, actor, subject or "-")
    return entry


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
