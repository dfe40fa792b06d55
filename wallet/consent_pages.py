"""Pages for answering requests and the consent history (issue 4 items 5-7).

Routes: ``GET /authorize`` (the wallet's OpenID4VP authorization endpoint: same-device
links ``https://<wallet>/authorize?client_id=..&request_uri=..``) · ``GET|POST /present``
(paste an ``openid4vp://`` link from a QR code) · ``GET /presentations/{id}`` (consent
screen) · ``POST /presentations/{id}/approve|decline`` · ``GET /consents`` ·
``GET /consents/verify`` · ``GET /consents/{id}`` · ``POST /consents/{id}/withdraw``.
Every form carries the CSRF token; every handler depends on ``current_account``.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from intyg import oid4vp, schemas
from intyg.web.sessions import SessionError

from . import consents, issuance, presentation
from .accounts import CurrentHolder, Holder
from .app import Context, WalletContext
from .pages import TEXT, _csrf, _form, _redirect, error_page, language_of, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MAX_CONSENT_FIELDS = 64


def _labels(vct: str | None, language: str) -> dict[Any, str]:
    if not vct:
        return {}
    try:
        return dict(schemas.claim_display(vct, language))
    except (schemas.SchemaError, ValueError):
        return {}


def _type_name(vct: str | None, language: str) -> str | None:
    """The credential type's name in ``language`` (its type metadata ``display``)."""
    try:
        display = schemas.type_metadata(vct).get("display", []) if vct else []
    except schemas.SchemaError:
        return None
    names = {entry.get("locale"): entry.get("name") for entry in display}
    return names.get(language) or names.get("en")


def _claim_label(labels: dict[Any, str], path: Any) -> str:
    path = tuple(path)
    generic = tuple(None if isinstance(p, int) else p for p in path)
    return labels.get(path) or labels.get(generic) or " / ".join(str(p) for p in path)


def _card_name(card: Any, language: str) -> tuple[str, str]:
    name = issuance.pick(card.display, language, card.format)["name"]
    issuer = issuance.pick(card.issuer_display, language, urlsplit(card.credential_issuer).netloc)
    return name, issuer["name"]


# -- answering a request ---------------------------------------------------------------------


def _begin(request: Request, ctx: WalletContext, holder: Holder, link: str) -> Response:
    t = TEXT[language_of(request, ctx)[0]]
    try:
        session = presentation.receive(ctx, holder.account_id, link)
    except presentation.PresentationError as exc:
        told = t["verifier_told"] if exc.told_verifier else t["nothing_sent"]
        return error_page(request, ctx, f"{t['request_refused']}: {exc}. {told}", 400)
    return _redirect(f"/presentations/{session.public_id}")


@router.get("/authorize")
def authorize(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    """The wallet's authorization endpoint (OpenID4VP §5) for same-device links."""
    query = request.url.query
    if len(query) > oid4vp.MAX_LINK_LENGTH:
        return error_page(request, ctx, TEXT[language_of(request, ctx)[0]]["request_refused"], 400)
    return _begin(request, ctx, holder, f"openid4vp://?{query}")


@router.get("/present")
def present_page(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    return render(request, ctx, "present.html", **_csrf(ctx, holder))


@router.post("/present")
async def present_link(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    """Paste-a-link: ``openid4vp://...`` or a wallet ``https://.../authorize?...`` link."""
    try:
        form = await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, TEXT[language_of(request, ctx)[0]]["forbidden"], 403)
    link = form.get("link", "").strip()
    parts = urlsplit(link)
    if parts.scheme in ("http", "https") and parts.path.rstrip("/").endswith("/authorize"):
        link = f"openid4vp://?{parts.query}"
    return await run_in_threadpool(_begin, request, ctx, holder, link)


def _verifier_view(identity: Any, language: str) -> dict[str, Any]:
    return {
        "name": identity.display_name(language),
        "org_number": identity.organisation_number,
        "subject": identity.authenticated_by,
        "by_did": identity.did is not None,
        "san": ", ".join(identity.san_dns),
        "known": identity.known,
    }


def _minute(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _consent_view(pending: presentation.Pending, language: str) -> dict[str, Any]:
    t = TEXT[language]
    query = pending.request.dcql_query
    sets = []
    for index, required, option in pending.sets():
        if option is None:
            continue
        queries = []
        for query_id in option:
            candidates = []
            for match in pending.selection.matches[query_id]:
                card = pending.cards[match.candidate.credential_id]
                labels = _labels(card.vct, language)
                name, issuer = _card_name(card, language)
                candidates.append(
                    {
                        "id": card.public_id,
                        "name": name,
                        "issuer": issuer,
                        # Tells apart two credentials of one type (e.g. a renewed one).
                        "received": _minute(card.received_at),
                        "claims": [_claim_label(labels, p) for p in match.claim_paths],
                    }
                )
            queries.append(
                {
                    "id": query_id,
                    "multiple": query.credential(query_id).multiple,
                    "candidates": candidates,
                }
            )
        sets.append({"index": index, "required": required, "queries": queries})
    beyond = []
    for query_id, paths in pending.beyond.items():
        credential_query = query.credential(query_id)
        labels = _labels(next(iter(credential_query.vct_values), None), language)
        for path in paths:
            beyond.append(_claim_label(labels, path) if path else t["type_not_registered"])
    purpose = pending.purpose() or {}
    retention = pending.claims.get(presentation.RETENTION_CLAIM)
    return {
        "session_id": pending.session.public_id,
        "verifier": _verifier_view(pending.identity, language),
        "beyond": beyond,
        "purpose": purpose.get(language) or purpose.get("sv") or purpose.get("en"),
        "retention": retention if type(retention) is int else None,
        "satisfiable": pending.selection.satisfied,
        "sets": sets,
    }


@router.get("/presentations/{public_id}")
def consent_screen(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> HTMLResponse:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    session = presentation.load_session(ctx, holder.account_id, public_id[:64])
    if session is None:
        return error_page(request, ctx, t["gone"], 404)
    if session.state != presentation.PENDING:
        # L09: an answered (or interrupted) request is never offered again.
        message = t["answered"]
        if session.state == presentation.CONSENTED:
            message = t["interrupted"]
        return render(
            request,
            ctx,
            "presented.html",
            heading=t["consent_title"],
            message=message,
            redirect_uri=None,
            consent_id=session.consent_id,
        )
    if session.expires_at <= ctx.clock():
        return error_page(request, ctx, t["gone"], 404)
    try:
        pending = presentation.load_pending(ctx, holder.account_id, public_id[:64])
    except presentation.PresentationError as exc:
        return error_page(request, ctx, f"{t['request_refused']}: {exc}", 400)
    assert pending is not None
    return render(
        request, ctx, "consent.html", **_consent_view(pending, language), **_csrf(ctx, holder)
    )


def _outcome_page(
    request: Request, ctx: WalletContext, outcome: presentation.Outcome, language: str
) -> Response:
    """What became of the answer. With the verifier's ``redirect_uri`` (OpenID4VP §8.2,
    same-device) a page that moves on by itself (meta refresh + a link), not a 303: browsers
    apply this page's ``form-action 'self'`` to a redirect that answers a form, so a 303 to
    the verifier's origin would be blocked (as for the issuer in ``get_redirect.html``)."""
    t = TEXT[language]
    status_text = t.get(f"delivery_{outcome.status}", outcome.status)
    message = t["sent_ok"] if outcome.status == presentation.DELIVERED else status_text
    if outcome.error:
        message += f" ({outcome.error})"
    return render(
        request,
        ctx,
        "presented.html",
        heading=t["consent_title"],
        message=message,
        redirect_uri=outcome.redirect_uri,
        consent_id=outcome.consent_id,
    )


@router.post("/presentations/{public_id}/approve")
async def approve(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    try:
        form = await _form(request, ctx, holder, max_fields=MAX_CONSENT_FIELDS)
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    try:
        outcome = await run_in_threadpool(
            presentation.approve, ctx, holder.account_id, public_id[:64], form
        )
    except presentation.PresentationError as exc:
        status = (
            404 if exc.reason == "not_found" else 409 if exc.reason == "already_answered" else 400
        )
        return error_page(request, ctx, f"{t['request_refused']}: {exc}", status)
    return _outcome_page(request, ctx, outcome, language)


@router.post("/presentations/{public_id}/decline")
async def decline(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    try:
        await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    try:
        outcome = await run_in_threadpool(
            presentation.decline, ctx, holder.account_id, public_id[:64]
        )
    except presentation.PresentationError as exc:
        status = (
            404 if exc.reason == "not_found" else 409 if exc.reason == "already_answered" else 400
        )
        return error_page(request, ctx, f"{t['request_refused']}: {exc}", status)
    message = t["declined_sent"] if outcome.status == presentation.SENT else t["delivery_failed"]
    return render(
        request,
        ctx,
        "presented.html",
        heading=t["consent_title"],
        message=message,
        redirect_uri=None,
        consent_id=outcome.consent_id,
    )


# -- consent history -------------------------------------------------------------------------


def _verifier_name(record: dict[str, Any], language: str) -> str:
    controller = record.get("controller") or {}
    name = controller.get("name") or {}
    identified = controller.get("identified_by") or {}
    san = identified.get("san_dns") or []
    return (
        name.get(language)
        or name.get("sv")
        or (san[0] if san else None)
        or identified.get("certificate_subject")
        or identified.get("did")
        or controller.get("client_id", "")
    )


def _history(
    request: Request, ctx: WalletContext, holder: Holder, chain: consents.ChainReport | None
) -> HTMLResponse:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    items = [
        {
            "id": row.public_id,
            "verifier": _verifier_name(row.record, language),
            "kind": t["consent"] if row.kind == consents.CONSENT else t["declined_kind"],
            "time": row.record.get("time", "")[:16].replace("T", " "),
            "status": t.get(f"delivery_{row.delivery_status}", row.delivery_status),
        }
        for row in consents.list_records(ctx, holder.account_id)
    ]
    return render(request, ctx, "consents.html", items=items, chain=chain)


@router.get("/consents")
def consent_history(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    return _history(request, ctx, holder, None)


@router.get("/consents/verify")
def verify_history(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    return _history(request, ctx, holder, consents.verify_chain(ctx, holder.account_id))


def _record_page(
    request: Request, ctx: WalletContext, holder: Holder, public_id: str, message: str = ""
) -> HTMLResponse:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    row = consents.get_record(ctx, holder.account_id, public_id)
    if row is None or row.kind not in (consents.CONSENT, consents.DECLINED):
        return error_page(request, ctx, t["not_found"], 404)
    record = row.record
    identified = (record.get("controller") or {}).get("identified_by") or {}
    items = []
    for item in record.get("data_items") or record.get("requested") or []:
        vct = item.get("credential_type")
        vct = vct if isinstance(vct, str) else (vct[0] if vct and isinstance(vct[0], str) else None)
        labels = _labels(vct, language)
        items.append(
            {
                "name": _type_name(vct, language) or vct or item.get("format"),
                "claims": [_claim_label(labels, p) for p in item.get("claims", [])],
            }
        )
    events = [
        {
            "time": e.record.get("time", "")[:19].replace("T", " "),
            "kind": e.kind,
            "status": e.delivery_status,
            "error": e.record.get("error"),
        }
        for e in consents.events_about(ctx, holder.account_id, public_id)
    ]
    withdrawn = any(e["kind"] == consents.WITHDRAWAL and e["status"] == "confirmed" for e in events)
    purpose = record.get("purpose") or {}
    return render(
        request,
        ctx,
        "consent_record.html",
        id=row.public_id,
        kind=t["consent"] if row.kind == consents.CONSENT else t["declined_kind"],
        verifier=_verifier_name(record, language),
        org_number=(record.get("controller") or {}).get("organisation_number"),
        identified=identified.get("certificate_subject") or identified.get("did") or "",
        purpose=purpose.get(language) or purpose.get("sv"),
        time=record.get("time", "")[:19].replace("T", " "),
        delivery=t.get(f"delivery_{row.delivery_status}", row.delivery_status),
        items=items,
        events=events,
        withdrawn=withdrawn,
        can_withdraw=row.kind == consents.CONSENT
        and row.delivery_status == presentation.DELIVERED
        and not withdrawn,
        message=message,
        **_csrf(ctx, holder),
    )


@router.get("/consents/{public_id}")
def consent_record(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> HTMLResponse:
    return _record_page(request, ctx, holder, public_id[:64])


@router.post("/consents/{public_id}/withdraw")
async def withdraw(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    try:
        await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    try:
        outcome = await run_in_threadpool(
            presentation.withdraw, ctx, holder.account_id, public_id[:64]
        )
    except presentation.PresentationError as exc:
        return error_page(request, ctx, str(exc), 404 if exc.reason == "not_found" else 409)
    return _record_page(request, ctx, holder, public_id[:64], t[f"withdraw_{outcome}"])
