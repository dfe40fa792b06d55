"""FastAPI app of the development eID: ``create_app(settings)``.

Routes: discovery (``/.well-known/openid-configuration``, OIDC Discovery 1.0 §4), ``/jwks``,
``/authorize`` (GET shows the person picker, POST is the picker's decision), ``/token``,
``/userinfo``. The picker replaces the BankID / Freja app and is labelled as a test tool on
every page. Refuses to start unless ``environment=development``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import jinja2
from authlib.oauth2 import OAuth2Error
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from eid.persons import persons as test_persons
from eid.server import CLAIMS, SCOPES, EidAuthorizationServer
from eid.settings import EidSettings, ProductionRefused
from eid.store import EidStore
from intyg import jose, strict_json
from intyg.web.bodies import read_form
from intyg.web.errors import BearerTokenError, install_error_handlers
from intyg.web.metrics import DEV_EID_AUTHORIZATIONS
from intyg.web.operations import ReadinessCheck, configure_process, tune_collector
from intyg.web.operations import install as install_operations

__all__ = ["create_app", "create_app_from_env"]

LOA_VALUES = ("http://id.elegnamnden.se/loa/1.0/loa2", "http://id.elegnamnden.se/loa/1.0/loa3")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self' http: https:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_TEXT = {
    "sv": {
        "banner": "Utvecklings-eID — endast för test",
        "title": "Välj testperson",
        "intro": "Det här är ingen riktig e-legitimation. Välj vem du vill logga in som.",
        "client": "Tjänst som begär inloggning",
        "cancel": "Avbryt",
        "number": "Personnummer",
        "coordination": "samordningsnummer",
        "low_loa": "lägre tillitsnivå",
        "error_title": "Inloggningen kan inte fortsätta",
        "other_language": "In English",
    },
    "en": {
        "banner": "Development eID — test only",
        "title": "Choose a test person",
        "intro": "This is not a real eID. Choose who you want to log in as.",
        "client": "Service asking for login",
        "cancel": "Cancel",
        "number": "Personal identity number",
        "coordination": "coordination number",
        "low_loa": "lower assurance level",
        "error_title": "The login cannot continue",
        "other_language": "På svenska",
    },
}


def _language(request: Request, explicit: str | None = None) -> str:
    choice = explicit or request.query_params.get("ui_locales", "")
    if not choice:
        choice = request.headers.get("accept-language", "sv")
    return "en" if choice.strip().lower().startswith("en") else "sv"


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _error_page(language: str, message: str) -> HTMLResponse:
    # RFC 6749 §4.1.2.1: with an unknown client or redirect URI, never redirect.
    return _page("error.html", 400, t=_TEXT[language], lang=language, message=message)


def _single_values(request: Request) -> dict[str, str] | None:
    query = request.query_params
    if any(len(query.getlist(name)) > 1 for name in query):
        return None
    return dict(query)


def _signing_key(settings: EidSettings) -> jose.Key:
    if settings.signing_key_jwk is None:
        return jose.generate_key("ES256")
    jwk = strict_json.loads(settings.signing_key_jwk.get_secret_value())
    key = jose.key_from_jwk(jwk, allow_private=True)
    return key if key.kid else key.with_kid(key.thumbprint())


def create_app(settings: EidSettings) -> FastAPI:
    if settings.environment != "development":
        raise ProductionRefused("the development eID provider never runs in production")
    store = EidStore(settings.store_path)
    key = _signing_key(settings)
    server = EidAuthorizationServer(settings, store, key)
    issuer = settings.issuer
    app = FastAPI(
        title="intyg development eID (test only)", docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(app)
    app.state.server = server
    everyone = test_persons(settings.dev_load_persons)
    by_id = {person.id: person for person in everyone}

    @app.get("/.well-known/openid-configuration", summary="OpenID Provider metadata")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": list(SCOPES),
            "claims_supported": list(CLAIMS),
            "acr_values_supported": list(LOA_VALUES),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "ui_locales_supported": ["sv", "en"],
        }

    @app.get("/jwks", summary="The ID token signing key (JWK Set)")
    def jwks() -> dict[str, Any]:
        return {"keys": [{**key.public_jwk(), "use": "sig", "alg": "ES256"}]}

    def _consent_grant(request: Request, params: dict[str, str]) -> Any:
        oauth_request = server.create_oauth2_request(("GET", "/authorize", request.headers, params))
        return oauth_request, server.get_consent_grant(oauth_request)

    @app.get("/authorize", include_in_schema=False)  # the person picker page
    def authorize(request: Request) -> Response:
        language = _language(request)
        params = _single_values(request)
        if params is None:
            return _error_page(language, "repeated parameters in the authorization request")
        try:
            _, grant = _consent_grant(request, params)
        except OAuth2Error as error:
            if error.redirect_uri:
                return server.handle_response(*error())
            return _error_page(language, error.get_error_description() or error.error)
        transaction = secrets.token_urlsafe(32)
        store.put("picker", transaction, params, settings.picker_lifetime_seconds)
        return _page(
            "picker.html",
            t=_TEXT[language],
            lang=language,
            other="en" if language == "sv" else "sv",
            client_id=grant.client.client_id,
            persons=everyone,
            transaction=transaction,
        )

    @app.post("/authorize", include_in_schema=False)
    async def decide(request: Request) -> Response:
        form = await read_form(request, max_bytes=4096)
        language = _language(request, form.get("lang"))
        params = store.take("picker", form.get("transaction", ""))
        if params is None:
            return _error_page(language, "the login page has expired; start again")
        person = by_id.get(form.get("person", ""))
        if person is None and "cancel" not in form:
            return _error_page(language, "no test person chosen")
        try:
            oauth_request, grant = _consent_grant(request, params)
        except OAuth2Error as error:
            if error.redirect_uri:
                return server.handle_response(*error())
            return _error_page(language, error.get_error_description() or error.error)
        response = server.create_authorization_response(
            oauth_request, grant_user=person, grant=grant
        )
        DEV_EID_AUTHORIZATIONS.labels("approved" if person is not None else "cancelled").inc()
        return response

    @app.post("/token", summary="Token endpoint (authorization code + PKCE)")
    async def token(request: Request) -> Response:
        form = await read_form(request, max_bytes=8192)
        return server.create_token_response(("POST", "/token", request.headers, form))

    @app.get("/userinfo", summary="UserInfo (GET)")
    @app.post("/userinfo", summary="UserInfo (POST)")
    def userinfo(request: Request) -> Response:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not access_token:
            raise BearerTokenError(None, realm="eid")
        claims = server.userinfo(access_token.strip())
        if claims is None:
            raise BearerTokenError("invalid_token", "access token unknown or expired", realm="eid")
        return JSONResponse(claims, headers={"Cache-Control": "no-store"})

    checks = [
        ReadinessCheck("database", store.ping, "the code store does not answer"),
        ReadinessCheck("keys", lambda: key.kid is not None, "the signing key is not loaded"),
    ]
    install_operations(app, checks=checks, development=settings.is_development)
    return app


def create_app_from_env() -> FastAPI:
    """``uvicorn --factory eid.app:create_app_from_env``: settings from ``INTYG_EID_*``,
    logging from ``INTYG_LOG_*`` (intyg.web.operations)."""
    settings = EidSettings()
    configure_process("eid", development=settings.is_development)
    app = create_app(settings)
    tune_collector()
    return app
