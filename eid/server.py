"""The development eID's OpenID Provider on authlib's server components (RFC 6749 §4.1,
RFC 7636, OIDC Core 1.0 §3.1, oidc-sweden Claims and Scopes 1.0).

authlib does the protocol: client lookup and authentication (``client_secret_basic`` and
``client_secret_post``), exact redirect URI matching, the authorization code grant, PKCE and
the OpenID Connect code extension. This module supplies the storage (:class:`EidStore`), the
claims of the test persons, and two tightenings: PKCE is required with ``S256`` only, and a
``nonce`` is required and never accepted twice. ID tokens are signed ES256 with
:mod:`intyg.jose`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, scope_to_list
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from starlette.responses import JSONResponse, RedirectResponse, Response

from eid.persons import TestPerson, find_person
from eid.settings import EidClient, EidSettings
from eid.store import EidStore
from intyg import jose

__all__ = [
    "COORDINATION_NUMBER",
    "PERSONAL_IDENTITY_NUMBER",
    "SCOPES",
    "EidAuthorizationServer",
    "claims_for",
]

PERSONAL_IDENTITY_NUMBER = "https://id.oidc.se/claim/personalIdentityNumber"
COORDINATION_NUMBER = "https://id.oidc.se/claim/coordinationNumber"
COORDINATION_NUMBER_LEVEL = "https://id.oidc.se/claim/coordinationNumberLevel"
AUTHN_PROVIDER = "https://id.oidc.se/claim/authnProvider"
SCOPE_NUMBER = "https://id.oidc.se/scope/naturalPersonNumber"
SCOPE_INFO = "https://id.oidc.se/scope/naturalPersonInfo"
SCOPES = ("openid", SCOPE_NUMBER, SCOPE_INFO)
CLAIMS = (
    "sub",
    PERSONAL_IDENTITY_NUMBER,
    COORDINATION_NUMBER,
    COORDINATION_NUMBER_LEVEL,
    "given_name",
    "family_name",
    "name",
    "birthdate",
    "acr",
    "auth_time",
)


def subject(issuer: str, person: TestPerson) -> str:
    """A stable pseudonymous ``sub`` (never the personal number, protocols.md §7.2)."""
    digest = hashlib.sha256(f"{issuer}\x00{person.id}".encode()).digest()
    return jose.b64url_encode(digest[:16])


def claims_for(person: TestPerson, scope: str) -> dict[str, Any]:
    """Claims per scope (oidc-sweden Claims and Scopes §3.1 naturalPersonNumber, §3.2
    naturalPersonInfo). A samordningsnummer goes in ``coordinationNumber``."""
    scopes = set(scope_to_list(scope) or ())
    claims: dict[str, Any] = {}
    if SCOPE_NUMBER in scopes:
        if person.is_coordination_number:
            claims[COORDINATION_NUMBER] = person.number.twelve_digits
            claims[COORDINATION_NUMBER_LEVEL] = "confirmed"
        else:
            claims[PERSONAL_IDENTITY_NUMBER] = person.number.twelve_digits
    if SCOPE_INFO in scopes:
        claims.update(
            given_name=person.given_name,
            family_name=person.family_name,
            name=person.name,
            birthdate=person.birthdate.isoformat(),
        )
    return claims


class _Client(ClientMixin):
    def __init__(self, registered: EidClient) -> None:
        self.registered = registered
        self.client_id = registered.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # OIDC Core §3.1.2.1: redirect_uri is required

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope_to_list(scope) or () if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.registered.redirect_uris  # exact string match

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.registered.client_secret.get_secret_value().encode()
        return hmac.compare_digest(client_secret.encode(), expected)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class _AuthorizationCode:
    """A redeemed code (authlib's AuthorizationCodeMixin interface)."""

    data: dict[str, Any]

    def get_redirect_uri(self) -> str:
        return self.data["redirect_uri"]

    def get_scope(self) -> str:
        return self.data["scope"]

    def get_nonce(self) -> str | None:
        return self.data.get("nonce")

    def get_auth_time(self) -> int:
        return self.data["auth_time"]

    def get_acr(self) -> str:
        return find_person(self.data["person"]).acr

    def get_amr(self) -> None:
        return None

    @property
    def code_challenge(self) -> str:
        return self.data["code_challenge"]

    @property
    def code_challenge_method(self) -> str:
        return self.data["code_challenge_method"]


class _Request(OAuth2Request):
    """authlib's request over an already-parsed parameter dict (query or strict form)."""

    def __init__(self, method: str, uri: str, headers: Any, data: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def args(self) -> dict[str, str]:
        return self._data

    @property
    def form(self) -> dict[str, str]:
        return self._data


class _S256Only(CodeChallenge):
    """RFC 7636 with the RFC 9700 §2.1.1 tightening: PKCE required, ``plain`` refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE code_challenge is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class EidAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: EidSettings, store: EidStore, key: jose.Key) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.settings = settings
        self.store = store
        self.key = key
        self.issuer = settings.issuer
        self._clients = {c.client_id: _Client(c) for c in settings.clients}
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_grant_class(self), [_S256Only(required=True), _openid_code(self)])

    # -- authlib hooks ---------------------------------------------------------------------

    def query_client(self, client_id: str) -> _Client | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        data = {"person": request.user.id, "scope": token["scope"]}
        ttl = self.settings.access_token_lifetime_seconds
        self.store.put("token", token["access_token"], data, ttl)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        method, path, headers, data = request
        return _Request(method, self.issuer + path, headers, data)

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers)
        if status == 302:
            # RFC 9207 §2: every authorization response names its issuer.
            location = add_params_to_uri(headers.pop("Location"), [("iss", self.issuer)])
            return RedirectResponse(location, status_code=302, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    def _generate_token(
        self,
        grant_type: str,
        client: Any,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": self.settings.access_token_lifetime_seconds,
            "scope": scope or "",
        }

    # -- ID token (OIDC Core §2, §3.1.3.6) -------------------------------------------------

    def id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        code: _AuthorizationCode = request.authorization_code
        person: TestPerson = request.user
        now = int(time.time())
        digest = hashlib.sha256(token["access_token"].encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject(self.issuer, person),
            "aud": request.client.get_client_id(),
            "iat": now,
            "exp": now + self.settings.id_token_lifetime_seconds,
            "auth_time": code.get_auth_time(),
            "acr": person.acr,
            "at_hash": jose.b64url_encode(digest[:16]),
            AUTHN_PROVIDER: person.eid,
        }
        if code.get_nonce():
            claims["nonce"] = code.get_nonce()
        claims.update(claims_for(person, token["scope"]))
        return jose.encode_jws(claims, self.key, {"typ": "JWT", "kid": self.key.kid})

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """OIDC Core §5.3.2 for a live access token, else None."""
        data = self.store.get("token", access_token)
        if data is None:
            return None
        person = find_person(data["person"])
        return {"sub": subject(self.issuer, person), **claims_for(person, data["scope"])}


def _grant_class(server: EidAuthorizationServer) -> type[AuthorizationCodeGrant]:
    store, settings = server.store, server.settings

    class Grant(AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            data = request.payload.data
            nonce = data.get("nonce")
            nonce_ttl = settings.picker_lifetime_seconds
            if nonce and not store.add_once(
                "nonce", f"{request.client.client_id}\x00{nonce}", nonce_ttl
            ):
                raise InvalidRequestError("nonce was already used")
            item = {
                "client_id": request.client.client_id,
                "redirect_uri": data.get("redirect_uri"),
                "scope": request.scope,
                "nonce": nonce,
                "person": request.user.id,
                "auth_time": int(time.time()),
                "code_challenge": data["code_challenge"],
                "code_challenge_method": data["code_challenge_method"],
            }
            store.put("code", code, item, settings.code_lifetime_seconds)

        def query_authorization_code(self, code: str, client: Any) -> _AuthorizationCode | None:
            # Taken (deleted) at the first redemption attempt: never usable twice.
            data = store.take("code", code)
            if data is None or data["client_id"] != client.client_id:
                return None
            return _AuthorizationCode(data)

        def delete_authorization_code(self, authorization_code: Any) -> None:
            pass  # already removed by query_authorization_code

        def authenticate_user(self, authorization_code: _AuthorizationCode) -> TestPerson:
            return find_person(authorization_code.data["person"])

    return Grant


def _openid_code(server: EidAuthorizationServer) -> OpenIDCode:
    class Code(OpenIDCode):
        def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
            key = f"{request.payload.client_id}\x00{nonce}"
            return server.store.get("nonce", key) is not None

        def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
            return server.id_token(token, request)

        def generate_user_info(self, user: Any, scope: str) -> dict[str, Any]:
            return {}

    return Code(require_nonce=True)
