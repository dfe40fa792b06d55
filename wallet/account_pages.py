"""Settings: export, import, delete the account (issue 4 items 6-7; wallet/backup.py).

Routes: ``GET /settings`` · ``POST /settings/export`` (the backup as a JSON download) ·
``POST /settings/import`` (the file's content pasted or uploaded as a form field) ·
``POST /settings/delete`` (the typed confirmation ``RADERA`` / ``DELETE``). Every form
carries the CSRF token; every handler depends on ``current_account``.
"""

from __future__ import annotations

import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from intyg import strict_json
from intyg.web.sessions import SessionError

from . import backup
from .accounts import CurrentHolder, Holder, page_sessions
from .app import Context, WalletContext
from .pages import PAGE_HEADERS, TEXT, _csrf, _form, error_page, language_of, render

__all__ = ["CONFIRM_WORDS", "router"]

router = APIRouter(include_in_schema=False)
#: What the person types to delete the account (either page language's word).
CONFIRM_WORDS = ("RADERA", "DELETE")


def _settings(
    request: Request, ctx: WalletContext, holder: Holder, message: str = "", status: int = 200
) -> HTMLResponse:
    return render(request, ctx, "settings.html", status, message=message, **_csrf(ctx, holder))


@router.get("/settings")
def settings_page(request: Request, ctx: Context, holder: CurrentHolder) -> HTMLResponse:
    return _settings(request, ctx, holder)


@router.post("/settings/export")
async def export(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    t = TEXT[language_of(request, ctx)[0]]
    try:
        form = await _form(request, ctx, holder, max_bytes=8192, max_fields=4)
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    try:
        document = backup.export_document(ctx, holder.account_id, form.get("passphrase", ""))
    except backup.BackupError as exc:
        return _settings(request, ctx, holder, str(exc), 400)
    day = datetime.datetime.fromtimestamp(ctx.clock(), datetime.UTC).strftime("%Y%m%d")
    return Response(
        strict_json.dumps(document).encode("utf-8"),
        media_type="application/json",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="intyg-wallet-backup-{day}.json"',
        },
    )


@router.post("/settings/import")
async def import_backup(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    t = TEXT[language_of(request, ctx)[0]]
    try:
        form = await _form(
            request, ctx, holder, max_bytes=ctx.settings.max_import_bytes, max_fields=4
        )
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    try:
        imported = backup.import_document(
            ctx, holder.account_id, form.get("backup", ""), form.get("passphrase", "")
        )
    except backup.BackupError as exc:
        return _settings(request, ctx, holder, str(exc), 400)
    message = f"{t['imported']}: {imported.credentials} · {imported.consent_records} {t['records']}"
    return _settings(request, ctx, holder, message)


@router.post("/settings/delete")
async def delete_account(request: Request, ctx: Context, holder: CurrentHolder) -> Response:
    t = TEXT[language_of(request, ctx)[0]]
    try:
        form = await _form(request, ctx, holder, max_bytes=4096, max_fields=4)
    except SessionError:
        return error_page(request, ctx, t["forbidden"], 403)
    if form.get("confirm", "").strip().upper() not in CONFIRM_WORDS:
        return _settings(request, ctx, holder, t["confirm_delete"], 400)
    backup.delete_account(ctx, holder.account_id)
    response = render(request, ctx, "error.html", message=t["deleted"])
    page_sessions(ctx).clear(response)
    return response
