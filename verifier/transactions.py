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

import functools
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from intyg import dcql, jose, jwe, oid4vp, strict_json
from intyg.fetch import WouldBlock, non_blocking
from intyg.web import db, metrics
from intyg.web.batching import Batcher, isolating
from intyg.web.crypto_store import record_aad
from intyg.web.errors import ProtocolError, ServiceUnavailable

from . import audit, pipeline, templates
from .models import (
    DisclosedClaims,
    Rejection,
    Result,
    Transaction,
    TransactionStatus,
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
    "request_claims",
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
    if parts.scheme == "http" and not oid4vp.is_loopback_host(parts.hostname):
        raise ProtocolError(
            "invalid_request", "same_device_redirect must be https (http only to loopback)"
        )
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
    unit.add(transaction)  # flushed with the unit: many at once are one batched INSERT
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
    claims = request_claims(ctx, transaction)
    if wallet_nonce is not None:
        if (
            not wallet_nonce
            or len(wallet_nonce) > _WALLET_NONCE_MAX
            or not all(c.isalnum() or c in "-._~" for c in wallet_nonce)
        ):
            raise ProtocolError("invalid_request", "wallet_nonce must be URL-safe characters")
        claims["wallet_nonce"] = wallet_nonce
    return ctx.keys.signer().sign(claims)


def request_claims(ctx: VerifierContext, transaction: Transaction) -> dict[str, Any]:
    """The Request Object claims of a transaction (unsigned; sealed at creation)."""
    if transaction.sealed_request is None:
        raise ProtocolError("invalid_request", "unknown or expired request", 404)
    claims = strict_json.loads(
        ctx.store.open(transaction.sealed_request, _aad("request", transaction.id))
    )
    assert isinstance(claims, dict)
    return claims


# -- the response endpoint (§8.2, §8.3) ----------------------------------------------------
#
# The hot path, at hundreds per second, in two database round trips: one indexed SELECT
# finds the transaction (no BEGIN), the pipeline runs outside any database transaction
# (status lists may be fetched), then ONE write consumes the transaction and records the
# outcome atomically. The nonce is used once because only the write whose
# ``UPDATE ... WHERE used_at IS NULL`` matched records an outcome (I3); a response that
# loses that race is a replay. On PostgreSQL the write is a single statement (the rows are
# data-modifying CTEs fed by the UPDATE's RETURNING); on SQLite the same statements run in
# one ``BEGIN IMMEDIATE`` transaction. Plain SQL on the pooled driver connection
# (:func:`intyg.web.db.driver_connection`), no ORM: the tables are those of ``models.py``.
#
# Concurrent responses share those round trips (intyg.web.batching): one SELECT finds the
# transactions of all responses that arrived meanwhile, one database transaction records
# all their outcomes (PostgreSQL: sent in one round trip). The response is handled on the
# event loop; the pipeline moves to a thread only when it must fetch (a status list or
# issuer metadata not in the cache, intyg.fetch.non_blocking).

#: The columns of :class:`Located`, in its order.
_LOCATED = (
    "id, employer_id, template, state_hash, nonce, response_mode, sealed_encryption_key,"
    " CAST(dcql_query AS TEXT), retention_days, status_unknown_policy, same_device_redirect,"
    " expires_at, used_at"
)
_LOCATE = f"SELECT {_LOCATED} FROM transactions WHERE {{column}} = :key"  # noqa: S608
#: PostgreSQL: the transactions of many keys at once, each row followed by its key.
_LOCATE_ANY = (
    f"SELECT {_LOCATED}, {{column}} FROM transactions"  # noqa: S608
    " WHERE {column} = ANY(:keys)"
)
_BY_STATE = "state_hash"
_BY_KID = "encryption_kid"
_CONSUME = (
    "UPDATE transactions SET used_at = :now, status = :status, completed_at = :now,"
    " response_code_hash = :response_code_hash, wallet_error = :wallet_error,"
    " wallet_error_description = :wallet_error_description"
    " WHERE id = :id AND used_at IS NULL AND expires_at > :now"
    " RETURNING id, employer_id, wallet_error, wallet_error_description"
)
#: The rows an outcome inserts, ``INSERT INTO <table> (<columns>) <select>``, each selecting
#: from ``consumed`` (the consumed transaction: no row unless this response consumed it).
#: ``JSON(:name)`` marks a JSON document parameter. A parameter appears once per statement
#: (PostgreSQL deduces one type per parameter; values used twice come from ``consumed``).
_ROWS = {
    "results": (
        "transaction_id, outcome, checks, credentials, dropped_claims, holder_key_refs, created_at",
        "SELECT consumed.id, 'verified', JSON(:checks), JSON(:credentials), JSON(:dropped_claims),"
        " JSON(:holder_key_refs), :now FROM consumed",
    ),
    "disclosed_claims": (
        "transaction_id, sealed_claims, created_at, retain_until",
        "SELECT consumed.id, :sealed_claims, :now, :retain_until FROM consumed",
    ),
    "rejections": (
        "transaction_id, kind, failed_checks, checks, error, error_description, at",
        "SELECT consumed.id, :kind, JSON(:failed_checks), JSON(:checks), consumed.wallet_error,"
        " consumed.wallet_error_description, :now FROM consumed",
    ),
    "audit_log": (
        "at, actor, action, subject, details",
        "SELECT :now, :actor, :action, :subject, JSON(:details) FROM consumed",
    ),
    # Only for an employer with a webhook URL (verifier/webhooks.py sends it).
    "webhook_outbox": (
        "employer_id, transaction_id, event, created_at, next_attempt_at, attempts",
        "SELECT consumed.employer_id, consumed.id, 'verification.completed', :now, :now, 0"
        " FROM consumed JOIN employers ON employers.id = consumed.employer_id"
        " WHERE employers.webhook_url <> ''",
    ),
}
_JSON_PARAMETER = re.compile(r"JSON\(:(\w+)\)")
#: A replayed response: a rejection record, at most ``max_rejections_per_transaction``.
_REPLAY = (
    "INSERT INTO rejections (transaction_id, kind, failed_checks, checks, error, at)"
    " SELECT id, 'replay', JSON(:failed_checks), JSON(:checks), :wallet_error, :now"
    " FROM transactions WHERE id = :id"
    " AND (SELECT count(*) FROM rejections WHERE transaction_id = :id) < :limit"
)


@dataclass(frozen=True)
class Located:
    """What the response endpoint needs of a transaction (one row, no ORM object)."""

    id: str
    employer_id: int
    template: str
    state_hash: str
    nonce: str
    response_mode: str
    sealed_encryption_key: str | None
    dcql_query: str  # the JSON text
    retention_days: int
    status_unknown_policy: str
    same_device_redirect: str | None
    expires_at: int
    used_at: int | None


def _for_dialect(sql: str, dialect: str) -> str:
    replacement = r"CAST(:\1 AS JSON)" if dialect == "postgresql" else r":\1"
    return _JSON_PARAMETER.sub(replacement, sql)


@functools.cache
def _outcome_statements(tables: tuple[str, ...]) -> tuple[str, ...]:
    """SQLite: the consume, then one INSERT per table, each with ``consumed`` made from the
    parameters (run only when the consume matched)."""
    given = (
        "WITH consumed(id, employer_id, wallet_error, wallet_error_description)"
        " AS (SELECT :id, :employer_id, :wallet_error, :wallet_error_description) "
    )
    inserts = (
        given + _for_dialect(f"INSERT INTO {table} ({_ROWS[table][0]}) {_ROWS[table][1]}", "sqlite")
        for table in tables
    )
    return (_CONSUME, *inserts)


#: The ``input`` rows of a PostgreSQL batch: every outcome parameter with its type, and ``n``,
#: the outcome's position in the batch.
_INPUT_COLUMNS = {
    "n": "integer",
    "id": "text",
    "employer_id": "integer",
    "now": "bigint",
    "status": "text",
    "response_code_hash": "text",
    "wallet_error": "text",
    "wallet_error_description": "text",
    "kind": "text",
    "failed_checks": "json",
    "checks": "json",
    "credentials": "json",
    "dropped_claims": "json",
    "holder_key_refs": "json",
    "actor": "text",
    "action": "text",
    "subject": "text",
    "details": "json",
    "sealed_claims": "text",
    "retain_until": "bigint",
}
_PARAMETER_NAME = re.compile(r"(?<!:):(\w+)")


def _over_input(sql: str) -> str:
    """One outcome's statement rewritten over the batch's ``input`` rows: ``:name`` (and
    ``JSON(:name)``) become ``i.name``; a row selected from ``consumed`` joins its input."""
    sql = _PARAMETER_NAME.sub(r"i.\1", _JSON_PARAMETER.sub(r":\1", sql))
    return sql.replace("FROM consumed", "FROM consumed JOIN input i ON i.n = consumed.n")


@functools.cache
def _batch_statement(tables: tuple[str, ...]) -> str:
    """PostgreSQL: the outcomes of a batch that insert into ``tables``, in one statement. The
    batch is one JSON parameter (an array of objects) unpacked by ``json_to_recordset``;
    the consume is the one-outcome ``UPDATE`` joined to it, the rows are data-modifying
    CTEs fed by its ``RETURNING``. Two outcomes for one transaction: the ``UPDATE`` takes
    one of them (its ``n`` is returned), the other gets no rows."""
    columns = ", ".join(f"{name} {kind}" for name, kind in _INPUT_COLUMNS.items())
    consume = (
        _over_input(_CONSUME)
        # ``= ANY(:ids)``: the batch's rows by primary key, whatever the planner thinks of
        # the ``input`` rows (without it a generic plan may scan the whole table).
        .replace(
            " WHERE id = i.id",
            " FROM input i WHERE transactions.id = ANY(CAST(:ids AS TEXT[]))"
            " AND transactions.id = i.id",
        )
        .replace(
            "RETURNING id, employer_id, wallet_error, wallet_error_description",
            "RETURNING transactions.id, transactions.employer_id, transactions.wallet_error,"
            " transactions.wallet_error_description, i.n",
        )
    )
    rows = "".join(
        f", row_{table} AS (INSERT INTO {table} ({_ROWS[table][0]}) {_over_input(_ROWS[table][1])})"
        for table in tables
    )
    # Only module constants are joined here; every value comes from the bound parameter.
    return (
        f"WITH input AS (SELECT * FROM json_to_recordset(CAST(:batch AS JSON)) AS x({columns}))"  # noqa: S608
        f", consumed AS ({consume}){rows} SELECT n FROM consumed"
    )


def _find_many(ctx: VerifierContext, lookups: Sequence[tuple[str, str]]) -> list[Located | None]:
    """The transactions of ``(column, key)`` lookups, in one round trip per column on
    PostgreSQL (one statement per lookup on SQLite, on one connection)."""
    with db.driver_connection(ctx.engine) as connection:
        if connection.dialect_name != "postgresql":
            return [
                next((Located(*row) for row in connection.execute(
                    _LOCATE.format(column=column), {"key": key})), None)
                for column, key in lookups
            ]  # fmt: skip
        found: dict[tuple[str, str], Located] = {}
        for column in {column for column, _ in lookups}:
            keys = [key for c, key in lookups if c == column]
            for *row, key in connection.execute(_LOCATE_ANY.format(column=column), {"keys": keys}):
                found[(column, key)] = Located(*row)
    return [found.get(lookup) for lookup in lookups]


class _Batchers:
    """The per-app batchers of the response endpoint (``ctx.extras``)."""

    def __init__(self, ctx: VerifierContext) -> None:
        shared = (ServiceUnavailable,)  # the database is down: every response waits or fails
        self.find: Batcher[tuple[str, str], Located | None] = Batcher(
            isolating(functools.partial(_find_many, ctx), shared)
        )
        self.record: Batcher[_Outcome, bool] = Batcher(
            isolating(functools.partial(_record_many, ctx), shared)
        )


def _batchers(ctx: VerifierContext) -> _Batchers:
    batchers = ctx.extras.get(_BATCHERS)
    if batchers is None:
        batchers = ctx.extras.setdefault(_BATCHERS, _Batchers(ctx))
    return batchers  # type: ignore[no-any-return]


_BATCHERS = "transactions.batchers"


async def _find(ctx: VerifierContext, column: str, key: str) -> Located | None:
    return await _batchers(ctx).find.submit((column, key))


async def _locate(
    ctx: VerifierContext, form: Mapping[str, str]
) -> tuple[Located, Mapping[str, str], bool]:
    """The transaction a response names, its response parameters and whether they came
    encrypted. Raises (4xx, nothing stored) unless the response proved it knows ``state``."""
    if "response" not in form:
        state = form.get("state")
        if not state:
            raise ProtocolError("invalid_request", "state is required")
        transaction = await _find(ctx, _BY_STATE, digest(state))
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
    transaction = await _find(ctx, _BY_KID, kid) if isinstance(kid, str) else None
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


@dataclass(frozen=True)
class _Outcome:
    """What one response records: the tables it inserts into and the statement values."""

    tables: tuple[str, ...]
    parameters: dict[str, Any]


def _outcome(transaction: Located, tables: tuple[str, ...], values: dict[str, Any]) -> _Outcome:
    parameters = {
        "id": transaction.id,
        "employer_id": transaction.employer_id,
        "response_code_hash": None,
        "wallet_error": None,
        "wallet_error_description": None,
        **values,
    }
    return _Outcome(tables, parameters)


def _statement_parameters(outcome: _Outcome) -> dict[str, Any]:
    """The outcome's values as statement parameters (JSON documents as text)."""
    return {
        name: json.dumps(value) if isinstance(value, list | dict) else value
        for name, value in outcome.parameters.items()
    }


def _write_outcomes(ctx: VerifierContext, outcomes: Sequence[_Outcome]) -> list[bool]:
    """Consume each outcome's transaction and insert its rows, all in one database
    transaction; per outcome, False (nothing written for it) when its transaction was
    consumed before (by an earlier outcome or another process)."""
    with db.driver_connection(ctx.engine) as connection:
        dialect = connection.dialect_name
        if dialect == "postgresql":
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for n, outcome in enumerate(outcomes):
                groups.setdefault(outcome.tables, []).append({"n": n, **outcome.parameters})
            statements = [
                (
                    _batch_statement(tables),
                    {"batch": json.dumps(batch), "ids": [row["id"] for row in batch]},
                )
                for tables, batch in groups.items()
            ]
            consumed = {n for rows in connection.execute_together(statements) for (n,) in rows}
            return [n in consumed for n in range(len(outcomes))]
        with connection.transaction():
            return [_write_sqlite(connection, outcome) for outcome in outcomes]


def _write_sqlite(connection: db.DriverConnection, outcome: _Outcome) -> bool:
    consume, *inserts = _outcome_statements(outcome.tables)
    parameters = _statement_parameters(outcome)
    if not connection.execute(consume, parameters):
        return False
    for sql in inserts:
        connection.execute(sql, parameters)
    return True


def _record_many(ctx: VerifierContext, outcomes: Sequence[_Outcome]) -> list[bool]:
    """:func:`_write_outcomes`, retried through a moment of contention or a database restart:
    an outcome must not be lost (:data:`intyg.web.db.WORKFLOW_PATIENCE_SECONDS`)."""
    return db.patiently(lambda: _write_outcomes(ctx, outcomes), db.WORKFLOW_PATIENCE_SECONDS)


async def _record(
    ctx: VerifierContext, transaction: Located, tables: tuple[str, ...], values: dict[str, Any]
) -> bool:
    """Consume ``transaction`` and insert the outcome's rows, atomically; False (nothing
    written) when another response consumed it first."""
    return await _batchers(ctx).record.submit(_outcome(transaction, tables, values))


def _record_replay(
    ctx: VerifierContext,
    transaction: Located,
    result: pipeline.PipelineResult,
    now: int,
    wallet_error: str | None = None,
) -> None:
    """A response for an already consumed transaction: one more rejection record (bounded
    per transaction); nothing else changes."""
    parameters = {
        "id": transaction.id,
        "failed_checks": json.dumps(result.failed_checks),
        "checks": json.dumps(result.checks_json()),
        "wallet_error": wallet_error,
        "now": now,
        "limit": ctx.settings.max_rejections_per_transaction,
    }

    def write() -> None:
        with db.driver_connection(ctx.engine) as connection:
            connection.execute(_for_dialect(_REPLAY, connection.dialect_name), parameters)

    db.patiently(write, db.WORKFLOW_PATIENCE_SECONDS)


def _request_for(
    ctx: VerifierContext, transaction: Located, fresh: bool
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


def _query(document: Mapping[str, Any] | str) -> dcql.DCQLQuery:
    """The parsed DCQL query of a transaction (its stored JSON text or document), cached."""
    key = document if isinstance(document, str) else strict_json.dumps(document)
    query = _QUERY_CACHE.get(key)
    if query is None:
        if len(_QUERY_CACHE) > 256:
            _QUERY_CACHE.clear()
        query = _QUERY_CACHE[key] = dcql.parse_query(key)
    return query


async def handle_response(ctx: VerifierContext, form: Mapping[str, str]) -> dict[str, str]:
    """Process one ``direct_post`` / ``direct_post.jwt``; the 200 body, or raises 4xx."""
    now = ctx.clock()
    transaction, fields, encrypted = await _locate(ctx, form)
    fresh = transaction.used_at is None
    if fresh and transaction.expires_at <= now:
        raise _unknown()  # expired and never used: nothing stored (T102)
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
    if response is not None and response.error is not None and parse_error is None:
        return await _wallet_error(ctx, transaction, response, fresh, now)
    if parse_error is not None or response is None:
        result = pipeline.failure(pipeline.PARSE, parse_error or "malformed response")
        if not fresh:
            result = result.as_replay()
    else:
        result = await _verify(ctx, response.vp_token, _request_for(ctx, transaction, fresh))
    if fresh and result.verified:
        reply = await _store_verified(ctx, transaction, result, now)
        if reply is not None:
            return reply
        fresh, result = False, result.as_replay()  # another response consumed it first
    await _store_rejection(ctx, transaction, result, fresh, now)
    raise ProtocolError(
        "invalid_request",
        "the presentation was rejected; failed checks: " + ", ".join(result.failed_checks),
    )


async def _verify(
    ctx: VerifierContext, vp_token: Any, request: pipeline.PresentationRequest
) -> pipeline.PipelineResult:
    """The pipeline on the event loop while all it needs is cached; in a thread when it
    must fetch (it is pure apart from fetches, so starting it again is harmless)."""
    try:
        with non_blocking():
            return ctx.pipeline.run(vp_token, request)
    except WouldBlock:
        return await run_in_threadpool(ctx.pipeline.run, vp_token, request)


def _response_code(transaction: Located) -> tuple[str | None, str | None]:
    if transaction.same_device_redirect is None:
        return None, None
    code = oid4vp.new_response_code()
    return code, oid4vp.redirect_uri_with_response_code(transaction.same_device_redirect, code)


def _reply(redirect_uri: str | None) -> dict[str, str]:
    return oid4vp.response_endpoint_reply(redirect_uri)


def _holder_ref(transaction_id: str, thumbprint: str) -> str:
    return digest(f"{transaction_id}.{thumbprint}")


def _audit(
    action: str, transaction: Located, now: int, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``audit_log`` parameters of an outcome (checked: no personal numbers)."""
    row = audit.entry(
        actor="wallet",
        action=action,
        now=now,
        subject=f"transaction:{transaction.id}",
        details=details,
    )
    return {name: row[name] for name in ("actor", "action", "subject", "details")}


async def _store_verified(
    ctx: VerifierContext, transaction: Located, result: pipeline.PipelineResult, now: int
) -> dict[str, str] | None:
    """Consume the transaction and record the result; the reply, or None when another
    response consumed the transaction first (nothing written)."""
    code, redirect_uri = _response_code(transaction)
    values: dict[str, Any] = {
        "now": now,
        "status": TransactionStatus.VERIFIED,
        "response_code_hash": digest(code) if code else None,
        "checks": result.checks_json(),
        "credentials": [
            {
                "credential": c.label,
                "vct": c.vct,
                "issuer": c.trusted.issuer.summary() if c.trusted else None,
            }
            for c in result.credentials
        ],
        "dropped_claims": list(result.dropped),
        "holder_key_refs": sorted(
            {
                _holder_ref(transaction.id, c.holder_thumbprint)
                for c in result.credentials
                if c.holder_thumbprint
            }
        ),
        **_audit(
            "presentation_verified",
            transaction,
            now,
            {"dropped_claims": sum(len(d["paths"]) for d in result.dropped)},
        ),
    }
    tables: tuple[str, ...] = ("results", "audit_log", "webhook_outbox")
    if transaction.retention_days > 0:
        claims = result.requested_claims(_query(transaction.dcql_query))
        values["sealed_claims"] = ctx.store.seal(
            strict_json.dumps(claims).encode("utf-8"), _aad("claims", transaction.id)
        )
        values["retain_until"] = now + transaction.retention_days * DAY
        tables += ("disclosed_claims",)
    if not await _record(ctx, transaction, tables, values):
        return None
    _count(transaction, "verified", result)
    return _reply(redirect_uri)


def _count(
    transaction: Located, outcome: str, result: pipeline.PipelineResult | None = None
) -> None:
    """``intyg_verifications_total`` after the commit: the built-in template's name (``custom``
    for the rest, a bounded label); ``_status_unknown`` when a status list was unreachable."""
    template = transaction.template if transaction.template in templates.TEMPLATES else "custom"
    if result is not None and any(
        check.name == pipeline.STATUS and (check.reason or "").startswith("status unknown")
        for check in result.checks
    ):
        outcome += "_status_unknown"
    metrics.VERIFICATIONS.labels(template, outcome).inc()


async def _store_rejection(
    ctx: VerifierContext,
    transaction: Located,
    result: pipeline.PipelineResult,
    fresh: bool,
    now: int,
) -> None:
    """A fresh rejection consumes the transaction (status, audit, webhook); a replay, or a
    response that lost the race, only adds a rejection record."""
    if fresh:
        values: dict[str, Any] = {
            "now": now,
            "status": TransactionStatus.REJECTED,
            "kind": "presentation",
            "failed_checks": result.failed_checks,
            "checks": result.checks_json(),
            **_audit(
                "presentation_rejected", transaction, now, {"failed_checks": result.failed_checks}
            ),
        }
        tables = ("rejections", "audit_log", "webhook_outbox")
        if await _record(ctx, transaction, tables, values):
            _count(transaction, "rejected", result)
        else:
            fresh, result = False, result.as_replay()
    if not fresh:
        await run_in_threadpool(_record_replay, ctx, transaction, result, now)
    logger.info("transaction %s rejected: %s", transaction.id, ",".join(result.failed_checks))


async def _wallet_error(
    ctx: VerifierContext,
    transaction: Located,
    response: oid4vp.DirectPostResponse,
    fresh: bool,
    now: int,
) -> dict[str, str]:
    """§8.5: the wallet declined (``access_denied`` ...): recorded and shown as such."""
    if fresh:
        code, redirect_uri = _response_code(transaction)
        values: dict[str, Any] = {
            "now": now,
            "status": TransactionStatus.ERROR,
            "response_code_hash": digest(code) if code else None,
            "wallet_error": response.error,
            "wallet_error_description": response.error_description,
            "kind": "wallet_error",
            "failed_checks": [],
            "checks": [],
            **_audit("wallet_error", transaction, now, {"error": response.error}),
        }
        if await _record(ctx, transaction, ("rejections", "audit_log", "webhook_outbox"), values):
            _count(transaction, "wallet_error")
            return _reply(redirect_uri)
    replay = pipeline.PipelineResult(()).as_replay()
    await run_in_threadpool(
        _record_replay, ctx, transaction, replay, now, wallet_error=response.error
    )
    raise _unknown()


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
