"""OpenID4VCI 1.0 issuer and authorization server endpoints (issue 3 item 1; protocols.md §1,
§6; security.md T001-T056).

Metadata (§12.2, RFC 8414), credential offers by reference (§4.1), pushed authorization
requests (RFC 9126) and the authorization endpoint with eID login, the token endpoint
(pre-authorized and authorization code grants, PKCE S256, DPoP RFC 9449, wallet
attestations), the nonce (§7), credential (§8) and notification (§11) endpoints.

HAIP 1.0 (``settings.haip``, on by default) makes PAR mandatory, requires DPoP (unless
``dpop_required`` says otherwise) and wallet attestation for the authorization code flow;
the pre-authorized code flow stays open to any wallet that proves key possession.

Rules every handler follows: protocol checks come from :mod:`intyg.oid4vci`; single-use
items are consumed atomically in the database; a credential is committed (issuance row,
status entry, audit entry, consumed ``c_nonce``) before the response leaves (I1); every
refusal is an OAuth error body from :mod:`intyg.web.errors`, never a 200.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import html
import secrets
from collections.abc import Callable, Mapping, Sequence
from contextvars import copy_context
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.dialects import postgresql, sqlite

from intyg import client_attestation, jose, oid4vci, schemas, sdjwt_vc, vcdm
from intyg.sdjwt import SD
from intyg.web import db, fastlane, metrics
from intyg.web.batching import Batcher, isolating
from intyg.web.bodies import (
    DEFAULT_MAX_BODY_BYTES,
    JSON,
    form_body,
    json_body,
    parse_form,
    parse_json,
)
from intyg.web.errors import NO_STORE, BearerTokenError, ProtocolError, ServiceUnavailable
from intyg.web.fastlane import FastReply, FastRequest, FastRoute
from intyg.web.faults import crash_point
from intyg.web.oidc import OidcError, OidcRelyingParty
from intyg.web.outbound import OutboundClient

from . import agencies, audit, offers, records, single_statement
from . import status as issuer_status
from .app import Context, IssuerContext, hot_threads
from .db import Unit
from .keys import ActiveKey
from .models import (
    AFRegistration,
    AuthorizationCode,
    AuthorizationRequest,
    CNonce,
    CredentialOffer,
    Issuance,
    MYHAward,
    digest,
)
from .tokens import (
    ALGORITHMS,
    DPOP_REPLAY,
    AuthenticatedToken,
    TokenGrant,
    authenticate,
    check_client_attestation,
    check_dpop,
    dpop_replay_jti,
    issue_access_token,
    maybe_sweep,
    presented_token,
    remember_jti,
    sweep_due,
    wallet_trust_anchors,
)

__all__ = [
    "as_metadata",
    "credential_identifier",
    "credential_issuer_metadata",
    "error_page",
    "router",
]

router = APIRouter()
T = TypeVar("T")

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
DAY = 86_400
METADATA_MAX_AGE = 300
#: Decoy digests per object with disclosures (RFC 9901 §4.2.5).
DECOYS = 2
MAX_PARAMETER_LENGTH = 2048
CALLBACK_PATH = "/authorize/callback"
RESUME_PATH = "/authorize/resume"
SCHEMA_PATH = "/schemas/{type_name}/schema.json"
JSON_SCHEMA_TYPE = "JsonSchema"


def _now(ctx: IssuerContext) -> int:
    return ctx.clock()


def _refusal(exc: oid4vci.OID4VCIError) -> ProtocolError:
    """An :class:`~intyg.oid4vci.OID4VCIError` as the HTTP error it stands for."""
    if exc.error == "insufficient_scope":
        return BearerTokenError("insufficient_scope", exc.description)
    return ProtocolError(exc.error, exc.description)


def _json(body: Any, status_code: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={**NO_STORE, **headers})


# -- metadata (OpenID4VCI §12.2, RFC 8414) ---------------------------------------------------


def _claims_metadata(vct: str, prefix: Sequence[str]) -> list[dict[str, Any]]:
    """Claims description objects (Appendix B.2) with sv/en labels from the type metadata."""
    claims = []
    for claim in schemas.type_metadata(vct).get("claims", []):
        entry: dict[str, Any] = {"path": [*prefix, *claim["path"]]}
        if claim.get("mandatory"):
            entry["mandatory"] = True
        labels = [
            {"name": d["label"], "locale": d["locale"]}
            for d in claim.get("display", [])
            if "label" in d and "locale" in d
        ]
        if labels:
            entry["display"] = labels
        claims.append(entry)
    return claims


def _configuration_metadata(
    configuration: agencies.CredentialConfiguration,
) -> dict[str, Any]:
    descriptions = {
        d.get("locale"): d.get("description")
        for d in schemas.type_metadata(configuration.vct).get("display", [])
    }
    display = []
    for entry in configuration.display:
        shown = dict(entry)
        if descriptions.get(entry.get("locale")):
            shown["description"] = descriptions[entry["locale"]]
        display.append(shown)
    out: dict[str, Any] = {
        "format": configuration.format,
        "scope": configuration.scope,
        "cryptographic_binding_methods_supported": ["jwk"],
        "credential_signing_alg_values_supported": list(ALGORITHMS),
        "proof_types_supported": {
            oid4vci.PROOF_TYPE_JWT: {"proof_signing_alg_values_supported": list(ALGORITHMS)}
        },
    }
    if configuration.is_sd_jwt_vc:
        out["vct"] = configuration.vct
        prefix: tuple[str, ...] = ()
    else:
        out["credential_definition"] = {
            "type": [vcdm.VERIFIABLE_CREDENTIAL, configuration.type_name]
        }
        prefix = ("credentialSubject",)
    out["credential_metadata"] = {
        "display": display,
        "claims": _claims_metadata(configuration.vct, prefix),
    }
    return out


def credential_issuer_metadata(ctx: IssuerContext) -> dict[str, Any]:
    """The Credential Issuer Metadata (§12.2.4), built once and checked against our own
    wallet-side rules (T034: ``credential_issuer`` byte-identical, endpoints https)."""
    cached = ctx.extras.get("vci_metadata")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    settings = ctx.settings
    document: dict[str, Any] = {
        "credential_issuer": settings.issuer_identifier,
        "credential_endpoint": settings.url("/credential"),
        "nonce_endpoint": settings.url("/nonce"),
        "notification_endpoint": settings.url("/notification"),
        "display": ctx.agency.display(),
        "credential_configurations_supported": {
            c.id: _configuration_metadata(c) for c in ctx.agency.configurations
        },
    }
    if settings.batch_size >= 2:
        document["batch_credential_issuance"] = {"batch_size": settings.batch_size}
    oid4vci.check_issuer_metadata(
        document,
        settings.issuer_identifier,
        allow_http=settings.is_development,
        haip=settings.haip,
    )
    ctx.extras["vci_metadata"] = document
    return document


def as_metadata(ctx: IssuerContext) -> dict[str, Any]:
    """RFC 8414 authorization server metadata with the OpenID4VCI and HAIP additions."""
    settings = ctx.settings
    auth_methods = [client_attestation.AUTH_METHOD]
    if not settings.haip:
        auth_methods.append("none")
    return {
        "issuer": settings.issuer_identifier,
        "authorization_endpoint": settings.url("/authorize"),
        "token_endpoint": settings.url("/token"),
        "pushed_authorization_request_endpoint": settings.url("/par"),
        "require_pushed_authorization_requests": settings.haip,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            oid4vci.AUTHORIZATION_CODE_GRANT,
            oid4vci.PRE_AUTHORIZED_CODE_GRANT,
        ],
        "pre-authorized_grant_anonymous_access_supported": True,
        "code_challenge_methods_supported": [oid4vci.PKCE_METHOD],
        "dpop_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": auth_methods,
        "client_attestation_signing_alg_values_supported": list(ALGORITHMS),
        "client_attestation_pop_signing_alg_values_supported": list(ALGORITHMS),
        "authorization_response_iss_parameter_supported": True,
        "authorization_details_types_supported": [oid4vci.AUTHORIZATION_DETAILS_TYPE],
        "scopes_supported": [c.scope for c in ctx.agency.configurations],
    }


def _well_known_suffix_matches(ctx: IssuerContext, suffix: str) -> None:
    # §12.2.2 / RFC 8414 §3.1: the well-known segment goes between host and path.
    if suffix != urlsplit(ctx.settings.issuer_identifier).path.rstrip("/"):
        raise HTTPException(404)


def _cached(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": f"public, max-age={METADATA_MAX_AGE}"})


@router.get("/.well-known/openid-credential-issuer")
def issuer_metadata(ctx: Context) -> JSONResponse:
    """Credential Issuer Metadata for an identifier without a path (§12.2.2)."""
    _well_known_suffix_matches(ctx, "")
    return _cached(credential_issuer_metadata(ctx))


@router.get("/.well-known/openid-credential-issuer/{suffix:path}")
def issuer_metadata_with_path(suffix: str, ctx: Context) -> JSONResponse:
    """The same for an identifier with a path (path-inserted form)."""
    _well_known_suffix_matches(ctx, "/" + suffix)
    return _cached(credential_issuer_metadata(ctx))


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata(ctx: Context) -> JSONResponse:
    """RFC 8414 §3 authorization server metadata."""
    _well_known_suffix_matches(ctx, "")
    return _cached(as_metadata(ctx))


@router.get("/.well-known/oauth-authorization-server/{suffix:path}")
def authorization_server_metadata_with_path(suffix: str, ctx: Context) -> JSONResponse:
    _well_known_suffix_matches(ctx, "/" + suffix)
    return _cached(as_metadata(ctx))


@router.get(SCHEMA_PATH)
def credential_schema(type_name: str) -> JSONResponse:
    """The JSON Schema a VCDM credential's ``credentialSchema`` points to."""
    if type_name not in schemas.CREDENTIAL_TYPES:
        raise HTTPException(404)
    return _cached(schemas.json_schema(type_name))


# -- credential offers (§4.1) ----------------------------------------------------------------


@router.get("/offers/{offer_id}")
def credential_offer(offer_id: str, ctx: Context) -> JSONResponse:
    """The offer behind a ``credential_offer_uri``: JSON only, never cached (T056)."""
    if len(offer_id) > 128:
        raise HTTPException(404)
    with db.session(ctx.engine, write=False) as unit:
        try:
            document = offers.offer_document(unit, ctx, offer_id)
        except (LookupError, ValueError):
            document = None
    if document is None:
        raise HTTPException(404)
    return _json(document)


# -- nonce endpoint (§7) ---------------------------------------------------------------------

_NONCES = CNonce.__table__  # type: ignore[attr-defined]
#: ``c_nonce`` = base64url(random 16 bytes || expiry, 8 bytes big-endian || MAC, 16 bytes):
#: the nonce endpoint writes nothing. The MAC key is derived from the sealed service secret
#: (``service_secrets``) with its own label, so it is shared by every worker and survives
#: restarts. Single use is enforced when the nonce is redeemed (below).
_NONCE_RANDOM, _NONCE_EXPIRY, _NONCE_MAC = 16, 8, 16
_NONCE_LENGTH = _NONCE_RANDOM + _NONCE_EXPIRY + _NONCE_MAC
_NONCE_KEY_LABEL = b"intyg issuer c_nonce MAC key v1"


def _redeem_statement(dialect: Any) -> db.Prepared:
    """§8.3: redeeming a ``c_nonce`` inserts its digest as a used-marker; the UNIQUE
    ``nonce_hash`` makes a second redemption insert nothing (``ON CONFLICT DO NOTHING
    RETURNING``: one statement, exactly one winner under concurrency). It commits or rolls
    back with the issuance (I1): a refused request leaves the nonce unused."""
    return db.Prepared(
        dialect.insert(_NONCES)
        .on_conflict_do_nothing(index_elements=["nonce_hash"])
        .returning(_NONCES.c.id)
    )


_REDEEM_NONCE = {"postgresql": _redeem_statement(postgresql), "sqlite": _redeem_statement(sqlite)}


def _cached_nonce_key(ctx: IssuerContext) -> bytes | None:
    """The ``c_nonce`` MAC key if this process has derived it (no database), else None."""
    return ctx.extras.get(_NONCE_KEY)  # type: ignore[no-any-return]


def _nonce_key(ctx: IssuerContext) -> bytes:
    """The ``c_nonce`` MAC key, derived once per process; call it outside a transaction (the
    first call reads the sealed secret on a connection of its own)."""
    key = _cached_nonce_key(ctx)
    if key is None:
        with db.session(ctx.engine) as unit:
            secret = records.load_lookup_secret(unit, ctx.store, _now(ctx))
        key = ctx.extras[_NONCE_KEY] = hmac.new(secret, _NONCE_KEY_LABEL, "sha256").digest()
    return key


_NONCE_KEY = "c_nonce_key"  # in ctx.extras


def _nonce_mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, "sha256").digest()[:_NONCE_MAC]


def _new_c_nonce(key: bytes, expires_at: int) -> str:
    body = secrets.token_bytes(_NONCE_RANDOM) + expires_at.to_bytes(_NONCE_EXPIRY, "big")
    return jose.b64url_encode(body + _nonce_mac(key, body))


def _c_nonce_expiry(key: bytes, c_nonce: str | None, now: int) -> int | None:
    """The expiry of ``c_nonce`` if it is ours (MAC) and unexpired, else None (whether it
    was redeemed before is the database's to say)."""
    if not isinstance(c_nonce, str) or len(c_nonce) > 2 * _NONCE_LENGTH:
        return None
    try:
        raw = jose.b64url_decode(c_nonce)
    except jose.JoseError:
        return None
    body, mac = raw[:-_NONCE_MAC], raw[-_NONCE_MAC:]
    if len(raw) != _NONCE_LENGTH or not hmac.compare_digest(mac, _nonce_mac(key, body)):
        return None
    expires_at = int.from_bytes(body[_NONCE_RANDOM:], "big")
    return expires_at if expires_at > now else None


def _redeem_c_nonce(unit: Unit, key: bytes, c_nonce: str | None, now: int) -> bool:
    """§8.3.1.2: True if ``c_nonce`` is ours (MAC), unexpired and not redeemed before; it is
    then marked used in ``unit``'s transaction."""
    expires_at = _c_nonce_expiry(key, c_nonce, now)
    if expires_at is None:
        return False
    assert c_nonce is not None
    marker = {"nonce_hash": digest(c_nonce), "created_at": now, "expires_at": expires_at}
    statement = _REDEEM_NONCE[db.dialect_name(unit)]
    with db.translate_errors():
        return statement.first(unit, marker | {"used_at": now}) is not None


async def nonce(request: FastRequest) -> FastReply:
    """A fresh ``c_nonce``, MAC'd with its expiry, usable once before it expires (§7.2).

    ``async``: the common request touches no database, so it needs no worker thread; the
    first one in a process (reading the MAC key) and the sweep once a minute do, in one.
    A body, if any, is not read as anything (§7.1 defines none)."""
    ctx: IssuerContext = request.scope["app"].state.issuer
    now = _now(ctx)
    key = _cached_nonce_key(ctx) or await _in_thread(ctx, _nonce_key, ctx)
    c_nonce = _new_c_nonce(key, now + ctx.settings.c_nonce_ttl)
    if sweep_due():
        await _in_thread(ctx, maybe_sweep, ctx, now)
    return FastReply(oid4vci.nonce_response(c_nonce))


# -- pushed authorization requests (RFC 9126) and the authorization endpoint ----------------


def _redirect_uri(value: str | None) -> str:
    """An absolute redirect URI without fragment (RFC 6749 §3.1.2); custom schemes allowed
    for native wallets. Matching is exact against what was pushed (T029)."""
    if not value or len(value) > MAX_PARAMETER_LENGTH:
        raise ProtocolError("invalid_request", "redirect_uri is required")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ProtocolError("invalid_request", "redirect_uri is not a valid URI") from None
    if not parts.scheme or parts.fragment or "#" in value or parts.username is not None:
        raise ProtocolError("invalid_request", "redirect_uri must be absolute, no fragment")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ProtocolError("invalid_request", "redirect_uri has no host")
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise ProtocolError("invalid_request", "redirect_uri scheme is not allowed")
    return value


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_PARAMETER_LENGTH:
        raise ProtocolError("invalid_request", f"{name} is too long")
    return value or None


def _requested_configurations(
    ctx: IssuerContext, params: Mapping[str, str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """§5.1: configurations asked for by ``scope`` (unknown values ignored) and by
    ``authorization_details``; details win where both name one (§5.1.2)."""
    details: list[dict[str, Any]] = []
    if "authorization_details" in params:
        try:
            parsed = oid4vci.parse_authorization_details(
                params["authorization_details"],
                known_configuration_ids=ctx.agency.configuration_ids,
                credential_issuer=ctx.settings.issuer_identifier,
            )
        except oid4vci.OID4VCIError as exc:
            raise _refusal(exc) from None
        details = [d.to_json() for d in parsed]
    detailed = {d["credential_configuration_id"] for d in details}
    scoped: list[str] = []
    for value in (params.get("scope") or "").split(" "):
        try:
            configuration = ctx.agency.configuration_for_scope(value)
        except agencies.AgencyError:
            continue
        if configuration.id not in detailed and configuration.id not in scoped:
            scoped.append(configuration.id)
    if not scoped and not details:
        raise ProtocolError("invalid_scope", "no credential configuration was requested")
    return scoped, details


def _authorization_params(
    ctx: IssuerContext, params: Mapping[str, str], client_id: str
) -> dict[str, Any]:
    """The checked authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID4VCI §5.1)."""
    if params.get("response_type") != "code":
        raise ProtocolError("unsupported_response_type", "response_type must be code")
    try:
        oid4vci.check_code_challenge(
            params.get("code_challenge"), params.get("code_challenge_method")
        )
    except oid4vci.OID4VCIError as exc:
        raise _refusal(exc) from None
    scoped, details = _requested_configurations(ctx, params)
    return {
        "client_id": client_id,
        "redirect_uri": _redirect_uri(params.get("redirect_uri")),
        "code_challenge": params["code_challenge"],
        "state": _optional(params, "state"),
        "issuer_state": _optional(params, "issuer_state"),
        "scoped": scoped,
        "details": details,
    }


@router.post("/par", status_code=201)
def pushed_authorization_request(
    request: Request,
    form: Annotated[dict[str, str], Depends(form_body())],
    ctx: Context,
) -> JSONResponse:
    """RFC 9126 §2: authenticate the wallet (HAIP: attestation), check the request, store
    it and answer with a one-time ``request_uri``."""
    now = _now(ctx)
    client_id = form.get("client_id")
    if not client_id or len(client_id) > 512:
        raise ProtocolError("invalid_request", "client_id is required")
    if "request_uri" in form:
        raise ProtocolError("invalid_request", "request_uri is not allowed at the PAR endpoint")
    with db.session(ctx.engine) as unit:
        proof = check_dpop(request, unit, ctx, "/par", now=now)
        check_client_attestation(
            request,
            unit,
            ctx,
            now=now,
            required=ctx.settings.haip,
            client_id=client_id,
            dpop_jkt=proof.jkt if proof else None,
        )
        params = _authorization_params(ctx, form, client_id)
        # RFC 9449 §10: a DPoP proof at PAR binds the code to that key.
        params["dpop_jkt"] = proof.jkt if proof else form.get("dpop_jkt")
        request_uri = REQUEST_URI_PREFIX + oid4vci.new_opaque_value()
        unit.add(
            AuthorizationRequest(
                request_uri_hash=digest(request_uri),
                client_id=client_id,
                params=params,
                created_at=now,
                expires_at=now + ctx.settings.par_ttl,
            )
        )
    return _json({"request_uri": request_uri, "expires_in": ctx.settings.par_ttl}, 201)


def error_page(message: str, status_code: int = 400) -> HTMLResponse:
    """RFC 6749 §4.1.2.1 / RFC 9700 §4.1: without a trusted redirect URI the user gets a
    page, never a redirect (T029). The text is ours, never the request's."""
    body = (
        '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Fel / Error</title></head><body><main><h1>Något gick fel / Something went wrong"
        f"</h1><p>{html.escape(message)}</p></main></body></html>"
    )
    return HTMLResponse(body, status_code=status_code, headers=NO_STORE)


def _with_query(uri: str, params: Mapping[str, str | None]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect(uri: str, params: Mapping[str, str | None]) -> RedirectResponse:
    response = RedirectResponse(_with_query(uri, params), status_code=303)
    response.headers.update(NO_STORE)
    return response


def _relying_party(ctx: IssuerContext) -> OidcRelyingParty | None:
    """The eID login for the authorization endpoint: the configured eID provider with our
    own callback (its own cookie name and path, so it never meets the person's page login)."""
    cached = ctx.extras.get("vci_eid")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    config = getattr(ctx.settings, "eid", None)
    if config is None:
        return None
    config = config.model_copy(
        update={"redirect_uri": ctx.settings.url(CALLBACK_PATH), "name": f"{config.name}-vci"}
    )
    rp = OidcRelyingParty.from_master_key(
        config,
        OutboundClient(ctx.settings.outbound_policy()),
        # The key the service runs with: configured, or generated (dev_generate_master_key).
        ctx.store.current,
        replay_cache=_StateReplayCache(ctx),
        development=ctx.settings.is_development,
    )
    ctx.extras["vci_eid"] = rp
    return rp


class _StateReplayCache:
    """Login ``state`` values used once, in the shared replay table (all replicas)."""

    def __init__(self, ctx: IssuerContext) -> None:
        self.ctx = ctx

    def use_once(self, key: str, expires_at: int) -> bool:
        with db.session(self.ctx.engine) as unit:
            return remember_jti(unit, "oidc_state", key, expires_at)


@router.get("/authorize")
def authorize(request: Request, ctx: Context) -> Response:
    """RFC 6749 §4.1.1 with RFC 9126 §4: the pushed request, then eID login.

    Until the request and its redirect URI are known to be ours, every refusal is a page.
    """
    now = _now(ctx)
    query = request.query_params
    if any(len(query.getlist(name)) > 1 for name in query.keys()):
        return error_page("Begäran innehåller upprepade parametrar / repeated parameters")
    params = dict(query)
    client_id = params.get("client_id")
    request_uri = params.get("request_uri")
    if not client_id:
        return error_page("client_id saknas / client_id is missing")
    with db.session(ctx.engine) as unit:
        if request_uri is None:
            if ctx.settings.haip:
                return error_page("Pushed authorization request krävs / PAR is required")
            try:
                stored = _authorization_params(ctx, params, client_id)
            except ProtocolError as exc:
                return error_page(exc.error_description or exc.error)
            stored["dpop_jkt"] = params.get("dpop_jkt")
            request_uri = REQUEST_URI_PREFIX + oid4vci.new_opaque_value()
            unit.add(
                AuthorizationRequest(
                    request_uri_hash=digest(request_uri),
                    client_id=client_id,
                    params=stored,
                    created_at=now,
                    expires_at=now + ctx.settings.par_ttl,
                )
            )
        row = unit.scalars(
            sa.select(AuthorizationRequest).where(
                AuthorizationRequest.request_uri_hash == digest(request_uri)  # type: ignore[arg-type]
            )
        ).first()
        if (
            row is None
            or row.used_at is not None
            or row.expires_at <= now
            or not hmac.compare_digest(row.client_id.encode(), client_id.encode())
        ):
            return error_page("Begäran är okänd eller har gått ut / unknown or expired request")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != row.params["redirect_uri"]:
            return error_page("redirect_uri stämmer inte / redirect_uri does not match")
    rp = _relying_party(ctx)
    if rp is None:
        return error_page("eID-inloggning är inte konfigurerad / eID login is not set up", 503)
    try:
        return rp.login_response(f"{RESUME_PATH}?r={row.request_uri_hash}")
    except OidcError as exc:
        return error_page(exc.user_message(), 502)


def _person_records(unit: db.Session, agency_key: str, person_id: int) -> list[int]:
    """The person's records at this agency, newest first."""
    if agency_key == "af":
        rows = unit.scalars(
            sa.select(AFRegistration.id).where(AFRegistration.person_id == person_id)  # type: ignore[arg-type]
        )
    else:
        rows = unit.scalars(
            sa.select(MYHAward.id)
            .where(MYHAward.person_id == person_id)  # type: ignore[arg-type]
            .order_by(MYHAward.awarded_on.desc(), MYHAward.id.desc())  # type: ignore[attr-defined, union-attr]
        )
    return [int(r) for r in rows if r is not None]


def credential_identifier(configuration_id: str, record_id: int) -> str:
    """A Credential Dataset identifier (§6.2): one configuration of one record."""
    return f"{configuration_id}:{record_id}"


def _record_of(identifier: str) -> int:
    return int(identifier.rpartition(":")[2])


@router.get(CALLBACK_PATH)
def authorize_callback(request: Request, ctx: Context) -> Response:
    """eID callback: who logged in decides whose records the code covers; then the
    code goes to the pushed redirect URI with ``state`` and ``iss`` (RFC 9207)."""
    rp = _relying_party(ctx)
    if rp is None:
        return error_page("eID-inloggning är inte konfigurerad / eID login is not set up", 503)
    try:
        result = rp.callback(request)
    except OidcError as exc:
        response: Response = error_page(exc.user_message())
        rp.clear_login_cookie(response)
        return response
    handle = dict(parse_qsl(urlsplit(result.return_to).query)).get("r", "")
    now = _now(ctx)
    window = ctx.settings.par_ttl + rp.config.login_lifetime_seconds
    with db.session(ctx.engine) as unit:
        row = db.consume_once(
            unit,
            AuthorizationRequest,
            "request_uri_hash",
            handle,
            now=now,
            where=[AuthorizationRequest.created_at > now - window],  # type: ignore[list-item, operator]
        )
        if row is None:
            response = error_page("Begäran är redan använd / the request was already used")
            rp.clear_login_cookie(response)
            return response
        params = row.params
        person = ctx.person_vault().find(unit, result.identity.personal_number.twelve_digits)
        record_ids = [] if person is None else _person_records(unit, ctx.settings.agency, person.id)
        if person is None or not record_ids:
            response = _redirect(
                params["redirect_uri"],
                {
                    "error": "access_denied",
                    "error_description": "there is nothing to issue for this person",
                    "state": params.get("state"),
                    "iss": ctx.settings.issuer_identifier,
                },
            )
            rp.clear_login_cookie(response)
            return response
        grants = [
            {"configuration_id": cid, "record_ids": record_ids[:1], "details": False}
            for cid in params["scoped"]
        ] + [
            {
                "configuration_id": d["credential_configuration_id"],
                "record_ids": record_ids,
                "details": True,
                "detail": d,
            }
            for d in params["details"]
        ]
        code = oid4vci.new_opaque_value()
        assert person.id is not None
        unit.add(
            AuthorizationCode(
                code_hash=digest(code),
                code_challenge=params["code_challenge"],
                redirect_uri=params["redirect_uri"],
                client_id=row.client_id,
                person_id=person.id,
                # Our own grant list (configuration, records, whether details asked for it).
                authorization_details=grants,
                scope=" ".join(params["scoped"]) or None,
                dpop_jkt=params.get("dpop_jkt"),
                created_at=now,
                expires_at=now + ctx.settings.authorization_code_ttl,
            )
        )
    response = _redirect(
        params["redirect_uri"],
        {"code": code, "state": params.get("state"), "iss": ctx.settings.issuer_identifier},
    )
    rp.clear_login_cookie(response)
    return response


# -- token endpoint (§6) ---------------------------------------------------------------------


def _invalid_grant(description: str) -> ProtocolError:
    return ProtocolError("invalid_grant", description)


_OFFERS = CredentialOffer.__table__  # type: ignore[attr-defined]
# §6.1 statements, built once: redeeming an offer without tx_code (the common case), the
# lookup for the precise error, the attempt reservation and the redemption after a tx_code.
_REDEEM_OFFER = db.Prepared(
    db.consume_once_statement(
        _OFFERS,
        "pre_authorized_code_hash",
        where=[_OFFERS.c.expires_at > sa.bindparam("now"), _OFFERS.c.tx_code_hash.is_(None)],
    )
)
_FIND_OFFER = db.Prepared(
    sa.select(_OFFERS).where(_OFFERS.c.pre_authorized_code_hash == sa.bindparam("hash"))
)
_RESERVE_TX_CODE_ATTEMPT = db.Prepared(
    sa.update(_OFFERS)
    .where(
        _OFFERS.c.id == sa.bindparam("row_id"),
        _OFFERS.c.tx_code_attempts < sa.bindparam("limit"),
        _OFFERS.c.used_at.is_(None),
    )
    .values(tx_code_attempts=_OFFERS.c.tx_code_attempts + 1)
    .returning(_OFFERS.c.tx_code_attempts)
)
_REDEEM_OFFER_AFTER_TX_CODE = db.Prepared(
    db.consume_once_statement(
        _OFFERS,
        "pre_authorized_code_hash",
        where=[
            _OFFERS.c.expires_at > sa.bindparam("now"),
            _OFFERS.c.tx_code_attempts <= sa.bindparam("limit"),
        ],
    )
)


def _token_dpop(request: Request, unit: Unit, ctx: IssuerContext, now: int) -> Any:
    proof = check_dpop(request, unit, ctx, "/token", now=now)
    if proof is None and ctx.settings.requires_dpop:
        raise ProtocolError("invalid_dpop_proof", "a DPoP proof is required at this issuer")
    return proof


def _pre_authorized_grant(
    request: Request,
    unit: Unit,
    ctx: IssuerContext,
    token_request: oid4vci.TokenRequest,
    now: int,
) -> tuple[TokenGrant, None]:
    """§6.1 pre-authorized code: single use, tx_code compared in constant time with a
    capped, atomically counted number of attempts (T019, T021, T022)."""
    proof = _token_dpop(request, unit, ctx, now)
    client = check_client_attestation(
        request,
        unit,
        ctx,
        now=now,
        required=False,
        client_id=token_request.client_id,
        dpop_jkt=proof.jkt if proof else None,
    )
    code_hash = digest(token_request.pre_authorized_code or "")
    if token_request.tx_code is None:
        # The common case, an offer without tx_code: one atomic statement redeems it. Any
        # other outcome (used, expired, a tx_code needed) takes the checks below, which
        # then fail with the precise error.
        row = _REDEEM_OFFER.first(unit, {"key": code_hash, "now": now})
        if row is not None:
            return _pre_authorized_token_grant(row, proof, client, token_request), None
    limit = ctx.settings.tx_code_max_attempts
    offer = _FIND_OFFER.first(unit, {"hash": code_hash})
    if (
        offer is None
        or offer.used_at is not None
        or offer.expires_at <= now
        or offer.tx_code_attempts >= limit
    ):
        raise _invalid_grant("the pre-authorized code is unknown, used or expired")
    try:
        oid4vci.check_tx_code_presence(offer.tx_code_hash is not None, token_request.tx_code)
    except oid4vci.OID4VCIError as exc:
        raise _refusal(exc) from None
    if offer.tx_code_hash is not None:
        # Reserve an attempt before comparing: concurrent guesses cannot exceed the cap.
        reserved = _RESERVE_TX_CODE_ATTEMPT.first(unit, {"row_id": offer.id, "limit": limit})
        if reserved is None:
            raise _invalid_grant("the pre-authorized code is no longer usable")
        if not offers.check_tx_code(ctx, offer, token_request.tx_code or ""):
            unit.commit()  # the failed attempt counts, whatever happens next (T021)
            raise _invalid_grant("the tx_code is wrong")
    row = _REDEEM_OFFER_AFTER_TX_CODE.first(unit, {"key": code_hash, "now": now, "limit": limit})
    if row is None:
        raise _invalid_grant("the pre-authorized code is unknown, used or expired")
    return _pre_authorized_token_grant(row, proof, client, token_request), None


def _pre_authorized_token_grant(
    row: Any, proof: Any, client: Any, token_request: oid4vci.TokenRequest
) -> TokenGrant:
    """What the access token for a redeemed offer ``row`` may fetch."""
    return TokenGrant(
        person_id=row.person_id,
        record_id=row.record_id,
        configuration_ids=tuple(row.configuration_ids),
        credential_identifiers={},
        client_id=client.client_id if client else token_request.client_id,
        dpop_jkt=proof.jkt if proof else None,
    )


def _authorization_code_grant(
    request: Request,
    unit: Unit,
    ctx: IssuerContext,
    token_request: oid4vci.TokenRequest,
    now: int,
) -> tuple[TokenGrant, list[dict[str, Any]] | None]:
    """§6.1 authorization code: client authenticated (HAIP: wallet attestation), code single
    use and bound to client, redirect URI, PKCE verifier and DPoP key (T027, T028)."""
    proof = _token_dpop(request, unit, ctx, now)
    client = check_client_attestation(
        request,
        unit,
        ctx,
        now=now,
        required=ctx.settings.haip,
        client_id=token_request.client_id,
        dpop_jkt=proof.jkt if proof else None,
    )
    client_id = client.client_id if client else token_request.client_id
    row = db.consume_once(
        unit,
        AuthorizationCode,
        "code_hash",
        digest(token_request.code or ""),
        now=now,
        where=[AuthorizationCode.expires_at > now],  # type: ignore[list-item, operator]
    )
    if row is None:
        raise _invalid_grant("the authorization code is unknown, used or expired")
    try:
        if client_id is None or not hmac.compare_digest(client_id.encode(), row.client_id.encode()):
            raise _invalid_grant("the code was issued to another client")
        if token_request.redirect_uri != row.redirect_uri:
            raise _invalid_grant("redirect_uri differs from the authorization request")
        try:
            oid4vci.verify_pkce(
                row.code_challenge, oid4vci.PKCE_METHOD, token_request.code_verifier
            )
        except oid4vci.OID4VCIError as exc:
            raise _refusal(exc) from None
        if row.dpop_jkt is not None and (proof is None or proof.jkt != row.dpop_jkt):
            raise ProtocolError("invalid_dpop_proof", "the code is bound to another DPoP key")
    except ProtocolError:
        unit.commit()  # the code stays burnt (RFC 9700 §4.5)
        raise
    identifiers: dict[str, str] = {}
    configuration_ids: list[str] = []
    details_out: list[dict[str, Any]] | None = None
    record_id = None
    uses_details = any(g["details"] for g in row.authorization_details)
    for grant in row.authorization_details:
        configuration_ids.append(grant["configuration_id"])
        if uses_details:
            ids = [credential_identifier(grant["configuration_id"], r) for r in grant["record_ids"]]
            identifiers.update(dict.fromkeys(ids, grant["configuration_id"]))
            detail = grant.get("detail") or {
                "type": oid4vci.AUTHORIZATION_DETAILS_TYPE,
                "credential_configuration_id": grant["configuration_id"],
            }
            details_out = details_out or []
            details_out.append({**detail, "credential_identifiers": ids})
        else:
            record_id = grant["record_ids"][0]
    return (
        TokenGrant(
            person_id=row.person_id,
            record_id=record_id,
            configuration_ids=tuple(configuration_ids),
            credential_identifiers=identifiers,
            client_id=client_id,
            dpop_jkt=proof.jkt if proof else None,
        ),
        details_out,
    )


async def _in_thread(ctx: IssuerContext, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on a thread of the issuer's hot-path pool (:func:`issuer.app.hot_threads`),
    with the request's context variables (request id in logs)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(hot_threads(ctx), copy_context().run, work, *args)


def _body_limit(scope: Any) -> int:
    """The fast lane's body limit: the app's (``max_body_bytes``) and the body readers'."""
    return min(scope["app"].state.issuer.settings.max_body_bytes, DEFAULT_MAX_BODY_BYTES)


async def token_endpoint(request: FastRequest) -> FastReply:
    """§6: a form-encoded token request; the response is never cached (T048)."""
    ctx: IssuerContext = request.scope["app"].state.issuer
    form = parse_form(request.body)
    if _single_statement(ctx):
        answered = await _pre_authorized_token_in_one_statement(Request(request.scope), form, ctx)
        if answered is not None:
            return FastReply(answered)
    return FastReply(await _in_thread(ctx, token, Request(request.scope), form, ctx))


def _parse_token_request(ctx: IssuerContext, form: Mapping[str, str]) -> oid4vci.TokenRequest:
    return oid4vci.parse_token_request(
        form,
        grant_types=(oid4vci.PRE_AUTHORIZED_CODE_GRANT, oid4vci.AUTHORIZATION_CODE_GRANT),
        known_configuration_ids=ctx.agency.configuration_ids,
        credential_issuer=ctx.settings.issuer_identifier,
    )


def token(request: Request, form: Mapping[str, str], ctx: IssuerContext) -> dict[str, Any]:
    """:func:`token_endpoint` past the body and the one-statement way: the token response of
    the transaction (runs in a worker thread)."""
    now = _now(ctx)
    try:
        token_request = _parse_token_request(ctx, form)
    except oid4vci.OID4VCIError as exc:
        raise _refusal(exc) from None
    with db.transaction(ctx.engine) as unit:
        if token_request.grant_type == oid4vci.PRE_AUTHORIZED_CODE_GRANT:
            grant, details = _pre_authorized_grant(request, unit, ctx, token_request, now)
        else:
            grant, details = _authorization_code_grant(request, unit, ctx, token_request, now)
        access_token = issue_access_token(unit, ctx, grant, now)
    body = oid4vci.token_response(
        access_token,
        token_type="DPoP" if grant.dpop_jkt else "Bearer",
        expires_in=ctx.settings.access_token_ttl,
        authorization_details=details,
    )
    return body


#: Status list indices are drawn from the whole list (issuer/status.py).
_draw_index = secrets.randbelow


def _single_statement(ctx: IssuerContext) -> bool:
    """Whether the common requests may take issuer/single_statement.py (PostgreSQL)."""
    return ctx.engine.dialect.name == "postgresql"


class _Batchers:
    """The group commit of the one-statement way (issuer/single_statement.py), per app
    (``ctx.extras``): token reads together, and the writes of ``/token`` and
    ``/credential`` together in one transaction."""

    def __init__(self, ctx: IssuerContext) -> None:
        shared = (ServiceUnavailable,)  # the database is down: every request of the batch
        self.read: Batcher[str, Any] = Batcher(
            isolating(lambda hashes: _read_tokens(ctx, hashes), shared)
        )
        self.write: Batcher[single_statement.Item, tuple[Any, ...] | None] = Batcher(
            isolating(lambda items: _write_together(ctx, items), shared)
        )


def _batchers(ctx: IssuerContext) -> _Batchers:
    batchers = ctx.extras.get("one_statement_batchers")
    if batchers is None:
        batchers = ctx.extras.setdefault("one_statement_batchers", _Batchers(ctx))
    return batchers  # type: ignore[no-any-return]


def _read_tokens(ctx: IssuerContext, token_hashes: Sequence[str]) -> list[Any]:
    with db.driver_connection(ctx.engine) as connection:
        return single_statement.read_tokens(connection, ctx.settings.agency, token_hashes)


def _write_together(
    ctx: IssuerContext, items: Sequence[single_statement.Item]
) -> list[tuple[Any, ...] | None]:
    with db.driver_connection(ctx.engine) as connection:
        return single_statement.write(connection, items)


async def _write(ctx: IssuerContext, item: single_statement.Item) -> tuple[Any, ...] | None:
    """What ``item`` wrote, written with the items of concurrent requests; None when nothing
    was written for it (its checks refused it, or it failed on a UNIQUE key alone)."""
    try:
        return await _batchers(ctx).write.submit(item)
    except ctx.engine.dialect.loaded_dbapi.IntegrityError:
        return None


async def _pre_authorized_token_in_one_statement(
    request: Request, form: Mapping[str, str], ctx: IssuerContext
) -> dict[str, Any] | None:
    """:func:`token` for the common pre-authorized request (no ``tx_code``, no wallet
    attestation) in one statement (issuer/single_statement.py): the same checks, the same
    rows. None when anything is not as usual; nothing is written then, and the
    transaction answers (with the precise error)."""
    now = _now(ctx)
    try:
        token_request = _parse_token_request(ctx, form)
    except oid4vci.OID4VCIError:
        return None
    if (
        token_request.grant_type != oid4vci.PRE_AUTHORIZED_CODE_GRANT
        or token_request.tx_code is not None
        or request.headers.get(client_attestation.ATTESTATION_HEADER)
    ):
        return None
    settings = ctx.settings
    try:
        proof = check_dpop(request, None, ctx, "/token", now=now, remember=False)
    except ProtocolError:
        return None
    if proof is None and settings.requires_dpop:
        return None
    jti = None
    if proof is not None:
        jti = (DPOP_REPLAY, digest(dpop_replay_jti(proof)), now + settings.jti_ttl)
    access_token = oid4vci.new_opaque_value()
    result = await _write(
        ctx,
        single_statement.redeem_offer(
            code_hash=digest(token_request.pre_authorized_code or ""),
            now=now,
            token_hash=digest(access_token),
            token_expires_at=now + settings.access_token_ttl,
            dpop_jkt=proof.jkt if proof else None,
            client_id=token_request.client_id,
            jti=jti,
        ),
    )
    if single_statement.redeemed(result) is None:
        return None
    return oid4vci.token_response(
        access_token,
        token_type="DPoP" if proof else "Bearer",
        expires_in=settings.access_token_ttl,
        authorization_details=None,
    )


# -- credential endpoint (§8) ----------------------------------------------------------------


def _sd_payload(value: Any, sd_paths: frozenset[Any], prefix: tuple[Any, ...] = ()) -> Any:
    """Mark every claim the type metadata lets the holder withhold (``sd`` always/allowed)."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for name, item in value.items():
            path = (*prefix, name)
            marked = _sd_payload(item, sd_paths, path)
            out[SD(name) if path in sd_paths else name] = marked
        return out
    if isinstance(value, list):
        path = (*prefix, None)
        items = [_sd_payload(item, sd_paths, path) for item in value]
        return [SD(item) for item in items] if path in sd_paths else items
    return value


def _day(moment: int) -> int:
    """Times rounded down to the day, so they do not link credentials (T051)."""
    return moment - moment % DAY


def _utc(moment: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC)


def _sign_sd_jwt_vc(
    ctx: IssuerContext,
    configuration: agencies.CredentialConfiguration,
    subject: Mapping[str, Any],
    allocation: issuer_status.Allocation,
    holder: jose.Key,
    iat: int,
    exp: int,
    active: ActiveKey,
) -> str:
    payload: dict[Any, Any] = {
        "iss": ctx.settings.issuer_identifier,
        "iat": iat,
        "exp": exp,
        "vct": configuration.vct,
        "status": issuer_status.status_claim(ctx.settings, allocation),
    }
    paths = _sd_paths(configuration.vct)
    payload.update(_sd_payload(dict(subject), paths))
    return sdjwt_vc.issue_vc(
        payload, active.key, holder_jwk=holder.public_jwk(), header=active.header(), decoys=DECOYS
    )


_SD_PATHS: dict[str, frozenset[Any]] = {}


def _sd_paths(vct: str) -> frozenset[Any]:
    paths = _SD_PATHS.get(vct)
    if paths is None:
        paths = _SD_PATHS[vct] = schemas.selectively_disclosable_paths(vct)
    return paths


def _sign_vcdm(
    ctx: IssuerContext,
    configuration: agencies.CredentialConfiguration,
    subject: Mapping[str, Any],
    allocation: issuer_status.Allocation,
    holder: jose.Key,
    iat: int,
    exp: int,
    active: ActiveKey,
) -> str:
    settings = ctx.settings
    document = vcdm.credential(
        issuer=settings.issuer_identifier,
        issuer_name=ctx.agency.name["sv"],
        credential_subject=subject,
        types=[configuration.type_name],
        valid_from=_utc(iat),
        valid_until=_utc(exp),
        credential_schema={
            "id": settings.url(SCHEMA_PATH.format(type_name=configuration.type_name)),
            "type": JSON_SCHEMA_TYPE,
        },
        credential_status=issuer_status.credential_status(settings, allocation),
        name=ctx.agency.credential_name["sv"],
    )
    return vcdm.sign_credential(
        document,
        active.key,
        header={"x5c": list(active.x5c)},
        iat=iat,
        exp=exp,
        holder_jwk=holder.public_jwk(),
    )


def _verify_proofs(
    ctx: IssuerContext, token: AuthenticatedToken, proofs: Sequence[Any], now: int
) -> tuple[list[tuple[jose.Key, str]], str | None]:
    """Appendix F.4 for each ``jwt`` proof; distinct keys and one ``c_nonce`` (T043)."""
    anchors = wallet_trust_anchors(ctx)
    attestation_trust = oid4vci.x5c_trust(anchors, now=now) if anchors else None
    try:
        results = [
            oid4vci.verify_jwt_proof(
                proof,
                audience=ctx.settings.issuer_identifier,
                now=now,
                algorithms=ALGORITHMS,
                client_id=token.row.client_id,
                anonymous=token.anonymous,
                nonce_required=True,
                key_attestation_trust=attestation_trust,
            )
            for proof in proofs
        ]
        oid4vci.distinct_proof_keys(results)  # refuses two proofs on one key
        c_nonce = oid4vci.common_nonce(results)
    except oid4vci.OID4VCIError as exc:
        raise _refusal(exc) from None
    # One credential per distinct key; a key attestation may add keys (Appendix F.1).
    seen: set[str] = set()
    bound: list[tuple[jose.Key, str]] = []
    for result in results:
        for key in (result.key, *result.attested_keys):
            thumbprint = key.thumbprint()
            if thumbprint not in seen:
                seen.add(thumbprint)
                bound.append((key, f"{result.jwt}|{thumbprint}"))
    return bound, c_nonce


def _issuance(
    person_id: int,
    record_id: int | None,
    configuration: agencies.CredentialConfiguration,
    allocation: issuer_status.Allocation,
    kid: str,
    proof_reference: str,
    now: int,
    exp: int,
    notification_id: str,
) -> dict[str, Any]:
    """The issuance row of one credential (both ways of writing it)."""
    return records.issuance_row(
        person_id=person_id,
        record_id=record_id,
        configuration_id=configuration.id,
        credential_format=configuration.format,
        allocation=allocation,
        kid=kid,
        proof_hash=digest(proof_reference),
        issued_at=now,
        expires_at=exp,
        notification_id=notification_id,
    )


def _record(unit: Unit, issuance: Mapping[str, Any]) -> str:
    """The issuance row (-> its id); the UNIQUE proof hash makes a replayed proof fail here
    too (T036)."""
    try:  # no savepoint: a failure here aborts the whole request anyway
        return records.insert_issuance(unit, issuance)
    except sa.exc.IntegrityError:
        raise ProtocolError("invalid_proof", "this proof was already used") from None


def _subject(ctx: IssuerContext, unit: Unit, person_id: int, record_id: int, now: int) -> Any:
    """The credential subject from the person's record (never from the request, T046)."""
    try:
        return records.build_subject(
            unit,
            ctx.person_vault(),
            ctx.settings.agency,
            person_id,
            record_id,
            today=_utc(now).date(),
        )
    except records.PersonGone:
        raise ProtocolError("credential_request_denied", "the record no longer exists") from None
    except records.RecordError:
        raise ProtocolError("credential_request_denied", "the record cannot be issued") from None


def _open_lists(ctx: IssuerContext) -> issuer_status.OpenLists:
    cached = ctx.extras.get("status_open_lists")
    if cached is None:
        cached = ctx.extras["status_open_lists"] = issuer_status.OpenLists()
    return cached  # type: ignore[no-any-return]


async def _credential_in_one_statement(
    request: Request, body: Any, ctx: IssuerContext, now: int
) -> dict[str, Any] | None:
    """:func:`credential` for the common request (one key proof, the offer's record, the
    status list head known, the signing key and ``c_nonce`` key in memory) in one read and
    one write (issuer/single_statement.py): the same checks, rows and credential. None when
    anything is not as usual; nothing is written then, and the transaction answers (with
    the precise error)."""
    settings = ctx.settings
    active, nonce_key = ctx.keys.cached(), _cached_nonce_key(ctx)
    if active is None or nonce_key is None:
        return None  # the transaction reads them (in its thread) for the requests after it
    try:
        scheme, token = presented_token(request, "DPoP" if settings.requires_dpop else None)
    except ProtocolError:
        return None
    row = await _batchers(ctx).read.submit(digest(token))
    if row is None or row.expires_at <= now or row.record_id is None:
        return None
    proof = None
    if row.dpop_jkt is not None:
        if scheme != "DPoP":
            return None
        try:
            proof = check_dpop(
                request,
                None,
                ctx,
                "/credential",
                now=now,
                access_token=token,
                expected_jkt=row.dpop_jkt,
                resource=True,
                remember=False,
            )
        except ProtocolError:
            return None
        if proof is None:
            return None
    elif scheme == "DPoP":
        return None
    access = AuthenticatedToken(row, token)
    try:
        parsed = oid4vci.parse_credential_request(
            body,
            batch_size=settings.batch_size if settings.batch_size >= 2 else None,
            configurations=credential_issuer_metadata(ctx)["credential_configurations_supported"],
            credential_identifiers=access.credential_identifiers,
            authorized_configuration_ids=row.configuration_ids,
        )
        if parsed.credential_identifier is not None:
            return None
        bound, c_nonce = _verify_proofs(ctx, access, parsed.proofs, now)
        subject = records.subject_from_row(
            ctx.person_vault(), settings.agency, row, today=_utc(now).date()
        )
    except (oid4vci.OID4VCIError, ProtocolError, records.RecordError):
        return None
    nonce_expires_at = _c_nonce_expiry(nonce_key, c_nonce, now)
    if len(bound) != 1 or nonce_expires_at is None:
        return None
    assert c_nonce is not None
    configuration = ctx.agency.configuration(parsed.credential_configuration_id)
    kind = issuer_status.TSL if configuration.is_sd_jwt_vc else issuer_status.BITSTRING
    head = _open_lists(ctx).get(kind)
    if head is None:
        return None  # the transaction reads (or starts) the list and caches its head
    allocation = issuer_status.Allocation(
        kind, head.id, _draw_index(head.size), head.suspension_list_id
    )
    iat = _day(now)
    exp = _day(records.credential_expiry(settings, subject, now))
    notification_id = oid4vci.new_opaque_value()
    key, proof_reference = bound[0]
    sign = _sign_sd_jwt_vc if configuration.is_sd_jwt_vc else _sign_vcdm
    issued = sign(ctx, configuration, subject, allocation, key, iat, exp, active)
    issuance = _issuance(
        row.person_id, row.record_id, configuration, allocation, active.kid,
        proof_reference, now, exp, notification_id,
    )  # fmt: skip
    try:
        details = _issued_audit(
            access, now, issuance["id"], row.record_id, configuration.id, allocation
        )
        entry = audit.checked(**details)
    except audit.AuditError:
        return None
    jti = None
    if proof is not None:
        jti = (DPOP_REPLAY, digest(dpop_replay_jti(proof)), now + settings.jti_ttl)
    crash_point("issuer.credential.signed", development=settings.is_development)
    result = await _write(
        ctx,
        single_statement.issue(
            now=now,
            jti=jti,
            nonce=(digest(c_nonce), nonce_expires_at),
            issuance=issuance,
            audit=entry,
        ),
    )
    if single_statement.issued(result) is None:
        return None  # jti or c_nonce seen before, the status index taken: nothing written
    crash_point("issuer.credential.committed", development=settings.is_development)
    audit.written(entry)
    metrics.ISSUANCES.labels(configuration.id, configuration.format).inc()
    return oid4vci.credential_response([issued], notification_id)


def _issued_audit(
    access: AuthenticatedToken,
    now: int,
    issuance_id: str,
    record_id: int,
    configuration_id: str,
    allocation: issuer_status.Allocation,
) -> dict[str, Any]:
    """The audit entry of one credential issued (references only, no personal number)."""
    return {
        "actor": f"wallet:{access.row.client_id or 'anonymous'}"[:200],
        "action": "credential.issued",
        "now": now,
        "subject": audit.reference("issuance", issuance_id),
        "details": {
            "person": audit.reference("person", access.row.person_id),
            "record": record_id,
            "configuration_id": configuration_id,
            "status_list": allocation.list_id,
        },
    }


async def credential_endpoint(request: FastRequest) -> FastReply:
    """§8: authenticate, check the request and its proofs, consume the ``c_nonce`` and mint
    one credential per distinct key, all in one transaction committed before the reply."""
    ctx: IssuerContext = request.scope["app"].state.issuer
    body = parse_json(
        request.body, max_bytes=DEFAULT_MAX_BODY_BYTES, error="invalid_credential_request"
    )
    if _single_statement(ctx):
        answered = await _credential_in_one_statement(Request(request.scope), body, ctx, _now(ctx))
        if answered is not None:
            return FastReply(answered)
    return FastReply(await _in_thread(ctx, credential, Request(request.scope), body, ctx))


def credential(request: Request, body: Any, ctx: IssuerContext) -> dict[str, Any]:
    """:func:`credential_endpoint` past the body and the one-statement way: the credential
    response of the transaction (runs in a worker thread)."""
    now = _now(ctx)
    settings = ctx.settings
    metadata = credential_issuer_metadata(ctx)
    # Before the transaction: a key-cache refresh needs its own connection, and one taken
    # while this request holds one can starve the pool (every request waiting for a second
    # connection). One key for the whole response, so ``kid`` matches the signatures.
    active = ctx.keys.active()
    nonce_key = _nonce_key(ctx)
    with db.transaction(ctx.engine) as unit:
        access = authenticate(request, unit, ctx, "/credential", now=now)
        identifiers = access.credential_identifiers
        try:
            parsed = oid4vci.parse_credential_request(
                body,
                batch_size=settings.batch_size if settings.batch_size >= 2 else None,
                configurations=metadata["credential_configurations_supported"],
                credential_identifiers=identifiers,
                authorized_configuration_ids=access.row.configuration_ids,
            )
        except oid4vci.OID4VCIError as exc:
            raise _refusal(exc) from None
        bound, c_nonce = _verify_proofs(ctx, access, parsed.proofs, now)
        if not _redeem_c_nonce(unit, nonce_key, c_nonce, now):
            raise ProtocolError("invalid_nonce", "c_nonce is unknown, used or expired")
        record_id = (
            _record_of(parsed.credential_identifier)
            if parsed.credential_identifier is not None
            else access.row.record_id
        )
        if record_id is None:
            raise ProtocolError("credential_request_denied", "no record is bound to this token")
        person_id = access.row.person_id
        subject = _subject(ctx, unit, person_id, record_id, now)
        configuration = ctx.agency.configuration(parsed.credential_configuration_id)
        iat = _day(now)
        exp = _day(records.credential_expiry(settings, subject, now))
        notification_id = oid4vci.new_opaque_value()
        kind = issuer_status.TSL if configuration.is_sd_jwt_vc else issuer_status.BITSTRING
        sign = _sign_sd_jwt_vc if configuration.is_sd_jwt_vc else _sign_vcdm
        credentials: list[str] = []
        for key, proof_reference in bound:
            allocation = issuer_status.allocate(
                unit, settings, kind, now, open_lists=_open_lists(ctx)
            )
            credentials.append(sign(ctx, configuration, subject, allocation, key, iat, exp, active))
            issuance_id = _record(
                unit,
                _issuance(
                    person_id, record_id, configuration, allocation, active.kid,
                    proof_reference, now, exp, notification_id,
                ),
            )  # fmt: skip
            audit.append(
                unit,
                **_issued_audit(access, now, issuance_id, record_id, configuration.id, allocation),
            )
        crash_point("issuer.credential.signed", development=settings.is_development)
    crash_point("issuer.credential.committed", development=settings.is_development)
    # Counted after the commit: one per credential instance of the batch.
    metrics.ISSUANCES.labels(configuration.id, configuration.format).inc(len(credentials))
    return oid4vci.credential_response(credentials, notification_id)


# -- notification endpoint (§11) -------------------------------------------------------------


_ISSUANCES = Issuance.__table__  # type: ignore[attr-defined]
_NOTIFY = db.Prepared(
    sa.update(_ISSUANCES)
    .where(
        _ISSUANCES.c.notification_id == sa.bindparam("nid"),
        _ISSUANCES.c.person_id == sa.bindparam("pid"),
    )
    .values(notification_event=sa.bindparam("event"))
    .returning(_ISSUANCES.c.id)
)


@router.post("/notification", status_code=204)
def notification(
    request: Request,
    body: Annotated[Any, Depends(json_body(error="invalid_notification_request"))],
    ctx: Context,
) -> Response:
    """§11: the wallet says what became of the credentials; idempotent, 204."""
    now = _now(ctx)
    with db.transaction(ctx.engine) as unit:
        access = authenticate(request, unit, ctx, "/notification", now=now)
        try:
            message = oid4vci.parse_notification_request(body)
        except oid4vci.OID4VCIError as exc:
            raise _refusal(exc) from None
        updated = _NOTIFY.rows(
            unit,
            {
                "nid": message.notification_id,
                "pid": access.row.person_id,
                "event": message.event,
            },
        )
        if not updated:
            raise ProtocolError("invalid_notification_id", "notification_id is unknown")
        audit.record(
            unit,
            actor=f"wallet:{access.row.client_id or 'anonymous'}"[:200],
            action=f"notification.{message.event}",
            now=now,
            subject=audit.reference("issuance", updated[0][0]),
            details={"issuances": len(updated)},
        )
    return Response(status_code=204, headers=NO_STORE)


#: Served by :mod:`intyg.web.fastlane` (hundreds a second); declared here like the rest.
NONCE = FastRoute("/nonce", nonce, max_bytes=_body_limit, accept=None)
TOKEN = FastRoute("/token", token_endpoint, max_bytes=_body_limit)
CREDENTIAL = FastRoute("/credential", credential_endpoint, max_bytes=_body_limit, accept=JSON)
router.add_api_route("/nonce", fastlane.endpoint(NONCE), methods=["POST"])
router.add_api_route("/token", fastlane.endpoint(TOKEN), methods=["POST"])
router.add_api_route("/credential", fastlane.endpoint(CREDENTIAL), methods=["POST"])

# The protocol's busiest endpoints first: routes are matched in order, and these have fixed
# paths, so matching them first shadows nothing (a stable sort keeps the rest in order).
_HOT_PATHS = frozenset({"/token", "/nonce", "/credential", "/notification"})
router.routes.sort(key=lambda route: getattr(route, "path", "") not in _HOT_PATHS)
