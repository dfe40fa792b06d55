"""The person's page (issue 3 item 3): log in with eID, see your credentials, get an offer.

Swedish by default, English with ``?lang=en`` (remembered in a cookie); readable on a phone.
Login is OpenID Connect against the configured eID provider (:mod:`intyg.web.oidc`, settings
``eid``); the session is a sealed HttpOnly, SameSite=Lax cookie (Secure outside
development, :mod:`intyg.web.sessions`) whose subject is the person's lookup key, never the
number. Every form carries the session's CSRF token. The number is shown masked
(``19811218-****``) and never goes into a URL or a log.

"Add to wallet" makes a short-lived (``page_offer_ttl``), single-use offer without a
``tx_code`` (the person has just authenticated) and shows it four ways: a QR code for a
wallet on another device, an "Open in <wallet>" button for each known wallet (``wallets``:
the offer at the wallet's ``credential_offer_endpoint``, which a web wallet needs, OpenID4VCI
§4.1; :mod:`intyg.web.wallet_links`), an ``openid-credential-offer://`` link for any other
wallet on this device, and that link as copyable text for a cloud wallet on another device.

Routes: ``GET /`` · ``GET /login`` · ``GET /login/callback`` · ``POST /wallet-offer`` ·
``POST /logout`` · ``GET /static/issuer.css``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intyg.web import db
from intyg.web.assets import stylesheet
from intyg.web.bodies import read_form
from intyg.web.errors import ProtocolError
from intyg.web.oidc import OidcError, OidcRelyingParty, ReplayCache
from intyg.web.outbound import OutboundClient
from intyg.web.sessions import (
    CSRF_FIELD,
    BrowserSession,
    CookiePolicy,
    EndedSessions,
    SessionError,
    SessionManager,
    derive_key,
)
from intyg.web.wallet_links import offer_links

from . import audit, offers, records
from .app import Context, IssuerContext
from .models import (
    AFRegistration,
    Issuance,
    MYHAward,
    MYHQualification,
    Person,
    ReplayEntry,
    digest,
)

__all__ = [
    "CredentialCard",
    "IssuerReplayCache",
    "eid_relying_party",
    "page_sessions",
    "router",
]

HERE = Path(__file__).resolve().parent
LANGUAGES = ("sv", "en")
LOGIN_PURPOSE = "intyg/oidc-login/v1"
_RP = "pages.relying_party"
_SESSIONS = "pages.sessions"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_CSS = stylesheet(HERE / "static" / "issuer.css")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

TEXT: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "title": "Dina intyg",
        "other_language": "In English",
        "intro": "Logga in för att se de intyg du kan hämta till din digitala plånbok.",
        "login": "Logga in med BankID/Freja (eID)",
        "login_unavailable": "Inloggning är inte konfigurerad för den här tjänsten.",
        "logged_in_as": "Inloggad som",
        "personal_number": "Personnummer",
        "logout": "Logga ut",
        "available": "Intyg du kan hämta",
        "none": "Vi har inga uppgifter om dig som vi kan utfärda intyg från.",
        "add": "Hämta till plånboken",
        "issued_copies": "Utfärdade",
        "not_issued": "Inte hämtat ännu",
        "valid": "Utfärdat",
        "revoked": "Återkallat",
        "suspended": "Tillfälligt spärrat",
        "registered_since": "Inskriven sedan",
        "not_registered": "Inte inskriven",
        "category": "Kategori",
        "programme": "Program",
        "office": "Kontor",
        "awarded_on": "Utfärdad",
        "level": "Nivå",
        "awarding_body": "Utbildningsanordnare",
        "offer_title": "Hämta intyget till din plånbok",
        "scan": "Skanna QR-koden med plånboken i en annan enhet.",
        "qr_label": "QR-kod med erbjudandet",
        "same_device": "Öppna i plånboken på den här enheten",
        "open_in": "Öppna i",
        "other_wallet": "Öppna i en annan plånbok på den här enheten",
        "cloud": "Använder du en molnplånbok? Kopiera länken och klistra in den där.",
        "link_label": "Länk till erbjudandet",
        "expires": "Erbjudandet kan användas en gång och gäller till",
        "back": "Tillbaka till dina intyg",
        "error_title": "Något gick fel",
        "forbidden": "Formuläret var för gammalt eller kom inte från den här sidan. "
        "Ladda om sidan och försök igen.",
        "not_found": "Intyget finns inte längre.",
        "utc": "UTC",
    },
    "en": {
        "title": "Your credentials",
        "other_language": "På svenska",
        "intro": "Log in to see the credentials you can add to your digital wallet.",
        "login": "Log in with BankID/Freja (eID)",
        "login_unavailable": "Login is not configured for this service.",
        "logged_in_as": "Logged in as",
        "personal_number": "Personal identity number",
        "logout": "Log out",
        "available": "Credentials you can get",
        "none": "We hold no records about you that we can issue credentials from.",
        "add": "Add to wallet",
        "issued_copies": "Issued",
        "not_issued": "Not fetched yet",
        "valid": "Issued",
        "revoked": "Revoked",
        "suspended": "Suspended",
        "registered_since": "Registered since",
        "not_registered": "Not registered",
        "category": "Category",
        "programme": "Programme",
        "office": "Office",
        "awarded_on": "Awarded",
        "level": "Level",
        "awarding_body": "Awarding body",
        "offer_title": "Add the credential to your wallet",
        "scan": "Scan the QR code with the wallet on another device.",
        "qr_label": "QR code with the offer",
        "same_device": "Open in the wallet on this device",
        "open_in": "Open in",
        "other_wallet": "Open in another wallet on this device",
        "cloud": "Using a cloud wallet? Copy the link and paste it there.",
        "link_label": "Link to the offer",
        "expires": "The offer can be used once and is valid until",
        "back": "Back to your credentials",
        "error_title": "Something went wrong",
        "forbidden": "The form was too old or did not come from this page. "
        "Reload the page and try again.",
        "not_found": "The credential no longer exists.",
        "utc": "UTC",
    },
}
_FORMAT_NAMES = {"dc+sd-jwt": "SD-JWT VC", "jwt_vc_json": "W3C VC (JWT)"}

router = APIRouter(include_in_schema=False)


# -- shared pieces (the OpenID4VCI authorization endpoint can reuse them) ------------------


class IssuerReplayCache:
    """:class:`intyg.web.oidc.ReplayCache` on the issuer's ``jti_replay_cache`` table, so
    every replica sees a used login ``state`` (the insert of a unique row is the check)."""

    KIND = "eid_state"

    def __init__(self, ctx: IssuerContext) -> None:
        self.ctx = ctx

    def use_once(self, key: str, expires_at: int) -> bool:
        row = {"kind": self.KIND, "jti_hash": digest(key), "expires_at": expires_at}
        try:
            with db.session(self.ctx.engine) as unit:
                unit.execute(
                    sa.delete(ReplayEntry).where(
                        ReplayEntry.kind == self.KIND,  # type: ignore[arg-type]
                        ReplayEntry.expires_at < self.ctx.clock(),  # type: ignore[arg-type]
                    )
                )
                unit.execute(sa.insert(ReplayEntry).values(**row))
        except sa.exc.IntegrityError:
            return False
        return True


def eid_relying_party(ctx: IssuerContext) -> OidcRelyingParty:
    """The eID relying party of this issuer (made once, on first use)."""
    rp = ctx.extras.get(_RP)
    if rp is None:
        config = ctx.settings.eid
        if config is None:
            raise ProtocolError("not_found", "eID login is not configured", 404)
        replay: ReplayCache = IssuerReplayCache(ctx)
        rp = OidcRelyingParty(
            config,
            OutboundClient(ctx.settings.outbound_policy()),
            login_key=derive_key(ctx.store.current, f"{LOGIN_PURPOSE}/{config.name}"),
            replay_cache=replay,
            development=ctx.settings.is_development,
            clock=ctx.clock,
        )
        rp = ctx.extras.setdefault(_RP, rp)
    return rp  # type: ignore[no-any-return]


def page_sessions(ctx: IssuerContext) -> SessionManager:
    """The session cookie of this issuer's pages (one name per agency: two issuers on one
    host must not read each other's cookie)."""
    manager = ctx.extras.get(_SESSIONS)
    if manager is None:
        manager = ctx.extras.setdefault(
            _SESSIONS,
            SessionManager.from_master_key(
                ctx.store.current,
                base_name=f"intyg_issuer_{ctx.agency.key}",
                development=ctx.settings.is_development,
                max_age=ctx.settings.page_session_seconds,
            ),
        )
    return manager  # type: ignore[no-any-return]


def _language_cookie(ctx: IssuerContext) -> CookiePolicy:
    return CookiePolicy("intyg_lang", secure=not ctx.settings.is_development, max_age=365 * 86400)


def _language(request: Request, ctx: IssuerContext) -> tuple[str, bool]:
    """(language, whether to remember it): ``?lang=`` beats the cookie; sv by default."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = _language_cookie(ctx).read(request)
    return (remembered if remembered in LANGUAGES else "sv"), False


def _render(
    request: Request,
    ctx: IssuerContext,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    language, remember = _language(request, ctx)
    html = _TEMPLATES.get_template(template).render(
        t=TEXT[language],
        lang=language,
        other="en" if language == "sv" else "sv",
        agency=ctx.agency.name[language],
        credential_name=ctx.agency.credential_name[language],
        path=request.url.path if request.method == "GET" else "/",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)
    if remember:
        _language_cookie(ctx).set(response, language)
    return response


def _session(request: Request, ctx: IssuerContext) -> BrowserSession | None:
    session = page_sessions(ctx).load(request, now=ctx.clock())
    if session is None or not session.authenticated or _logged_out(ctx, session):
        return None
    return session


#: ``jti_replay_cache`` kind of sessions ended by logout (T078: a copied cookie is dead);
#: expired rows go with the other expired entries (issuer/tokens.py).
LOGOUT_KIND = "page_logout"
ENDED_SESSIONS = EndedSessions(
    ReplayEntry.__table__,  # type: ignore[attr-defined]
    "jti_hash",
    scope={"kind": LOGOUT_KIND},
    reference=digest,
)


def _logged_out(ctx: IssuerContext, session: BrowserSession) -> bool:
    with db.session(ctx.engine, write=False) as unit:
        return ENDED_SESSIONS.ended(unit, session)


def _person(unit: db.Session, session: BrowserSession) -> Person | None:
    return unit.scalars(sa.select(Person).where(Person.lookup_key == session.subject)).first()


# -- what a person sees --------------------------------------------------------------------


@dataclass
class CredentialCard:
    """One record the person can get a credential from, with what was issued from it."""

    record_id: int
    title: str
    facts: list[tuple[str, str]]
    issued: list[dict[str, str]] = field(default_factory=list)


def _day(value: datetime.date | None) -> str:
    return value.isoformat() if value else "-"


def _timestamp(seconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def _registration_card(row: AFRegistration, title: str, t: Mapping[str, str]) -> CredentialCard:
    facts = [
        (t["registered_since"], _day(row.registered_since))
        if row.registered
        else (t["not_registered"], ""),
        (t["category"], row.category_label),
    ]
    if row.programme_label:
        facts.append((t["programme"], row.programme_label))
    if row.office:
        facts.append((t["office"], row.office))
    assert row.id is not None
    return CredentialCard(row.id, title, facts)


def _award_card(
    unit: db.Session, row: MYHAward, t: Mapping[str, str], fallback: str
) -> CredentialCard:
    qualification = unit.get(MYHQualification, row.qualification_id)
    claims = qualification.data["claims"] if qualification else {}
    facts = [(t["awarded_on"], _day(row.awarded_on))]
    if "eqf_level" in claims:
        facts.append((t["level"], f"SeQF {claims.get('seqf_level')} / EQF {claims['eqf_level']}"))
    body = claims.get("awarding_body", {})
    if body.get("name"):
        facts.append((t["awarding_body"], body["name"]))
    assert row.id is not None
    return CredentialCard(row.id, str(claims.get("title") or fallback), facts)


def _cards(
    unit: db.Session, ctx: IssuerContext, person: Person, language: str
) -> list[CredentialCard]:
    t = TEXT[language]
    assert person.id is not None
    if ctx.agency.key == "af":
        registration = records.find_registration(unit, person.id)
        cards = (
            [_registration_card(registration, ctx.agency.credential_name[language], t)]
            if registration
            else []
        )
    else:
        name = ctx.agency.credential_name[language]
        cards = [
            _award_card(unit, award, t, name) for award in records.find_awards(unit, person.id)
        ]
    issued = unit.scalars(
        sa.select(Issuance)
        .where(Issuance.person_id == person.id)
        .order_by(Issuance.issued_at.desc())  # type: ignore[attr-defined]
    )
    by_record = {card.record_id: card for card in cards}
    for row in issued:
        card = by_record.get(row.record_id or -1)
        if card is not None:
            card.issued.append(
                {
                    "format": _FORMAT_NAMES.get(row.format, row.format),
                    "date": _timestamp(row.issued_at)[:10],
                    "status": row.status,
                    "label": t.get(row.status, row.status),
                }
            )
    return cards


# -- routes --------------------------------------------------------------------------------


@router.get("/static/issuer.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/")
def home(request: Request, ctx: Context) -> HTMLResponse:
    """The person's page: the login button, or the person's credentials."""
    session = _session(request, ctx)
    if session is None:
        return _render(request, ctx, "login.html", login_enabled=ctx.settings.eid is not None)
    language, _ = _language(request, ctx)
    with db.session(ctx.engine, write=False) as unit:
        person = _person(unit, session)
        cards = _cards(unit, ctx, person, language) if person else []
    return _render(
        request,
        ctx,
        "credentials.html",
        name=session.data.get("name", ""),
        masked=session.data.get("masked", ""),
        cards=cards,
        csrf_field=CSRF_FIELD,
        csrf=page_sessions(ctx).csrf_token(session),
    )


@router.get("/login")
def login(request: Request, ctx: Context) -> Response:
    """Start the eID login (OIDC Core §3.1.2.1); state and PKCE in the login cookie."""
    return eid_relying_party(ctx).login_response("/")


@router.get("/login/callback")
def login_callback(request: Request, ctx: Context) -> Response:
    """Finish the login; a fresh session (T078) named by the person's lookup key."""
    rp = eid_relying_party(ctx)
    try:
        result = rp.callback(request)
    except OidcError as exc:
        language, _ = _language(request, ctx)
        response: Response = _render(
            request, ctx, "error.html", 400, message=exc.user_message(language)
        )
        rp.clear_login_cookie(response)
        return response
    number = result.identity.personal_number
    identity = result.identity
    name = " ".join(part for part in (identity.given_name, identity.family_name) if part)
    response = RedirectResponse(result.return_to, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    rp.clear_login_cookie(response)
    page_sessions(ctx).issue(
        response,
        ctx.person_vault().lookup_key(number.twelve_digits),
        {"name": name, "masked": number.masked()},
        now=ctx.clock(),
    )
    return response


async def _checked_form(request: Request, ctx: IssuerContext) -> tuple[dict[str, str], Any]:
    """The form and the session, after the CSRF check (403 page otherwise)."""
    form = await read_form(request, max_bytes=4096, max_fields=8)
    session = _session(request, ctx)
    try:
        page_sessions(ctx).check_csrf(session, form.get(CSRF_FIELD))
    except SessionError:
        language, _ = _language(request, ctx)
        return form, _render(request, ctx, "error.html", 403, message=TEXT[language]["forbidden"])
    return form, session


@router.post("/wallet-offer")
async def wallet_offer(request: Request, ctx: Context) -> Response:
    """Make a single-use offer for one of the person's records and show it."""
    form, session = await _checked_form(request, ctx)
    if isinstance(session, Response):
        return session
    language, _ = _language(request, ctx)
    record = form.get("record", "")
    with db.session(ctx.engine) as unit:
        person = _person(unit, session)
        try:
            if person is None or not record.isdigit() or len(record) > 12:
                raise offers.OfferError("no such record for this person")
            offer = offers.create_offer(
                unit, ctx, person, int(record), tx_code=False, ttl=ctx.settings.page_offer_ttl
            )
        except offers.OfferError:
            return _render(request, ctx, "error.html", 404, message=TEXT[language]["not_found"])
        audit.record(
            unit,
            actor=audit.reference("person", person.id),
            action="page.offer.create",
            now=ctx.clock(),
            subject=audit.reference("offer", offer.offer_id),
            details={"record_id": int(record)},
        )
    return _render(
        request,
        ctx,
        "offer.html",
        qr=offers.qr_svg(offer.link, title=TEXT[language]["qr_label"]),
        link=offer.link,
        wallets=offer_links(ctx.settings.wallets, offer.offer_uri, language),
        expires=_timestamp(offer.expires_at),
    )


@router.post("/logout")
async def logout(request: Request, ctx: Context) -> Response:
    """End the session (CSRF-checked, so another site cannot log the person out)."""
    _, session = await _checked_form(request, ctx)
    if isinstance(session, Response):
        return session
    with db.session(ctx.engine) as unit:  # until the cookie would expire anyway
        ENDED_SESSIONS.end(unit, session)
    response = RedirectResponse("/", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    page_sessions(ctx).clear(response)
    return response
