"""Retention (issue 5 item 6): disclosed claims are deleted when their deadline passes.

:func:`purge` runs on start-up and every ``purge_interval_seconds`` in each process
(:func:`purge_loop`, listed in ``verifier.app.BACKGROUND_TASKS``); concurrent runs on several
replicas are harmless (plain DELETEs). What it removes:

- disclosed claims past ``retain_until`` (the result keeps ``claims_deleted_by="retention"``);
- the secrets of expired transactions: the sealed request object and the ephemeral
  decryption key (a response after expiry is refused anyway);
- rejection records older than ``rejection_retention_days``;
- ended page sessions whose cookies have expired (``ended_sessions``, T078).

The fact that a verification happened (transaction, result checks, audit log) stays.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from intyg.web import db

from . import audit
from .models import ENDED_SESSIONS, DisclosedClaims, Rejection, Result, Transaction

if TYPE_CHECKING:
    from .app import VerifierContext

__all__ = ["purge", "purge_loop"]

logger = logging.getLogger("verifier.retention")
DAY = 86_400


def purge(ctx: VerifierContext) -> dict[str, int]:
    """Delete what is due; returns counts per kind."""
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        due = list(
            unit.scalars(
                sa.select(DisclosedClaims.transaction_id).where(DisclosedClaims.retain_until <= now)
            )
        )
        if due:
            unit.execute(
                sa.delete(DisclosedClaims).where(DisclosedClaims.transaction_id.in_(due))  # type: ignore[attr-defined]
            )
            unit.execute(
                sa.update(Result)
                .where(Result.transaction_id.in_(due), Result.claims_deleted_at.is_(None))  # type: ignore[attr-defined, union-attr]
                .values(claims_deleted_at=now, claims_deleted_by="retention")
            )
            audit.record(
                unit,
                actor="retention",
                action="claims_purged",
                now=now,
                details={"count": len(due)},
            )
        secrets_wiped = unit.execute(
            sa.update(Transaction)
            .where(
                Transaction.expires_at <= now,
                sa.or_(
                    Transaction.sealed_encryption_key.is_not(None),  # type: ignore[union-attr]
                    Transaction.sealed_request.is_not(None),  # type: ignore[union-attr]
                ),
            )
            .values(sealed_encryption_key=None, sealed_request=None)
        ).rowcount
        rejections = unit.execute(
            sa.delete(Rejection).where(
                Rejection.at <= now - ctx.settings.rejection_retention_days * DAY
            )
        ).rowcount
        sessions = ENDED_SESSIONS.purge(unit, now)
    return {
        "claims": len(due),
        "transaction_secrets": secrets_wiped,
        "rejections": rejections,
        "ended_sessions": sessions,
    }


async def purge_loop(ctx: VerifierContext) -> None:
    """Background task: :func:`purge` every ``purge_interval_seconds``."""
    while True:
        await asyncio.sleep(ctx.settings.purge_interval_seconds)
        try:
            await run_in_threadpool(purge, ctx)
        except Exception:
            logger.exception("retention purge failed")
