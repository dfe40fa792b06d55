"""The employer page (issue 5 item 5): ask for proof, show the QR code, then the result.

Swedish by default, English with ``?lang=en`` (remembered in a cookie); one column, readable
on a phone; no JavaScript framework — ``/static/verifier.js`` polls the transaction's status
and reads the same-device ``response_code`` from the URL fragment.

Page users (``page_users``) log in with a username and password (scrypt,
:mod:`intyg.web.client_secrets`); :func:`create_page_user` makes them; in development
``INTYG_VERIFIER_DEV_PAGE_USER_PASSWORD`` gives ``dev-user`` of the development employer.
Sessions are sealed HttpOnly SameSite=Lax cookies (:mod:`intyg.web.sessions`), rotated at
login (T078); every form carries the session's CSRF token. Logout ends the session id in
``ended_sessions`` (:data:`verifier.models.ENDED_SESSIONS`) until the cookie would expire,
so a copy of the cookie taken before is refused too (T078).

**Binding transactions to the browser** (T103): a second sealed cookie lists the
transactions this browser session created (with the session id). A transaction's page, its
status and the redemption of a same-device ``response_code`` are refused to any other
session — another browser that got hold of the redirect URL (session fixation) sees nothing.

Same-device flow: "Use the wallet on this device" makes a transaction whose
``same_device_redirect`` is ``<base>/return``; its page opens the wallet with an "Open in
<wallet>" button per known wallet (``wallets``: the request at the wallet's authorization
endpoint, which a web wallet needs; :mod:`intyg.web.wallet_links`) or the ``openid4vp://`` link
(any other wallet). The wallet sends the browser to
``/return#response_code=...``; the fragment never reaches the server, so the page's script
posts it (with the CSRF token) to ``POST /return``, which redeems it
(:func:`verifier.transactions.redeem_response_code`) and shows the result.

Routes: ``GET /`` · ``GET|POST /login`` · ``POST /logout`` · ``POST /requests`` ·
``GET /requests/{id}`` · ``GET /requests/{id}/status`` · ``GET|POST /return`` ·
``GET /static/verifier.css`` · ``GET /static/verifier.js``.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from intyg.schemas import claim_display
from intyg.web import db
from intyg.web.assets import stylesheet
from intyg.web.bodies import read_form
from intyg.web.client_secrets import hash_client_secret, verify_client_secret
from intyg.web.errors import ProtocolError
from intyg.web.sessions import (
    CSRF_FIELD,
    BrowserSession,
    CookiePolicy,
    CookieSealer,
    SessionError,
    SessionManager,
)
from intyg.web.wallet_links import request_links

from . import audit, pipeline, templates, transactions
from .app import Context, VerifierContext
from .employers import dev_employer
from .models import (
    ENDED_SESSIONS,
    Employer,
    PageUser,
    Transaction,
    TransactionStatus,
    digest,
)

__all__ = ["PageUserError", "create_page_user", "page_sessions", "router"]

HERE = Path(__file__).resolve().parent
LANGUAGES = ("sv", "en")
DEV_USER = "dev-user"
SUBJECT_PREFIX = "login:"
MAX_BOUND = 12
_SESSIONS = "pages.sessions"
_BINDING = "pages.binding"
_DUMMY = "pages.dummy_hash"
_USERNAME = re.compile(r"[a-z0-9._@-]{1,64}")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_CSS = stylesheet(HERE / "static" / "verifier.css")
_JS = (HERE / "static" / "verifier.js").read_bytes()
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
#: Core view of page_users including ``password_hash`` (migration 0002).
_logins = sa.table(
    "page_users",
    sa.column("id"),
    sa.column("employer_id"),
    sa.column("subject"),
    sa.column("display_name"),
    sa.column("password_hash"),
    sa.column("disabled_at"),
)

TEXT: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "title": "Kontrollera intyg",
        "other_language": "In English",
        "login_title": "Logga in",
        "username": "Användarnamn",
        "password": "Lösenord",
        "login": "Logga in",
        "login_failed": "Fel användarnamn eller lösenord.",
        "logged_in_as": "Inloggad som",
        "logout": "Logga ut",
        "choose": "Vad vill du kontrollera?",
        "registration_certificate": "Inskrivningsintyg",
        "registration_certificate_help": "Är personen inskriven som arbetssökande, och sedan när?",
        "work_practice": "Ansökan om arbetspraktik",
        "work_practice_help": "Inskrivningsintyg och en kvalifikation på EQF-nivå 5 eller högre.",
        "ask": "Be om intyg",
        "request_title": "Be personen visa intyget",
        "scan": "Be personen skanna QR-koden med sin digitala plånbok.",
        "qr_label": "QR-kod för att visa intyg",
        "cloud": "Har personen en molnplånbok? Ge personen länken att klistra in i plånboken.",
        "link_label": "Länk till förfrågan",
        "same_device": "Använd plånboken på den här enheten",
        "open_wallet": "Öppna plånboken",
        "open_in": "Öppna i",
        "other_wallet": "Öppna en annan plånbok",
        "same_device_intro": "Öppna plånboken på den här enheten. När personen har svarat "
        "kommer du tillbaka hit.",
        "waiting": "Väntar på svar …",
        "waiting_return": "Svaret har kommit. Det visas i fönstret som plånboken öppnar.",
        "expires": "Förfrågan gäller till",
        "verified": "Verifierat",
        "verified_intro": "Intygen är äkta, giltiga och utfärdade av betrodda utfärdare.",
        "rejected": "Avvisat",
        "rejected_intro": "Intygen kunde inte godtas. Det här stämde inte:",
        "declined": "Personen avböjde att visa intyget.",
        "wallet_error": "Plånboken svarade med ett fel",
        "expired": "Förfrågan gick ut innan personen svarade.",
        "processing": "Svaret kontrolleras …",
        "issuer": "Utfärdare",
        "claims_gone": "Uppgifterna har raderats (lagringstiden har gått ut eller personen "
        "har återkallat sitt samtycke).",
        "retained_until": "Uppgifterna sparas till",
        "new_request": "Ny förfrågan",
        "yes": "Ja",
        "no": "Nej",
        "return_title": "Hämtar resultatet",
        "return_intro": "Resultatet hämtas …",
        "return_noscript": "Slå på JavaScript för att se resultatet.",
        "error_title": "Något gick fel",
        "forbidden": "Formuläret var för gammalt eller kom inte från den här sidan. "
        "Ladda om sidan och försök igen.",
        "not_found": "Förfrågan finns inte eller skapades i en annan webbläsare.",
        "no_result": "Resultatet kunde inte visas i den här webbläsaren.",
        "back": "Tillbaka",
        "utc": "UTC",
    },
    "en": {
        "title": "Check credentials",
        "other_language": "På svenska",
        "login_title": "Log in",
        "username": "Username",
        "password": "Password",
        "login": "Log in",
        "login_failed": "Wrong username or password.",
        "logged_in_as": "Logged in as",
        "logout": "Log out",
        "choose": "What do you want to check?",
        "registration_certificate": "Registration certificate",
        "registration_certificate_help": "Is the person registered as a jobseeker, and since when?",
        "work_practice": "Work-practice application",
        "work_practice_help": "Registration certificate and a qualification at EQF level 5 "
        "or higher.",
        "ask": "Ask for proof",
        "request_title": "Ask the person to show the credential",
        "scan": "Ask the person to scan the QR code with their digital wallet.",
        "qr_label": "QR code for presenting credentials",
        "cloud": "Does the person use a cloud wallet? Give them the link to paste into it.",
        "link_label": "Link to the request",
        "same_device": "Use the wallet on this device",
        "open_wallet": "Open the wallet",
        "open_in": "Open in",
        "other_wallet": "Open another wallet",
        "same_device_intro": "Open the wallet on this device. When the person has answered "
        "you come back here.",
        "waiting": "Waiting for the answer …",
        "waiting_return": "The answer has arrived. It is shown in the window the wallet opens.",
        "expires": "The request is valid until",
        "verified": "Verified",
        "verified_intro": "The credentials are genuine, valid and from trusted issuers.",
        "rejected": "Rejected",
        "rejected_intro": "The credentials could not be accepted. This is what failed:",
        "declined": "The person declined to show the credential.",
        "wallet_error": "The wallet answered with an error",
        "expired": "The request expired before the person answered.",
        "processing": "Checking the answer …",
        "issuer": "Issuer",
        "claims_gone": "The details have been deleted (the retention period ended or the "
        "person withdrew consent).",
        "retained_until": "The details are kept until",
        "new_request": "New request",
        "yes": "Yes",
        "no": "No",
        "return_title": "Fetching the result",
        "return_intro": "Fetching the result …",
        "return_noscript": "Turn on JavaScript to see the result.",
        "error_title": "Something went wrong",
        "forbidden": "The form was too old or did not come from this page. "
        "Reload the page and try again.",
        "not_found": "The request does not exist or was made in another browser.",
        "no_result": "The result cannot be shown in this browser.",
        "back": "Back",
        "utc": "UTC",
    },
}

#: Failed checks in words (pipeline check names → sv/en).
CHECK_TEXT: Mapping[str, Mapping[str, str]] = {
    "parse": {"sv": "Svaret gick inte att läsa.", "en": "The answer could not be read."},
    "vp_token_shape": {
        "sv": "Svaret innehöll inte de intyg som efterfrågades.",
        "en": "The answer did not contain the requested credentials.",
    },
    "issuer_trusted": {
        "sv": "Utfärdaren är inte betrodd.",
        "en": "The issuer is not trusted.",
    },
    "issuer_trusted_for_type": {
        "sv": "Utfärdaren får inte utfärda den här sortens intyg.",
        "en": "The issuer may not issue this kind of credential.",
    },
    "issuer_signature": {
        "sv": "Utfärdarens underskrift är inte giltig.",
        "en": "The issuer's signature is not valid.",
    },
    "disclosures": {
        "sv": "Uppgifterna i intyget har ändrats eller hör inte till intyget.",
        "en": "The details were altered or do not belong to the credential.",
    },
    "validity_times": {
        "sv": "Intyget har gått ut eller gäller inte ännu.",
        "en": "The credential has expired or is not valid yet.",
    },
    "key_binding": {
        "sv": "Intyget visades inte av sin innehavare (nyckelbindningen stämmer inte).",
        "en": "The credential was not shown by its holder (key binding failed).",
    },
    "nonce_once": {
        "sv": "Svaret har redan använts en gång (återuppspelning).",
        "en": "The answer was already used once (replay).",
    },
    "requested_claims": {
        "sv": "Uppgifterna som efterfrågades saknas.",
        "en": "The requested details are missing.",
    },
    "value_constraints": {
        "sv": "Uppgifterna uppfyller inte kraven (till exempel EQF-nivå 5 eller högre).",
        "en": "The details do not meet the requirements (for example EQF level 5 or higher).",
    },
    "status": {
        "sv": "Intyget är återkallat, spärrat eller dess status kunde inte kontrolleras.",
        "en": "The credential is revoked, suspended or its status could not be checked.",
    },
    "schema": {
        "sv": "Uppgifterna har fel form.",
        "en": "The details have the wrong form.",
    },
}
#: A failed ``status`` check in words by the pipeline's reason (``pipeline.Pipeline._status``);
#: other reasons (status unknown, a bad list) keep the check's general text.
STATUS_REASON_TEXT: Mapping[str, Mapping[str, str]] = {
    "the credential is revoked": {
        "sv": "Intyget har återkallats av utfärdaren.",
        "en": "The credential has been revoked by its issuer.",
    },
    "the credential is suspended": {
        "sv": "Intyget är tillfälligt spärrat av utfärdaren.",
        "en": "The credential is suspended by its issuer.",
    },
}
_QUERY_TITLES = {
    "registration": {"sv": "Inskrivningsintyg", "en": "Registration certificate"},
    "qualification": {"sv": "Kvalifikation", "en": "Qualification"},
}
_PAGE_TEMPLATES = ("registration_certificate", "work_practice")

router = APIRouter(include_in_schema=False)


class PageUserError(ValueError):
    """A page user could not be created."""


# -- users -------------------------------------------------------------------------------------


def create_page_user(
    unit: db.Session,
    *,
    employer_id: int,
    username: str,
    password: str,
    display_name: str,
    now: int,
) -> int:
    """A page user of ``employer_id`` who logs in with ``username`` + ``password`` (only the
    scrypt hash is stored); returns the user's id. Usernames are unique across employers."""
    if not _USERNAME.fullmatch(username):
        raise PageUserError("username must be 1-64 of a-z 0-9 . _ @ -")
    if len(password) < 12:
        raise PageUserError("the password must be at least 12 characters")
    if not display_name or len(display_name) > 200:
        raise PageUserError("a display name of at most 200 characters is required")
    subject = SUBJECT_PREFIX + username
    if unit.scalar(sa.select(PageUser.id).where(PageUser.subject == subject)) is not None:
        raise PageUserError("the username is taken")
    user = PageUser(
        employer_id=employer_id, subject=subject, display_name=display_name, created_at=now
    )
    unit.add(user)
    unit.flush()
    unit.execute(
        sa.update(_logins)
        .where(_logins.c.id == user.id)
        .values(password_hash=hash_client_secret(password))
    )
    audit.record(
        unit, actor="operator", action="page_user_created", now=now, subject=f"page_user:{user.id}"
    )
    assert user.id is not None
    return user.id


def _ensure_dev_user(ctx: VerifierContext) -> None:
    """Development: ``dev-user`` of the development employer (idempotent)."""
    password = ctx.settings.dev_page_user_password
    if password is None or not ctx.settings.is_development or ctx.extras.get("pages.dev_user"):
        return
    with db.session(ctx.engine) as unit:
        exists = unit.scalar(
            sa.select(PageUser.id).where(PageUser.subject == SUBJECT_PREFIX + DEV_USER)
        )
        if exists is None:
            employer = dev_employer(unit, ctx)
            assert employer.id is not None
            create_page_user(
                unit,
                employer_id=employer.id,
                username=DEV_USER,
                password=password.get_secret_value(),
                display_name="Utvecklare",
                now=ctx.clock(),
            )
    ctx.extras["pages.dev_user"] = True


def _authenticate(ctx: VerifierContext, username: str, password: str) -> dict[str, Any] | None:
    _ensure_dev_user(ctx)
    dummy = ctx.extras.get(_DUMMY) or ctx.extras.setdefault(
        _DUMMY, hash_client_secret(secrets.token_urlsafe(16))
    )
    row = None
    if _USERNAME.fullmatch(username) and len(password) <= 1024:
        with db.session(ctx.engine, write=False) as unit:
            row = unit.execute(
                sa.select(_logins).where(_logins.c.subject == SUBJECT_PREFIX + username)
            ).first()
            employer = unit.get(Employer, row.employer_id) if row is not None else None
        if employer is None or employer.disabled_at is not None or row.disabled_at is not None:
            row = None
    stored = row.password_hash if row is not None and row.password_hash else dummy
    # Same scrypt cost for unknown users: no username oracle.
    if not verify_client_secret(password[:1024], stored) or row is None:
        return None
    return {"user_id": row.id, "employer_id": row.employer_id, "name": row.display_name}


# -- sessions, language, rendering -----------------------------------------------------------


def page_sessions(ctx: VerifierContext) -> SessionManager:
    """The session cookie of the employer pages."""
    manager = ctx.extras.get(_SESSIONS)
    if manager is None:
        manager = ctx.extras.setdefault(
            _SESSIONS,
            SessionManager.from_master_key(
                ctx.store.current,
                base_name="intyg_verifier",
                development=ctx.settings.is_development,
                max_age=ctx.settings.page_session_seconds,
            ),
        )
    return manager  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Binding:
    sealer: CookieSealer
    policy: CookiePolicy


def _binding(ctx: VerifierContext) -> _Binding:
    binding = ctx.extras.get(_BINDING)
    if binding is None:
        binding = ctx.extras.setdefault(
            _BINDING,
            _Binding(
                CookieSealer.from_master_key(ctx.store.current, "intyg/verifier/page-requests/v1"),
                CookiePolicy(
                    "intyg_verifier_requests",
                    secure=not ctx.settings.is_development,
                    max_age=ctx.settings.page_session_seconds,
                ),
            ),
        )
    return binding  # type: ignore[no-any-return]


def _bound(request: Request, ctx: VerifierContext, session: BrowserSession) -> list[str]:
    """Transactions this browser session created (T103)."""
    binding = _binding(ctx)
    try:
        data = binding.sealer.open(binding.policy.read(request), now=ctx.clock())
    except SessionError:
        return []
    ids = data.get("tx")
    if data.get("sid") != session.sid or not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str)]


def _bind(
    request: Request, response: Response, ctx: VerifierContext, session: BrowserSession, tid: str
) -> None:
    binding = _binding(ctx)
    ids = [*_bound(request, ctx, session), tid][-MAX_BOUND:]
    value = binding.sealer.seal(
        {"sid": session.sid, "tx": ids}, binding.policy.max_age, now=ctx.clock()
    )
    binding.policy.set(response, value)


def _language_cookie(ctx: VerifierContext) -> CookiePolicy:
    return CookiePolicy(
        "intyg_verifier_lang", secure=not ctx.settings.is_development, max_age=365 * 86400
    )


def _language(request: Request, ctx: VerifierContext) -> tuple[str, bool]:
    """(language, whether to remember it): ``?lang=`` beats the cookie; sv by default."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = _language_cookie(ctx).read(request)
    return (remembered if remembered in LANGUAGES else "sv"), False


def _render(
    request: Request, ctx: VerifierContext, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    language, remember = _language(request, ctx)
    html = _TEMPLATES.get_template(template).render(
        t=TEXT[language],
        lang=language,
        other="en" if language == "sv" else "sv",
        path=request.url.path if request.method == "GET" else "/",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)
    if remember:
        _language_cookie(ctx).set(response, language)
    return response


def _to_login(request: Request, ctx: VerifierContext) -> Response:
    """To the login page, keeping a ``?lang=`` choice (in the URL and the cookie)."""
    language, asked = _language(request, ctx)
    response = RedirectResponse(
        f"/login?lang={language}" if asked else "/login",
        status_code=303,
        headers={"Cache-Control": "no-store"},
    )
    if asked:
        _language_cookie(ctx).set(response, language)
    return response


def _error(request: Request, ctx: VerifierContext, status: int, key: str) -> HTMLResponse:
    language, _ = _language(request, ctx)
    return _render(request, ctx, "error.html", status, message=TEXT[language][key])


def _session(request: Request, ctx: VerifierContext) -> BrowserSession | None:
    """The cookie's session; an authenticated one only if logout has not ended it (T078).
    Blocking (a database read): async handlers call it in the thread pool."""
    session = page_sessions(ctx).load(request, now=ctx.clock())
    if session is None or not session.authenticated:
        return session
    with db.session(ctx.engine, write=False) as unit:
        ended = ENDED_SESSIONS.ended(unit, session)
    return None if ended else session


def _user(request: Request, ctx: VerifierContext) -> BrowserSession | None:
    session = _session(request, ctx)
    if session is None or not session.authenticated:
        return None
    return session if isinstance(session.data.get("employer_id"), int) else None


async def _checked_form(
    request: Request, ctx: VerifierContext, *, authenticated: bool = True
) -> tuple[dict[str, str], BrowserSession | HTMLResponse]:
    """The form and the session, after the CSRF check (403 page otherwise)."""
    form = await read_form(request, max_bytes=8192, max_fields=8)
    session = await run_in_threadpool(_user if authenticated else _session, request, ctx)
    try:
        page_sessions(ctx).check_csrf(session, form.get(CSRF_FIELD))
    except SessionError:
        return form, _error(request, ctx, 403, "forbidden")
    assert session is not None
    return form, session


def _timestamp(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M")


# -- what the page shows about a result ------------------------------------------------------


@dataclass
class CredentialView:
    title: str
    issuer: str
    rows: list[tuple[str, str]] = field(default_factory=list)


def _value(value: Any, language: str) -> str:
    t = TEXT[language]
    if value is True:
        return t["yes"]
    if value is False:
        return t["no"]
    if isinstance(value, dict):
        if "label" in value:
            code = value.get("code")
            return f"{value['label']} ({code})" if code else str(value["label"])
        if language in value or "sv" in value or "en" in value:
            return str(value.get(language) or value.get("sv") or value.get("en"))
        return ", ".join(_value(v, language) for v in value.values())
    if isinstance(value, list):
        return ", ".join(_value(v, language) for v in value)
    return str(value)


def _rows(vct: str | None, claims: Mapping[str, Any], language: str) -> list[tuple[str, str]]:
    labels: dict[tuple[Any, ...], str] = {}
    if vct:
        try:
            labels = claim_display(vct, language)
        except (KeyError, ValueError):
            labels = {}
    return [(labels.get((name,), name), _value(value, language)) for name, value in claims.items()]


def _credentials(result: Mapping[str, Any], language: str) -> list[CredentialView]:
    claims = result.get("claims")
    if not claims:
        return []
    shown = []
    for query_id, items in claims["credentials"].items():
        for item in items:
            issuer = item.get("issuer") or {}
            name = issuer.get("name") or {}
            shown.append(
                CredentialView(
                    title=_QUERY_TITLES.get(query_id, {}).get(language, query_id),
                    issuer=name.get(language, "") if isinstance(name, dict) else str(name),
                    rows=_rows(item.get("vct"), item.get("claims", {}), language),
                )
            )
    return shown


def _failure_texts(name: str, result: Mapping[str, Any], language: str) -> list[str]:
    """A failed check in words; each failed ``status`` check by its reason when it has words."""
    general = CHECK_TEXT.get(name, {}).get(language, name)
    if name != pipeline.STATUS:
        return [general]
    failed = [
        check
        for check in result.get("checks", [])
        if check.get("name") == name and check.get("status") == pipeline.FAILED
    ]
    return [
        STATUS_REASON_TEXT[check["reason"]][language]
        if check.get("reason") in STATUS_REASON_TEXT
        else general
        for check in failed
    ] or [general]


def _failures(result: Mapping[str, Any], language: str) -> list[str]:
    named: list[str] = []
    for name in result.get("failed_checks", []):
        for text in _failure_texts(name, result, language):
            if text not in named:
                named.append(text)
    return named


def _outcome(view: Mapping[str, Any], language: str) -> dict[str, Any]:
    """The template's view of a transaction's state."""
    status = view["status"]
    result = view.get("result") or {}
    shown: dict[str, Any] = {"status": status, "done": status not in ("pending", "processing")}
    if status == TransactionStatus.VERIFIED and result:
        shown["credentials"] = _credentials(result, language)
        shown["claims_gone"] = result.get("claims") is None
        if result.get("claims"):
            shown["retained_until"] = _timestamp(result["claims"]["retained_until"])
    elif status == TransactionStatus.REJECTED and result:
        shown["failures"] = _failures(result, language)
    elif status == TransactionStatus.ERROR:
        error = (view.get("wallet_error") or {}).get("error")
        shown["declined"] = error == "access_denied"
        shown["wallet_error"] = error
    shown["awaiting_return"] = bool(view.get("result_requires_response_code"))
    return shown


# -- routes --------------------------------------------------------------------------------------


@router.get("/static/verifier.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/static/verifier.js")
def script() -> Response:
    return Response(
        _JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/")
def home(request: Request, ctx: Context) -> Response:
    """The employer's start page: choose what to ask for."""
    session = _user(request, ctx)
    if session is None:
        return _to_login(request, ctx)
    language, _ = _language(request, ctx)
    return _render(
        request,
        ctx,
        "home.html",
        name=session.data.get("name", ""),
        employer=session.data.get("employer", ""),
        choices=[(n, TEXT[language][n], TEXT[language][f"{n}_help"]) for n in _PAGE_TEMPLATES],
        csrf_field=CSRF_FIELD,
        csrf=page_sessions(ctx).csrf_token(session),
    )


def _login_page(request: Request, ctx: VerifierContext, failed: bool = False) -> HTMLResponse:
    manager = page_sessions(ctx)
    session = _session(request, ctx)
    carrier = Response()
    if session is None:
        # An anonymous session only to carry the login form's CSRF token.
        session = manager.issue(carrier, None, now=ctx.clock())
    response = _render(
        request,
        ctx,
        "login.html",
        401 if failed else 200,
        failed=failed,
        csrf_field=CSRF_FIELD,
        csrf=manager.csrf_token(session),
    )
    for name, value in carrier.raw_headers:
        if name == b"set-cookie":
            response.raw_headers.append((name, value))
    return response


@router.get("/login")
def login_form(request: Request, ctx: Context) -> Response:
    return _login_page(request, ctx)


@router.post("/login")
async def login(request: Request, ctx: Context) -> Response:
    """Username + password; a fresh session on success (T078)."""
    form, session = await _checked_form(request, ctx, authenticated=False)
    if isinstance(session, Response):
        return session
    user = await run_in_threadpool(
        _authenticate, ctx, form.get("username", "").strip().lower(), form.get("password", "")
    )
    if user is None:
        return await run_in_threadpool(_login_page, request, ctx, True)
    with db.session(ctx.engine) as unit:
        employer = unit.get(Employer, user["employer_id"])
        user["employer"] = employer.name if employer else ""
        audit.record(
            unit,
            actor=f"page_user:{user['user_id']}",
            action="page_login",
            now=ctx.clock(),
        )
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    page_sessions(ctx).issue(response, f"page_user:{user['user_id']}", user, now=ctx.clock())
    _binding(ctx).policy.clear(response)
    return response


def _end(ctx: VerifierContext, session: BrowserSession) -> None:
    """Logout: the session id is dead, also in a copy of the cookie (T078)."""
    with db.session(ctx.engine) as unit:
        ENDED_SESSIONS.end(unit, session)
        audit.record(unit, actor=str(session.subject), action="page_logout", now=ctx.clock())


@router.post("/logout")
async def logout(request: Request, ctx: Context) -> Response:
    _, session = await _checked_form(request, ctx)
    if isinstance(session, Response):
        return session
    await run_in_threadpool(_end, ctx, session)
    response = RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    page_sessions(ctx).clear(response)
    _binding(ctx).policy.clear(response)
    return response


def _create(ctx: VerifierContext, session: BrowserSession, name: str, same_device: bool) -> str:
    with db.session(ctx.engine) as unit:
        transaction = transactions.create_transaction(
            ctx,
            unit,
            employer_id=session.data["employer_id"],
            client_id=None,
            template=templates.builtin(name),
            same_device_redirect=ctx.settings.url("/return") if same_device else None,
        )
        audit.record(
            unit,
            actor=str(session.subject),
            action="page_request_created",
            now=ctx.clock(),
            subject=f"transaction:{transaction.id}",
        )
    return transaction.id


@router.post("/requests")
async def create_request(request: Request, ctx: Context) -> Response:
    """A new presentation request from a template; ``mode=same_device`` for this device."""
    form, session = await _checked_form(request, ctx)
    if isinstance(session, Response):
        return session
    name = form.get("template", "")
    if name not in _PAGE_TEMPLATES:
        return _error(request, ctx, 400, "not_found")
    same_device = form.get("mode") == "same_device"
    tid = await run_in_threadpool(_create, ctx, session, name, same_device)
    response = RedirectResponse(
        f"/requests/{tid}", status_code=303, headers={"Cache-Control": "no-store"}
    )
    _bind(request, response, ctx, session, tid)
    return response


def _own(
    request: Request, ctx: VerifierContext, unit: db.Session, session: BrowserSession, tid: str
) -> Transaction | None:
    if tid not in _bound(request, ctx, session):
        return None
    transaction = unit.get(Transaction, tid)
    if transaction is None or transaction.employer_id != session.data.get("employer_id"):
        return None
    return transaction


def _page(request: Request, ctx: VerifierContext, session: BrowserSession, tid: str) -> Any:
    language, _ = _language(request, ctx)
    with db.session(ctx.engine, write=False) as unit:
        transaction = _own(request, ctx, unit, session, tid)
        if transaction is None:
            return None
        view = transactions.result_view(ctx, unit, transaction)
        same_device = transaction.same_device_redirect is not None
        template = transaction.template
    shown = _outcome(view, language)
    created = transactions.created_view(ctx, transaction) if not shown["done"] else None
    wallets = (
        request_links(
            ctx.settings.wallets,
            created["client_id"],
            created["request_uri"],
            language,
            ctx.settings.request_uri_method,
        )
        if created and same_device
        else []
    )
    return {
        "tid": tid,
        "journey": template,
        "template_title": TEXT[language].get(template, template),
        "purpose": view["purpose"].get(language, ""),
        "same_device": same_device,
        "qr": created["qr_svg"] if created else None,
        "link": created["same_device_link"] if created else None,
        "wallets": wallets,
        "expires": _timestamp(view["expires_at"]),
        "outcome": shown,
    }


@router.get("/requests/{tid}")
async def show_request(tid: str, request: Request, ctx: Context) -> Response:
    """The QR code and link while pending; the result once it arrives."""
    session = await run_in_threadpool(_user, request, ctx)
    if session is None:
        return _to_login(request, ctx)
    page = await run_in_threadpool(_page, request, ctx, session, tid)
    if page is None:
        return _error(request, ctx, 404, "not_found")
    return _render(
        request,
        ctx,
        "request.html",
        csrf_field=CSRF_FIELD,
        csrf=page_sessions(ctx).csrf_token(session),
        **page,
    )


def _status(request: Request, ctx: VerifierContext, tid: str) -> Any:
    session = _user(request, ctx)
    if session is None:
        return None
    with db.session(ctx.engine, write=False) as unit:
        transaction = _own(request, ctx, unit, session, tid)
        if transaction is None:
            return None
        view = transactions.result_view(ctx, unit, transaction)
    return {"status": view["status"], "done": view["status"] not in ("pending", "processing")}


@router.get("/requests/{tid}/status")
async def request_status(tid: str, request: Request, ctx: Context) -> JSONResponse:
    """For the polling script: ``{status, done}``."""
    body = await run_in_threadpool(_status, request, ctx, tid)
    if body is None:
        return JSONResponse({"error": "not_found"}, status_code=404, headers=_PAGE_HEADERS)
    return JSONResponse(body, headers=_PAGE_HEADERS)


@router.get("/return")
def return_page(request: Request, ctx: Context) -> Response:
    """Where the wallet sends the browser back (``#response_code=...``, read by the script)."""
    session = _user(request, ctx)
    if session is None:
        return _error(request, ctx, 403, "no_result")
    return _render(
        request,
        ctx,
        "return.html",
        csrf_field=CSRF_FIELD,
        csrf=page_sessions(ctx).csrf_token(session),
    )


def _redeem(request: Request, ctx: VerifierContext, session: BrowserSession, code: str) -> Any:
    if not code or len(code) > 128:
        return None
    with db.session(ctx.engine) as unit:
        tid = unit.scalar(
            sa.select(Transaction.id).where(Transaction.response_code_hash == digest(code))
        )
        transaction = _own(request, ctx, unit, session, tid) if tid else None
        if transaction is None:
            return None
        try:
            transactions.redeem_response_code(ctx, unit, transaction, code)
        except ProtocolError:
            return None
    return transaction.id


@router.post("/return")
async def redeem(request: Request, ctx: Context) -> Response:
    """Redeem the same-device ``response_code`` for this browser session's transaction."""
    form, session = await _checked_form(request, ctx)
    if isinstance(session, Response):
        return session
    tid = await run_in_threadpool(_redeem, request, ctx, session, form.get("response_code", ""))
    if tid is None:
        return _error(request, ctx, 400, "no_result")
    return RedirectResponse(
        f"/requests/{tid}", status_code=303, headers={"Cache-Control": "no-store"}
    )
