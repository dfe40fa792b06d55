"""Get a credential ("Hämta intyg"): wallet-initiated issuance pages (issue 4 items 4, 7).

Routes: ``GET /get`` (the configured issuers, each with its credentials: names from the
issuer's metadata in the page language) · ``POST /get`` (CSRF; ``issuer`` = one of the
configured identifiers, ``configuration``) → on to the issuer's authorization endpoint ·
``GET /get/callback`` (the redirect URI) → the credential page. The protocol is in
:mod:`wallet.authorization`.

``POST /get`` answers with a page that moves on to the issuer (``<meta http-equiv=
"refresh">`` and a link) rather than a 303: browsers check ``form-action 'self'`` on every
redirect that follows a form (CSP Level 3 ``form-action``), and the issuer's own redirect
to its eID provider could never be allowed in advance.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from intyg.web.sessions import SessionError

from . import authorization, issuance
from .accounts import CurrentHolder, LoginRequired, current_account
from .app import Context
from .pages import TEXT, _csrf, _form, _redirect, error_page, language_of, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_FORMAT_NAMES = {"dc+sd-jwt": "SD-JWT VC", "jwt_vc_json": "W3C VC (JWT)"}


def _issuer_rows(listed: list[authorization.ListedIssuer], language: str) -> list[dict[str, Any]]:
    rows = []
    for entry in listed:
        host = urlsplit(entry.credential_issuer).netloc
        shown = issuance.issuer_display(entry.metadata_document)
        credentials = []
        for offered in entry.offered:
            display = issuance.pick(
                issuance.credential_display(offered.configuration),
                language,
                offered.configuration_id,
            )
            fmt = str(offered.configuration.get("format"))
            credentials.append(
                {
                    "id": offered.configuration_id,
                    "name": display.get("name"),
                    "description": display.get("description"),
                    "format": _FORMAT_NAMES.get(fmt, fmt),
                }
            )
        rows.append(
            {
                "identifier": entry.credential_issuer,
                "name": issuance.pick(shown, language, host)["name"],
                "host": host,
                "usable": entry.problem is None,
                "credentials": credentials,
            }
        )
    return rows


@router.get("/get")
def get_page(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    """The configured issuers and what each offers (sv/en display from their metadata)."""
    language, _ = language_of(request, ctx)
    listed = authorization.catalogue(ctx)
    return render(
        request, ctx, "get.html", issuers=_issuer_rows(listed, language), **_csrf(ctx, holder)
    )


@router.post("/get")
async def get_start(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    """PAR at the chosen issuer, then the person's browser goes there to log in."""
    try:
        form = await _form(request, ctx, holder)
    except SessionError:
        return error_page(request, ctx, TEXT[language_of(request, ctx)[0]]["forbidden"], 403)
    t = TEXT[language_of(request, ctx)[0]]
    try:
        # PAR is an outbound call: off the event loop.
        location = await run_in_threadpool(
            authorization.start,
            ctx,
            holder.account_id,
            holder.session.sid,
            form.get("issuer", "")[:512],
            form.get("configuration", "")[:200],
        )
    except issuance.IssuanceError as exc:
        status = 404 if exc.reason in ("unknown_issuer", "unknown_configuration") else 502
        return error_page(request, ctx, f"{t['get_failed']}: {exc}", status)
    return render(
        request, ctx, "get_redirect.html", location=location, host=urlsplit(location).netloc
    )


def _refusal_message(t: Any, exc: authorization.AuthorizationError) -> str:
    if exc.reason == "authorization_error":
        if exc.error == "access_denied":
            return str(t["auth_access_denied"])
        if exc.error in ("temporarily_unavailable", "server_error"):
            return str(t["auth_unavailable"])
        return f"{t['auth_refused']} ({exc.error})."
    if exc.reason == "unknown_state":
        return str(t["auth_unknown_state"])
    if exc.reason in ("iss_mismatch", "iss_missing"):
        return f"{t['auth_wrong_issuer']} {t['get_nothing_fetched']}"
    return f"{t['auth_malformed']} {t['get_nothing_fetched']}"


@router.get(authorization.CALLBACK_PATH)
def get_callback(request: Request, ctx: Context) -> Response:
    """The redirect URI (RFC 6749 §4.1.2): finish the flow ``state`` names, then show the
    credential. Without a wallet login the answer cannot be bound: start again."""
    t = TEXT[language_of(request, ctx)[0]]
    try:
        holder = current_account(request, ctx)
    except LoginRequired:
        return error_page(request, ctx, t["get_login_again"], 401)
    try:
        stored = authorization.complete(
            ctx, holder.account_id, holder.session.sid, request.query_params.multi_items()
        )
    except authorization.AuthorizationError as exc:
        return error_page(request, ctx, _refusal_message(t, exc), 400)
    except issuance.IssuanceError as exc:
        return error_page(request, ctx, f"{t['get_failed']}: {exc}", 502)
    return _redirect(f"/credentials/{stored[0]}" if len(stored) == 1 else "/")
