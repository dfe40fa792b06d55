"""Receiving credentials: the wallet side of OpenID4VCI 1.0 (issue 4 item 4; protocols.md §1,
§6; security.md T081-T085, I5).

1. :func:`resolve_offer`: the offer (by value, or by reference fetched through the guarded
   outbound client: https and public addresses only outside development, T085), the
   Credential Issuer metadata (``credential_issuer`` byte-identical, §12.2.2) and the
   authorization server metadata (RFC 8414, ``issuer`` identical). Every value of the offer
   is untrusted (§4.1).
2. :func:`start`: a pending :class:`~wallet.models.IssuanceSession` (the offer sealed: it
   carries the pre-authorized code) that the person sees before accepting.
3. :func:`accept`: token (pre-authorized code, ``tx_code`` when asked; DPoP when the AS
   lists ``dpop_signing_alg_values_supported``, with one ``DPoP-Nonce`` retry; a wallet
   attestation when the AS does not accept anonymous pre-authorized access), nonce,
   credential with one fresh holder key per credential instance (``batch_size`` keys when
   offered, T122), then verification of everything that arrives *before* it is stored
   (signature via the issuer's ``x5c`` chain against our trust anchors and tied to the
   issuer identifier, ``vct``/type of the offered configuration, ``cnf`` = one of our keys,
   no SD-JWT+KB, T082), then ``credential_accepted`` / ``credential_failure``.

Wallet-initiated issuance (the authorization code flow, §5) is in :mod:`wallet.authorization`;
it reuses the token, nonce, credential and verification steps here (:class:`Exchange`,
:func:`redeem_token`, :func:`issue_all`).

Holder keys follow I5: inserted ``generated`` and committed before the proofs leave,
``proof_sent`` before the credential request, ``bound`` in the same transaction that stores
the credential, ``failed`` otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from intyg import (
    client_attestation,
    dpop,
    jose,
    oid4vci,
    schemas,
    sdjwt,
    sdjwt_vc,
    strict_json,
    vcdm,
    x509,
)
from intyg.fetch import FetchError, FetchResponse
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.faults import crash_point
from intyg.web.outbound import BUSY_RETRIES, OutboundError, when_busy

from .app import WalletContext
from .models import (
    CredentialInstance,
    HolderKey,
    IssuanceSession,
    KeyState,
    WalletCredential,
)

__all__ = [
    "IssuanceError",
    "ResolvedOffer",
    "accept",
    "decline",
    "issuer_key_resolver",
    "load_session",
    "resolve_offer",
    "start",
]

log = logging.getLogger("wallet.issuance")

SD_JWT_VC = "dc+sd-jwt"
JWT_VC_JSON = "jwt_vc_json"
SUPPORTED_FORMATS = (SD_JWT_VC, JWT_VC_JSON)
ALGORITHM = "ES256"
MAX_TX_CODE_LENGTH = 64
OFFER_PURPOSE = "wallet/offer"
HOLDER_KEY_PURPOSE = "wallet/holder-key"
CREDENTIAL_PURPOSE = "wallet/credential"
DPOP_KEY_PURPOSE = "wallet/dpop-key"
#: Most Credential Datasets fetched per configuration from one token (§6.2).
MAX_DATASETS = 10


class IssuanceError(ValueError):
    """An offer or an issuance was refused; ``reason`` names the rule, the message is safe
    to show (never a code, token or claim value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- fetching (all through the guarded client) ---------------------------------------------


def _json_document(response: FetchResponse, what: str) -> Any:
    media_type = response.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise IssuanceError("invalid_response", f"{what} is not application/json")
    try:
        return strict_json.loads(response.body)
    except ValueError as exc:
        raise IssuanceError("invalid_response", f"{what} is not valid JSON") from exc


def get_json(ctx: WalletContext, url: str, what: str) -> Any:
    try:
        return _json_document(when_busy(lambda: ctx.outbound.fetch(url, "application/json")), what)
    except OutboundError as exc:
        raise IssuanceError(f"fetch_{exc.reason}", f"{what} could not be fetched: {exc}") from exc
    except FetchError as exc:
        raise IssuanceError("fetch_failed", f"{what} could not be fetched") from exc


# -- 1. resolving an offer (§4.1, §12.2, RFC 8414) -----------------------------------------


@dataclass(frozen=True)
class ResolvedOffer:
    offer: oid4vci.CredentialOffer
    offer_document: dict[str, Any]
    issuer_metadata_document: dict[str, Any]
    issuer_metadata: oid4vci.IssuerMetadata
    as_metadata: dict[str, Any]


def resolve_offer(ctx: WalletContext, link: str) -> ResolvedOffer:
    """Parse an offer link, fetch what it refers to and check it all (nothing stored)."""
    allow_http = ctx.settings.is_development
    try:
        found = oid4vci.parse_offer_link(link, allow_http=allow_http)
        if isinstance(found, str):
            found = get_json(ctx, found, "the credential offer")
        offer = oid4vci.parse_credential_offer(found, allow_http=allow_http)
        metadata_document = get_json(
            ctx, oid4vci.well_known_url(offer.credential_issuer), "the issuer metadata"
        )
        metadata = oid4vci.check_issuer_metadata(
            metadata_document, offer.credential_issuer, allow_http=allow_http
        )
        oid4vci.parse_credential_offer(
            found,
            known_configuration_ids=metadata.credential_configurations.keys(),
            allow_http=allow_http,
        )
        if offer.pre_authorized_code is None:
            raise IssuanceError(
                "unsupported_grant",
                "only offers with a pre-authorized code are supported by this wallet yet",
            )
        for configuration_id in offer.credential_configuration_ids:
            check_configuration(metadata.configuration(configuration_id))
        server = oid4vci.select_authorization_server(
            metadata, offer.pre_authorized_code.authorization_server
        )
        as_document = get_json(
            ctx,
            oid4vci.well_known_url(server, oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER),
            "the authorization server metadata",
        )
        as_metadata = oid4vci.check_authorization_server_metadata(
            as_document, server, allow_http=allow_http
        )
    except oid4vci.OID4VCIError as exc:
        raise IssuanceError(exc.error, str(exc.description)) from exc
    except ValueError as exc:
        if isinstance(exc, IssuanceError):
            raise
        raise IssuanceError("invalid_credential_offer", "the offer is malformed") from exc
    return ResolvedOffer(offer, dict(found), dict(metadata_document), metadata, as_metadata)


def check_configuration(configuration: Mapping[str, Any]) -> None:
    if configuration.get("format") not in SUPPORTED_FORMATS:
        raise IssuanceError("unsupported_format", "the offered credential format is not supported")
    proof_types = configuration.get("proof_types_supported") or {}
    jwt_proof = proof_types.get(oid4vci.PROOF_TYPE_JWT) if isinstance(proof_types, dict) else None
    algorithms = (jwt_proof or {}).get("proof_signing_alg_values_supported") or []
    # I5: every stored credential is bound to a key of ours.
    if ALGORITHM not in algorithms:
        raise IssuanceError(
            "unsupported_binding", "the issuer does not bind the credential to an ES256 key"
        )


# -- display (§12.2.4 display, credential_metadata; SD-JWT VC type metadata) ---------------


def _by_locale(entries: Any) -> dict[str, dict[str, Any]]:
    """``display`` arrays keyed by locale (``""`` for an entry without one)."""
    shown: dict[str, dict[str, Any]] = {}
    if not isinstance(entries, list):
        return shown
    for entry in entries[:20]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        locale = entry.get("locale") if isinstance(entry.get("locale"), str) else ""
        kept = {
            k: v
            for k, v in entry.items()
            if k in ("name", "description", "background_color", "text_color") and isinstance(v, str)
        }
        logo = entry.get("logo")
        if isinstance(logo, dict) and isinstance(logo.get("uri"), str):
            kept["logo"] = logo["uri"]
        shown.setdefault(str(locale)[:2].lower(), kept)
    return shown


def issuer_display(metadata_document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return _by_locale(metadata_document.get("display"))


def credential_display(configuration: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The credential's display: ``credential_metadata.display`` (1.0 final), the older
    top-level ``display``, then our own type metadata for the ``vct``."""
    credential_metadata = configuration.get("credential_metadata")
    entries = credential_metadata.get("display") if isinstance(credential_metadata, dict) else None
    shown = _by_locale(entries if entries is not None else configuration.get("display"))
    vct = configuration.get("vct")
    if not shown and isinstance(vct, str):
        try:
            shown = _by_locale(schemas.type_metadata(vct).get("display"))
        except schemas.SchemaError:
            pass
    return shown


def pick(display: Mapping[str, Mapping[str, Any]], language: str, fallback: str) -> Any:
    """The entry for ``language``, else English, Swedish, any; ``{"name": fallback}``."""
    for locale in (language, "en", "sv", *display.keys()):
        if locale in display:
            return display[locale]
    return {"name": fallback}


def card_names(
    display: Mapping[str, Mapping[str, Any]],
    issuer_display_: Mapping[str, Mapping[str, Any]],
    fmt: str,
    credential_issuer: str,
) -> dict[str, str]:
    """The list page's plain name columns of a card (``name_sv`` ... ``issuer_name_en``)."""
    host = urlsplit(credential_issuer).netloc
    names: dict[str, str] = {}
    for language in ("sv", "en"):
        names[f"name_{language}"] = str(pick(display, language, fmt).get("name") or fmt)[:200]
        issuer_name = pick(issuer_display_, language, host).get("name") or host
        names[f"issuer_name_{language}"] = str(issuer_name)[:200]
    return names


# -- 2. a pending session ------------------------------------------------------------------


def start(ctx: WalletContext, account_id: int, resolved: ResolvedOffer) -> IssuanceSession:
    """Store the checked offer for the person to look at (sealed: it holds the code)."""
    now = ctx.clock()
    session = IssuanceSession(
        account_id=account_id,
        state="offered",
        credential_issuer=resolved.offer.credential_issuer,
        configuration_ids=list(resolved.offer.credential_configuration_ids),
        sealed_offer="",
        issuer_metadata=resolved.issuer_metadata_document,
        as_metadata=resolved.as_metadata,
        tx_code=_tx_code_dict(resolved.offer),
        created_at=now,
        expires_at=now + ctx.settings.issuance_ttl,
    )
    session.sealed_offer = ctx.store.seal(
        strict_json.dumps(resolved.offer_document).encode(),
        record_aad(OFFER_PURPOSE, session.public_id),
    )
    with db.session(ctx.engine) as unit:
        unit.add(session)
        unit.flush()
        unit.expunge(session)
    return session


def _tx_code_dict(offer: oid4vci.CredentialOffer) -> dict[str, Any] | None:
    grant = offer.pre_authorized_code
    if grant is None or grant.tx_code is None:
        return None
    tx = grant.tx_code
    return {
        "input_mode": tx.input_mode,
        "length": tx.length,
        "description": tx.description,
    }


def load_session(ctx: WalletContext, account_id: int, public_id: str) -> IssuanceSession | None:
    """The person's own session (another person's is "not found", T074)."""
    with db.session(ctx.engine, write=False) as unit:
        row = unit.scalars(
            sa.select(IssuanceSession).where(
                IssuanceSession.public_id == public_id,  # type: ignore[arg-type]
                IssuanceSession.account_id == account_id,  # type: ignore[arg-type]
            )
        ).first()
        if row is not None:
            unit.expunge(row)
        return row


def decline(ctx: WalletContext, account_id: int, public_id: str) -> bool:
    """The person says no: nothing is sent to the issuer."""
    with db.session(ctx.engine) as unit:
        result = unit.execute(
            sa.update(IssuanceSession)
            .where(
                IssuanceSession.public_id == public_id,  # type: ignore[arg-type]
                IssuanceSession.account_id == account_id,  # type: ignore[arg-type]
                IssuanceSession.state == "offered",  # type: ignore[arg-type]
            )
            .values(state="declined", finished_at=ctx.clock())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def check_tx_code(spec: Mapping[str, Any] | None, tx_code: str | None) -> str | None:
    """The tx_code to send (§4.1.1 ``tx_code``): present iff the offer asks for one."""
    if spec is None:
        return None
    value = (tx_code or "").strip()
    if not value or len(value) > MAX_TX_CODE_LENGTH:
        raise IssuanceError("tx_code_required", "the transaction code is required")
    if spec.get("input_mode", "numeric") == "numeric" and not value.isdigit():
        raise IssuanceError("tx_code_format", "the transaction code has only digits")
    if spec.get("length") is not None and len(value) != spec["length"]:
        raise IssuanceError("tx_code_format", "the transaction code has the wrong length")
    return value


# -- 3. accepting --------------------------------------------------------------------------


@dataclass
class Exchange:
    """What one accepted issuance talks with: endpoints, DPoP key and nonce, token."""

    ctx: WalletContext
    metadata: oid4vci.IssuerMetadata
    as_metadata: dict[str, Any]
    dpop_key: jose.Key | None
    dpop_nonce: str | None = None
    access_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - a token type name

    def _dpop_headers(self, url: str, access_token: str | None) -> dict[str, str]:
        if self.dpop_key is None:
            return {}
        proof = dpop.make_dpop_proof(
            self.dpop_key, htm="POST", htu=url, access_token=access_token, nonce=self.dpop_nonce
        )
        return {dpop.DPOP_HEADER: proof}

    def _auth_headers(self, url: str) -> dict[str, str]:
        assert self.access_token is not None
        headers = {"Authorization": f"{self.token_type} {self.access_token}"}
        if self.token_type.lower() == "dpop":
            headers.update(self._dpop_headers(url, self.access_token))
        return headers

    def post(
        self,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
        authorized: bool = False,
    ) -> Any:
        """POST with DPoP; one retry when the server asks for a ``DPoP-Nonce`` (RFC 9449 §8),
        and up to ``BUSY_RETRIES`` after a 503 with ``Retry-After`` (the issuer was busy
        and changed nothing, so the same request is still good)."""
        nonce_retry, busy_retries = True, BUSY_RETRIES
        while True:
            sent = dict(headers or {})
            sent.update(self._auth_headers(url) if authorized else self._dpop_headers(url, None))
            try:
                if form is not None:
                    response = self.ctx.outbound.post_form(url, form, headers=sent)
                else:
                    response = self.ctx.outbound.post_json(url, payload, headers=sent)
            except OutboundError as exc:
                nonce = _dpop_nonce_of(exc)
                if nonce_retry and nonce and _oauth_error(exc) == "use_dpop_nonce":
                    nonce_retry, self.dpop_nonce = False, nonce
                    continue
                delay = exc.retry_after()
                if delay is not None and busy_retries > 0:
                    busy_retries -= 1
                    time.sleep(delay)
                    continue
                raise
            self._keep_dpop_nonce(response.headers.get("dpop-nonce"))
            return _json_document(response, "the issuer's answer") if response.body else None

    def _keep_dpop_nonce(self, nonce: Any) -> None:
        """RFC 9449 §8.2: a server may hand out the next nonce on any response."""
        if isinstance(nonce, str) and 0 < len(nonce) < 512:
            self.dpop_nonce = nonce


def _oauth_error(exc: OutboundError) -> str | None:
    if exc.response is None:
        return None
    try:
        body = strict_json.loads(exc.response.body)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) and len(error) < 64 else None


def _dpop_nonce_of(exc: OutboundError) -> str | None:
    nonce = exc.response.headers.get("dpop-nonce") if exc.response is not None else None
    return nonce if isinstance(nonce, str) and 0 < len(nonce) < 512 else None


def _claim(ctx: WalletContext, account_id: int, public_id: str) -> IssuanceSession:
    """Move the session from ``offered`` to ``accepted`` atomically (one accept wins)."""
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        row = unit.execute(
            sa.update(IssuanceSession)
            .where(
                IssuanceSession.public_id == public_id,  # type: ignore[arg-type]
                IssuanceSession.account_id == account_id,  # type: ignore[arg-type]
                IssuanceSession.state == "offered",  # type: ignore[arg-type]
                IssuanceSession.expires_at > now,  # type: ignore[arg-type]
            )
            .values(state="accepted")
            .returning(IssuanceSession.id)
        ).first()
        if row is None:
            raise IssuanceError("not_found", "the offer is gone, used or expired")
        session = unit.get(IssuanceSession, row[0])
        assert session is not None
        unit.expunge(session)
    return session


def finish(ctx: WalletContext, session_id: int, state: str, error: str | None = None) -> None:
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        unit.execute(
            sa.update(IssuanceSession)
            .where(IssuanceSession.id == session_id)  # type: ignore[arg-type]
            .values(state=state, error=error, finished_at=ctx.clock())
        )


def _reopen(ctx: WalletContext, session_id: int) -> None:
    """A wrong tx_code: the person may try again (the issuer counts the attempts)."""
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        unit.execute(
            sa.update(IssuanceSession)
            .where(IssuanceSession.id == session_id)  # type: ignore[arg-type]
            .values(state="offered")
        )


def recover_interrupted(ctx: WalletContext) -> int:
    """L08, I5 at start-up: an issuance cut off by a crash (still ``accepted``) ends
    ``failed``, and its keys that got no credential become ``failed``; -> sessions ended.

    Safe with replicas: an issuance another instance is still running overwrites these
    states when it finishes (its keys ``bound``, the session ``done``)."""
    now = ctx.clock()
    interrupted = sa.select(IssuanceSession.id).where(IssuanceSession.state == "accepted")  # type: ignore[arg-type]
    with db.session(ctx.engine) as unit:
        unit.execute(
            sa.update(HolderKey)
            .where(
                HolderKey.issuance_id.in_(interrupted),  # type: ignore[union-attr]
                HolderKey.state.in_((KeyState.GENERATED, KeyState.PROOF_SENT)),  # type: ignore[attr-defined]
            )
            .values(state=KeyState.FAILED, updated_at=now)
        )
        ended = unit.execute(
            sa.update(IssuanceSession)
            .where(IssuanceSession.state == "accepted")  # type: ignore[arg-type]
            .values(state="failed", error="interrupted", finished_at=now)
        )
    return int(ended.rowcount)  # type: ignore[attr-defined]


def accept(
    ctx: WalletContext, account_id: int, public_id: str, tx_code: str | None = None
) -> list[str]:
    """Run the issuance of a pending offer; the public ids of the stored credentials."""
    pending = load_session(ctx, account_id, public_id)
    if pending is None:
        raise IssuanceError("not_found", "the offer is gone, used or expired")
    sent_tx_code = check_tx_code(pending.tx_code, tx_code)
    session = _claim(ctx, account_id, public_id)
    assert session.id is not None
    offer = oid4vci.parse_credential_offer(
        ctx.store.open(session.sealed_offer, record_aad(OFFER_PURPOSE, session.public_id)),
        allow_http=ctx.settings.is_development,
    )
    metadata = oid4vci.check_issuer_metadata(
        session.issuer_metadata, session.credential_issuer, allow_http=ctx.settings.is_development
    )
    exchange = Exchange(ctx, metadata, session.as_metadata, _dpop_key(ctx, session))
    try:
        granted = _token(exchange, offer, sent_tx_code)
    except IssuanceError as exc:
        if exc.reason == "invalid_grant" and sent_tx_code is not None:
            _reopen(ctx, session.id)
            raise IssuanceError("wrong_tx_code", "the transaction code was not accepted") from exc
        finish(ctx, session.id, "failed", str(exc))
        raise
    return issue_all(exchange, session, account_id, granted)


def issue_all(
    exchange: Exchange,
    session: IssuanceSession,
    account_id: int,
    granted: oid4vci.TokenResponse,
) -> list[str]:
    """§7, §8 for everything the token grants; the session ends ``done`` or ``failed``."""
    assert session.id is not None
    stored: list[str] = []
    for configuration_id, identifier in _credential_datasets(session, granted):
        try:
            stored.append(_issue_one(exchange, session, account_id, configuration_id, identifier))
        except IssuanceError as exc:
            finish(exchange.ctx, session.id, "failed", str(exc))
            raise
    finish(exchange.ctx, session.id, "done")
    return stored


def _credential_datasets(
    session: IssuanceSession, granted: oid4vci.TokenResponse
) -> list[tuple[str, str | None]]:
    """One credential request per Credential Dataset the token names (§6.2
    ``credential_identifiers``), else one per configuration (§8.2)."""
    datasets: list[tuple[str, str | None]] = []
    for configuration_id in session.configuration_ids:
        identifiers = [
            identifier
            for g in granted.authorization_details or ()
            if g.credential_configuration_id == configuration_id
            for identifier in g.credential_identifiers
        ][:MAX_DATASETS]
        datasets.extend((configuration_id, i) for i in identifiers or [None])
    return datasets


def new_dpop_key(as_metadata: Mapping[str, Any]) -> jose.Key | None:
    """A DPoP key (RFC 9449) when the AS lists ES256 in ``dpop_signing_alg_values_supported``."""
    algorithms = as_metadata.get("dpop_signing_alg_values_supported")
    if not isinstance(algorithms, list) or ALGORITHM not in algorithms:
        return None
    return jose.generate_key(ALGORITHM)


def _dpop_key(ctx: WalletContext, session: IssuanceSession) -> jose.Key | None:
    key = new_dpop_key(session.as_metadata)
    if key is None:
        return None
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        unit.execute(
            sa.update(IssuanceSession)
            .where(IssuanceSession.id == session.id)  # type: ignore[arg-type]
            .values(
                sealed_dpop_key=ctx.store.seal_key(
                    key, record_aad(DPOP_KEY_PURPOSE, session.public_id)
                )
            )
        )
    return key


def refusal(exc: OutboundError, what: str) -> IssuanceError:
    error = _oauth_error(exc)
    if error is not None:
        return IssuanceError(error, f"{what} was refused by the issuer ({error})")
    return IssuanceError(f"fetch_{exc.reason}", f"{what} failed: {exc}")


def _token(
    exchange: Exchange, offer: oid4vci.CredentialOffer, tx_code: str | None
) -> oid4vci.TokenResponse:
    """§6.1 pre-authorized code grant."""
    assert offer.pre_authorized_code is not None
    form = {
        "grant_type": oid4vci.PRE_AUTHORIZED_CODE_GRANT,
        "pre-authorized_code": offer.pre_authorized_code.pre_authorized_code,
    }
    if tx_code is not None:
        form["tx_code"] = tx_code
    headers: dict[str, str] = {}
    if not exchange.as_metadata.get("pre-authorized_grant_anonymous_access_supported", False):
        headers.update(client_authentication(exchange))
        form["client_id"] = exchange.ctx.settings.oauth_client_id
    return redeem_token(exchange, form, headers)


def redeem_token(
    exchange: Exchange, form: Mapping[str, str], headers: Mapping[str, str]
) -> oid4vci.TokenResponse:
    """§6: POST the token request (DPoP when the exchange has a key); the checked answer."""
    url = exchange.as_metadata["token_endpoint"]
    try:
        body = exchange.post(url, form=form, headers=headers)
        token = oid4vci.parse_token_response(body)
    except OutboundError as exc:
        raise refusal(exc, "the token request") from exc
    except oid4vci.OID4VCIError as exc:
        raise IssuanceError(exc.error, "the token response is malformed") from exc
    if token.token_type.lower() not in ("bearer", "dpop"):
        raise IssuanceError("invalid_token_response", "unknown token type")
    if token.token_type.lower() == "dpop" and exchange.dpop_key is None:
        raise IssuanceError("invalid_token_response", "DPoP token without DPoP")
    exchange.access_token = token.access_token
    exchange.token_type = token.token_type
    return token


def client_authentication(exchange: Exchange) -> dict[str, str]:
    """Attestation-Based Client Authentication when the AS supports it (HAIP)."""
    methods = exchange.as_metadata.get("token_endpoint_auth_methods_supported") or []
    if client_attestation.AUTH_METHOD not in methods:
        return {}
    instance = exchange.dpop_key or jose.generate_key(ALGORITHM)
    ctx = exchange.ctx
    return {
        client_attestation.ATTESTATION_HEADER: ctx.keys.wallet_attestation(instance),
        client_attestation.POP_HEADER: client_attestation.make_client_attestation_pop(
            instance,
            client_id=ctx.settings.oauth_client_id,
            audience=str(exchange.as_metadata["issuer"]),
        ),
    }


def _nonce(exchange: Exchange) -> str | None:
    if exchange.metadata.nonce_endpoint is None:
        return None
    try:
        body = exchange.post(exchange.metadata.nonce_endpoint, payload={})
        return oid4vci.parse_nonce_response(body)
    except OutboundError as exc:
        raise refusal(exc, "the nonce request") from exc
    except oid4vci.OID4VCIError as exc:
        raise IssuanceError(exc.error, "the nonce response is malformed") from exc


def _batch_size(ctx: WalletContext, metadata: oid4vci.IssuerMetadata) -> int:
    return max(1, min(metadata.batch_size or 1, ctx.settings.max_batch_size))


def _new_keys(
    ctx: WalletContext, account_id: int, session: IssuanceSession, count: int
) -> list[tuple[int, jose.Key]]:
    """Fresh holder keys, stored (sealed, ``generated``) before any proof leaves (I5)."""
    now = ctx.clock()
    keys = [jose.generate_key(ALGORITHM) for _ in range(count)]
    created: list[tuple[int, jose.Key]] = []
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        for key in keys:
            thumbprint = key.thumbprint()
            row = HolderKey(
                account_id=account_id,
                issuance_id=session.id,
                thumbprint=thumbprint,
                public_jwk=key.public_jwk(),
                sealed_private_jwk=ctx.store.seal_key(
                    key, record_aad(HOLDER_KEY_PURPOSE, thumbprint)
                ),
                state=KeyState.GENERATED,
                created_at=now,
                updated_at=now,
            )
            unit.add(row)
            unit.flush()
            assert row.id is not None
            created.append((row.id, key))
    return created


def _set_key_state(ctx: WalletContext, ids: Sequence[int], state: str) -> None:
    if not ids:
        return
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        unit.execute(
            sa.update(HolderKey)
            .where(HolderKey.id.in_(list(ids)))  # type: ignore[union-attr]
            .values(state=state, updated_at=ctx.clock())
        )


def _credential_request(
    exchange: Exchange,
    configuration_id: str,
    identifier: str | None,
    keys: Sequence[jose.Key],
) -> oid4vci.CredentialResponse:
    """§8.2 with a fresh ``c_nonce``; once more with a new nonce on ``invalid_nonce``."""
    body: dict[str, Any] = {}
    if identifier is not None:
        body["credential_identifier"] = identifier
    else:
        body["credential_configuration_id"] = configuration_id
    issuer = exchange.metadata.credential_issuer
    for attempt in range(2):
        c_nonce = _nonce(exchange)
        now = exchange.ctx.clock()
        body["proofs"] = {
            oid4vci.PROOF_TYPE_JWT: [
                oid4vci.make_jwt_proof(key, audience=issuer, nonce=c_nonce, iat=now) for key in keys
            ]
        }
        try:
            answer = exchange.post(
                exchange.metadata.credential_endpoint, payload=body, authorized=True
            )
            return oid4vci.parse_credential_response(answer)
        except OutboundError as exc:
            if attempt == 0 and _oauth_error(exc) == "invalid_nonce":
                continue
            raise refusal(exc, "the credential request") from exc
        except oid4vci.OID4VCIError as exc:
            raise IssuanceError(exc.error, "the credential response is malformed") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _issue_one(
    exchange: Exchange,
    session: IssuanceSession,
    account_id: int,
    configuration_id: str,
    identifier: str | None,
) -> str:
    ctx = exchange.ctx
    configuration = exchange.metadata.configuration(configuration_id)
    keys = _new_keys(ctx, account_id, session, _batch_size(ctx, exchange.metadata))
    key_ids = [key_id for key_id, _ in keys]
    _set_key_state(ctx, key_ids, KeyState.PROOF_SENT)
    crash_point("wallet.issuance.proof_sent", development=ctx.settings.is_development)
    try:
        response = _credential_request(exchange, configuration_id, identifier, [k for _, k in keys])
    except IssuanceError:
        _set_key_state(ctx, key_ids, KeyState.FAILED)
        raise
    if response.transaction_id is not None:
        _set_key_state(ctx, key_ids, KeyState.FAILED)
        raise IssuanceError("deferred", "deferred issuance is not supported by this wallet yet")
    try:
        if len(response.credentials) > len(keys):
            raise IssuanceError("invalid_credential", "more credentials than keys")
        checked = [
            verify_received(ctx, credential, configuration, session.credential_issuer, keys)
            for credential in response.credentials
        ]
        if len({c.key_id for c in checked}) != len(checked):
            raise IssuanceError("invalid_credential", "two credentials bound to one key")
    except IssuanceError as exc:
        _set_key_state(ctx, key_ids, KeyState.FAILED)
        _notify(exchange, response.notification_id, "credential_failure", exc.reason)
        raise
    public_id = _store(ctx, account_id, session, configuration_id, configuration, checked, key_ids)
    _notify(exchange, response.notification_id, "credential_accepted")
    return public_id


def _notify(
    exchange: Exchange, notification_id: str | None, event: str, reason: str | None = None
) -> None:
    """§11 notification; best effort (the outcome for the person does not depend on it)."""
    endpoint = exchange.metadata.notification_endpoint
    if endpoint is None or notification_id is None:
        return
    description = None
    if reason is not None:
        description = "".join(c for c in reason if c.isalnum() or c in "_-")[:60] or None
    try:
        exchange.post(
            endpoint,
            payload=oid4vci.notification_request(notification_id, event, description),
            authorized=True,
        )
    except (OutboundError, ValueError) as exc:
        log.info("notification %s not delivered: %s", event, type(exc).__name__)


# -- verification before storage (T082) ----------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A verified credential and the holder key it is bound to."""

    text: str
    key_id: int
    vct: str | None
    expires_at: int | None
    status_reference: dict[str, Any] | None


def _names_issuer(chain: x509.ValidatedChain, credential_issuer: str) -> bool:
    host = (urlsplit(credential_issuer).hostname or "").lower()
    return credential_issuer in chain.san_uri or host in (n.lower() for n in chain.san_dns)


def issuer_key_resolver(ctx: WalletContext, credential_issuer: str) -> Any:
    """The issuer key from the ``x5c`` header: chain valid to one of our issuer trust
    anchors and its leaf naming ``credential_issuer`` (SAN URI, or SAN DNS = its host)."""

    def validate(x5c: list[str], header: Mapping[str, Any]) -> jose.Key:
        chain = x509.validate_x5c(x5c, ctx.issuer_anchors, now=ctx.clock())
        if not _names_issuer(chain, credential_issuer):
            raise x509.X509Error("the certificate is not the issuer's")
        return chain.key

    return sdjwt_vc.X5CKeyResolver(validate)


def _match_key(jwk: Any, keys: Sequence[tuple[int, jose.Key]]) -> int:
    if not isinstance(jwk, dict):
        raise IssuanceError("invalid_credential", "the credential is not bound to a key")
    try:
        thumbprint = jose.jwk_thumbprint(jwk)
    except (jose.JoseError, ValueError, KeyError) as exc:
        raise IssuanceError("invalid_credential", "the credential's key is malformed") from exc
    for key_id, key in keys:
        if key.thumbprint() == thumbprint:
            return key_id
    raise IssuanceError("invalid_credential", "the credential is bound to a key not ours")


def verify_received(
    ctx: WalletContext,
    credential: Any,
    configuration: Mapping[str, Any],
    credential_issuer: str,
    keys: Sequence[tuple[int, jose.Key]],
) -> Received:
    """Check a received credential before it is stored (T082); IssuanceError otherwise."""
    if not isinstance(credential, str):
        raise IssuanceError("invalid_credential", "the credential is not a string")
    try:
        if configuration.get("format") == SD_JWT_VC:
            return _verify_sd_jwt_vc(ctx, credential, configuration, credential_issuer, keys)
        return _verify_jwt_vc_json(ctx, credential, configuration, credential_issuer, keys)
    except IssuanceError:
        raise
    except ValueError as exc:  # SDJWTError, VCDMError, X509Error, JoseError
        raise IssuanceError("invalid_credential", f"the credential was refused: {exc}") from exc


def _verify_sd_jwt_vc(
    ctx: WalletContext,
    text: str,
    configuration: Mapping[str, Any],
    credential_issuer: str,
    keys: Sequence[tuple[int, jose.Key]],
) -> Received:
    # RFC 9901 §7.2 step 1: no SD-JWT+KB at issuance; every disclosure referenced.
    sdjwt.accept_issued(text)
    verified = sdjwt_vc.verify_vc(
        text,
        issuer_key_resolver(ctx, credential_issuer),
        require_key_binding=False,
        now=ctx.clock(),
    )
    if verified.vct != configuration.get("vct"):
        raise IssuanceError("invalid_credential", "the credential type is not the one offered")
    if verified.issuer is not None and verified.issuer != credential_issuer:
        raise IssuanceError("invalid_credential", "the credential names another issuer")
    key_id = _match_key((verified.claims.get("cnf") or {}).get("jwk"), keys)
    status = verified.claims.get("status")
    reference = None
    if isinstance(status, dict) and isinstance(status.get("status_list"), dict):
        reference = {"kind": "token_status_list", **status["status_list"]}
    exp = verified.claims.get("exp")
    return Received(text, key_id, verified.vct, exp if type(exp) is int else None, reference)


def _verify_jwt_vc_json(
    ctx: WalletContext,
    text: str,
    configuration: Mapping[str, Any],
    credential_issuer: str,
    keys: Sequence[tuple[int, jose.Key]],
) -> Received:
    resolver = issuer_key_resolver(ctx, credential_issuer)
    verified = vcdm.verify_credential(text, resolver, now=ctx.clock())
    if verified.issuer != credential_issuer:
        raise IssuanceError("invalid_credential", "the credential names another issuer")
    definition = configuration.get("credential_definition") or {}
    wanted = definition.get("type") if isinstance(definition, dict) else None
    types = verified.claims.get("type")
    if isinstance(wanted, list) and not (isinstance(types, list) and set(wanted) <= set(types)):
        raise IssuanceError("invalid_credential", "the credential type is not the one offered")
    holder = verified.holder_key
    key_id = _match_key(holder.public_jwk() if holder is not None else None, keys)
    reference = None
    entries = verified.claims.get("credentialStatus")
    entry = entries[0] if isinstance(entries, list) and entries else entries
    if isinstance(entry, dict):
        reference = {"kind": "bitstring", **entry}
    exp = verified.claims.get("exp")
    type_name = next((t for t in types or [] if t != vcdm.VERIFIABLE_CREDENTIAL), None)
    return Received(text, key_id, type_name, exp if type(exp) is int else None, reference)


def _store(
    ctx: WalletContext,
    account_id: int,
    session: IssuanceSession,
    configuration_id: str,
    configuration: Mapping[str, Any],
    received: Sequence[Received],
    key_ids: Sequence[int],
) -> str:
    """One transaction: the card, its sealed instances, keys ``bound`` / ``failed`` (I5)."""
    now = ctx.clock()
    expiries = [r.expires_at for r in received if r.expires_at is not None]
    bound = {r.key_id for r in received}
    shown = credential_display(configuration)
    issuer_shown = issuer_display(session.issuer_metadata)
    fmt = str(configuration.get("format"))
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        card = WalletCredential(
            account_id=account_id,
            format=fmt,
            vct=received[0].vct,
            configuration_id=configuration_id,
            credential_issuer=session.credential_issuer,
            issuer_display=issuer_shown,
            display=shown,
            **card_names(shown, issuer_shown, fmt, session.credential_issuer),
            received_at=now,
            expires_at=min(expiries) if expiries else None,
            status="valid",
            instance_count=len(received),
        )
        unit.add(card)
        unit.flush()
        assert card.id is not None
        for item in received:
            instance = CredentialInstance(
                credential_id=card.id,
                account_id=account_id,
                holder_key_id=item.key_id,
                sealed_credential="",
                status_reference=item.status_reference,
                created_at=now,
            )
            unit.add(instance)
            unit.flush()
            assert instance.id is not None
            instance.sealed_credential = ctx.store.seal(
                item.text.encode("ascii"), record_aad(CREDENTIAL_PURPOSE, instance.id)
            )
        unit.execute(
            sa.update(HolderKey)
            .where(HolderKey.id.in_(list(bound)))  # type: ignore[union-attr]
            .values(state=KeyState.BOUND, updated_at=now)
        )
        unused = [key_id for key_id in key_ids if key_id not in bound]
        if unused:
            unit.execute(
                sa.update(HolderKey)
                .where(HolderKey.id.in_(unused))  # type: ignore[union-attr]
                .values(state=KeyState.FAILED, updated_at=now)
            )
        return card.public_id


__all__ += [
    "Exchange",
    "Received",
    "card_names",
    "check_configuration",
    "client_authentication",
    "credential_display",
    "finish",
    "get_json",
    "issue_all",
    "issuer_display",
    "new_dpop_key",
    "pick",
    "redeem_token",
    "refusal",
    "verify_received",
]
