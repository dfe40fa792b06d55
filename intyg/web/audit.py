"""The rule every service's audit log shares: no personal identity numbers, anywhere.

Audit entries name people and objects by reference; :func:`check_no_personal_numbers`
refuses any text in the actor, subject or (nested) details that contains a valid
personnummer or samordningsnummer, so a careless caller cannot write one into a log that
is kept for years.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intyg import personnummer

__all__ = ["MAX_DETAIL_DEPTH", "AuditError", "check_no_personal_numbers"]

MAX_DETAIL_DEPTH = 8


class AuditError(ValueError):
    """An audit entry was refused (it would have stored a personal identity number)."""


def check_no_personal_numbers(value: Any, depth: int = 0) -> None:
    """Raise :class:`AuditError` if ``value`` (str, int, mapping, list) holds a personal number."""
    if depth > MAX_DETAIL_DEPTH:
        raise AuditError("audit details are nested too deeply")
    if isinstance(value, str):
        if personnummer.contains_personal_number(value):
            raise AuditError("audit entries must not contain personal identity numbers")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_no_personal_numbers(str(key), depth + 1)
            check_no_personal_numbers(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_no_personal_numbers(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        check_no_personal_numbers(str(value), depth + 1)
