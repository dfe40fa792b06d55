"""intyg.web.sessions: sealed cookies, session rotation (T078), CSRF tokens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from intyg import jose
from intyg.web.sessions import (
    CookiePolicy,
    CookieSealer,
    SessionError,
    SessionManager,
    derive_key,
)

MASTER = jose.b64url_encode(b"m" * 32)
NOW = 1_800_000_000


def test_derive_key_separates_purposes() -> None:
    assert derive_key(MASTER, "a") != derive_key(MASTER, "b")
    assert derive_key(MASTER, "a") == derive_key(b"m" * 32, "a")
    assert len(derive_key(MASTER, "a")) == 32
    with pytest.raises(ValueError):
        derive_key(MASTER, "")
    with pytest.raises(ValueError):
        derive_key("short", "a")


TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@given(st.dictionaries(TEXT, st.integers(-(2**53), 2**53) | TEXT, max_size=5))
def test_seal_open_round_trip(data: dict) -> None:
    sealer = CookieSealer(b"k" * 32, "p")
    assert sealer.open(sealer.seal(data, 60, now=NOW), now=NOW) == data


def test_open_refuses_expired() -> None:
    sealer = CookieSealer(b"k" * 32, "p")
    with pytest.raises(SessionError, match="expired"):
        sealer.open(sealer.seal({}, 60, now=NOW), now=NOW + 60)


def test_open_refuses_other_purpose() -> None:
    value = CookieSealer(b"k" * 32, "login").seal({}, 60, now=NOW)
    with pytest.raises(SessionError):
        CookieSealer(b"k" * 32, "session").open(value, now=NOW)


def test_open_refuses_tampering() -> None:
    sealer = CookieSealer(b"k" * 32, "p")
    value = sealer.seal({"sub": "a"}, 60, now=NOW)
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    for bad in (flipped, "", "!!!", "A" * 5000, None):
        with pytest.raises(SessionError):
            sealer.open(bad, now=NOW)


def test_cookie_policy_names_and_attributes() -> None:
    assert CookiePolicy("s").name == "__Host-s"
    assert CookiePolicy("s", secure=False).name == "s"
    assert CookiePolicy("s", path="/login").name == "s"
    response = Response()
    CookiePolicy("s").set(response, "v")
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" in header


def app_with(manager: SessionManager) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    def login() -> Response:
        response = JSONResponse({})
        session = manager.issue(response, "account-key-1")
        response.body = JSONResponse({"sid": session.sid, "csrf": manager.csrf_token(session)}).body
        response.headers["content-length"] = str(len(response.body))
        return response

    @app.get("/me")
    def me(request: Request) -> dict:
        session = manager.load(request)
        return {
            "sub": session.subject if session else None,
            "sid": session.sid if session else None,
        }

    @app.post("/form")
    async def form(request: Request) -> dict:
        data = await request.form()
        try:
            manager.check_csrf(manager.load(request), data.get("csrf_token"))
        except SessionError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}

    return app


@pytest.fixture
def manager() -> SessionManager:
    return SessionManager.from_master_key(MASTER, base_name="wallet", development=True, max_age=600)


def test_login_rotates_the_session_id(manager: SessionManager) -> None:
    client = TestClient(app_with(manager))
    first = client.post("/login").json()
    second = client.post("/login").json()
    assert first["sid"] != second["sid"]
    assert client.get("/me").json() == {"sub": "account-key-1", "sid": second["sid"]}


def test_csrf_token_bound_to_the_session(manager: SessionManager) -> None:
    alice, mallory = TestClient(app_with(manager)), TestClient(app_with(manager))
    token = alice.post("/login").json()["csrf"]
    mallory_token = mallory.post("/login").json()["csrf"]
    assert alice.post("/form", data={"csrf_token": token}).json() == {"ok": True}
    assert alice.post("/form", data={"csrf_token": mallory_token}).json()["ok"] is False
    assert alice.post("/form", data={}).json()["error"] == "missing CSRF token"
    fresh = TestClient(app_with(manager))
    assert fresh.post("/form", data={"csrf_token": token}).json()["ok"] is False


def test_session_cookie_of_another_service_does_not_load(manager: SessionManager) -> None:
    other = SessionManager.from_master_key(
        MASTER, base_name="issuer", development=True, max_age=600
    )
    value = manager.sealer.seal({"sid": "x", "sub": "a", "iat": NOW, "data": {}}, 600)
    assert other.sealer is not manager.sealer
    with pytest.raises(SessionError):
        other.sealer.open(value)


def test_load_expired_session(manager: SessionManager) -> None:
    response = Response()
    manager.issue(response, "a", now=NOW)
    cookie = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]

    connection = SimpleNamespace(cookies={manager.policy.name: cookie})
    assert manager.load(connection, now=NOW + 10) is not None  # type: ignore[arg-type]
    assert manager.load(connection, now=NOW + 600) is None  # type: ignore[arg-type]
