"""Verification audit log (issue 5 item 6): who asked, what happened, when; never a personal
identity number and never a claim value (the same rule as the issuer's audit log)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from intyg.web import db
from intyg.web.audit import AuditError, check_no_personal_numbers

from .models import AuditEntry

__all__ = ["AuditError", "entry", "record"]

logger = logging.getLogger("verifier.audit")


def record(
    unit: db.Session,
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append an entry in the caller's transaction (it commits with the action)."""
    unit.add(
        AuditEntry(**entry(actor=actor, action=action, now=now, subject=subject, details=details))
    )


def entry(
    *,
    actor: str,
    action: str,
    now: int,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checked ``audit_log`` row (column -> value) for callers that insert it with their
    own statement (the response endpoint's hot path); logged like :func:`record`."""
    row = {"at": now, "actor": actor, "action": action, "subject": subject}
    row["details"] = dict(details or {})
    for value in (actor, action, subject, row["details"]):
        check_no_personal_numbers(value)
    logger.info("audit %s by %s on %s", action, actor, subject or "-")
    return row
