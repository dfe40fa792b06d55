"""Signed result webhooks to the employer's system (issue 5 item 5; docs/verifier.md "Webhooks").

The result and its ``webhook_outbox`` row are written in one database transaction
(:mod:`verifier.transactions`); this module delivers the rows **at least once**:

- :func:`sender_loop` (``BACKGROUND_TASKS``) runs :func:`deliver_due` every
  ``webhook_poll_seconds`` in every replica. A row is *claimed* by moving its
  ``next_attempt_at`` forward with a conditional ``UPDATE`` (the replica whose update hit the
  row sends it), so replicas rarely send the same row twice; when they do, the event ``id``
  lets the receiver drop the duplicate.
- The body is built at send time from :func:`verifier.transactions.result_view` (every
  named check with its reason and, while retained, the disclosed claims), so nothing
  personal is copied into the outbox.
- Each POST goes through the guarded :class:`~intyg.web.outbound.OutboundClient` (no
  redirects, timeouts, no private addresses outside development) with the header
  ``Intyg-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (the scheme
  Stripe and Standard Webhooks use: the timestamp is signed, so an old delivery cannot be
  replayed later, and the receiver checks the raw body before parsing it).
- Not 2xx, network error or timeout: retry after ``webhook_backoff_seconds * 2**(n-1)``
  (capped, "equal jitter": half fixed, half random, so many failed deliveries do not come
  back in lockstep); after ``webhook_max_attempts`` the row is marked failed
  (``failed_at``).

Employers check deliveries with :func:`verify_signature`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from intyg import strict_json
from intyg.fetch import FetchError
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.outbound import OutboundClient, check_url

from . import transactions
from .models import Employer, Transaction, WebhookOutbox

if TYPE_CHECKING:
    from .app import VerifierContext

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookError",
    "WebhookSignatureError",
    "backoff_delay",
    "build_event",
    "configure_webhook",
    "deliver_due",
    "sender_loop",
    "sign",
    "signature_header",
    "verify_signature",
]

logger = logging.getLogger("verifier.webhooks")

SIGNATURE_HEADER = "Intyg-Signature"
EVENT_ID_HEADER = "Intyg-Event-Id"
SECRET_PURPOSE = "verifier/webhook_secret"  # noqa: S105 - an AAD label
#: Default receiver tolerance for the signed timestamp (seconds either side).
DEFAULT_TOLERANCE = 300
#: While one replica sends a row, others skip it for this long.
CLAIM_SECONDS = 120
MAX_RESPONSE_BYTES = 16 * 1024
_CLIENT = "webhooks.client"

#: Core view of the outbox including ``failed_at`` (migration 0002).
_outbox = sa.table(
    "webhook_outbox",
    sa.column("id"),
    sa.column("next_attempt_at"),
    sa.column("attempts"),
    sa.column("delivered_at"),
    sa.column("last_error"),
    sa.column("failed_at"),
)


class WebhookError(ValueError):
    """A webhook could not be configured."""


class WebhookSignatureError(ValueError):
    """An ``Intyg-Signature`` header did not verify (malformed, too old, or wrong MAC)."""


# -- signatures (the part employers reimplement) --------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _text(body: str | bytes) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>.<body>"`` (the ``v1`` value)."""
    message = str(timestamp).encode("ascii") + b"." + _text(body)
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The ``Intyg-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes,
    header: str,
    body: str | bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: int | None = None,
) -> int:
    """Check a delivery; returns its signed timestamp or raises :class:`WebhookSignatureError`.

    ``body`` must be the raw request body (before any JSON parsing). Several ``v1`` values
    are accepted (one of them must match), so a sender may sign with an old and a new secret
    while rotating. ``tolerance`` bounds the age (and future skew) of ``t``.
    """
    import time  # only here: the sender uses the service clock

    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError("the signature header is malformed")
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookSignatureError("the signature timestamp is outside the tolerance")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookSignatureError("the signature does not match the body")
    return timestamp


# -- configuration -----------------------------------------------------------------------------


def configure_webhook(
    ctx: VerifierContext, unit: db.Session, employer_id: int, url: str | None
) -> str | None:
    """Set (or with ``None`` remove) an employer's webhook URL; returns the new HMAC secret
    (shown once; stored sealed) or ``None``."""
    employer = unit.get(Employer, employer_id)
    if employer is None:
        raise WebhookError("no such employer")
    if url is None:
        employer.webhook_url = employer.sealed_webhook_secret = None
        unit.add(employer)
        return None
    try:
        check_url(url, ctx.settings.outbound_policy())
    except FetchError as exc:
        raise WebhookError(f"webhook URL: {exc}") from None
    if len(url) > 2048:
        raise WebhookError("webhook URL is too long")
    secret = "whsec_" + secrets.token_urlsafe(32)
    employer.webhook_url = url
    employer.sealed_webhook_secret = ctx.store.seal(
        secret.encode("utf-8"), record_aad(SECRET_PURPOSE, employer_id)
    )
    unit.add(employer)
    return secret


def _secret(ctx: VerifierContext, employer: Employer) -> bytes | None:
    if employer.sealed_webhook_secret is None or employer.id is None:
        return None
    return ctx.store.open(employer.sealed_webhook_secret, record_aad(SECRET_PURPOSE, employer.id))


# -- delivery ------------------------------------------------------------------------------------


def backoff_delay(
    attempt: int, base: int, maximum: int, rand: Callable[[], float] = random.random
) -> int:
    """Seconds before retry number ``attempt`` (1 = first retry): exponential, capped, with
    "equal jitter" (half the delay fixed, half random)."""
    delay = min(maximum, base * 2 ** min(attempt - 1, 30))
    return max(1, int(delay / 2 + rand() * delay / 2))


def event_id(row: WebhookOutbox) -> str:
    """Stable across retries: the receiver's idempotency key."""
    return f"{row.event}.{row.transaction_id}"


def build_event(ctx: VerifierContext, unit: db.Session, row: WebhookOutbox) -> dict[str, Any]:
    """The delivered JSON: ``{id, type, created_at, attempt, data: <result view>}``."""
    transaction = unit.get(Transaction, row.transaction_id)
    data = (
        transactions.result_view(ctx, unit, transaction, redeemed=True)
        if transaction is not None
        else {"transaction_id": row.transaction_id, "status": "unknown"}
    )
    return {
        "id": event_id(row),
        "type": row.event,
        "created_at": row.created_at,
        "attempt": row.attempts + 1,
        "data": data,
    }


def _client(ctx: VerifierContext) -> OutboundClient:
    client = ctx.extras.get(_CLIENT)
    if client is None:
        policy = ctx.settings.outbound_policy(
            total_timeout=ctx.settings.webhook_timeout_seconds,
            max_response_bytes=MAX_RESPONSE_BYTES,
        )
        client = ctx.extras.setdefault(_CLIENT, OutboundClient(policy))
    return client  # type: ignore[no-any-return]


def _claim(ctx: VerifierContext, row: WebhookOutbox, now: int) -> bool:
    """Move the row's next attempt past the send, if no other replica did it first."""
    with db.session(ctx.engine) as unit:
        claimed = unit.execute(
            sa.update(_outbox)
            .where(
                _outbox.c.id == row.id,
                _outbox.c.next_attempt_at == row.next_attempt_at,
                _outbox.c.delivered_at.is_(None),
            )
            .values(next_attempt_at=now + CLAIM_SECONDS)
        )
        return claimed.rowcount == 1


def _finish(ctx: VerifierContext, row: WebhookOutbox, error: str | None, now: int) -> None:
    settings = ctx.settings
    attempts = row.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_error": error}
    if error is None:
        values["delivered_at"] = now
    elif attempts >= settings.webhook_max_attempts:
        values["failed_at"] = now
        values["last_error"] = f"gave up after {attempts} attempts: {error}"[:300]
        logger.warning("webhook %s failed for good: %s", row.id, error)
    else:
        values["next_attempt_at"] = now + backoff_delay(
            attempts, settings.webhook_backoff_seconds, settings.webhook_backoff_max_seconds
        )
    with db.session(ctx.engine) as unit:
        unit.execute(sa.update(_outbox).where(_outbox.c.id == row.id).values(**values))


def _send(ctx: VerifierContext, row: WebhookOutbox, client: OutboundClient) -> str | None:
    """One attempt; ``None`` when delivered, else the error (safe to store)."""
    with db.session(ctx.engine, write=False) as unit:
        employer = unit.get(Employer, row.employer_id)
        if employer is None or not employer.webhook_url:
            return "the employer has no webhook URL"
        secret = _secret(ctx, employer)
        if secret is None:
            return "the employer has no webhook secret"
        url = employer.webhook_url
        payload = build_event(ctx, unit, row)
    body = strict_json.dumps(payload)  # exactly what post_json sends
    headers = {
        SIGNATURE_HEADER: signature_header(secret, ctx.clock(), body),
        EVENT_ID_HEADER: payload["id"],
    }
    try:
        client.post_json(url, payload, headers=headers, max_bytes=MAX_RESPONSE_BYTES)
    except FetchError as exc:
        return str(exc)[:300]
    return None


def deliver_due(ctx: VerifierContext, client: OutboundClient | None = None) -> int:
    """Send every due, undelivered, not failed outbox row once; returns how many were sent
    successfully. Synchronous (runs in a worker thread from :func:`sender_loop`)."""
    client = client or _client(ctx)
    now = ctx.clock()
    with db.session(ctx.engine, write=False) as unit:
        rows = list(
            unit.scalars(
                sa.select(WebhookOutbox)
                .where(
                    WebhookOutbox.delivered_at.is_(None),  # type: ignore[union-attr]
                    sa.literal_column("webhook_outbox.failed_at").is_(None),
                    WebhookOutbox.next_attempt_at <= now,  # type: ignore[arg-type]
                )
                .order_by(WebhookOutbox.next_attempt_at, WebhookOutbox.id)  # type: ignore[arg-type]
                .limit(ctx.settings.webhook_batch_size)
            )
        )
    delivered = 0
    for row in rows:
        if not _claim(ctx, row, now):
            continue
        error = _send(ctx, row, client)
        _finish(ctx, row, error, ctx.clock())
        delivered += error is None
    return delivered


async def sender_loop(ctx: VerifierContext) -> None:
    """Background task: deliver due webhooks every ``webhook_poll_seconds``, for ever."""
    while True:
        try:
            await asyncio.to_thread(deliver_due, ctx)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the loop alive; the next pass retries
            logger.exception("webhook sender pass failed")
        await asyncio.sleep(ctx.settings.webhook_poll_seconds)
