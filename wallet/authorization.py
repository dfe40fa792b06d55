"""Wallet-initiated issuance: the OpenID4VCI 1.0 authorization code flow, wallet side
(issue 4 item 4; OpenID4VCI §5, §6; RFC 6749 §4.1; RFC 7636; RFC 9126; RFC 9207; RFC 9449;
HAIP 1.0; protocols.md §1.4-§1.5, §6; security.md T027-T029, T076, T081, I3, I5).

1. :func:`catalogue`: the configured credential issuers (``credential_issuers``) with their
   Credential Issuer metadata (§12.2, ``credential_issuer`` byte-identical) and
   authorization server metadata (RFC 8414, ``issuer`` identical), fetched only through
   the guarded outbound client and reused for ``issuer_metadata_cache_seconds``.
2. :func:`start`: for one configuration of one listed issuer: a PKCE S256 verifier, a
   256-bit ``state`` and a DPoP key (when the AS lists ES256) are stored first, as an
   ``authorizing`` :class:`~wallet.models.IssuanceSession` (the state only as a digest,
   bound to the person's account and browser session; verifier and key sealed; expiring
   after ``authorization_ttl``). Then the request is pushed (RFC 9126; refused when the AS
   requires PAR and has no endpoint) with the wallet attestation (HAIP) and a DPoP proof,
   which binds the code to the key (RFC 9449 §10). The result is the authorization
   endpoint URL for the person's browser (``client_id`` + ``request_uri``).
3. :func:`complete`: the redirect back (RFC 6749 §4.1.2). Repeated parameters are refused;
   the pending authorization is redeemed ONCE by its ``state``, for this account and
   browser session, before it expires (:func:`intyg.web.db.consume_once`); ``iss`` must be
   the AS (RFC 9207 §2.4; required when the AS announces it); an ``error`` is reported to
   the person; then the token request (``code``, ``redirect_uri``, ``code_verifier``, the
   attestation, DPoP with the same key) and the nonce and credential requests of
   :mod:`wallet.issuance`, whose checks run before anything is stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa

from intyg import oid4vci, strict_json
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.outbound import OutboundError

from . import issuance
from .app import WalletContext
from .issuance import IssuanceError
from .models import IssuanceSession

__all__ = [
    "AUTHORIZATION_ERRORS",
    "AuthorizationError",
    "ListedIssuer",
    "Offered",
    "catalogue",
    "complete",
    "listed_issuer",
    "redirect_uri",
    "start",
]

log = logging.getLogger("wallet.authorization")

CALLBACK_PATH = "/get/callback"
AUTHORIZING = "authorizing"
VERIFIER_PURPOSE = "wallet/pkce-verifier"
REQUEST_PURPOSE = "wallet/authorization-request"
CATALOGUE_KEY = "issuer_catalogue"
#: A failed metadata fetch is retried after this long, not after the full cache time.
FAILURE_CACHE_SECONDS = 30
MAX_REQUEST_URI_LENGTH = 2048
#: RFC 6749 §4.1.2.1 error codes the person is told about in their own words.
AUTHORIZATION_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_authorization_details",
    }
)
#: Parameters of an authorization response we read (RFC 6749 §4.1.2, RFC 9207).
RESPONSE_PARAMETERS = ("code", "state", "iss", "error", "error_description", "error_uri")


class AuthorizationError(IssuanceError):
    """The authorization response was refused (``reason``) or carried an ``error``
    (``reason`` = ``authorization_error``, ``error`` = the RFC 6749 code)."""

    def __init__(self, reason: str, message: str, error: str | None = None) -> None:
        super().__init__(reason, message)
        self.error = error


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def redirect_uri(ctx: WalletContext) -> str:
    """The wallet's redirect URI for every issuer (one callback; ``state`` names the flow)."""
    return ctx.settings.url(CALLBACK_PATH)


# -- 1. the issuers a person can ask (§12.2, RFC 8414) ----------------------------------------


@dataclass(frozen=True)
class Offered:
    """One credential configuration a person can ask for, and how it is asked for."""

    configuration_id: str
    configuration: Mapping[str, Any]
    #: ``authorization_details`` (RFC 9396) or ``scope``, as sent (§5.1.1, §5.1.2).
    request: Mapping[str, str]


@dataclass(frozen=True)
class ListedIssuer:
    """A configured issuer: its checked metadata, or why it cannot be used right now."""

    credential_issuer: str
    metadata_document: Mapping[str, Any] = field(default_factory=dict)
    as_metadata: Mapping[str, Any] = field(default_factory=dict)
    offered: tuple[Offered, ...] = ()
    problem: str | None = None

    def find(self, configuration_id: str) -> Offered | None:
        return next((o for o in self.offered if o.configuration_id == configuration_id), None)


def _authorization_request(
    configuration_id: str,
    configuration: Mapping[str, Any],
    metadata: oid4vci.IssuerMetadata,
    as_metadata: Mapping[str, Any],
) -> dict[str, str] | None:
    """§5.1.2 the configuration's ``scope`` (HAIP: used in the request), and §5.1.1
    ``authorization_details`` when the AS supports the type: the details win for the same
    configuration (§5.1) and the token then names every Credential Dataset. None: neither."""
    request: dict[str, str] = {}
    types = as_metadata.get("authorization_details_types_supported")
    if isinstance(types, list) and oid4vci.AUTHORIZATION_DETAILS_TYPE in types:
        detail = oid4vci.AuthorizationDetail(
            configuration_id,
            # §5.1.1: locations name the Credential Issuer when it has separate servers.
            locations=(metadata.credential_issuer,) if metadata.authorization_servers else None,
        )
        request["authorization_details"] = strict_json.dumps([detail.to_json()])
    scope = configuration.get("scope")
    if isinstance(scope, str) and scope and " " not in scope:
        request["scope"] = scope
    return request or None


def _check_code_flow(as_metadata: Mapping[str, Any]) -> None:
    """RFC 8414 / RFC 7636 §4.3: an authorization endpoint, ``code``, PKCE ``S256``; PAR
    when the AS requires it (RFC 9126 §5)."""
    if not isinstance(as_metadata.get("authorization_endpoint"), str):
        raise IssuanceError("unsupported_grant", "the issuer has no authorization endpoint")
    response_types = as_metadata.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise IssuanceError("unsupported_grant", "the issuer does not use authorization codes")
    methods = as_metadata.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or oid4vci.PKCE_METHOD not in methods:
        raise IssuanceError("unsupported_grant", "the issuer does not support PKCE with S256")
    if as_metadata.get("require_pushed_authorization_requests") is True and not isinstance(
        as_metadata.get("pushed_authorization_request_endpoint"), str
    ):
        raise IssuanceError("unsupported_grant", "the issuer requires PAR but has no endpoint")


def _load_issuer(ctx: WalletContext, credential_issuer: str) -> ListedIssuer:
    allow_http = ctx.settings.is_development
    try:
        document = issuance.get_json(
            ctx, oid4vci.well_known_url(credential_issuer), "the issuer metadata"
        )
        metadata = oid4vci.check_issuer_metadata(document, credential_issuer, allow_http=allow_http)
        server = oid4vci.select_authorization_server(metadata)
        as_document = issuance.get_json(
            ctx,
            oid4vci.well_known_url(server, oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER),
            "the authorization server metadata",
        )
        as_metadata = oid4vci.check_authorization_server_metadata(
            as_document, server, allow_http=allow_http
        )
        _check_code_flow(as_metadata)
    except oid4vci.OID4VCIError as exc:
        return ListedIssuer(credential_issuer, problem=str(exc.description))
    except IssuanceError as exc:
        return ListedIssuer(credential_issuer, problem=str(exc))
    offered = []
    for configuration_id, configuration in metadata.credential_configurations.items():
        try:
            issuance.check_configuration(configuration)
        except IssuanceError:
            continue  # a format or binding this wallet cannot hold
        request = _authorization_request(configuration_id, configuration, metadata, as_metadata)
        if request is not None:
            offered.append(Offered(configuration_id, configuration, request))
    return ListedIssuer(credential_issuer, dict(document), as_metadata, tuple(offered))


def listed_issuer(ctx: WalletContext, credential_issuer: str) -> ListedIssuer | None:
    """A configured issuer (exact identifier), from the cache or fetched; None: not listed."""
    if credential_issuer not in ctx.settings.credential_issuers:
        return None
    now = ctx.clock()
    cache: dict[str, tuple[int, ListedIssuer]] = ctx.extras.setdefault(CATALOGUE_KEY, {})
    cached = cache.get(credential_issuer)
    if cached is not None and cached[0] > now:
        return cached[1]
    entry = _load_issuer(ctx, credential_issuer)
    lifetime = ctx.settings.issuer_metadata_cache_seconds
    cache[credential_issuer] = (
        now + (min(lifetime, FAILURE_CACHE_SECONDS) if entry.problem else lifetime),
        entry,
    )
    return entry


def catalogue(ctx: WalletContext) -> list[ListedIssuer]:
    """Every configured issuer, in the configured order."""
    return [e for i in ctx.settings.credential_issuers if (e := listed_issuer(ctx, i))]


# -- 2. starting: state, PKCE, DPoP key, PAR (§5.1, RFC 9126) ---------------------------------


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def start(
    ctx: WalletContext,
    account_id: int,
    browser_session: str,
    credential_issuer: str,
    configuration_id: str,
) -> str:
    """Begin the code flow for one configuration; the URL to send the browser to."""
    listed = listed_issuer(ctx, credential_issuer)
    if listed is None:
        raise IssuanceError("unknown_issuer", "the issuer is not on this wallet's list")
    if listed.problem is not None:
        raise IssuanceError("issuer_unavailable", f"the issuer cannot be used: {listed.problem}")
    offered = listed.find(configuration_id)
    if offered is None:
        raise IssuanceError("unknown_configuration", "the issuer does not offer that credential")
    as_metadata = dict(listed.as_metadata)
    metadata = oid4vci.check_issuer_metadata(
        listed.metadata_document, credential_issuer, allow_http=ctx.settings.is_development
    )
    state = oid4vci.new_opaque_value()
    verifier = oid4vci.new_pkce_verifier()
    dpop_key = issuance.new_dpop_key(as_metadata)
    client_id = ctx.settings.oauth_client_id
    request = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri(ctx),
        "code_challenge": oid4vci.pkce_challenge(verifier),
        "code_challenge_method": oid4vci.PKCE_METHOD,
        **offered.request,
    }
    session = _store(
        ctx,
        account_id,
        browser_session,
        listed,
        configuration_id,
        request,
        {"state": state, "verifier": verifier, "dpop_key": dpop_key},
    )
    exchange = issuance.Exchange(ctx, metadata, as_metadata, dpop_key)
    endpoint = as_metadata["authorization_endpoint"]
    par_endpoint = as_metadata.get("pushed_authorization_request_endpoint")
    if not isinstance(par_endpoint, str):
        # RFC 9449 §10: without PAR the code is bound to the DPoP key by dpop_jkt.
        if dpop_key is not None:
            request["dpop_jkt"] = dpop_key.thumbprint()
        return _with_query(endpoint, {**request, "state": state})
    try:
        request_uri = _push(exchange, par_endpoint, {**request, "state": state})
    except IssuanceError as exc:
        assert session.id is not None
        issuance.finish(ctx, session.id, "failed", str(exc))
        raise
    return _with_query(endpoint, {"client_id": client_id, "request_uri": request_uri})


def _store(
    ctx: WalletContext,
    account_id: int,
    browser_session: str,
    listed: ListedIssuer,
    configuration_id: str,
    request: Mapping[str, str],
    secrets: Mapping[str, Any],
) -> IssuanceSession:
    """The pending authorization, committed before anything leaves the wallet: the state
    as a digest; the PKCE verifier and the DPoP key sealed to this row."""
    state, verifier, dpop_key = secrets["state"], secrets["verifier"], secrets["dpop_key"]
    now = ctx.clock()
    session = IssuanceSession(
        account_id=account_id,
        state=AUTHORIZING,
        credential_issuer=listed.credential_issuer,
        configuration_ids=[configuration_id],
        sealed_offer="",
        issuer_metadata=dict(listed.metadata_document),
        as_metadata=dict(listed.as_metadata),
        created_at=now,
        expires_at=now + ctx.settings.authorization_ttl,
        authorization_state_hash=_digest(state),
        browser_session_hash=_digest(browser_session),
    )
    session.sealed_offer = ctx.store.seal(
        strict_json.dumps(dict(request)).encode(),
        record_aad(REQUEST_PURPOSE, session.public_id),
    )
    session.sealed_pkce_verifier = ctx.store.seal(
        verifier.encode("ascii"), record_aad(VERIFIER_PURPOSE, session.public_id)
    )
    if dpop_key is not None:
        session.sealed_dpop_key = ctx.store.seal_key(
            dpop_key, record_aad(issuance.DPOP_KEY_PURPOSE, session.public_id)
        )
    with db.session(ctx.engine) as unit:
        unit.add(session)
        unit.flush()
        unit.expunge(session)
    return session


def _push(exchange: issuance.Exchange, endpoint: str, form: Mapping[str, str]) -> str:
    """RFC 9126 §2: the pushed request with client authentication; its ``request_uri``."""
    headers = issuance.client_authentication(exchange)
    try:
        answer = exchange.post(endpoint, form=form, headers=headers)
    except OutboundError as exc:
        raise issuance.refusal(exc, "the pushed authorization request") from exc
    request_uri = answer.get("request_uri") if isinstance(answer, dict) else None
    if (
        not isinstance(request_uri, str)
        or not request_uri
        or len(request_uri) > MAX_REQUEST_URI_LENGTH
    ):
        raise IssuanceError("invalid_par_response", "the issuer's PAR answer has no request_uri")
    return request_uri


# -- 3. the authorization response (RFC 6749 §4.1.2, RFC 9207) --------------------------------


def response_parameters(query: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The response's parameters; any of ours repeated is refused (RFC 6749 §3.1)."""
    params: dict[str, str] = {}
    for name, value in query:
        if name not in RESPONSE_PARAMETERS:
            continue  # RFC 6749 §4.1.2: unknown parameters are ignored
        if name in params:
            raise AuthorizationError("repeated_parameter", f"{name} appears twice")
        params[name] = value
    return params


def _redeem(
    ctx: WalletContext, account_id: int, browser_session: str, state: str
) -> IssuanceSession:
    """The pending authorization for ``state``: this person's, this browser session's,
    not expired, and not used before (one atomic statement, I3)."""
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        row = db.consume_once(
            unit,
            IssuanceSession,
            "authorization_state_hash",
            _digest(state),
            used_column="authorized_at",
            now=now,
            where=[
                IssuanceSession.account_id == account_id,  # type: ignore[list-item]
                IssuanceSession.browser_session_hash == _digest(browser_session),  # type: ignore[list-item]
                IssuanceSession.state == AUTHORIZING,  # type: ignore[list-item]
                IssuanceSession.expires_at > now,  # type: ignore[list-item, operator]
            ],
        )
        if row is None:
            raise AuthorizationError(
                "unknown_state", "the answer does not belong to a request of yours that is open"
            )
        unit.execute(
            sa.update(IssuanceSession)
            .where(IssuanceSession.id == row.id)  # type: ignore[arg-type]
            .values(state="accepted")
        )
        session = unit.get(IssuanceSession, row.id)
        assert session is not None
        unit.expunge(session)
    return session


def _check_issuer(params: Mapping[str, str], as_metadata: Mapping[str, Any]) -> None:
    """RFC 9207 §2.4: ``iss`` identical to the AS's ``issuer``; required when announced."""
    iss = params.get("iss")
    if iss is None:
        if as_metadata.get("authorization_response_iss_parameter_supported") is True:
            raise AuthorizationError("iss_missing", "the answer does not say who sent it (iss)")
        return
    if iss != as_metadata.get("issuer"):
        raise AuthorizationError("iss_mismatch", "the answer comes from another server (iss)")


def complete(
    ctx: WalletContext,
    account_id: int,
    browser_session: str,
    query: Sequence[tuple[str, str]],
) -> list[str]:
    """Finish the flow the redirect belongs to; the public ids of the stored credentials."""
    params = response_parameters(query)
    state = params.get("state")
    if not state or len(state) > 512:
        raise AuthorizationError("state_missing", "the answer has no state")
    session = _redeem(ctx, account_id, browser_session, state)
    assert session.id is not None
    try:
        _check_issuer(params, session.as_metadata)
        if "error" in params:
            code = params["error"] if params["error"] in AUTHORIZATION_ERRORS else "other"
            raise AuthorizationError("authorization_error", f"the issuer said {code}", code)
        code = params.get("code")
        if not code or len(code) > 4096:
            raise AuthorizationError("code_missing", "the answer has no authorization code")
    except AuthorizationError as exc:
        issuance.finish(ctx, session.id, "failed", str(exc))
        raise
    return _redeem_code(ctx, account_id, session, code)


def _redeem_code(
    ctx: WalletContext, account_id: int, session: IssuanceSession, code: str
) -> list[str]:
    """§6.1 authorization code grant, then §7/§8 as for an accepted offer."""
    assert session.id is not None
    request = strict_json.loads(
        ctx.store.open(session.sealed_offer, record_aad(REQUEST_PURPOSE, session.public_id))
    )
    assert session.sealed_pkce_verifier is not None
    verifier = ctx.store.open(
        session.sealed_pkce_verifier, record_aad(VERIFIER_PURPOSE, session.public_id)
    ).decode("ascii")
    dpop_key = None
    if session.sealed_dpop_key is not None:
        dpop_key = ctx.store.open_key(
            session.sealed_dpop_key, record_aad(issuance.DPOP_KEY_PURPOSE, session.public_id)
        )
    metadata = oid4vci.check_issuer_metadata(
        session.issuer_metadata, session.credential_issuer, allow_http=ctx.settings.is_development
    )
    exchange = issuance.Exchange(ctx, metadata, session.as_metadata, dpop_key)
    form = {
        "grant_type": oid4vci.AUTHORIZATION_CODE_GRANT,
        "code": code,
        "redirect_uri": request["redirect_uri"],
        "code_verifier": verifier,
        "client_id": request["client_id"],
    }
    try:
        granted = issuance.redeem_token(exchange, form, issuance.client_authentication(exchange))
    except IssuanceError as exc:
        issuance.finish(ctx, session.id, "failed", str(exc))
        raise
    return issuance.issue_all(exchange, session, account_id, granted)
