"""The agency back office: a JSON API for the agency's own systems (issue 3 item 2).

Prefix ``/backoffice/v1``. Every call is authenticated as a :class:`~issuer.models.BackOfficeClient`
and needs a scope; every change is written to the audit log with ``backoffice:<client_id>``
as actor. Personal identity numbers travel only in request bodies, never in a URL or a
response: people are named by an opaque **person reference** (the HMAC lookup key the
issuer keeps for them, :meth:`issuer.records.PersonVault.lookup_key`).

Client authentication (both check the client's scrypt-hashed secret, models.hash_client_secret):

- **OAuth 2.0 client credentials** (RFC 6749 §4.4): ``POST /backoffice/v1/token`` with
  ``client_secret_basic`` (§2.3.1) and ``grant_type=client_credentials`` (optional
  ``scope``) gives a bearer token valid ``backoffice_token_ttl`` seconds, sent as
  ``Authorization: Bearer <token>`` (RFC 6750). The token is sealed (AES-256-GCM under a key
  derived from the master key) and names the client, its scopes and a fingerprint of the
  client's secret hash: rotating the secret or disabling the client ends its tokens at once,
  every request re-reads the client row, and nothing redeemable is stored.
- **API key**: ``X-API-Key: <client_id>:<secret>``. A successful scrypt check is cached in
  the process for :data:`API_KEY_CACHE_SECONDS` under the key's SHA-256 only.

Scopes: ``records:write`` (and ``records:read``) · ``offers:write`` · ``issuances:read`` ·
``status:write`` · ``catalogue:write``.

Operators create clients with :func:`create_client` (the secret is returned once)::

    from intyg.web import db
    from issuer.app import build_context
    from issuer.backoffice import create_client
    from issuer.settings import IssuerSettings

    ctx = build_context(IssuerSettings())
    with db.session(ctx.engine) as unit:
        secret = create_client(unit, client_id="case-system", name="Case system",
                               scopes=["records:write", "offers:write"], now=ctx.clock())

:func:`rotate_client_secret` and :func:`disable_client` do the rest. In development,
``INTYG_ISSUER_DEV_BACKOFFICE_SECRET`` makes a client ``dev-backoffice`` with every scope
on first use (no CLI needed).
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime
import hashlib
import io
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from intyg import personnummer
from intyg.web import db
from intyg.web.bodies import media_type, read_form, read_json
from intyg.web.errors import BearerTokenError, ProtocolError, error_response
from intyg.web.sessions import CookieSealer, SessionError

from . import audit, offers, records
from . import status as issuer_status
from .app import Context, IssuerContext
from .models import (
    AFRegistration,
    BackOfficeClient,
    Issuance,
    IssuanceStatus,
    MYHAward,
    MYHQualification,
    Person,
    hash_client_secret,
    verify_client_secret,
)

__all__ = [
    "ALL_SCOPES",
    "BackOfficeClientInfo",
    "create_client",
    "disable_client",
    "rotate_client_secret",
    "router",
]

PREFIX = "/backoffice/v1"
REALM = "backoffice"
ALL_SCOPES = (
    "records:write",
    "records:read",
    "offers:write",
    "issuances:read",
    "status:write",
    "catalogue:write",
)
DEV_CLIENT_ID = "dev-backoffice"
API_KEY_HEADER = "X-API-Key"
API_KEY_CACHE_SECONDS = 60
TOKEN_PURPOSE = "intyg/issuer/backoffice-token/v1"  # noqa: S105 - a label
MAX_IMPORT_ROWS = 5000
MAX_LIST = 500
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_STATE = "backoffice.state"

router = APIRouter(prefix=PREFIX, tags=["back office"])


# -- clients (operators) -------------------------------------------------------------------


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes))
    unknown = set(chosen) - set(ALL_SCOPES)
    if unknown or not chosen:
        raise ValueError(f"scopes must be a non-empty subset of {list(ALL_SCOPES)}")
    return chosen


def create_client(
    unit: db.Session,
    *,
    client_id: str,
    name: str,
    scopes: Iterable[str],
    now: int,
    secret: str | None = None,
) -> str:
    """Register a back-office client; returns its secret (shown once, stored hashed)."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise ValueError("client_id must be 1-64 of A-Z a-z 0-9 . _ -")
    secret = secret or secrets.token_urlsafe(32)
    chosen = _check_scopes(scopes)
    unit.add(
        BackOfficeClient(
            client_id=client_id,
            secret_hash=hash_client_secret(secret),
            name=name,
            scopes=chosen,
            created_at=now,
        )
    )
    unit.flush()
    audit.record(
        unit,
        actor="operator",
        action="backoffice.client.create",
        now=now,
        subject=audit.reference("client", client_id),
        details={"scopes": chosen},
    )
    return secret


def rotate_client_secret(unit: db.Session, client_id: str, now: int) -> str:
    """A new secret for ``client_id``; its old secret, keys and tokens stop working."""
    client = unit.get(BackOfficeClient, client_id)
    if client is None:
        raise ValueError("unknown client")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_client_secret(secret)
    unit.add(client)
    audit.record(
        unit,
        actor="operator",
        action="backoffice.client.rotate",
        now=now,
        subject=audit.reference("client", client_id),
    )
    return secret


def disable_client(unit: db.Session, client_id: str, now: int) -> None:
    client = unit.get(BackOfficeClient, client_id)
    if client is None:
        raise ValueError("unknown client")
    client.disabled_at = now
    unit.add(client)
    audit.record(
        unit,
        actor="operator",
        action="backoffice.client.disable",
        now=now,
        subject=audit.reference("client", client_id),
    )


# -- authentication ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackOfficeClientInfo:
    """The authenticated caller: client id and the scopes this request may use."""

    client_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"backoffice:{self.client_id}"


class _State:
    """Per-app state: the token sealer, the API key cache, the dev client flag."""

    def __init__(self, ctx: IssuerContext) -> None:
        self.sealer = CookieSealer.from_master_key(
            ctx.store.current, f"{TOKEN_PURPOSE}/{ctx.agency.key}"
        )
        self.api_keys: dict[str, tuple[str, str, int]] = {}
        self.lock = threading.Lock()
        self.dev_client_ready = False
        #: Checked against when the client id is unknown, so both paths cost one scrypt.
        self.dummy_hash = hash_client_secret(secrets.token_urlsafe(16))


def _state(ctx: IssuerContext) -> _State:
    state = ctx.extras.get(_STATE)
    if state is None:
        state = ctx.extras.setdefault(_STATE, _State(ctx))
    return state  # type: ignore[no-any-return]


def _ensure_dev_client(ctx: IssuerContext, state: _State) -> None:
    """Development: the ``dev-backoffice`` client with every scope, made on first use."""
    secret = ctx.settings.dev_backoffice_secret
    if secret is None or state.dev_client_ready:
        return
    with state.lock, db.session(ctx.engine) as unit:
        if unit.get(BackOfficeClient, DEV_CLIENT_ID) is None:
            create_client(
                unit,
                client_id=DEV_CLIENT_ID,
                name="Development back office",
                scopes=ALL_SCOPES,
                now=ctx.clock(),
                secret=secret.get_secret_value(),
            )
        state.dev_client_ready = True


def _fingerprint(secret_hash: str) -> str:
    return hashlib.sha256(secret_hash.encode("ascii")).hexdigest()[:16]


def _active_client(unit: db.Session, client_id: str) -> BackOfficeClient | None:
    client = unit.get(BackOfficeClient, client_id)
    return None if client is None or client.disabled_at is not None else client


def _check_secret(ctx: IssuerContext, client_id: str, secret: str) -> BackOfficeClient | None:
    """The active client if ``secret`` is its secret (scrypt, constant time), else None."""
    state = _state(ctx)
    _ensure_dev_client(ctx, state)
    with db.session(ctx.engine, write=False) as unit:
        client = _active_client(unit, client_id)
    if client is None:
        # Same work as a real check, so timing does not reveal which client ids exist.
        verify_client_secret(secret, state.dummy_hash)
        return None
    cache_key = hashlib.sha256(f"{client_id}\x00{secret}".encode()).hexdigest()
    now = ctx.clock()
    cached = state.api_keys.get(cache_key)
    if cached and cached[1] == client.secret_hash and cached[2] > now:
        return client
    if not verify_client_secret(secret, client.secret_hash):
        return None
    with state.lock:
        if len(state.api_keys) > 1024:
            state.api_keys.clear()
        state.api_keys[cache_key] = (client_id, client.secret_hash, now + API_KEY_CACHE_SECONDS)
    return client


def _bearer_client(ctx: IssuerContext, token: str) -> BackOfficeClientInfo:
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
    return BackOfficeClientInfo(client.client_id, scopes)


def _api_key_client(ctx: IssuerContext, value: str) -> BackOfficeClientInfo:
    client_id, _, secret = value.partition(":")
    client = _check_secret(ctx, client_id, secret) if secret else None
    if client is None:
        raise BearerTokenError(
            "invalid_token", "the API key is not valid", realm=REALM, scheme="ApiKey"
        )
    return BackOfficeClientInfo(client.client_id, frozenset(client.scopes))


def authenticate(request: Request, ctx: Context) -> BackOfficeClientInfo:
    """FastAPI dependency: the caller from a bearer token or an API key."""
    api_key = request.headers.get(API_KEY_HEADER)
    authorization = request.headers.get("authorization")
    if api_key is not None and authorization is not None:
        raise BearerTokenError("invalid_request", "use one authentication method", realm=REALM)
    if api_key is not None:
        return _api_key_client(ctx, api_key)
    if authorization is None:
        raise BearerTokenError(None, realm=REALM)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerTokenError("invalid_request", "expected a Bearer token", realm=REALM)
    return _bearer_client(ctx, token.strip())


Caller = Annotated[BackOfficeClientInfo, Depends(authenticate)]


def require(caller: BackOfficeClientInfo, *scopes: str) -> None:
    """RFC 6750 §3.1 ``insufficient_scope`` unless the caller has one of ``scopes``."""
    if not caller.scopes & set(scopes):
        raise BearerTokenError(
            "insufficient_scope", f"this call needs the scope {scopes[0]}", realm=REALM
        )


# -- token endpoint (RFC 6749 §4.4) --------------------------------------------------------


def _invalid_client() -> ProtocolError:
    # §5.2: 401 with a challenge for the scheme the client used.
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


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    scope: str


@router.post("/token", response_model=TokenResponse)
async def token(request: Request, ctx: Context) -> JSONResponse:
    """Client credentials grant: ``client_secret_basic``, form ``grant_type`` and ``scope``."""
    form = await read_form(request, max_bytes=4096)
    client_id, secret = _basic_credentials(request)
    client = _check_secret(ctx, client_id, secret)
    if client is None:
        raise _invalid_client()
    if form.get("grant_type") != "client_credentials":
        raise ProtocolError("unsupported_grant_type", "grant_type must be client_credentials")
    requested = form["scope"].split() if form.get("scope") else list(client.scopes)
    if not set(requested) <= set(client.scopes):
        raise ProtocolError("invalid_scope", "a requested scope is not granted to this client")
    ttl = ctx.settings.backoffice_token_ttl
    sealed = _state(ctx).sealer.seal(
        {"cid": client.client_id, "scp": requested, "fp": _fingerprint(client.secret_hash)},
        ttl,
        now=ctx.clock(),
    )
    body = TokenResponse(access_token=sealed, expires_in=ttl, scope=" ".join(requested))
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})


# -- request bodies ------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class PersonFields(_Body):
    personal_identity_number: str = Field(
        description="12 digits (or 10 with separator); only ever in bodies", max_length=13
    )
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    birthdate: datetime.date | None = Field(
        default=None, strict=False, description="YYYY-MM-DD; the number's date if absent"
    )


class Category(_Body):
    code: str = Field(max_length=2)
    label: str = Field(max_length=200)


class Programme(_Body):
    code: str | None = Field(default=None, max_length=32)
    label: str | None = Field(default=None, max_length=200)
    since: datetime.date | None = Field(default=None, strict=False)


class RegistrationBody(PersonFields):
    """A person's registration as a job seeker (Arbetsförmedlingen)."""

    registered: bool
    registration_category: Category
    registered_since: datetime.date | None = Field(default=None, strict=False)
    programme: Programme | None = None
    office: str | None = Field(default=None, max_length=200)


class AwardBody(PersonFields):
    """A qualification awarded to a person (MYH)."""

    qualification_id: str = Field(max_length=36)
    awarded_on: datetime.date = Field(strict=False)


class OfferBody(_Body):
    person: str = Field(description="person reference", max_length=64)
    record_id: int | None = Field(default=None, description="default: AF's registration")
    configuration_ids: list[str] | None = Field(default=None, description="default: both")
    tx_code: bool = True


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its ``$defs`` inlined, for ``openapi_extra``."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(definitions[ref.rsplit("/", 1)[1]])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


def _documented(model: type[BaseModel], *kinds: str) -> dict[str, Any]:
    schema = _inline_refs(model.model_json_schema())
    content = {kind: {"schema": schema} for kind in kinds or ("application/json",)}
    return {"requestBody": {"required": True, "content": content}}


def _field_name(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProtocolError(
            "invalid_request", f"invalid or missing field {_field_name(first['loc'])}"
        ) from None


async def _json(request: Request, ctx: IssuerContext) -> Any:
    return await read_json(request, max_bytes=ctx.settings.max_body_bytes)


# -- helpers -------------------------------------------------------------------------------


def _require_agency(ctx: IssuerContext, key: str) -> None:
    if ctx.agency.key != key:
        raise ProtocolError("not_found", "this issuer does not keep these records", 404)


def _upsert_person(unit: db.Session, ctx: IssuerContext, body: PersonFields, now: int) -> Person:
    vault = ctx.person_vault()
    try:
        number = personnummer.parse(body.personal_identity_number)
    except personnummer.PersonnummerError:
        raise records.RecordError(
            "personal_identity_number: not a valid personal identity number"
        ) from None
    return vault.upsert(
        unit,
        number.twelve_digits,
        given_name=body.given_name,
        family_name=body.family_name,
        birthdate=body.birthdate or number.birth_date,
        now=now,
    )


def _person_by_reference(unit: db.Session, reference: str) -> Person:
    person = unit.scalars(sa.select(Person).where(Person.lookup_key == reference)).first()
    if person is None:
        raise ProtocolError("not_found", "no person with this reference", 404)
    return person


def _registration_input(body: RegistrationBody) -> records.RegistrationInput:
    programme = body.programme or Programme()
    return records.RegistrationInput(
        registered=body.registered,
        category_code=body.registration_category.code,
        category_label=body.registration_category.label,
        registered_since=body.registered_since,
        programme_code=programme.code,
        programme_label=programme.label,
        programme_since=programme.since,
        office=body.office,
    )


def _registration_view(person: Person, row: AFRegistration) -> dict[str, Any]:
    programme = {
        "code": row.programme_code,
        "label": row.programme_label,
        "since": row.programme_since.isoformat() if row.programme_since else None,
    }
    return {
        "person": person.lookup_key,
        "record_id": row.id,
        "registered": row.registered,
        "registration_category": {"code": row.category_code, "label": row.category_label},
        "registered_since": row.registered_since.isoformat() if row.registered_since else None,
        "programme": programme if any(programme.values()) else None,
        "office": row.office,
        "updated_at": row.updated_at,
    }


def _award_view(person: Person, row: MYHAward, title: str | None = None) -> dict[str, Any]:
    return {
        "person": person.lookup_key,
        "record_id": row.id,
        "qualification_id": row.qualification_id,
        "title": title,
        "awarded_on": row.awarded_on.isoformat(),
        "updated_at": row.updated_at,
    }


def _record_error(exc: records.RecordError) -> ProtocolError:
    return ProtocolError("invalid_request", _safe_message(str(exc)))


def _safe_message(message: str) -> str:
    # RecordError and SchemaError never carry values; a long digit run would be one anyway.
    return "invalid value" if re.search(r"[0-9]{6}", message) else message


def _audit(
    unit: db.Session,
    caller: BackOfficeClientInfo,
    action: str,
    now: int,
    subject: str | None = None,
    **details: Any,
) -> None:
    audit.record(
        unit,
        actor=caller.actor,
        action=f"backoffice.{action}",
        now=now,
        subject=subject,
        details=details,
    )


# -- records: Arbetsförmedlingen -----------------------------------------------------------


def _put_registration(
    unit: db.Session, ctx: IssuerContext, body: RegistrationBody, now: int
) -> tuple[Person, AFRegistration]:
    person = _upsert_person(unit, ctx, body, now)
    return person, records.upsert_registration(unit, person, _registration_input(body), now)


@router.put("/registrations", openapi_extra=_documented(RegistrationBody))
async def put_registration(request: Request, ctx: Context, caller: Caller) -> dict[str, Any]:
    """Create or replace a person's registration (AF). The number is in the body only."""
    require(caller, "records:write")
    _require_agency(ctx, "af")
    body = _parse(RegistrationBody, await _json(request, ctx))
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        try:
            person, row = _put_registration(unit, ctx, body, now)
        except records.RecordError as exc:
            raise _record_error(exc) from None
        _audit(unit, caller, "registration.put", now, audit.reference("person", person.id))
        return _registration_view(person, row)


@router.get("/registrations/{person}")
def get_registration(
    ctx: Context, caller: Caller, person: Annotated[str, Path(max_length=64)]
) -> dict[str, Any]:
    """A person's registration by person reference."""
    require(caller, "records:read", "records:write")
    _require_agency(ctx, "af")
    with db.session(ctx.engine, write=False) as unit:
        found = _person_by_reference(unit, person)
        assert found.id is not None
        row = records.find_registration(unit, found.id)
        if row is None:
            raise ProtocolError("not_found", "this person has no registration", 404)
        return _registration_view(found, row)


# -- records: MYH --------------------------------------------------------------------------


def _post_award(
    unit: db.Session, ctx: IssuerContext, body: AwardBody, now: int
) -> tuple[Person, MYHAward]:
    person = _upsert_person(unit, ctx, body, now)
    row = records.award_qualification(unit, person, body.qualification_id, body.awarded_on, now)
    return person, row


@router.post("/awards", status_code=201, openapi_extra=_documented(AwardBody))
async def post_award(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """Record a qualification awarded to a person (MYH)."""
    require(caller, "records:write")
    _require_agency(ctx, "myh")
    body = _parse(AwardBody, await _json(request, ctx))
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        try:
            person, row = _post_award(unit, ctx, body, now)
        except records.RecordError as exc:
            raise _record_error(exc) from None
        _audit(
            unit,
            caller,
            "award.put",
            now,
            audit.reference("person", person.id),
            qualification_id=row.qualification_id,
            record_id=row.id,
        )
        return JSONResponse(_award_view(person, row), status_code=201)


@router.get("/awards/{person}")
def get_awards(
    ctx: Context, caller: Caller, person: Annotated[str, Path(max_length=64)]
) -> dict[str, Any]:
    """The qualifications awarded to a person."""
    require(caller, "records:read", "records:write")
    _require_agency(ctx, "myh")
    with db.session(ctx.engine, write=False) as unit:
        found = _person_by_reference(unit, person)
        assert found.id is not None
        items = []
        for award in records.find_awards(unit, found.id):
            qualification = unit.get(MYHQualification, award.qualification_id)
            title = qualification.data["claims"].get("title") if qualification else None
            items.append(_award_view(found, award, title))
        return {"person": found.lookup_key, "awards": items}


# -- bulk import ---------------------------------------------------------------------------

_REGISTRATION_COLUMNS = (
    "personal_identity_number",
    "given_name",
    "family_name",
    "birthdate",
    "registered",
    "category_code",
    "category_label",
    "registered_since",
    "programme_code",
    "programme_label",
    "programme_since",
    "office",
)
_AWARD_COLUMNS = (
    "personal_identity_number",
    "given_name",
    "family_name",
    "birthdate",
    "qualification_id",
    "awarded_on",
)


@dataclass(frozen=True)
class ImportRowError:
    row: int
    field: str
    message: str


class _ImportRefused(Exception):
    def __init__(self, errors: list[ImportRowError]) -> None:
        self.errors = errors


def _csv_registration(cells: Mapping[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {k: cells[k] for k in PersonFields.model_fields if cells.get(k)}
    flag = cells.get("registered", "").strip().lower()
    row["registered"] = {"true": True, "1": True, "false": False, "0": False}.get(flag, flag)
    row["registration_category"] = {
        "code": cells.get("category_code", ""),
        "label": cells.get("category_label", ""),
    }
    for name in ("registered_since", "office"):
        if cells.get(name):
            row[name] = cells[name]
    programme = {k: cells.get(f"programme_{k}") for k in ("code", "label", "since")}
    if any(programme.values()):
        row["programme"] = {k: v for k, v in programme.items() if v}
    return row


def _csv_award(cells: Mapping[str, str]) -> dict[str, Any]:
    return {k: v for k, v in cells.items() if k in _AWARD_COLUMNS and v}


def _csv_rows(
    raw: bytes, columns: tuple[str, ...], shape: Callable[[Mapping[str, str]], dict[str, Any]]
) -> list[Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProtocolError("invalid_request", "CSV must be UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in columns]
        if unknown or "personal_identity_number" not in header:
            raise ProtocolError(
                "invalid_request", f"CSV header must use the columns {', '.join(columns)}"
            )
        rows = []
        for cells in reader:
            if None in cells:
                raise ProtocolError("invalid_request", f"CSV row {len(rows) + 1} has extra cells")
            rows.append(shape({k: (v or "").strip() for k, v in cells.items()}))
            if len(rows) > MAX_IMPORT_ROWS:
                break
    except csv.Error:
        raise ProtocolError("invalid_request", "the CSV could not be parsed") from None
    return rows


async def _import_rows(
    request: Request,
    ctx: IssuerContext,
    columns: tuple[str, ...],
    shape: Callable[[Mapping[str, str]], dict[str, Any]],
) -> list[Any]:
    kind, _ = media_type(request.headers.get("content-type"))
    if kind == "text/csv":
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > ctx.settings.max_body_bytes:
                raise ProtocolError("invalid_request", "request body too large", 413)
        rows = _csv_rows(raw, columns, shape)
    else:
        rows = await _json(request, ctx)
        if not isinstance(rows, list):
            raise ProtocolError("invalid_request", "the body must be a JSON array of records")
    if not rows:
        raise ProtocolError("invalid_request", "no records to import")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ProtocolError("invalid_request", f"at most {MAX_IMPORT_ROWS} records per import")
    return rows


def _row_error(number: int, exc: Exception) -> ImportRowError:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return ImportRowError(number, _field_name(first["loc"]), "invalid or missing value")
    message = _safe_message(str(exc))
    head, colon, rest = message.partition(":")
    if colon and head.startswith("$."):
        return ImportRowError(number, head[2:], rest.strip())
    field = next((name for name in _AWARD_COLUMNS + _REGISTRATION_COLUMNS if name in head), "")
    if not field and head.startswith(tuple(_AWARD_COLUMNS + _REGISTRATION_COLUMNS)):
        field = head.split()[0]
    return ImportRowError(number, field or "record", message)


def _apply_all(
    unit: db.Session,
    rows: list[Any],
    apply: Callable[[Any], tuple[Person, Any]],
    model: type[BaseModel],
) -> list[tuple[Person, Any]]:
    """Apply every row in savepoints; raise :class:`_ImportRefused` listing every bad row."""
    errors: list[ImportRowError] = []
    done: list[tuple[Person, Any]] = []
    for number, data in enumerate(rows, start=1):
        try:
            with unit.begin_nested():
                done.append(apply(model.model_validate(data)))
        except (ValidationError, records.RecordError) as exc:
            errors.append(_row_error(number, exc))
    if errors:
        raise _ImportRefused(errors)
    return done


def _refused(errors: list[ImportRowError]) -> JSONResponse:
    body = ProtocolError(
        "invalid_request", f"{len(errors)} record(s) refused; nothing was imported"
    ).body()
    report = [{"row": e.row, "field": e.field, "message": e.message} for e in errors]
    return error_response(400, {**body, "errors": report})  # type: ignore[dict-item]


async def _bulk(
    request: Request,
    ctx: IssuerContext,
    caller: BackOfficeClientInfo,
    what: Literal["registrations", "awards"],
) -> JSONResponse:
    require(caller, "records:write")
    _require_agency(ctx, "af" if what == "registrations" else "myh")
    if what == "registrations":
        rows = await _import_rows(request, ctx, _REGISTRATION_COLUMNS, _csv_registration)
        model: type[BaseModel] = RegistrationBody
        apply: Callable[..., tuple[Person, Any]] = _put_registration
    else:
        rows = await _import_rows(request, ctx, _AWARD_COLUMNS, _csv_award)
        model, apply = AwardBody, _post_award
    now = ctx.clock()
    try:
        with db.session(ctx.engine) as unit:
            done = _apply_all(unit, rows, lambda body: apply(unit, ctx, body, now), model)
            _audit(unit, caller, f"import.{what}", now, None, records=len(done))
    except _ImportRefused as refused:
        return _refused(refused.errors)
    items = [
        {"row": n, "person": p.lookup_key, "record_id": r.id} for n, (p, r) in enumerate(done, 1)
    ]
    return JSONResponse({"imported": len(done), "records": items})


_IMPORT_DOCS = {"text/csv": {"schema": {"type": "string"}}}


@router.post(
    "/import/registrations",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": _inline_refs(RegistrationBody.model_json_schema()),
                    }
                },
                **_IMPORT_DOCS,
            },
        }
    },
)
async def import_registrations(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """Bulk import of AF registrations (CSV with the column names of the JSON fields, or a
    JSON array). All or nothing: any bad row refuses the whole import with a per-row report
    (``row`` 1-based, ``field``, ``message``; values are never echoed)."""
    return await _bulk(request, ctx, caller, "registrations")


@router.post(
    "/import/awards",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": _inline_refs(AwardBody.model_json_schema()),
                    }
                },
                **_IMPORT_DOCS,
            },
        }
    },
)
async def import_awards(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """Bulk import of MYH awards (CSV or JSON array), all or nothing, per-row report."""
    return await _bulk(request, ctx, caller, "awards")


@router.post(
    "/catalogue",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_catalogue(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """Import MYH's qualifications catalogue (``{"qualifications": [...]}``), all or nothing."""
    require(caller, "catalogue:write")
    _require_agency(ctx, "myh")
    document = await _json(request, ctx)
    now = ctx.clock()
    try:
        with db.session(ctx.engine) as unit:
            report = records.import_catalogue(unit, document, now)
            _audit(
                unit,
                caller,
                "catalogue.import",
                now,
                None,
                imported=report.imported,
                updated=report.updated,
            )
    except records.CatalogueImportError as exc:
        rows = [
            {"row": e.row, "qualification_id": e.qualification_id, "message": e.message}
            for e in exc.report.errors
        ]
        body = ProtocolError("invalid_request", str(exc)).body()
        return error_response(400, {**body, "errors": rows})  # type: ignore[dict-item]
    return JSONResponse({"imported": report.imported, "updated": report.updated})


# -- offers --------------------------------------------------------------------------------


def _default_record(unit: db.Session, ctx: IssuerContext, person: Person) -> int:
    assert person.id is not None
    if ctx.agency.key == "af":
        row = records.find_registration(unit, person.id)
        if row is not None and row.id is not None:
            return row.id
    raise ProtocolError("invalid_request", "record_id is required")


@router.post("/offers", status_code=201, openapi_extra=_documented(OfferBody))
async def create_offer(request: Request, ctx: Context, caller: Caller) -> JSONResponse:
    """A credential offer for a person's record: ``credential_offer_uri``, the same-device
    link, the QR code (SVG) and the ``tx_code`` to send out of band (SMS, letter)."""
    require(caller, "offers:write")
    body = _parse(OfferBody, await _json(request, ctx))
    # Off the event loop: the database (a busy SQLite waits up to its timeout) and the QR
    # code would stall every other request of this process (bench/load.py: 15 s timeouts).
    result = await run_in_threadpool(_create_offer, ctx, caller, body)
    return JSONResponse(result, status_code=201, headers={"Cache-Control": "no-store"})


def _create_offer(
    ctx: IssuerContext, caller: BackOfficeClientInfo, body: OfferBody
) -> dict[str, Any]:
    with db.session(ctx.engine) as unit:
        person = _person_by_reference(unit, body.person)
        record_id = body.record_id or _default_record(unit, ctx, person)
        try:
            offer = offers.create_offer(
                unit, ctx, person, record_id, body.configuration_ids, tx_code=body.tx_code
            )
        except offers.OfferError as exc:
            raise ProtocolError("invalid_request", str(exc)) from None
        _audit(
            unit,
            caller,
            "offer.create",
            ctx.clock(),
            audit.reference("offer", offer.offer_id),
            person=audit.reference("person", person.id),
            record_id=record_id,
            configuration_ids=list(offer.configuration_ids),
            tx_code=body.tx_code,
        )
    return {
        "offer_id": offer.offer_id,
        "credential_offer_uri": offer.offer_uri,
        "link": offer.link,
        "qr_svg": offers.qr_svg(offer.link),
        "tx_code": offer.tx_code,
        "configuration_ids": list(offer.configuration_ids),
        "expires_at": offer.expires_at,
    }


# -- issuances and status ------------------------------------------------------------------


def _issuance_view(row: Issuance, person_reference: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "person": person_reference,
        "record_id": row.record_id,
        "configuration_id": row.configuration_id,
        "format": row.format,
        "status": row.status,
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "status_changed_at": row.status_changed_at,
    }


def _day_start(day: datetime.date) -> int:
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


@router.get("/issuances")
def list_issuances(
    ctx: Context,
    caller: Caller,
    person: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["valid", "revoked", "suspended"] | None = None,
    issued_from: Annotated[datetime.date | None, Query(description="YYYY-MM-DD, UTC")] = None,
    issued_to: Annotated[datetime.date | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> dict[str, Any]:
    """What was issued, newest first (no personal numbers, ever)."""
    require(caller, "issuances:read")
    query = sa.select(Issuance, Person.lookup_key).join(Person, Person.id == Issuance.person_id)
    if person is not None:
        query = query.where(Person.lookup_key == person)
    if status is not None:
        query = query.where(Issuance.status == status)
    if issued_from is not None:
        query = query.where(Issuance.issued_at >= _day_start(issued_from))
    if issued_to is not None:
        end = _day_start(issued_to + datetime.timedelta(days=1))
        query = query.where(Issuance.issued_at < end)
    query = query.order_by(Issuance.issued_at.desc(), Issuance.id).limit(limit)  # type: ignore[attr-defined]
    with db.session(ctx.engine, write=False) as unit:
        rows = unit.execute(query).all()
    return {"issuances": [_issuance_view(row, reference) for row, reference in rows]}


_STATUS_VALUES = {
    "revoke": issuer_status.INVALID,
    "suspend": issuer_status.SUSPENDED,
    "unsuspend": issuer_status.VALID,
}


def _change_status(
    ctx: IssuerContext, caller: BackOfficeClientInfo, issuance_id: str, action: str
) -> dict[str, Any]:
    require(caller, "status:write")
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        current = unit.get(Issuance, issuance_id)
        if current is None:
            raise ProtocolError("not_found", "no such issuance", 404)
        if action == "unsuspend" and current.status != IssuanceStatus.SUSPENDED:
            raise ProtocolError(
                "invalid_request", "only a suspended credential can be unsuspended", 409
            )
        try:
            row = issuer_status.set_status(unit, issuance_id, _STATUS_VALUES[action], now)
        except issuer_status.StatusManagementError as exc:
            raise ProtocolError("invalid_request", str(exc), 409) from None
        person = unit.get(Person, row.person_id)
        assert person is not None
        _audit(
            unit,
            caller,
            f"issuance.{action}",
            now,
            audit.reference("issuance", row.id),
            status=row.status,
        )
        return _issuance_view(row, person.lookup_key)


IssuanceId = Annotated[str, Path(max_length=36)]


@router.post("/issuances/{issuance_id}/revoke")
def revoke(issuance_id: IssuanceId, ctx: Context, caller: Caller) -> dict[str, Any]:
    """Revoke (irreversible); the served status lists show it within ``status_ttl_seconds``."""
    return _change_status(ctx, caller, issuance_id, "revoke")


@router.post("/issuances/{issuance_id}/suspend")
def suspend(issuance_id: IssuanceId, ctx: Context, caller: Caller) -> dict[str, Any]:
    """Suspend (can be undone with ``unsuspend``)."""
    return _change_status(ctx, caller, issuance_id, "suspend")


@router.post("/issuances/{issuance_id}/unsuspend")
def unsuspend(issuance_id: IssuanceId, ctx: Context, caller: Caller) -> dict[str, Any]:
    """Make a suspended credential valid again."""
    return _change_status(ctx, caller, issuance_id, "unsuspend")
