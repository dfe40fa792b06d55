"""The employer page through the real app: login, both templates, QR code, the result as it
arrives (verified, rejected, declined) in Swedish and English, CSRF, and the same-device
``response_code`` bound to the browser session that made the request (T103). One test runs
a real uvicorn server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg import jwe
from intyg.web import db
from tests.eid.servers import bound_socket, serve
from verifier.app import VerifierContext, create_app, startup, system_clock
from verifier.models import PageUser, Transaction
from verifier.pages import PageUserError, create_page_user

from .conftest import VERIFIER_URL, make_settings
from .flows import post_response
from .helpers import (
    QUALIFICATION_DISCLOSE,
    REGISTRATION_DISCLOSE,
    Request,
    issue,
    qualification_payload,
    read_request_object,
    reference_present,
    registration_payload,
)

PASSWORD = "correct horse battery staple"


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def add_user(ctx: VerifierContext, username: str = "anna", employer_org: str = "556000-0001"):
    with db.session(ctx.engine) as unit:
        from verifier.models import Employer

        employer = unit.scalars(sa.select(Employer).where(Employer.org_number == employer_org))
        found = employer.first()
        assert found is not None and found.id is not None
        return create_page_user(
            unit,
            employer_id=found.id,
            username=username,
            password=PASSWORD,
            display_name=f"{username.title()} HR",
            now=ctx.clock(),
        )


def login(client: TestClient, username: str = "anna", password: str = PASSWORD):
    token = csrf(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def logged_in(app: Any, username: str = "anna") -> TestClient:
    browser = TestClient(app, base_url=VERIFIER_URL)
    assert login(browser, username).status_code == 303
    return browser


def new_request(
    browser: TestClient, template: str = "registration_certificate", mode: str = "cross_device"
) -> str:
    token = csrf(browser.get("/").text)
    response = browser.post(
        "/requests",
        data={"template": template, "mode": mode, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def wallet_request(client: Any, tid: str) -> Request:
    fetched = client.get(f"/request/{tid}")
    assert fetched.status_code == 200, fetched.text
    return read_request_object(fetched.text)


def registration(pki, holder, status_lists, request: Request, **kwargs: Any) -> str:
    issued = issue(registration_payload({"idx": 3, "uri": status_lists["af_uri"]}), pki.af, holder)
    return reference_present(
        issued,
        REGISTRATION_DISCLOSE,
        nonce=kwargs.get("nonce", request.nonce),
        aud=request.client_id,
        holder=holder,
    )


@pytest.fixture
def user(ctx: VerifierContext) -> int:
    return add_user(ctx)


@pytest.fixture
def browser(client: TestClient, user: int) -> Iterator[TestClient]:
    with logged_in(client.app) as test_client:
        yield test_client


def test_login_page_swedish_by_default_english_on_request(client: TestClient) -> None:
    start = client.get("/", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"] == "/login"
    page = client.get("/login")
    assert page.status_code == 200
    assert '<html lang="sv">' in page.text and "Användarnamn" in page.text
    assert 'name="viewport"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    english = client.get("/login?lang=en")
    assert '<html lang="en">' in english.text and "Username" in english.text
    assert '<html lang="en">' in client.get("/login").text  # remembered
    css = client.get("/static/verifier.css")
    js = client.get("/static/verifier.js")
    assert css.headers["content-type"].startswith("text/css")
    assert "location.hash" in js.text


def test_login_wrong_password_and_unknown_user(client: TestClient, user: int) -> None:
    assert login(client, "anna", "wrong password!!").status_code == 401
    assert login(client, "nobody", PASSWORD).status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_without_csrf_is_forbidden(client: TestClient, user: int) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "anna", "password": PASSWORD})
    assert response.status_code == 403
    assert "Formuläret var för gammalt" in response.text


def test_login_rotates_the_session(client: TestClient, user: int) -> None:
    client.get("/login")
    before = client.cookies.get("intyg_verifier")
    assert login(client).status_code == 303
    assert client.cookies.get("intyg_verifier") not in (None, before)
    home = client.get("/")
    assert "Anna HR" in home.text and "Utvecklingsarbetsgivaren AB" in home.text
    assert "Inskrivningsintyg" in home.text and "Ansökan om arbetspraktik" in home.text


def test_page_user_rules(ctx: VerifierContext, user: int) -> None:
    with pytest.raises(PageUserError, match="taken"):
        add_user(ctx)
    with db.session(ctx.engine) as unit, pytest.raises(PageUserError, match="12 characters"):
        create_page_user(
            unit, employer_id=1, username="bo", password="short", display_name="Bo", now=0
        )
    with db.session(ctx.engine, write=False) as unit:
        row = unit.execute(sa.text("SELECT subject, password_hash FROM page_users")).one()
    assert row.subject == "login:anna"
    assert row.password_hash.startswith("scrypt$") and PASSWORD not in row.password_hash


@pytest.mark.parametrize(
    ("template", "title"),
    [("registration_certificate", "Inskrivningsintyg"), ("work_practice", "arbetspraktik")],
)
def test_create_request_from_each_template_shows_qr(
    browser: TestClient, engine: sa.Engine, template: str, title: str
) -> None:
    tid = new_request(browser, template)
    page = browser.get(f"/requests/{tid}")
    assert page.status_code == 200
    assert title in page.text
    assert '<figure class="qr"' in page.text and "<svg" in page.text
    assert 'href="openid4vp://' not in page.text  # cross-device: the QR, plus a same-device form
    assert 'value="same_device"' in page.text
    assert "Väntar på svar" in page.text
    assert browser.get(f"/requests/{tid}/status").json() == {"status": "pending", "done": False}
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(Transaction.template, Transaction.client_id).where(Transaction.id == tid)
        ).one()
    assert row.template == template and row.client_id is None


def test_create_request_without_csrf_is_forbidden(browser: TestClient) -> None:
    response = browser.post("/requests", data={"template": "registration_certificate"})
    assert response.status_code == 403
    response = browser.post(
        "/requests", data={"template": "registration_certificate", "csrf_token": "x" * 43}
    )
    assert response.status_code == 403


def test_logout_needs_csrf(browser: TestClient) -> None:
    assert browser.post("/logout", data={"x": "1"}).status_code == 403
    token = csrf(browser.get("/").text)
    out = browser.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert browser.get("/", follow_redirects=False).status_code == 303


def test_verified_result_with_labelled_claims_sv_and_en(
    client: TestClient, browser: TestClient, pki, holder, status_lists
) -> None:
    tid = new_request(browser)
    request = wallet_request(client, tid)
    presentation = registration(pki, holder, status_lists, request)
    assert post_response(client, request, {"registration": [presentation]}).status_code == 200
    assert browser.get(f"/requests/{tid}/status").json() == {"status": "verified", "done": True}
    page = browser.get(f"/requests/{tid}")
    assert "✓ Verifierat" in page.text
    assert "Inskriven sedan" in page.text and "2026-01-12" in page.text
    assert "Öppet arbetslös (11)" in page.text and "Arbetsförmedlingen" in page.text
    assert "<svg" not in page.text and "verifier.js" not in page.text
    english = browser.get(f"/requests/{tid}?lang=en")
    assert "✓ Verified" in english.text and "Registered since" in english.text


def test_work_practice_result_shows_both_credentials(
    client: TestClient, browser: TestClient, pki, holder, status_lists
) -> None:
    tid = new_request(browser, "work_practice")
    request = wallet_request(client, tid)
    qualification = reference_present(
        issue(
            qualification_payload({"idx": 5, "uri": status_lists["myh_uri"]}, 6), pki.myh, holder
        ),
        QUALIFICATION_DISCLOSE,
        nonce=request.nonce,
        aud=request.client_id,
        holder=holder,
    )
    vp_token = {
        "registration": [registration(pki, holder, status_lists, request)],
        "qualification": [qualification],
    }
    assert post_response(client, request, vp_token).status_code == 200
    page = browser.get(f"/requests/{tid}?lang=en").text
    assert "✓ Verified" in page and "Qualification" in page and "EQF level" in page
    assert "Exempelstadens Yrkeshögskola AB" in page


def test_rejected_result_names_failed_checks_in_words(
    client: TestClient, browser: TestClient, pki, holder, status_lists
) -> None:
    tid = new_request(browser)
    request = wallet_request(client, tid)
    presentation = registration(pki, holder, status_lists, request, nonce="not-the-nonce")
    assert post_response(client, request, {"registration": [presentation]}).status_code == 400
    page = browser.get(f"/requests/{tid}").text
    assert "✗ Avvisat" in page
    assert "nyckelbindningen stämmer inte" in page
    english = browser.get(f"/requests/{tid}?lang=en").text
    assert "key binding failed" in english and "2026-01-12" not in english


def test_declined_by_the_person(client: TestClient, browser: TestClient) -> None:
    tid = new_request(browser)
    request = wallet_request(client, tid)
    jwk = request.claims["client_metadata"]["jwks"]["keys"][0]
    form = {"response": jwe.encrypt({"error": "access_denied", "state": request.state}, jwk)}
    assert client.post("/response", data=form).status_code == 200
    assert "Personen avböjde att visa intyget." in browser.get(f"/requests/{tid}").text
    english = browser.get(f"/requests/{tid}?lang=en").text
    assert "The person declined to show the credential." in english


def test_another_session_sees_nothing(client: TestClient, browser: TestClient, ctx) -> None:
    tid = new_request(browser)
    add_user(ctx, "bertil")
    with logged_in(client.app, "bertil") as other:
        assert other.get(f"/requests/{tid}").status_code == 404
        assert other.get(f"/requests/{tid}/status").status_code == 404
    assert client.get(f"/requests/{tid}/status").status_code == 404  # not logged in


def test_same_device_response_code_bound_to_the_session(
    client: TestClient, browser: TestClient, ctx, pki, holder, status_lists
) -> None:
    tid = new_request(browser, mode="same_device")
    pending = browser.get(f"/requests/{tid}").text
    assert 'href="openid4vp://' in pending and "<svg" not in pending
    request = wallet_request(client, tid)
    presentation = registration(pki, holder, status_lists, request)
    answer = post_response(client, request, {"registration": [presentation]})
    assert answer.status_code == 200, answer.text
    redirect = answer.json()["redirect_uri"]
    assert redirect.startswith(f"{VERIFIER_URL}/return#response_code=")
    code = urlsplit(redirect).fragment.split("=", 1)[1]
    # Before the code is presented the creator's page shows no result either.
    waiting = browser.get(f"/requests/{tid}").text
    assert "2026-01-12" not in waiting and "Svaret har kommit" in waiting
    # Another browser (same employer, logged in) that got the redirect URL gets nothing.
    add_user(ctx, "mallory")
    with logged_in(client.app, "mallory") as other:
        page = other.get("/return")
        assert page.status_code == 200 and 'id="redeem"' in page.text
        refused = other.post("/return", data={"response_code": code, "csrf_token": csrf(page.text)})
        assert refused.status_code == 400
        assert "2026-01-12" not in refused.text
    # Without CSRF the creator's own browser is refused too.
    assert browser.post("/return", data={"response_code": code}).status_code == 403
    token = csrf(browser.get("/return").text)
    redeemed = browser.post(
        "/return", data={"response_code": code, "csrf_token": token}, follow_redirects=False
    )
    assert redeemed.status_code == 303 and redeemed.headers["location"] == f"/requests/{tid}"
    page = browser.get(f"/requests/{tid}").text
    assert "✓ Verifierat" in page and "2026-01-12" in page
    again = browser.post("/return", data={"response_code": code, "csrf_token": token})
    assert again.status_code == 400  # single use


# -- a real server ------------------------------------------------------------------------------


@dataclass
class RunningVerifier:
    ctx: VerifierContext
    base: str


@contextmanager
def running_verifier(
    tmp_path: Path, database_url: str, trust_file: Path, **overrides: Any
) -> Iterator[RunningVerifier]:
    sock, base = bound_socket()
    settings = make_settings(
        database_url,
        tmp_path,
        trust_file,
        public_base_url=base,
        dev_page_user_password=PASSWORD,
        **overrides,
    )
    engine = db.create_engine(settings.sqlalchemy_url())
    app = create_app(settings, clock=system_clock, engine=engine)
    ctx: VerifierContext = app.state.verifier
    startup(ctx)
    try:
        with serve(app, sock):
            yield RunningVerifier(ctx, base)
    finally:
        engine.dispose()


def test_real_server_login_request_and_result(
    tmp_path: Path, database_url: str, trust_file: Path, pki, holder, status_lists
) -> None:
    with (
        running_verifier(tmp_path, database_url, trust_file) as verifier,
        httpx.Client(base_url=verifier.base, follow_redirects=True) as http,
    ):
        token = csrf(http.get("/login").text)
        response = http.post(
            "/login", data={"username": "dev-user", "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 200 and "Utvecklare" in response.text
        token = csrf(response.text)
        created = http.post(
            "/requests", data={"template": "registration_certificate", "csrf_token": token}
        )
        assert created.status_code == 200 and "<svg" in created.text
        tid = str(created.url).rsplit("/", 1)[1]
        request = wallet_request(http, tid)
        presentation = registration(pki, holder, status_lists, request)
        assert post_response(http, request, {"registration": [presentation]}).status_code == 200
        page = http.get(f"/requests/{tid}")
        assert "✓ Verifierat" in page.text and "2026-01-12" in page.text
        with db.session(verifier.ctx.engine, write=False) as unit:
            users = unit.scalars(sa.select(PageUser.subject)).all()
        assert users == ["login:dev-user"]
