"""Transactions: creating presentation requests, serving request objects, handling the
wallet's response, results, response codes and withdrawal (issue 5 items 1, 3, 5, 6).

All state is in the database (L10). Single-use rules (I3):

- the ``direct_post`` that consumes a transaction is the one whose atomic
  :func:`intyg.web.db.consume_once` wins; every later response for it is a **replay**
  (``nonce_once`` fails, a rejection is recorded, nothing else changes);
- the same-device ``response_code`` is redeemed once, with the same primitive (T104).

A response is bound to a transaction only once it has shown it knows the transaction's
``state`` (inside the decrypted JWE for ``direct_post.jwt``). Anything before that (bad
media type, size, form, unknown ``state`` or encryption key, undecryptable JWE) is refused
with 4xx and stores **nothing** (T102, L18).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from intyg import dcql, jose, jwe, oid4vp, strict_json
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.errors import ProtocolError

from . import audit, pipeline, templates
from .models import (
    DisclosedClaims,
    Employer,
    Rejection,
    Result,
    Transaction,
    TransactionStatus,
    WebhookOutbox,
    digest,
)

if TYPE_CHECKING:
    from .app import VerifierContext

__all__ = [
    "create_transaction",
    "created_view",
    "delete_by_holder",
    "handle_response",
    "redeem_response_code",
    "request_object",
    "result_view",
]

logger = logging.getLogger("verifier.transactions")

DAY = 86_400
DELETION_TYP = "intyg-deletion+jwt"
#: Extension claims of our request objects (wallets ignore unknown parameters, §5).
PURPOSE_CLAIM = "intyg_purpose"
DELETION_URI_CLAIM = "intyg_deletion_uri"
_WALLET_NONCE_MAX = 256


def _aad(purpose: str, transaction_id: str) -> bytes:
    return record_aad(f"verifier/{purpose}", transaction_id)


def _unknown() -> ProtocolError:
    # One message for unknown, expired and mismatched: no oracle for probing states.
    return ProtocolError("invalid_request", "unknown or expired transaction")


# -- creating a request (§5) ----------------------------------------------------------------


def _redirect(ctx: VerifierContext, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    allowed = ("https",) if not ctx.settings.is_development else ("https", "http")
    if (
        parts is None
        or parts.scheme not in allowed
        or not parts.hostname
        or parts.fragment
        or len(value) > 2048
    ):
        raise ProtocolError("invalid_request", "same_device_redirect must be an https URL")
    return value


def create_transaction(
    ctx: VerifierContext,
    unit: db.Session,
    *,
    employer_id: int,
    client_id: str | None,
    template: templates.Template,
    same_device_redirect: str | None = None,
) -> Transaction:
    """A new transaction: fresh ``nonce``/``state``, an ephemeral encryption key, the Request
    Object claims (sealed; re-served unchanged, T109)."""
    settings = ctx.settings
    now = ctx.clock()
    transaction_id = secrets.token_urlsafe(24)
    signer = ctx.keys.signer()
    jwks: list[dict[str, Any]] = []
    sealed_key = encryption_kid = None
    if settings.response_mode == oid4vp.DIRECT_POST_JWT:
        private, public = jwe.new_encryption_key(kid=secrets.token_urlsafe(16))
        encryption_kid = public["kid"]
        sealed_key = ctx.store.seal_jwk(private, _aad("encryption_key", transaction_id))
        jwks.append(public)
    try:
        claims = oid4vp.authorization_request(
            client_id=signer.client_id,
            response_uri=settings.response_uri,
            dcql_query=template.query(),
            response_mode=settings.response_mode,
            encryption_jwks=jwks,
            enc_values=settings.enc_values,
            now=now,
            lifetime=settings.transaction_ttl,
        )
    except (oid4vp.OID4VPError, dcql.DCQLError) as exc:
        raise ProtocolError("invalid_request", str(exc)) from None
    claims[PURPOSE_CLAIM] = dict(template.purpose)
    claims[DELETION_URI_CLAIM] = settings.deletion_uri
    transaction = Transaction(
        id=transaction_id,
        employer_id=employer_id,
        client_id=client_id,
        template=template.name,
        state_hash=digest(claims["state"]),
        nonce=claims["nonce"],
        response_mode=settings.response_mode,
        sealed_request=ctx.store.seal(
            strict_json.dumps(claims).encode("utf-8"), _aad("request", transaction_id)
        ),
        encryption_kid=encryption_kid,
        sealed_encryption_key=sealed_key,
        dcql_query=claims["dcql_query"],
        purpose=dict(template.purpose),
        retention_days=template.retention_days,
        status_unknown_policy=template.status_unknown_policy,
        same_device_redirect=_redirect(ctx, same_device_redirect),
        created_at=now,
        expires_at=now + settings.transaction_ttl,
    )
    unit.add(transaction)
    unit.flush()
    audit.record(
        unit,
        actor=f"api:{client_id}" if client_id else "page",
        action="transaction_created",
        now=now,
        subject=f"transaction:{transaction_id}",
        details={"template": template.name},
    )
    return transaction


def created_view(ctx: VerifierContext, transaction: Transaction) -> dict[str, Any]:
    """The API answer to a new transaction: links, QR code (SVG) and expiry."""
    import segno  # imported here: only transaction creation draws QR codes

    signer = ctx.keys.signer()
    request_uri = ctx.settings.request_uri(transaction.id)
    link = oid4vp.request_uri_link(
        signer.client_id, request_uri, request_uri_method=ctx.settings.request_uri_method
    )
    qr = segno.make(link, error="m")
    return {
        "transaction_id": transaction.id,
        "client_id": signer.client_id,
        "request_uri": request_uri,
        "request_link": link,
        "same_device_link": link,
        "qr_svg": qr.svg_inline(scale=4, title="OpenID4VP"),
        "expires_at": transaction.expires_at,
        "template": transaction.template,
        "purpose": transaction.purpose,
    }


# -- serving the request object (§5.10, RFC 9101) ------------------------------------------


def request_object(
    ctx: VerifierContext, transaction_id: str, wallet_nonce: str | None = None
) -> str:
    """The signed Request Object; the same claims (same ``nonce``) on every fetch (T109)."""
    now = ctx.clock()
    with db.session(ctx.engine, write=False) as unit:
        transaction = unit.get(Transaction, transaction_id)
    if (
        transaction is None
        or transaction.sealed_request is None
        or transaction.expires_at <= now
        or transaction.used_at is not None
    ):
        raise ProtocolError("invalid_request", "unknown or expired request", 404)
    claims = strict_json.loads(
        ctx.store.open(transaction.sealed_request, _aad("request", transaction.id))
    )
    if wallet_nonce is not None:
        if (
            not wallet_nonce
            or len(wallet_nonce) > _WALLET_NONCE_MAX
            or not all(c.isalnum() or c in "-._~" for c in wallet_nonce)
        ):
            raise ProtocolError("invalid_request", "wallet_nonce must be URL-safe characters")
        claims["wallet_nonce"] = wallet_nonce
    return ctx.keys.signer().sign(claims)


# -- the response endpoint (§8.2, §8.3) ----------------------------------------------------


def _locate(
    ctx: VerifierContext, form: Mapping[str, str]
) -> tuple[Transaction, Mapping[str, str], bool]:
    """The transaction a response names, its response parameters and whether they came
    encrypted. Raises (4xx, nothing stored) unless the response proved it knows ``state``."""
    if "response" not in form:
        state = form.get("state")
        if not state:
            raise ProtocolError("invalid_request", "state is required")
        with db.session(ctx.engine, write=False) as unit:
            transaction = unit.scalars(
                sa.select(Transaction).where(Transaction.state_hash == digest(state))
            ).first()
        if transaction is None:
            raise _unknown()
        return transaction, form, False
    if set(form) != {"response"}:
        raise ProtocolError(
            "invalid_request", "direct_post.jwt carries only the response parameter"
        )
    try:
        kid = jwe.parse_header(form["response"])["kid"]
    except jwe.JWEError as exc:
        raise ProtocolError("invalid_request", f"response: {exc}") from None
    with db.session(ctx.engine, write=False) as unit:
        transaction = unit.scalars(
            sa.select(Transaction).where(Transaction.encryption_kid == kid)
        ).first()
    if transaction is None or transaction.sealed_encryption_key is None:
        raise _unknown()
    private = ctx.store.open_jwk(
        transaction.sealed_encryption_key, _aad("encryption_key", transaction.id)
    )
    try:
        _, plaintext = jwe.decrypt(form["response"], [private], allowed_enc=ctx.settings.enc_values)
        payload = strict_json.loads(plaintext, max_bytes=jwe.MAX_JWE_BYTES)
    except (jwe.JWEError, strict_json.StrictJSONError) as exc:
        raise ProtocolError("invalid_request", f"response: {exc}") from None
    state = payload.get("state") if isinstance(payload, dict) else None
    if not isinstance(state, str) or digest(state) != transaction.state_hash:
        raise _unknown()
    # Back to form-field shape so the core parser applies one set of rules to both modes.
    fields = {k: v if isinstance(v, str) else strict_json.dumps(v) for k, v in payload.items()}
    return transaction, fields, True


def _consume(ctx: VerifierContext, transaction: Transaction, now: int) -> bool:
    """Atomically mark the transaction used; True for the one winner, False for a replay.
    An expired, never-used transaction is unknown (T102)."""
    with db.session(ctx.engine) as unit:
        won = db.consume_once(
            unit,
            Transaction,
            "id",
            transaction.id,
            now=now,
            where=[Transaction.expires_at > now],
            # status=processing in the same statement would need a second UPDATE; the
            # row's used_at is what matters, status follows with the result.
        )
        if won is not None:
            unit.execute(
                sa.update(Transaction)
                .where(Transaction.id == transaction.id)
                .values(status=TransactionStatus.PROCESSING)
            )
            return True
        current = unit.get(Transaction, transaction.id)
    if current is None or current.used_at is None:
        raise _unknown()
    return False


def _request_for(
    ctx: VerifierContext, transaction: Transaction, fresh: bool
) -> pipeline.PresentationRequest:
    constraints: tuple[templates.MinimumValue, ...] = ()
    if transaction.template in templates.TEMPLATES:
        constraints = templates.TEMPLATES[transaction.template].constraints
    return pipeline.PresentationRequest(
        client_id=ctx.keys.client_id,
        nonce=transaction.nonce,
        query=_query(transaction.dcql_query),
        constraints=constraints,
        status_unknown_policy=transaction.status_unknown_policy,
        fresh=fresh,
    )


_QUERY_CACHE: dict[str, dcql.DCQLQuery] = {}


def _query(document: Mapping[str, Any]) -> dcql.DCQLQuery:
    key = strict_json.dumps(document)
    query = _QUERY_CACHE.get(key)
    if query is None:
        if len(_QUERY_CACHE) > 256:
            _QUERY_CACHE.clear()
        query = _QUERY_CACHE[key] = dcql.parse_query(dict(document))
    return query


def handle_response(ctx: VerifierContext, form: Mapping[str, str]) -> dict[str, str]:
    """Process one ``direct_post`` / ``direct_post.jwt``; the 200 body, or raises 4xx.

    Runs in a worker thread (status lists are fetched synchronously).
    """
    now = ctx.clock()
    transaction, fields, encrypted = _locate(ctx, form)
    try:
        response = oid4vp.parse_direct_post(fields)
        response = replace(response, encrypted=encrypted)
        parse_error = None
        if (
            response.vp_token is not None
            and not encrypted
            and transaction.response_mode == oid4vp.DIRECT_POST_JWT
        ):
            parse_error = "the response must be encrypted (direct_post.jwt)"
    except oid4vp.OID4VPError as exc:
        response, parse_error = None, exc.description
    fresh = _consume(ctx, transaction, now)
    if response is not None and response.error is not None and parse_error is None:
        return _wallet_error(ctx, transaction, response, fresh, now)
    if parse_error is not None or response is None:
        result = pipeline.failure(pipeline.PARSE, parse_error or "malformed response")
        if not fresh:
            result = pipeline.PipelineResult(
                (*result.checks, pipeline.Check(pipeline.NONCE_ONCE, pipeline.FAILED, "replay"))
            )
    else:
        result = ctx.pipeline.run(response.vp_token, _request_for(ctx, transaction, fresh))
    if fresh and result.verified:
        return _store_verified(ctx, transaction, result, now)
    _store_rejection(ctx, transaction, result, fresh, now)
    raise ProtocolError(
        "invalid_request",
        "the presentation was rejected; failed checks: " + ", ".join(result.failed_checks),
    )


def _response_code(transaction: Transaction) -> tuple[str | None, str | None]:
    if transaction.same_device_redirect is None:
        return None, None
    code = oid4vp.new_response_code()
    return code, oid4vp.redirect_uri_with_response_code(transaction.same_device_redirect, code)


def _reply(redirect_uri: str | None) -> dict[str, str]:
    return oid4vp.response_endpoint_reply(redirect_uri)


def _outbox(unit: db.Session, transaction: Transaction, event: str, now: int) -> None:
    employer = unit.get(Employer, transaction.employer_id)
    if employer is not None and employer.webhook_url:
        unit.add(
            WebhookOutbox(
                employer_id=transaction.employer_id,
                transaction_id=transaction.id,
                event=event,
                created_at=now,
                next_attempt_at=now,
            )
        )


def _holder_ref(transaction_id: str, thumbprint: str) -> str:
    return digest(f"{transaction_id}.{thumbprint}")


def _store_verified(
    ctx: VerifierContext, transaction: Transaction, result: pipeline.PipelineResult, now: int
) -> dict[str, str]:
    query = _query(transaction.dcql_query)
    claims = result.requested_claims(query)
    code, redirect_uri = _response_code(transaction)
    with db.session(ctx.engine) as unit:
        unit.add(
            Result(
                transaction_id=transaction.id,
                outcome=TransactionStatus.VERIFIED,
                checks=result.checks_json(),
                credentials=[
                    {
                        "credential": c.label,
                        "vct": c.vct,
                        "issuer": c.trusted.issuer.summary() if c.trusted else None,
                    }
                    for c in result.credentials
                ],
                dropped_claims=list(result.dropped),
                holder_key_refs=sorted(
                    {
                        _holder_ref(transaction.id, c.holder_thumbprint)
                        for c in result.credentials
                        if c.holder_thumbprint
                    }
                ),
                created_at=now,
            )
        )
        if transaction.retention_days > 0:
            unit.add(
                DisclosedClaims(
                    transaction_id=transaction.id,
                    sealed_claims=ctx.store.seal(
                        strict_json.dumps(claims).encode("utf-8"),
                        _aad("claims", transaction.id),
                    ),
                    created_at=now,
                    retain_until=now + transaction.retention_days * DAY,
                )
            )
        unit.execute(
            sa.update(Transaction)
            .where(Transaction.id == transaction.id)
            .values(
                status=TransactionStatus.VERIFIED,
                completed_at=now,
                response_code_hash=digest(code) if code else None,
            )
        )
        audit.record(
            unit,
            actor="wallet",
            action="presentation_verified",
            now=now,
            subject=f"transaction:{transaction.id}",
            details={"dropped_claims": sum(len(d["paths"]) for d in result.dropped)},
        )
        _outbox(unit, transaction, "verification.completed", now)
    return _reply(redirect_uri)


def _add_rejection(
    ctx: VerifierContext, unit: db.Session, transaction: Transaction, rejection: Rejection
) -> None:
    count = unit.scalar(
        sa.select(sa.func.count())
        .select_from(Rejection)
        .where(Rejection.transaction_id == transaction.id)
    )
    if (count or 0) < ctx.settings.max_rejections_per_transaction:
        unit.add(rejection)


def _store_rejection(
    ctx: VerifierContext,
    transaction: Transaction,
    result: pipeline.PipelineResult,
    fresh: bool,
    now: int,
) -> None:
    with db.session(ctx.engine) as unit:
        _add_rejection(
            ctx,
            unit,
            transaction,
            Rejection(
                transaction_id=transaction.id,
                kind="presentation" if fresh else "replay",
                failed_checks=result.failed_checks,
                checks=result.checks_json(),
                at=now,
            ),
        )
        if fresh:
            unit.execute(
                sa.update(Transaction)
                .where(Transaction.id == transaction.id)
                .values(status=TransactionStatus.REJECTED, completed_at=now)
            )
            audit.record(
                unit,
                actor="wallet",
                action="presentation_rejected",
                now=now,
                subject=f"transaction:{transaction.id}",
                details={"failed_checks": result.failed_checks},
            )
            _outbox(unit, transaction, "verification.completed", now)
    logger.info("transaction %s rejected: %s", transaction.id, ",".join(result.failed_checks))


def _wallet_error(
    ctx: VerifierContext,
    transaction: Transaction,
    response: oid4vp.DirectPostResponse,
    fresh: bool,
    now: int,
) -> dict[str, str]:
    """§8.5: the wallet declined (``access_denied`` ...): recorded and shown as such."""
    if not fresh:
        with db.session(ctx.engine) as unit:
            _add_rejection(
                ctx,
                unit,
                transaction,
                Rejection(
                    transaction_id=transaction.id,
                    kind="replay",
                    failed_checks=[pipeline.NONCE_ONCE],
                    checks=[
                        pipeline.Check(pipeline.NONCE_ONCE, pipeline.FAILED, "replay").as_dict()
                    ],
                    error=response.error,
                    at=now,
                ),
            )
        raise _unknown()
    code, redirect_uri = _response_code(transaction)
    with db.session(ctx.engine) as unit:
        unit.add(
            Rejection(
                transaction_id=transaction.id,
                kind="wallet_error",
                failed_checks=[],
                checks=[],
                error=response.error,
                error_description=response.error_description,
                at=now,
            )
        )
        unit.execute(
            sa.update(Transaction)
            .where(Transaction.id == transaction.id)
            .values(
                status=TransactionStatus.ERROR,
                wallet_error=response.error,
                wallet_error_description=response.error_description,
                completed_at=now,
                response_code_hash=digest(code) if code else None,
            )
        )
        audit.record(
            unit,
            actor="wallet",
            action="wallet_error",
            now=now,
            subject=f"transaction:{transaction.id}",
            details={"error": response.error},
        )
        _outbox(unit, transaction, "verification.completed", now)
    return _reply(redirect_uri)


# -- results (polling, response code) -------------------------------------------------------


def _status(transaction: Transaction, now: int) -> str:
    if transaction.status == TransactionStatus.PENDING and transaction.expires_at <= now:
        return TransactionStatus.EXPIRED
    return transaction.status


def result_view(
    ctx: VerifierContext, unit: db.Session, transaction: Transaction, *, redeemed: bool = False
) -> dict[str, Any]:
    """The polling answer. For a same-device transaction the checks and claims are shown only
    to whoever redeemed the ``response_code`` (T103) — then and afterwards."""
    now = ctx.clock()
    view: dict[str, Any] = {
        "transaction_id": transaction.id,
        "template": transaction.template,
        "status": _status(transaction, now),
        "purpose": transaction.purpose,
        "created_at": transaction.created_at,
        "expires_at": transaction.expires_at,
        "completed_at": transaction.completed_at,
    }
    if transaction.wallet_error:
        view["wallet_error"] = {
            "error": transaction.wallet_error,
            "error_description": transaction.wallet_error_description,
        }
    same_device = transaction.same_device_redirect is not None
    if same_device and not (redeemed or transaction.response_code_used_at is not None):
        view["result_requires_response_code"] = transaction.completed_at is not None
        return view
    result = unit.get(Result, transaction.id)
    if result is not None:
        view["result"] = {
            "outcome": result.outcome,
            "checks": result.checks,
            "failed_checks": [],
            "credentials": result.credentials,
            "dropped_claims": result.dropped_claims,
            "claims": _claims(ctx, unit, transaction.id),
            "claims_deleted_at": result.claims_deleted_at,
            "claims_deleted_by": result.claims_deleted_by,
        }
        return view
    if transaction.status == TransactionStatus.REJECTED:
        rejection = unit.scalars(
            sa.select(Rejection)
            .where(Rejection.transaction_id == transaction.id, Rejection.kind == "presentation")
            .order_by(Rejection.id)
        ).first()
        if rejection is not None:
            view["result"] = {
                "outcome": TransactionStatus.REJECTED,
                "checks": rejection.checks,
                "failed_checks": rejection.failed_checks,
            }
    return view


def _claims(ctx: VerifierContext, unit: db.Session, transaction_id: str) -> dict[str, Any] | None:
    row = unit.get(DisclosedClaims, transaction_id)
    if row is None or row.retain_until <= ctx.clock():
        return None
    opened = strict_json.loads(ctx.store.open(row.sealed_claims, _aad("claims", transaction_id)))
    return {"retained_until": row.retain_until, "credentials": opened}


def redeem_response_code(
    ctx: VerifierContext, unit: db.Session, transaction: Transaction, response_code: Any
) -> dict[str, Any]:
    """§13.3: the front end presents the ``response_code`` from the redirect; single use,
    bound to this transaction (T103, T104)."""
    if not isinstance(response_code, str) or not 0 < len(response_code) <= 128:
        raise ProtocolError("invalid_grant", "response_code is invalid or already used")
    won = db.consume_once(
        unit,
        Transaction,
        "response_code_hash",
        digest(response_code),
        used_column="response_code_used_at",
        now=ctx.clock(),
        where=[Transaction.id == transaction.id],
    )
    if won is None:
        raise ProtocolError("invalid_grant", "response_code is invalid or already used")
    return result_view(ctx, unit, transaction, redeemed=True)


# -- withdrawal by the holder -----------------------------------------------------------------


def delete_by_holder(ctx: VerifierContext, token: str) -> None:
    """Delete the disclosed claims of a transaction when its holder withdraws consent.

    The request is a JWS (``typ`` ``intyg-deletion+jwt``) signed by a holder key that signed
    a KB-JWT of that transaction, its public key in the header ``jwk``; claims ``aud`` = our
    client id, ``state`` = the transaction's state, ``iat`` recent (docs/verifier.md).
    Any failure raises one generic error (no oracle).
    """
    refused = ProtocolError("invalid_request", "the deletion request was not accepted")
    now = ctx.clock()
    try:
        jws = jose.parse_jws(token, max_bytes=16 * 1024)
        jose.check_header(jws, typ=DELETION_TYP)
        jwk = jws.header.get("jwk")
        if not isinstance(jwk, dict):
            raise refused
        key = jose.key_from_jwk(jwk)
        jose.verify_signature(jws, key)
        claims = jws.claims()
        jose.check_time_claims(
            claims,
            now=now,
            leeway=ctx.settings.clock_skew_seconds,
            require=("iat",),
            max_iat_age=ctx.settings.kb_max_age_seconds,
        )
        jose.check_audience(claims, ctx.keys.client_id)
    except jose.JoseError:
        raise refused from None
    state = claims.get("state")
    if not isinstance(state, str) or not state:
        raise refused
    with db.session(ctx.engine) as unit:
        transaction = unit.scalars(
            sa.select(Transaction).where(Transaction.state_hash == digest(state))
        ).first()
        result = None if transaction is None else unit.get(Result, transaction.id)
        if (
            transaction is None
            or result is None
            or _holder_ref(transaction.id, key.thumbprint()) not in result.holder_key_refs
        ):
            raise refused
        unit.execute(
            sa.delete(DisclosedClaims).where(DisclosedClaims.transaction_id == transaction.id)
        )
        if result.claims_deleted_at is None:
            result.claims_deleted_at = now
            result.claims_deleted_by = "holder"
            unit.add(result)
        audit.record(
            unit,
            actor="holder",
            action="claims_deleted",
            now=now,
            subject=f"transaction:{transaction.id}",
        )
