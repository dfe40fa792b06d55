"""Answering requests: OpenID4VP 1.0, wallet side (issue 4 item 5; protocols.md §2;
security.md T057-T073, T086, T122, T123, I4, L09).

1. :func:`receive`: the invocation link (``client_id`` + ``request_uri``, method ``get`` or
   ``post`` with a ``wallet_nonce``) → the Request Object fetched ONLY through the guarded
   outbound client (no redirects) → :func:`intyg.oid4vp.verify_request_object` with the
   configured verifier trust anchors, or the DID document of a did:web verifier
   (wallet/dids.py). A request that is not authentic gets NOTHING sent
   back; an authentic but unusable one gets the OpenID4VP error response (§8.5).
2. :func:`load_pending`: for the consent screen — the request re-verified, the verifier
   identified (wallet/verifiers.py), DCQL matched against the person's credentials (one
   instance opened per candidate card, only cards of a requested format and type).
3. :func:`approve`: the session is claimed (``pending_consent`` → ``consented``), unused
   credential instances are picked, the consent record is appended to the chain and the
   holder keys used are copied under the consent — ONE committed transaction before
   anything leaves the wallet (I4). Then the presentations (SD-JWT + KB-JWT with exactly
   the matched disclosures; ``vp+jwt`` for ``jwt_vc_json``), ``direct_post`` or
   ``direct_post.jwt`` (never in clear when encryption was asked, T067), and the outcome
   as a ``delivery`` record.
4. :func:`decline`: a ``declined`` record, then ``access_denied`` to the verifier.

Crash safety (L09): the session leaves ``pending_consent`` in the same transaction as the
consent record, so a crash between the commit and the POST leaves the record ``pending``
and the session ``consented`` — never answerable again. Nothing re-sends it; the person
sees "interrupted, not known whether it arrived" and may start again from the verifier's
link, which takes a new consent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from intyg import dcql, jose, oid4vp, sdjwt, strict_json, vcdm
from intyg.fetch import FetchError
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.faults import crash_point
from intyg.web.outbound import OutboundError, when_busy

from . import consents, dids
from .app import WalletContext
from .credentials import open_instance
from .issuance import HOLDER_KEY_PURPOSE, SD_JWT_VC
from .models import (
    ConsentKey,
    CredentialInstance,
    HolderKey,
    PresentationSession,
    WalletCredential,
)
from .verifiers import VerifierIdentity, beyond_need, identify

__all__ = [
    "CONSENT_KEY_PURPOSE",
    "Outcome",
    "Pending",
    "PresentationError",
    "approve",
    "decline",
    "load_pending",
    "receive",
    "withdraw",
]

log = logging.getLogger("wallet.presentation")

CONSENT_KEY_PURPOSE = "wallet/consent-key"
PURPOSE_CLAIM = "intyg_purpose"
DELETION_URI_CLAIM = "intyg_deletion_uri"
RETENTION_CLAIM = "intyg_retention_days"
DELETION_TYP = "intyg-deletion+jwt"
MAX_REQUEST_BYTES = 64 * 1024
SESSION_TTL = 900
#: Presentation session states.
PENDING, CONSENTED, DECLINED, DONE = "pending_consent", "consented", "declined", "done"
#: Delivery outcomes (consent rows: delivered/rejected/failed; decline rows: sent/failed).
DELIVERED, REJECTED, FAILED, SENT, NOT_SENT = "delivered", "rejected", "failed", "sent", "not_sent"


class PresentationError(ValueError):
    """A request that cannot be answered; ``told_verifier``: an error response was sent."""

    def __init__(self, reason: str, message: str, *, told_verifier: bool = False) -> None:
        self.reason = reason
        self.told_verifier = told_verifier
        super().__init__(message)


# -- 1. receiving the request ----------------------------------------------------------------


def _allow_http(ctx: WalletContext) -> bool:
    return ctx.settings.is_development


def _post_error(
    ctx: WalletContext, uri: str, error: str, description: str, state: str | None
) -> bool:
    """§8.5: the error response to the response URI (only for authentic requests)."""
    try:
        ctx.outbound.post_form(uri, oid4vp.error_response(error, description, state))
    except FetchError as exc:
        log.info("error response not delivered: %s", type(exc).__name__)
        return False
    return True


def _refuse(ctx: WalletContext, exc: oid4vp.OID4VPError) -> PresentationError:
    """T057-T066: tell the verifier only when the request was authentic."""
    told = False
    if exc.authenticated and exc.response_uri:
        told = _post_error(ctx, exc.response_uri, exc.error, exc.description, exc.state)
    return PresentationError(exc.error, exc.description, told_verifier=told)


def _fetch_request_object(ctx: WalletContext, link: oid4vp.RequestLink) -> tuple[str, str | None]:
    """§5.10: GET, or POST with a fresh ``wallet_nonce``; no redirects (outbound default)."""
    assert link.request_uri is not None
    accept = oid4vp.REQUEST_OBJECT_MEDIA_TYPE
    wallet_nonce = None
    try:
        if link.request_uri_method == "post":
            wallet_nonce = oid4vp.new_nonce()
            body = oid4vp.request_uri_post_body(wallet_nonce=wallet_nonce)
            response = when_busy(
                lambda: ctx.outbound.post_form(link.request_uri, body, accept=accept)
            )
        else:
            response = when_busy(lambda: ctx.outbound.fetch(link.request_uri, accept))
    except FetchError as exc:
        raise PresentationError("fetch", f"the request could not be fetched ({exc})") from None
    if len(response.body) > MAX_REQUEST_BYTES:
        raise PresentationError("fetch", "the request object is too large")
    try:
        return response.body.decode("ascii").strip(), wallet_nonce
    except UnicodeDecodeError:
        raise PresentationError("fetch", "the request object is not a compact JWS") from None


def _verify(
    ctx: WalletContext, request_jwt: str, client_id: str, wallet_nonce: str | None
) -> oid4vp.AuthorizationRequest:
    try:
        return oid4vp.verify_request_object(
            request_jwt,
            client_id_from_link=client_id,
            x5c_trust_anchors=ctx.verifier_anchors,
            did_resolver=dids.resolver(ctx),
            wallet_nonce=wallet_nonce,
            now=ctx.clock(),
            allow_http=_allow_http(ctx),
        )
    except oid4vp.OID4VPError as exc:
        raise _refuse(ctx, exc) from None


def receive(ctx: WalletContext, account_id: int, link_url: str) -> PresentationSession:
    """Fetch and verify the request; keep it for the consent screen."""
    try:
        link = oid4vp.parse_request_link(link_url, allow_http=_allow_http(ctx))
    except oid4vp.OID4VPError as exc:
        raise PresentationError(exc.error, exc.description) from None
    if link.request_uri is not None:
        request_jwt, wallet_nonce = _fetch_request_object(ctx, link)
    elif link.request is not None:
        request_jwt, wallet_nonce = link.request, None
    else:
        # Unsigned requests (redirect_uri prefix) cannot say who the verifier is.
        raise PresentationError("invalid_request", "only signed requests are accepted")
    request = _verify(ctx, request_jwt, link.client_id, wallet_nonce)
    now = ctx.clock()
    exp = jose.parse_jws(request_jwt).claims().get("exp")
    expires_at = min(exp, now + SESSION_TTL) if type(exp) is int else now + SESSION_TTL
    with db.session(ctx.engine) as unit:
        session = PresentationSession(
            account_id=account_id,
            state=PENDING,
            client_id=request.client_id[:1024],
            request={"jwt": request_jwt, "wallet_nonce": wallet_nonce},
            created_at=now,
            expires_at=expires_at,
        )
        unit.add(session)
        unit.flush()
        unit.expunge(session)
    return session


# -- 2. the consent screen's data --------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """One of the person's cards as a DCQL candidate."""

    card: WalletCredential
    candidate: dcql.Candidate


@dataclass(frozen=True)
class Pending:
    session: PresentationSession
    request: oid4vp.AuthorizationRequest
    claims: Mapping[str, Any]
    identity: VerifierIdentity
    selection: dcql.Selection
    beyond: Mapping[str, list[tuple[Any, ...]]]
    cards: Mapping[str, WalletCredential]

    def purpose(self) -> dict[str, str] | None:
        value = self.claims.get(PURPOSE_CLAIM)
        if isinstance(value, str):
            value = {"sv": value, "en": value}
        if not isinstance(value, dict):
            return None
        return {str(k)[:8]: v[:1000] for k, v in value.items() if isinstance(v, str)} or None

    def sets(self) -> list[tuple[int, bool, tuple[str, ...] | None]]:
        """(index, required, chosen option) for every credential set (implicit: one)."""
        return [(i, s.required, s.chosen) for i, s in enumerate(self.selection.sets)]


def load_session(ctx: WalletContext, account_id: int, public_id: str) -> PresentationSession | None:
    with db.session(ctx.engine, write=False) as unit:
        session = unit.scalars(
            sa.select(PresentationSession).where(
                PresentationSession.public_id == public_id,  # type: ignore[arg-type]
                PresentationSession.account_id == account_id,  # type: ignore[arg-type]
            )
        ).first()
        if session is not None:
            unit.expunge(session)
    return session


def _wanted(query: dcql.DCQLQuery) -> tuple[set[str], set[str]]:
    formats = {q.format for q in query.credentials}
    vcts = {v for q in query.credentials for v in q.vct_values}
    return formats, vcts


def _next_instance(unit: db.Session, card: WalletCredential) -> CredentialInstance | None:
    """The least presented instance of the batch (an unused one while any is left, T122)."""
    return unit.scalars(
        sa.select(CredentialInstance)
        .where(
            CredentialInstance.credential_id == card.id,  # type: ignore[arg-type]
            CredentialInstance.account_id == card.account_id,  # type: ignore[arg-type]
        )
        .order_by(CredentialInstance.times_presented, CredentialInstance.id)  # type: ignore[arg-type]
        .limit(1)
    ).first()


def _candidate(card: WalletCredential, text: str) -> dcql.Candidate:
    if card.format == SD_JWT_VC:
        parsed = sdjwt.parse(text)
        claims, _ = sdjwt.process(jose.parse_jws(parsed.issuer_jwt).claims(), parsed.disclosures)
        return dcql.Candidate(
            credential_id=card.public_id,
            format=card.format,
            types=(card.vct,) if card.vct else (),
            claims=claims,
            disclosable=tuple(sdjwt.disclosable_paths(parsed)),
        )
    _, payload = vcdm.decode_unverified(text)
    types = payload.get("type")
    return dcql.Candidate(
        credential_id=card.public_id,
        format=card.format,
        types=tuple(t for t in types if isinstance(t, str)) if isinstance(types, list) else (),
        claims=payload,
    )


def _held(ctx: WalletContext, account_id: int, query: dcql.DCQLQuery) -> list[Held]:
    """Candidates among the person's cards: decrypt only those of a requested format/type."""
    formats, vcts = _wanted(query)
    now = ctx.clock()
    with db.session(ctx.engine, write=False) as unit:
        cards = list(
            unit.scalars(
                sa.select(WalletCredential)
                .where(
                    WalletCredential.account_id == account_id,  # type: ignore[arg-type]
                    WalletCredential.format.in_(formats),  # type: ignore[attr-defined]
                    WalletCredential.status.not_in(("revoked",)),  # type: ignore[attr-defined]
                )
                .order_by(WalletCredential.received_at.desc(), WalletCredential.id)  # type: ignore[attr-defined,union-attr]
            )
        )
        picked = []
        for card in cards:
            if card.format == SD_JWT_VC and card.vct not in vcts:
                continue
            if card.expires_at is not None and card.expires_at <= now:
                continue
            instance = _next_instance(unit, card)
            if instance is not None:
                unit.expunge(card)
                picked.append((card, instance))
    held = []
    for card, instance in picked:
        try:
            held.append(Held(card, _candidate(card, open_instance(ctx, instance))))
        except (ValueError, KeyError) as exc:
            log.info("a stored credential could not be read: %s", type(exc).__name__)
    return held


def load_pending(ctx: WalletContext, account_id: int, public_id: str) -> Pending | None:
    """The pending request re-verified (time, certificate) and matched; None: not yours."""
    session = load_session(ctx, account_id, public_id)
    if session is None:
        return None
    jwt = session.request["jwt"]
    request = _verify(ctx, jwt, session.client_id, session.request.get("wallet_nonce"))
    identity = identify(ctx, request)
    held = _held(ctx, account_id, request.dcql_query)
    selection = dcql.match(request.dcql_query, (h.candidate for h in held))
    return Pending(
        session=session,
        request=request,
        claims=jose.parse_jws(jwt).claims(),
        identity=identity,
        selection=selection,
        beyond=beyond_need(identity, request.dcql_query),
        cards={h.card.public_id: h.card for h in held},
    )


# -- 3. approve --------------------------------------------------------------------------------


def choose(pending: Pending, form: Mapping[str, str]) -> dict[str, list[dcql.CredentialMatch]]:
    """The person's choices → query id → the chosen matches (validated against the
    selection: only offered cards, every required set, optional sets only when ticked)."""
    chosen: dict[str, list[dcql.CredentialMatch]] = {}
    query = pending.request.dcql_query
    for index, required, option in pending.sets():
        if option is None:
            if required:
                raise PresentationError("no_match", "you do not hold what the verifier asks for")
            continue
        if not required and form.get(f"set.{index}") != "on":
            continue
        for query_id in option:
            matches = pending.selection.matches[query_id]
            if query.credential(query_id).multiple:
                picked = [
                    m
                    for m in matches
                    if form.get(f"pick.{query_id}.{m.candidate.credential_id}") == "on"
                ]
            else:
                wanted = form.get(f"pick.{query_id}", matches[0].candidate.credential_id)
                picked = [m for m in matches if m.candidate.credential_id == wanted]
            if not picked:
                raise PresentationError("invalid_choice", "choose a credential for every question")
            chosen[query_id] = picked
    if not chosen:
        raise PresentationError("invalid_choice", "nothing was chosen to share")
    return chosen


def _claim_session(unit: db.Session, session: PresentationSession, state: str, now: int) -> None:
    """Single use: only a pending, unexpired session moves on (L09: no second answer)."""
    result = unit.execute(
        sa.update(PresentationSession)
        .where(
            PresentationSession.id == session.id,  # type: ignore[arg-type]
            PresentationSession.account_id == session.account_id,  # type: ignore[arg-type]
            PresentationSession.state == PENDING,  # type: ignore[arg-type]
            PresentationSession.expires_at > now,  # type: ignore[arg-type]
        )
        .values(state=state)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise PresentationError("already_answered", "this request was already answered")


def _reference(pending: Pending) -> dict[str, Any]:
    deletion = pending.claims.get(DELETION_URI_CLAIM)
    return {
        "response_uri": pending.request.response_uri,
        "response_mode": pending.request.response_mode,
        "state": pending.request.state,
        "deletion_uri": deletion if isinstance(deletion, str) and len(deletion) < 2048 else None,
    }


def _retention(pending: Pending) -> dict[str, Any] | None:
    days = pending.claims.get(RETENTION_CLAIM)
    return {"days": days} if type(days) is int and days >= 0 else None


def _requested_items(pending: Pending) -> list[dict[str, Any]]:
    return [
        {
            "credential_query": q.id,
            "format": q.format,
            "credential_type": list(q.vct_values) or [list(t) for t in q.type_values],
            "claims": [list(c.path) for c in q.claims or ()],
        }
        for q in pending.request.dcql_query.credentials
    ]


def _common(pending: Pending) -> dict[str, Any]:
    return {
        "controller": pending.identity.to_json(),
        "verifier_known": pending.identity.known,
        "purpose": pending.purpose(),
        "retention": _retention(pending),
        "beyond_registered_need": {k: [list(p) for p in v] for k, v in pending.beyond.items()},
        "verifier_reference": _reference(pending),
        "requested": _requested_items(pending),
    }


@dataclass(frozen=True)
class _Use:
    query_id: str
    match: dcql.CredentialMatch
    card: WalletCredential
    instance_id: int
    key_id: int


@dataclass(frozen=True)
class Outcome:
    consent_id: str
    status: str
    redirect_uri: str | None = None
    error: str | None = None


def _record_consent(
    ctx: WalletContext,
    pending: Pending,
    chosen: Mapping[str, list[dcql.CredentialMatch]],
) -> tuple[str, list[_Use]]:
    """I4: claim the session, pick instances, append the record, keep the keys — one commit."""
    now = ctx.clock()
    account_id = pending.session.account_id
    uses: list[_Use] = []
    items: list[dict[str, Any]] = []
    with db.session(ctx.engine) as unit:
        _claim_session(unit, pending.session, CONSENTED, now)
        for query_id, matches in chosen.items():
            for match in matches:
                card = pending.cards[match.candidate.credential_id]
                instance = _next_instance(unit, card)
                if instance is None or instance.id is None:
                    raise PresentationError("gone", "a chosen credential no longer exists")
                items.append(
                    {
                        "credential_query": query_id,
                        "credential_id": card.public_id,
                        "format": card.format,
                        "credential_type": card.vct or card.configuration_id,
                        "issuer": card.credential_issuer,
                        "claims": [list(p) for p in match.claim_paths],
                        "instance_reused": instance.times_presented > 0,
                    }
                )
                instance.times_presented += 1
                uses.append(_Use(query_id, match, card, instance.id, instance.holder_key_id))
        body = {
            **_common(pending),
            "legal_basis": "consent",
            "processing": "disclosure to the verifier (OpenID4VP 1.0 presentation)",
            "data_items": items,
            "delivery_status": consents.PENDING,
        }
        row = consents.append(
            ctx, unit, account_id, consents.CONSENT, body, delivery_status=consents.PENDING
        )
        keys = unit.scalars(
            sa.select(HolderKey).where(
                HolderKey.id.in_([u.key_id for u in uses]),  # type: ignore[union-attr]
                HolderKey.account_id == account_id,  # type: ignore[arg-type]
            )
        )
        assert row.id is not None
        for key in keys:
            private = ctx.store.open_key(
                key.sealed_private_jwk, record_aad(HOLDER_KEY_PURPOSE, key.thumbprint)
            )
            unit.add(
                ConsentKey(
                    account_id=account_id,
                    consent_id=row.id,
                    thumbprint=key.thumbprint,
                    sealed_private_jwk=ctx.store.seal_key(
                        private,
                        record_aad(CONSENT_KEY_PURPOSE, f"{row.public_id}/{key.thumbprint}"),
                    ),
                )
            )
        unit.execute(
            sa.update(PresentationSession)
            .where(PresentationSession.id == pending.session.id)  # type: ignore[arg-type]
            .values(consent_id=row.public_id)
        )
        return row.public_id, uses


def _presentations(
    ctx: WalletContext, pending: Pending, uses: Sequence[_Use]
) -> dict[str, list[str]]:
    """SD-JWT + KB-JWT with exactly the matched disclosures; ``vp+jwt`` for jwt_vc_json."""
    request = pending.request
    now = ctx.clock()
    out: dict[str, list[str]] = {}
    with db.session(ctx.engine, write=False) as unit:
        for use in uses:
            instance = unit.get(CredentialInstance, use.instance_id)
            key_row = unit.get(HolderKey, use.key_id)
            assert instance is not None and key_row is not None
            text = open_instance(ctx, instance)
            key = ctx.store.open_key(
                key_row.sealed_private_jwk, record_aad(HOLDER_KEY_PURPOSE, key_row.thumbprint)
            )
            if use.card.format == SD_JWT_VC:
                presentation = sdjwt.present(
                    text,
                    use.match.claim_paths,
                    holder_key=key,
                    aud=request.audience,
                    nonce=request.nonce,
                    iat=now,
                )
            else:
                presentation = vcdm.sign_presentation(
                    [text], key, audience=request.audience, nonce=request.nonce, iat=now
                )
            out.setdefault(use.query_id, []).append(presentation)
    return out


def _verifier_error(exc: OutboundError) -> str:
    """The verifier's error code and description, short and printable."""
    response = getattr(exc, "response", None)
    body = getattr(response, "body", None) or getattr(response, "content", None)
    try:
        reply = strict_json.loads(body) if body else {}
    except ValueError:
        reply = {}
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        text = reply["error"]
        if isinstance(reply.get("error_description"), str):
            text += ": " + reply["error_description"]
        return text[:300]
    return f"HTTP {exc.status_code}"


def _redirect_of(ctx: WalletContext, body: bytes) -> str | None:
    """§8.2 ``redirect_uri``: https only; in development also the verifier's loopback http."""
    try:
        return (
            oid4vp.parse_response_endpoint_reply(body, allow_http=_allow_http(ctx))
            if body.strip()
            else None
        )
    except oid4vp.OID4VPError:
        return None


def _deliver(
    ctx: WalletContext, uri: str, form: Mapping[str, str]
) -> tuple[str, str | None, bytes]:
    try:
        # Again after a 503 + Retry-After: the verifier was busy and took nothing.
        response = when_busy(lambda: ctx.outbound.post_form(uri, dict(form)))
    except OutboundError as exc:
        if exc.reason == "status" and exc.status_code is not None and exc.status_code < 500:
            return REJECTED, _verifier_error(exc), b""
        return FAILED, f"not delivered ({exc.reason})", b""
    except FetchError:
        return FAILED, "not delivered", b""
    return DELIVERED, None, response.body


def _record_delivery(
    ctx: WalletContext,
    account_id: int,
    subject_id: str,
    status: str,
    error: str | None,
    session_id: int | None,
    redirect_uri: str | None = None,
) -> None:
    with db.session(ctx.engine, patience=db.WORKFLOW_PATIENCE_SECONDS) as unit:
        consents.append(
            ctx,
            unit,
            account_id,
            consents.DELIVERY,
            {"status": status, "error": error},
            delivery_status=status,
            subject_id=subject_id,
        )
        consents.set_status(unit, account_id, subject_id, status)
        if session_id is not None:
            unit.execute(
                sa.update(PresentationSession)
                .where(PresentationSession.id == session_id)  # type: ignore[arg-type]
                .values(state=DONE, redirect_uri=redirect_uri)
            )


def approve(
    ctx: WalletContext, account_id: int, public_id: str, form: Mapping[str, str]
) -> Outcome:
    """Consent, then present (see the module docstring)."""
    pending = load_pending(ctx, account_id, public_id)
    if pending is None:
        raise PresentationError("not_found", "the request does not exist")
    if pending.session.state != PENDING:
        raise PresentationError("already_answered", "this request was already answered")
    chosen = choose(pending, form)
    consent_id, uses = _record_consent(ctx, pending, chosen)
    crash_point("wallet.presentation.consented", development=ctx.settings.is_development)
    # The consent is committed: from here on every outcome is recorded, nothing is retried.
    try:
        token = oid4vp.vp_token(_presentations(ctx, pending, uses))
        body = oid4vp.authorization_response(pending.request, token)
    except (ValueError, KeyError) as exc:
        log.warning("presentation could not be built: %s", type(exc).__name__)
        status, error, reply = FAILED, "the presentation could not be built", b""
    else:
        status, error, reply = _deliver(ctx, pending.request.response_uri, body)
    redirect = _redirect_of(ctx, reply) if status == DELIVERED else None
    _record_delivery(ctx, account_id, consent_id, status, error, pending.session.id, redirect)
    return Outcome(consent_id, status, redirect, error)


# -- 4. decline ------------------------------------------------------------------------------


def decline(ctx: WalletContext, account_id: int, public_id: str) -> Outcome:
    """Record the decline, then tell the verifier ``access_denied`` (§8.5)."""
    pending = load_pending(ctx, account_id, public_id)
    if pending is None:
        raise PresentationError("not_found", "the request does not exist")
    with db.session(ctx.engine) as unit:
        _claim_session(unit, pending.session, DECLINED, ctx.clock())
        row = consents.append(
            ctx,
            unit,
            account_id,
            consents.DECLINED,
            {**_common(pending), "legal_basis": None, "delivery_status": consents.PENDING},
            delivery_status=consents.PENDING,
        )
        consent_id = row.public_id
        unit.execute(
            sa.update(PresentationSession)
            .where(PresentationSession.id == pending.session.id)  # type: ignore[arg-type]
            .values(consent_id=consent_id)
        )
    told = _post_error(
        ctx,
        pending.request.response_uri,
        "access_denied",
        "the holder declined the request",
        pending.request.state,
    )
    status = SENT if told else FAILED
    _record_delivery(ctx, account_id, consent_id, status, None, pending.session.id)
    return Outcome(consent_id, status)


# -- withdrawal ------------------------------------------------------------------------------


def deletion_request(key: jose.Key, client_id: str, state: str | None, now: int) -> str:
    """docs/verifier.md "Withdrawal": JWS ``typ`` intyg-deletion+jwt, holder key in ``jwk``."""
    claims: dict[str, Any] = {"aud": client_id, "iat": now}
    if state is not None:
        claims["state"] = state
    return jose.encode_jws(claims, key, {"typ": DELETION_TYP, "jwk": key.public_jwk()})


def withdraw(ctx: WalletContext, account_id: int, public_id: str) -> str:
    """Ask the verifier to delete what it received; the outcome goes into the chain.

    Outcomes: ``confirmed`` (the verifier deleted), ``refused`` (it said no), ``failed``
    (not reachable), ``no_endpoint`` (the request advertised no deletion endpoint: the
    person must contact the verifier; the withdrawal is still recorded).
    """
    row = consents.get_record(ctx, account_id, public_id)
    if row is None or row.kind != consents.CONSENT:
        raise PresentationError("not_found", "the consent does not exist")
    if row.delivery_status != DELIVERED:
        raise PresentationError("not_delivered", "nothing was delivered, nothing to withdraw")
    if consents.withdrawn(ctx, account_id, public_id):
        raise PresentationError("already_withdrawn", "the consent was already withdrawn")
    record = row.record
    reference = record.get("verifier_reference") or {}
    uri = reference.get("deletion_uri")
    client_id = (record.get("controller") or {}).get("client_id")
    outcome, error = "no_endpoint", None
    if isinstance(uri, str) and isinstance(client_id, str):
        assert row.id is not None
        outcome, error = "failed", "no key to prove the presentation"
        for stored in consents.keys_of(ctx, account_id, row.id):
            key = ctx.store.open_key(
                stored.sealed_private_jwk,
                record_aad(CONSENT_KEY_PURPOSE, f"{public_id}/{stored.thumbprint}"),
            )
            jws = deletion_request(key, client_id, reference.get("state"), ctx.clock())
            status, error, _ = _deliver(ctx, uri, {"deletion_request": jws})
            outcome = {DELIVERED: "confirmed", REJECTED: "refused"}.get(status, "failed")
            if outcome == "confirmed":
                break
    with db.session(ctx.engine) as unit:
        consents.append(
            ctx,
            unit,
            account_id,
            consents.WITHDRAWAL,
            {"deletion_uri": uri, "outcome": outcome, "error": error},
            delivery_status=outcome,
            subject_id=public_id,
        )
    return outcome
