"""Logout ends the employer page session for good (T078 "old session id dead at privilege
change / logout"): a copy of the session cookie taken before logout is refused afterwards on
every page and form, another employer's session is unaffected, and the record of the ended
session is purged once the cookie would have expired anyway. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg import jose
from intyg.web import db
from verifier import retention
from verifier.app import VerifierContext
from verifier.employers import create_employer
from verifier.models import AuditEntry, EndedSession, Transaction
from verifier.pages import page_sessions

from .conftest import VERIFIER_URL, Clock
from .test_pages import add_user, csrf, logged_in, new_request


def _copy(browser: TestClient) -> TestClient:
    """Another client holding a copy of every cookie ``browser`` has now (a stolen cookie)."""
    stolen = TestClient(browser.app, base_url=VERIFIER_URL)
    for cookie in browser.cookies.jar:
        stolen.cookies.jar.set_cookie(cookie)
    return stolen


def _log_out(browser: TestClient) -> None:
    token = csrf(browser.get("/").text)
    out = browser.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"


def _transactions(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(Transaction)) or 0)


def _other_employer_user(ctx: VerifierContext) -> None:
    with db.session(ctx.engine) as unit:
        create_employer(unit, name="Andra arbetsgivaren AB", org_number="556000-0002", now=0)
    add_user(ctx, "bertil", employer_org="556000-0002")


def test_a_copy_of_the_cookie_is_dead_after_logout(
    client: TestClient, ctx: VerifierContext, engine: sa.Engine
) -> None:
    add_user(ctx)
    _other_employer_user(ctx)
    with logged_in(client.app) as anna, logged_in(client.app, "bertil") as bertil:
        tid = new_request(anna)
        stolen = _copy(anna)
        home = stolen.get("/")
        assert home.status_code == 200 and "Anna HR" in home.text  # the copy works before
        token = csrf(home.text)
        assert stolen.get(f"/requests/{tid}/status").status_code == 200

        _log_out(anna)

        start = stolen.get("/", follow_redirects=False)
        assert start.status_code == 303 and start.headers["location"] == "/login"
        assert stolen.get(f"/requests/{tid}", follow_redirects=False).status_code == 303
        assert stolen.get(f"/requests/{tid}/status").status_code == 404
        assert stolen.get("/return").status_code == 403
        created = _transactions(engine)
        for path, data in (
            ("/requests", {"template": "registration_certificate", "mode": "cross_device"}),
            ("/return", {"response_code": "x" * 43}),
            ("/logout", {}),
        ):
            refused = stolen.post(path, data={**data, "csrf_token": token})
            assert refused.status_code == 403, path
            assert "Formuläret var för gammalt" in refused.text
        assert _transactions(engine) == created  # nothing made with the dead session

        # Another employer's session is untouched, and so is Anna's next login.
        other = bertil.get("/")
        assert other.status_code == 200 and "Bertil HR" in other.text
        assert "Andra arbetsgivaren AB" in other.text
        assert new_request(bertil)
        with logged_in(client.app) as again:
            assert "Anna HR" in again.get("/").text
        assert stolen.get("/", follow_redirects=False).status_code == 303
        # The login page does not reuse the dead session as its anonymous CSRF carrier.
        dead = stolen.cookies.get("intyg_verifier")
        stolen.get("/login")
        assert stolen.cookies.get("intyg_verifier") not in (None, dead)


def test_logout_records_a_hash_until_the_cookie_expires_then_purges_it(
    client: TestClient, ctx: VerifierContext, clock: Clock
) -> None:
    add_user(ctx)
    with logged_in(client.app) as anna:
        cookie = anna.cookies.get("intyg_verifier")
        sid = page_sessions(ctx).sealer.open(cookie, now=clock())["sid"]
        stolen = _copy(anna)
        _log_out(anna)
    with db.session(ctx.engine, write=False) as unit:
        rows = unit.execute(sa.select(EndedSession.session_hash, EndedSession.expires_at)).all()
        actions = list(unit.scalars(sa.select(AuditEntry.action)))
    lifetime = ctx.settings.page_session_seconds
    assert [tuple(r) for r in rows] == [(jose.sha256_b64url(sid), clock() + lifetime)]
    assert "page_logout" in actions

    clock.advance(lifetime - 1)  # the cookie itself is still valid: only the record refuses it
    assert stolen.get("/", follow_redirects=False).status_code == 303
    assert retention.purge(ctx)["ended_sessions"] == 0
    clock.advance(2)  # past the cookie's expiry: the record is no longer needed
    assert retention.purge(ctx)["ended_sessions"] == 1
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(EndedSession)) == 0
    assert stolen.get("/", follow_redirects=False).status_code == 303  # expired cookie
