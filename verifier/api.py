"""The employer API (issue 5 items 1 and 5): for an employer's own HR system.

Prefix ``/api/v1``. Client authentication, both against the client's scrypt-hashed secret:

- OAuth 2.0 client credentials (RFC 6749 §4.4): ``POST /api/v1/token`` with
  ``client_secret_basic`` gives a bearer token (sealed, names the client, its scopes and a
  fingerprint of the secret hash: rotating the secret or disabling the client ends it);
- API key: ``X-API-Key: <client_id>:<secret>`` (a successful check is cached in process for
  60 s under the key's SHA-256 only).

Endpoints:

- ``POST /api/v1/transactions`` ``{template | dcql_query, purpose?, same_device_redirect?}``
  → 201 ``{transaction_id, request_uri, request_link, same_device_link, qr_svg, expires_at,
  ...}`` (scope ``transactions:write``);
- ``GET /api/v1/transactions/{id}``: polling; status, every named check, the claims while
  retained. Same-device transactions show checks and claims only after the response code
  was redeemed (T103) (scope ``transactions:read``);
- ``POST /api/v1/transactions/{id}/result`` ``{response_code}``: the same-device front end
  redeems the ``response_code`` from the redirect, once (T104).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from intyg.web import db
from intyg.web.bodies import read_form, read_json
from intyg.web.errors import BearerTokenError, ProtocolError
from intyg.web.sessions import CookieSealer, SessionError

from . import templates, transactions
from .app import Context, VerifierContext
from .employers import SCOPE_READ, SCOPE_WRITE
from .models import (
    ApiClient,
    Employer,
    EmployerTemplate,
    Transaction,
    hash_client_secret,
    verify_client_secret,
)

__all__ = ["Caller", "authenticate", "router"]

PREFIX = "/api/v1"
REALM = "verifier"
API_KEY_HEADER = "X-API-Key"
API_KEY_CACHE_SECONDS = 60
TOKEN_PURPOSE = "intyg/verifier/api-token/v1"  # noqa: S105 - a label
_STATE = "api.state"
NO_STORE = {"Cache-Control": "no-store"}
MAX_CREATE_BYTES = 64 * 1024

router = APIRouter(prefix=PREFIX, tags=["employer API"])


@dataclass(frozen=True)
class ApiCaller:
    client_id: str
    employer_id: int
    scopes: frozenset[str]


class _State:
    def __init__(self, ctx: VerifierContext) -> None:
        assert ctx.store.current is not None
        self.sealer = CookieSealer.from_master_key(ctx.store.current, TOKEN_PURPOSE)
        self.api_keys: dict[str, tuple[str, int]] = {}
        self.lock = threading.Lock()
        #: Checked when the client id is unknown, so both paths cost one scrypt.
        self.dummy_hash = hash_client_secret(secrets.token_urlsafe(16))


def _state(ctx: VerifierContext) -> _State:
    state = ctx.extras.get(_STATE)
    if state is None:
        state = ctx.extras.setdefault(_STATE, _State(ctx))
    return state  # type: ignore[no-any-return]


def _fingerprint(secret_hash: str) -> str:
    return hashlib.sha256(secret_hash.encode("ascii")).hexdigest()[:16]


def _active_client(unit: db.Session, client_id: str) -> ApiClient | None:
    client = unit.get(ApiClient, client_id)
    if client is None or client.disabled_at is not None:
        return None
    employer = unit.get(Employer, client.employer_id)
    return None if employer is None or employer.disabled_at is not None else client


def _check_secret(ctx: VerifierContext, client_id: str, secret: str) -> ApiClient | None:
    state = _state(ctx)
    with db.session(ctx.engine, write=False) as unit:
        client = _active_client(unit, client_id)
    if client is None:
        verify_client_secret(secret, state.dummy_hash)  # same cost: no client-id oracle
        return None
    cache_key = hashlib.sha256(f"{client_id}\x00{secret}".encode()).hexdigest()
    now = ctx.clock()
    cached = state.api_keys.get(cache_key)
    if cached and cached[0] == client.secret_hash and cached[1] > now:
        return client
    if not verify_client_secret(secret, client.secret_hash):
        return None
    with state.lock:
        if len(state.api_keys) > 1024:
            state.api_keys.clear()
        state.api_keys[cache_key] = (client.secret_hash, now + API_KEY_CACHE_SECONDS)
    return client


def _bearer(ctx: VerifierContext, token: str) -> ApiCaller:
    try:
        sealed = _state(ctx).sealer.open(token, now=ctx.clock())
    except SessionError:
        raise BearerTokenError(
            "invalid_token", "the token is invalid or expired", realm=REALM
        ) from None
    with db.session(ctx.engine, write=False) as unit:
        client = _active_client(unit, str(sealed.get("cid", "")))
    if client is None or sealed.get("fp") != _fingerprint(client.secret_hash):
        raise BearerTokenError("invalid_token", "the token's client is not active", realm=REALM)
    scopes = frozenset(sealed.get("scp", ())) & frozenset(client.scopes)
    return ApiCaller(client.client_id, client.employer_id, scopes)


def _api_key(ctx: VerifierContext, value: str) -> ApiCaller:
    client_id, _, secret = value.partition(":")
    client = _check_secret(ctx, client_id, secret) if secret else None
    if client is None:
        raise BearerTokenError(
            "invalid_token", "the API key is not valid", realm=REALM, scheme="ApiKey"
        )
    return ApiCaller(client.client_id, client.employer_id, frozenset(client.scopes))


def authenticate(request: Request, ctx: Context) -> ApiCaller:
    """FastAPI dependency: the caller from a bearer token or an API key."""
    api_key = request.headers.get(API_KEY_HEADER)
    authorization = request.headers.get("authorization")
    if api_key is not None and authorization is not None:
        raise BearerTokenError("invalid_request", "use one authentication method", realm=REALM)
    if api_key is not None:
        return _api_key(ctx, api_key)
    if authorization is None:
        raise BearerTokenError(None, realm=REALM)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerTokenError("invalid_request", "expected a Bearer token", realm=REALM)
    return _bearer(ctx, token.strip())


Caller = Annotated[ApiCaller, Depends(authenticate)]


def _require(caller: ApiCaller, scope: str) -> None:
    if scope not in caller.scopes:
        raise BearerTokenError(
            "insufficient_scope", f"this call needs the scope {scope}", realm=REALM
        )


# -- token endpoint (RFC 6749 §4.4) --------------------------------------------------------


def _invalid_client() -> ProtocolError:
    return ProtocolError(
        "invalid_client",
        "client authentication failed",
        401,
        {"WWW-Authenticate": f'Basic realm="{REALM}"'},
    )


def _basic_credentials(request: Request) -> tuple[str, str]:
    """RFC 6749 §2.3.1: form-urlencoded id and secret inside HTTP Basic."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client()
    try:
        pair = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client() from None
    client_id, colon, secret = pair.partition(":")
    if not colon:
        raise _invalid_client()
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


@router.post("/token")
async def token(request: Request, ctx: Context) -> JSONResponse:
    """Client credentials grant: ``client_secret_basic``, form ``grant_type`` and ``scope``."""
    form = await read_form(request, max_bytes=4096)
    client_id, secret = _basic_credentials(request)
    client = await run_in_threadpool(_check_secret, ctx, client_id, secret)
    if client is None:
        raise _invalid_client()
    if form.get("grant_type") != "client_credentials":
        raise ProtocolError("unsupported_grant_type", "grant_type must be client_credentials")
    requested = form["scope"].split() if form.get("scope") else list(client.scopes)
    if not set(requested) <= set(client.scopes):
        raise ProtocolError("invalid_scope", "a requested scope is not granted to this client")
    ttl = ctx.settings.api_token_ttl
    sealed = _state(ctx).sealer.seal(
        {"cid": client.client_id, "scp": requested, "fp": _fingerprint(client.secret_hash)},
        ttl,
        now=ctx.clock(),
    )
    body = {
        "access_token": sealed,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(requested),
    }
    return JSONResponse(body, headers=NO_STORE)


# -- transactions ----------------------------------------------------------------------------

_CREATE_FIELDS = frozenset({"template", "dcql_query", "purpose", "same_device_redirect"})


def _template(
    ctx: VerifierContext, unit: db.Session, employer_id: int, body: dict[str, Any]
) -> templates.Template:
    name, query = body.get("template"), body.get("dcql_query")
    try:
        if (name is None) == (query is None):
            raise templates.TemplateError("give exactly one of template and dcql_query")
        if query is not None:
            return templates.custom_template(
                query,
                body.get("purpose"),
                retention_days=ctx.settings.default_retention_days,
                status_unknown_policy=ctx.settings.status_unknown_policy,
            )
        if not isinstance(name, str):
            raise templates.TemplateError("template must be a name")
        if name in templates.TEMPLATES:
            return templates.with_purpose(templates.builtin(name), body.get("purpose"))
        own = unit.scalars(
            sa.select(EmployerTemplate).where(
                EmployerTemplate.employer_id == employer_id, EmployerTemplate.name == name
            )
        ).first()
        if own is None:
            raise templates.TemplateError("unknown template")
        return templates.custom_template(
            own.dcql_query,
            body.get("purpose") or own.purpose,
            retention_days=own.retention_days,
            status_unknown_policy=own.status_unknown_policy,
            name=own.name,
        )
    except templates.TemplateError as exc:
        raise ProtocolError("invalid_request", str(exc)) from None


def _create(ctx: VerifierContext, caller: ApiCaller, body: dict[str, Any]) -> dict[str, Any]:
    with db.session(ctx.engine) as unit:
        template = _template(ctx, unit, caller.employer_id, body)
        redirect = body.get("same_device_redirect")
        if redirect is not None and not isinstance(redirect, str):
            raise ProtocolError("invalid_request", "same_device_redirect must be a URL")
        transaction = transactions.create_transaction(
            ctx,
            unit,
            employer_id=caller.employer_id,
            client_id=caller.client_id,
            template=template,
            same_device_redirect=redirect,
        )
    return transactions.created_view(ctx, transaction)


@router.post("/transactions", status_code=201)
async def create_transaction(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """A new presentation request from a template or a DCQL query."""
    _require(caller, SCOPE_WRITE)
    body = await read_json(request, max_bytes=MAX_CREATE_BYTES)
    if not isinstance(body, dict) or set(body) - _CREATE_FIELDS:
        raise ProtocolError(
            "invalid_request", f"the body is an object with {sorted(_CREATE_FIELDS)}"
        )
    view = await run_in_threadpool(_create, ctx, caller, body)
    return JSONResponse(view, status_code=201, headers=NO_STORE)


def _own(unit: db.Session, caller: ApiCaller, transaction_id: str) -> Transaction:
    transaction = unit.get(Transaction, transaction_id) if len(transaction_id) <= 64 else None
    if transaction is None or transaction.employer_id != caller.employer_id:
        raise ProtocolError("not_found", "no such transaction", 404)
    return transaction


def _poll(ctx: VerifierContext, caller: ApiCaller, transaction_id: str) -> dict[str, Any]:
    with db.session(ctx.engine, write=False) as unit:
        return transactions.result_view(ctx, unit, _own(unit, caller, transaction_id))


@router.get("/transactions/{transaction_id}")
async def get_transaction(transaction_id: str, ctx: Context, caller: Caller) -> JSONResponse:
    """Polling: status and, when allowed, the result with every named check."""
    _require(caller, SCOPE_READ)
    view = await run_in_threadpool(_poll, ctx, caller, transaction_id)
    return JSONResponse(view, headers=NO_STORE)


def _redeem(
    ctx: VerifierContext, caller: ApiCaller, transaction_id: str, code: Any
) -> dict[str, Any]:
    with db.session(ctx.engine) as unit:
        transaction = _own(unit, caller, transaction_id)
        return transactions.redeem_response_code(ctx, unit, transaction, code)


@router.post("/transactions/{transaction_id}/result")
async def redeem_result(
    transaction_id: str, request: Request, ctx: Context, caller: Caller
) -> JSONResponse:
    """§13.3: the result for the ``response_code`` from the same-device redirect (once)."""
    _require(caller, SCOPE_READ)
    body = await read_json(request, max_bytes=4096)
    if not isinstance(body, dict) or set(body) != {"response_code"}:
        raise ProtocolError("invalid_request", "the body is {response_code}")
    view = await run_in_threadpool(_redeem, ctx, caller, transaction_id, body["response_code"])
    return JSONResponse(view, headers=NO_STORE)
