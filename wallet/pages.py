"""The wallet's pages (issue 4 item 7): log in, credentials list and detail, receive an offer.

Swedish by default, English with ``?lang=en`` (remembered in a cookie); readable on a phone;
no JavaScript. Every form carries the session's CSRF token; every page that shows a
person's data depends on :func:`wallet.accounts.current_account`.

Routes: ``GET /`` · ``GET /login`` · ``GET /login/callback`` · ``POST /logout`` ·
``GET /offer`` (same-device credential offer: ``credential_offer`` or
``credential_offer_uri``) · ``GET|POST /add`` (paste a link shown as QR elsewhere) ·
``GET /issuance/{id}`` · ``POST /issuance/{id}/accept`` · ``POST /issuance/{id}/decline`` ·
``GET /credentials/{id}`` · ``POST /credentials/{id}/delete`` · ``GET /static/wallet.css``.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from intyg import oid4vci
from intyg.web.assets import stylesheet
from intyg.web.bodies import read_form
from intyg.web.oidc import OidcError
from intyg.web.sessions import CSRF_FIELD, CookiePolicy, SessionError

from . import credentials, issuance
from .accounts import (
    CurrentHolder,
    Holder,
    LoginRequired,
    account_for,
    account_keyer,
    current_account,
    eid_relying_party,
    end_session,
    page_sessions,
)
from .app import Context, WalletContext
from .texts import CONSENT_TEXT, GET_TEXT

__all__ = ["TEXT", "install", "router"]

HERE = Path(__file__).resolve().parent
LANGUAGES = ("sv", "en")
MAX_LINK_LENGTH = 8000
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_CSS = stylesheet(HERE / "static" / "wallet.css")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data: https:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

TEXT: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "wallet": "Plånboken",
        "title": "Dina intyg",
        "other_language": "In English",
        "intro": "Logga in för att se och ta emot dina digitala intyg.",
        "login": "Logga in med BankID/Freja (eID)",
        "login_unavailable": "Inloggning är inte konfigurerad för den här tjänsten.",
        "logged_in_as": "Inloggad som",
        "personal_number": "Personnummer",
        "logout": "Logga ut",
        "add": "Lägg till intyg",
        "none": "Du har inga intyg ännu.",
        "paste_intro": "Har du fått en QR-kod eller länk från en utfärdare? Klistra in "
        "länken här (den börjar ofta med openid-credential-offer://).",
        "link_label": "Länk till erbjudandet",
        "continue": "Fortsätt",
        "offer_title": "Vill du ta emot intyget?",
        "offer_from_host": "Erbjudandet kommer från",
        "check_issuer": "Kontrollera att det är en utfärdare du litar på innan du tar emot.",
        "offers": "Erbjuder",
        "contains": "Innehåller",
        "tx_code": "Engångskod",
        "tx_code_goes_to": "Koden skickas till",
        "accept": "Ta emot",
        "decline": "Avböj",
        "declined": "Du avböjde erbjudandet. Inget skickades till utfärdaren.",
        "wrong_tx_code": "Koden godtogs inte. Försök igen.",
        "tx_code_missing": "Ange koden du fått.",
        "offer_failed": "Erbjudandet kunde inte användas",
        "issuance_failed": "Intyget kunde inte tas emot",
        "gone": "Erbjudandet finns inte längre, har redan använts eller har gått ut.",
        "not_found": "Intyget finns inte.",
        "received": "Mottaget",
        "expires": "Giltigt till",
        "format": "Format",
        "copies": "exemplar",
        "contents": "Innehåll",
        "delete": "Ta bort intyget",
        "back": "Tillbaka till dina intyg",
        "error_title": "Något gick fel",
        "forbidden": "Formuläret var för gammalt eller kom inte från den här sidan. "
        "Ladda om sidan och försök igen.",
        "status_valid": "Giltigt",
        "status_revoked": "Återkallat",
        "status_suspended": "Tillfälligt spärrat",
        "status_expired": "Har gått ut",
        "status_unknown": "Status okänd",
    },
    "en": {
        "wallet": "The wallet",
        "title": "Your credentials",
        "other_language": "På svenska",
        "intro": "Log in to see and receive your digital credentials.",
        "login": "Log in with BankID/Freja (eID)",
        "login_unavailable": "Login is not configured for this service.",
        "logged_in_as": "Logged in as",
        "personal_number": "Personal identity number",
        "logout": "Log out",
        "add": "Add a credential",
        "none": "You have no credentials yet.",
        "paste_intro": "Did an issuer show you a QR code or a link? Paste the link here "
        "(it often starts with openid-credential-offer://).",
        "link_label": "Link to the offer",
        "continue": "Continue",
        "offer_title": "Do you want to receive this credential?",
        "offer_from_host": "The offer comes from",
        "check_issuer": "Make sure this is an issuer you trust before you accept.",
        "offers": "Offers",
        "contains": "Contains",
        "tx_code": "One-time code",
        "tx_code_goes_to": "The code is sent to",
        "accept": "Accept",
        "decline": "Decline",
        "declined": "You declined the offer. Nothing was sent to the issuer.",
        "wrong_tx_code": "The code was not accepted. Try again.",
        "tx_code_missing": "Enter the code you received.",
        "offer_failed": "The offer could not be used",
        "issuance_failed": "The credential could not be received",
        "gone": "The offer no longer exists, was used already or has expired.",
        "not_found": "The credential does not exist.",
        "received": "Received",
        "expires": "Valid until",
        "format": "Format",
        "copies": "copies",
        "contents": "Contents",
        "delete": "Delete the credential",
        "back": "Back to your credentials",
        "error_title": "Something went wrong",
        "forbidden": "The form was too old or did not come from this page. "
        "Reload the page and try again.",
        "status_valid": "Valid",
        "status_revoked": "Revoked",
        "status_suspended": "Suspended",
        "status_expired": "Expired",
        "status_unknown": "Status unknown",
    },
}
for _texts in (CONSENT_TEXT, GET_TEXT):
    for _language, _extra in _texts.items():
        TEXT[_language].update(_extra)  # type: ignore[attr-defined]
_FORMAT_NAMES = {"dc+sd-jwt": "SD-JWT VC", "jwt_vc_json": "W3C VC (JWT)"}

router = APIRouter(include_in_schema=False)


# -- rendering -----------------------------------------------------------------------------


def _language_cookie(ctx: WalletContext) -> CookiePolicy:
    return CookiePolicy("intyg_lang", secure=not ctx.settings.is_development, max_age=365 * 86400)


def language_of(request: Request, ctx: WalletContext) -> tuple[str, bool]:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = _language_cookie(ctx).read(request)
    return (remembered if remembered in LANGUAGES else "sv"), False


def render(
    request: Request, ctx: WalletContext, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    language, remember = language_of(request, ctx)
    html = _TEMPLATES.get_template(template).render(
        t=TEXT[language],
        lang=language,
        other="en" if language == "sv" else "sv",
        path=request.url.path if request.method == "GET" else "/",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    if remember:
        _language_cookie(ctx).set(response, language)
    return response


def error_page(request: Request, ctx: WalletContext, message: str, status: int) -> HTMLResponse:
    return render(request, ctx, "error.html", status, message=message)


def _text(request: Request, ctx: WalletContext) -> Mapping[str, str]:
    return TEXT[language_of(request, ctx)[0]]


def _day(moment: int | None) -> str:
    if moment is None:
        return ""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d")


def _redirect(location: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Any) -> None:
    """Pages answer LoginRequired with the login page (GET) or 403 (POST)."""

    async def login_required(request: Request, exc: Exception) -> Response:
        ctx: WalletContext = request.app.state.wallet
        if request.method != "GET":
            return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return render(
            request,
            ctx,
            "login.html",
            401,
            login_enabled=ctx.settings.eid is not None,
            next=target if target != "/" else "",
        )

    app.add_exception_handler(LoginRequired, login_required)


async def _form(
    request: Request,
    ctx: WalletContext,
    holder: Holder,
    *,
    max_bytes: int = MAX_LINK_LENGTH + 2048,
    max_fields: int = 8,
) -> dict[str, str]:
    """The form after the CSRF check (T069b); SessionError otherwise."""
    form = await read_form(request, max_bytes=max_bytes, max_fields=max_fields)
    page_sessions(ctx).check_csrf(holder.session, form.get(CSRF_FIELD))
    return form


def _csrf(ctx: WalletContext, holder: Holder) -> dict[str, str]:
    return {"csrf_field": CSRF_FIELD, "csrf": page_sessions(ctx).csrf_token(holder.session)}


# -- login ---------------------------------------------------------------------------------


@router.get("/static/wallet.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


def _safe_return(target: str | None) -> str:
    # Only a local path: never an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:MAX_LINK_LENGTH]


@router.get("/login")
def login(request: Request, ctx: Context) -> Response:
    """Start the eID login (OIDC Core §3.1.2.1)."""
    return eid_relying_party(ctx).login_response(_safe_return(request.query_params.get("next")))


@router.get("/login/callback")
def login_callback(request: Request, ctx: Context) -> Response:
    """Finish the login; the account is created on first login; a fresh session (T078)."""
    rp = eid_relying_party(ctx)
    try:
        result = rp.callback(request)
    except OidcError as exc:
        language, _ = language_of(request, ctx)
        response: Response = error_page(request, ctx, exc.user_message(language), 400)
        rp.clear_login_cookie(response)
        return response
    identity = result.identity
    key = account_keyer(ctx)(identity.personal_number)
    account_id = account_for(ctx, key)
    name = " ".join(part for part in (identity.given_name, identity.family_name) if part)
    response = _redirect(_safe_return(result.return_to))
    rp.clear_login_cookie(response)
    page_sessions(ctx).issue(
        response,
        key,
        {"account": account_id, "name": name, "masked": identity.personal_number.masked()},
        now=ctx.clock(),
    )
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    try:
        await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
    end_session(ctx, holder.session)
    response = _redirect("/")
    page_sessions(ctx).clear(response)
    return response


# -- credentials ---------------------------------------------------------------------------


@router.get("/")
def home(request: Request, ctx: Context) -> HTMLResponse:
    """The login page, or the person's credentials (one query, no decryption)."""
    try:
        holder = current_account(request, ctx)
    except LoginRequired:
        return render(
            request, ctx, "login.html", login_enabled=ctx.settings.eid is not None, next=""
        )
    language, _ = language_of(request, ctx)
    cards = card_rows(
        credentials.list_credentials(ctx, holder.account_id, language),
        TEXT[language],
        ctx.clock(),
    )
    return render(
        request,
        ctx,
        "credentials.html",
        cards=cards,
        name=holder.session.data.get("name", ""),
        masked=holder.session.data.get("masked", ""),
        **_csrf(ctx, holder),
    )


_CARD_ROW = (
    '<li class="card"><a href="/credentials/{0}"><strong>{1}</strong></a><br>\n'
    '  {2} \u00b7 <span class="status status-{3}">{4}</span> \u00b7 {5}</li>\n'
)


def card_rows(items: Sequence[Any], t: Mapping[str, str], now: int) -> Markup:
    """The list's ``<li>`` rows (design.md: 1,000 cards < 50 ms). Built here rather than in
    the template: Jinja's per-item attribute lookup and escaping cost ~0.1 ms a card, this
    a few microseconds. Every value from the database is escaped (``html.escape``, quotes
    too, as Jinja's autoescape does)."""
    days: dict[int, str] = {}
    statuses = {
        status: html.escape(t[f"status_{status}"])
        for status in ("valid", "revoked", "suspended", "expired", "unknown")
    }
    row = _CARD_ROW.format
    escaped: dict[str, str] = {}  # names repeat across cards: escape each once
    rows = []
    for public_id, name, issuer, received_at, expires_at, status in items:
        status = credentials.effective_status(status, expires_at, now)
        if status not in statuses:
            status = "unknown"
        day = received_at // 86400  # cards arrive in batches: one date per day
        received = days.get(day) or days.setdefault(day, _day(received_at))
        rows.append(
            row(
                html.escape(public_id),
                escaped.get(name) or escaped.setdefault(name, html.escape(name)),
                escaped.get(issuer) or escaped.setdefault(issuer, html.escape(issuer)),
                status,
                statuses[status],
                received,
            )
        )
    return Markup("".join(rows))  # noqa: S704 (every database value escaped above)


@router.get("/credentials/{public_id}")
def credential_page(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> HTMLResponse:
    language, _ = language_of(request, ctx)
    shown = credentials.detail(ctx, holder.account_id, public_id[:64], language)
    if shown is None:
        return error_page(request, ctx, TEXT[language]["not_found"], 404)
    card = shown.card
    return render(
        request,
        ctx,
        "credential.html",
        id=card.public_id,
        name=issuance.pick(card.display, language, card.format)["name"],
        issuer=issuance.pick(
            card.issuer_display, language, urlsplit(card.credential_issuer).netloc
        )["name"],
        state=shown.status,
        received=_day(card.received_at),
        expires=_day(card.expires_at),
        format=_FORMAT_NAMES.get(card.format, card.format),
        instances=card.instance_count,
        claims=shown.claims,
        **_csrf(ctx, holder),
    )


@router.post("/credentials/{public_id}/delete")
async def delete_credential(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    try:
        await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
    if not credentials.delete_credential(ctx, holder.account_id, public_id[:64]):
        return error_page(request, ctx, _text(request, ctx)["not_found"], 404)
    return _redirect("/")


# -- receiving an offer --------------------------------------------------------------------


def _begin(request: Request, ctx: WalletContext, holder: Holder, link: str) -> Response:
    try:
        resolved = issuance.resolve_offer(ctx, link)
    except issuance.IssuanceError as exc:
        t = _text(request, ctx)
        return error_page(request, ctx, f"{t['offer_failed']}: {exc}", 400)
    session = issuance.start(ctx, holder.account_id, resolved)
    return _redirect(f"/issuance/{session.public_id}")


@router.get("/offer")
def offer_endpoint(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    """The wallet's Credential Offer Endpoint (OpenID4VCI §4.1) for same-device links."""
    query = request.url.query
    if len(query) > MAX_LINK_LENGTH:
        return error_page(request, ctx, _text(request, ctx)["offer_failed"], 400)
    return _begin(request, ctx, holder, f"{oid4vci.CREDENTIAL_OFFER_SCHEME}?{query}")


@router.get("/add")
def add_page(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    return render(request, ctx, "add.html", **_csrf(ctx, holder))


@router.post("/add")
async def add_link(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    """Paste-a-link for an offer shown as a QR code on another device."""
    try:
        form = await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
    link = form.get("link", "").strip()
    parts = urlsplit(link)
    if parts.scheme in ("http", "https") and parts.path.rstrip("/").endswith("/offer"):
        # A link to a wallet's offer endpoint: only its query is the offer.
        link = f"{oid4vci.CREDENTIAL_OFFER_SCHEME}?{parts.query}"
    return await run_in_threadpool(_begin, request, ctx, holder, link)


def _offer_context(ctx: WalletContext, session: Any, language: str) -> dict[str, Any]:
    metadata = session.issuer_metadata
    host = urlsplit(session.credential_issuer).netloc
    offered = []
    configurations = metadata.get("credential_configurations_supported", {})
    for configuration_id in session.configuration_ids:
        configuration = configurations.get(configuration_id, {})
        display = issuance.pick(
            issuance.credential_display(configuration), language, configuration_id
        )
        claims = []
        credential_metadata = configuration.get("credential_metadata") or {}
        for claim in (credential_metadata.get("claims") or [])[:40]:
            labels = {
                str(d.get("locale", ""))[:2]: d.get("name")
                for d in claim.get("display", [])
                if isinstance(d, dict)
            }
            label = labels.get(language) or labels.get("en") or labels.get("sv")
            if isinstance(label, str):
                claims.append(label)
        offered.append(
            {
                "name": display.get("name"),
                "description": display.get("description"),
                "claims": claims,
            }
        )
    issuer_name = issuance.pick(issuance.issuer_display(metadata), language, host)["name"]
    return {
        "session_id": session.public_id,
        "issuer_name": issuer_name,
        "issuer_host": host,
        "credentials": offered,
        "tx_code": session.tx_code,
    }


@router.get("/issuance/{public_id}")
def issuance_page(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> HTMLResponse:
    """Who offers what, before anything is sent to the issuer (T081)."""
    language, _ = language_of(request, ctx)
    session = issuance.load_session(ctx, holder.account_id, public_id[:64])
    if session is None or session.state != "offered" or session.expires_at <= ctx.clock():
        return error_page(request, ctx, TEXT[language]["gone"], 404)
    return render(
        request,
        ctx,
        "offer.html",
        message="",
        **_offer_context(ctx, session, language),
        **_csrf(ctx, holder),
    )


@router.post("/issuance/{public_id}/accept")
async def accept_offer(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    try:
        form = await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
    language, _ = language_of(request, ctx)
    t = TEXT[language]
    try:
        stored = await run_in_threadpool(
            issuance.accept, ctx, holder.account_id, public_id[:64], form.get("tx_code")
        )
    except issuance.IssuanceError as exc:
        if exc.reason in ("wrong_tx_code", "tx_code_required", "tx_code_format"):
            session = issuance.load_session(ctx, holder.account_id, public_id[:64])
            if session is not None and session.state == "offered":
                message = (
                    t["wrong_tx_code"] if exc.reason == "wrong_tx_code" else t["tx_code_missing"]
                )
                return render(
                    request,
                    ctx,
                    "offer.html",
                    400,
                    message=message,
                    **_offer_context(ctx, session, language),
                    **_csrf(ctx, holder),
                )
        if exc.reason == "not_found":
            return error_page(request, ctx, t["gone"], 404)
        return error_page(request, ctx, f"{t['issuance_failed']}: {exc}", 502)
    return _redirect(f"/credentials/{stored[0]}" if len(stored) == 1 else "/")


@router.post("/issuance/{public_id}/decline")
async def decline_offer(
    public_id: str, request: Request, ctx: Context, holder: CurrentHolder
) -> Response:
    try:
        await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, _text(request, ctx)["forbidden"], 403)
    t = _text(request, ctx)
    if not issuance.decline(ctx, holder.account_id, public_id[:64]):
        return error_page(request, ctx, t["gone"], 404)
    return render(request, ctx, "error.html", message=t["declined"])
