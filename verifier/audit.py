"""Verification audit log (issue 5 item 6): who asked, what happened, when; never a personal
identity number and never a claim value (the same rule as the issuer's audit log)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from intyg import personnummer
from intyg.web import db

from .models import AuditEntry

__all__ = ["AuditError", "record"]

logger = logging.getLogger("verifier.audit")

_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9]{8}|[0-9]{6})[-+]?[0-9]{4}(?![0-9])")
MAX_DETAIL_DEPTH = 8


class AuditError(ValueError):
    """An audit entry was refused (it would have stored a personal identity number)."""


def _check(value: Any, depth: int = 0) -> None:
    if depth > MAX_DETAIL_DEPTH:
        raise AuditError("audit details are nested too deeply")
    if isinstance(value, str):
        if any(personnummer.is_valid(match) for match in _CANDIDATE.findall(value)):
            raise AuditError("audit entries must not contain personal identity numbers")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check(str(key), depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)


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
    for value in (actor, action, subject, dict(details or {})):
        _check(value)
    unit.add(
        AuditEntry(at=now, actor=actor, action=action, subject=subject, details=dict(details or {}))
    )
    logger.info("audit %s by %s on %s", action, actor, subject or "-")
