"""eID login: an OpenID Connect relying party for BankID / Freja eID Plus brokers and the
development eID (OpenID Connect Core 1.0 §3.1 authorization code flow; OIDC Discovery 1.0;
RFC 7636 PKCE; RFC 9207 ``iss``; RFC 9700 §4.5, §4.7; protocols.md §7.2; security.md T001,
T003, T017, T076, T077).

Why not authlib's client: authlib's httpx integration accepts our :class:`GuardedTransport`,
but then only the address policy applies; the total deadline, the response size cap and the
redirect rules live in :class:`intyg.web.outbound.OutboundClient` (security.md L13: a
1 byte/s OP must not hold a worker). authlib's client also validates ID tokens with its own
JOSE stack and algorithm list, and keeps ``state`` in a cache that is not tied to the browser
(CVE-2025-68158). So this module is a small implementation whose every HTTP call goes
through the guarded client; it uses authlib only for the PKCE challenge.

How login CSRF is prevented (T076): ``state``, ``nonce``, the PKCE verifier, the issuer and
the return path are sealed (AES-GCM) into a short-lived HttpOnly, SameSite=Lax cookie scoped
to the callback path. The callback accepts a ``state`` only if it equals the one sealed in the
cookie of the browser that started the login, and only once (a replay cache, shared by the
replicas through the database). An attacker's ``code`` + ``state`` delivered to a victim fails
the cookie comparison; a second callback with the same state fails the replay cache.

ID tokens (OIDC Core §3.1.3.7): ``iss`` exact, ``aud`` contains our client id and nothing we
do not trust, ``azp`` rules, ``exp``/``iat`` with leeway, ``nonce`` exact, signature with a key
from the OP's JWKS (fetched through the guarded client), algorithm allow-list ES256 / RS256 /
EdDSA. RS256 is accepted here only, because real OPs sign ID tokens with it; ``intyg.jose``
keeps its ES256/EdDSA allow-list for everything else.

The personal number (from the configured claim: the Swedish profile's
``personalIdentityNumber``, or a broker's ``ssn`` / ``nin``) is normalised to 12 digits and
checked by :mod:`intyg.personnummer`; it never goes to a log, a URL or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intyg import jose, personnummer, strict_json
from intyg.fetch import FetchResponse
from intyg.personnummer import PersonalIdentityNumber
from intyg.web import db, metrics
from intyg.web.outbound import OutboundClient, OutboundError
from intyg.web.sessions import (
    CookiePolicy,
    CookieSealer,
    MasterKeyInput,
    SessionError,
    derive_key,
)

__all__ = [
    "COORDINATION_NUMBER_CLAIM",
    "LOA3",
    "PERSONAL_IDENTITY_NUMBER_CLAIM",
    "SCOPE_NATURAL_PERSON_INFO",
    "SCOPE_NATURAL_PERSON_NUMBER",
    "EidIdentity",
    "LoginResult",
    "LoginStart",
    "MemoryReplayCache",
    "OidcConfig",
    "OidcError",
    "OidcRelyingParty",
    "ProviderMetadata",
    "ReplayCache",
    "SqlReplayCache",
    "safe_return_path",
]

logger = logging.getLogger("intyg.web.oidc")

# -- Swedish OIDC profile (oidc-sweden Claims and Scopes 1.0; protocols.md §7.2) -----------
PERSONAL_IDENTITY_NUMBER_CLAIM = "https://id.oidc.se/claim/personalIdentityNumber"
COORDINATION_NUMBER_CLAIM = "https://id.oidc.se/claim/coordinationNumber"
SCOPE_NATURAL_PERSON_NUMBER = "https://id.oidc.se/scope/naturalPersonNumber"
SCOPE_NATURAL_PERSON_INFO = "https://id.oidc.se/scope/naturalPersonInfo"
LOA2 = "http://id.elegnamnden.se/loa/1.0/loa2"
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"
LOA4 = "http://id.elegnamnden.se/loa/1.0/loa4"
FREJA_PLUS = "PLUS"

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
ID_TOKEN_ALGORITHMS = ("ES256", "RS256", "EdDSA")
LOGIN_COOKIE_PURPOSE = "intyg/oidc-login/v1"
#: RSA keys below this size are refused (NIST SP 800-131A).
MIN_RSA_BITS = 2048
MAX_JWKS_KEYS = 32
#: A kid missing from the cached JWKS triggers a refetch at most this often (key rotation).
JWKS_REFETCH_SECONDS = 60
STATE_BYTES = 32
_JWT_TYPES = frozenset({None, "jwt"})
_ACCESS_TOKEN_HASH = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "EdDSA": hashlib.sha512}

# -- errors --------------------------------------------------------------------------------

#: reason -> (category); each category has one page message per language.
_CATEGORIES = {
    "state_missing": "login_invalid",
    "state_mismatch": "login_invalid",
    "state_reused": "login_invalid",
    "login_expired": "login_expired",
    "issuer_mismatch": "login_invalid",
    "provider_error": "cancelled",
    "code_missing": "login_invalid",
    "provider_unreachable": "unavailable",
    "provider_metadata": "unavailable",
    "token_error": "login_failed",
    "id_token_invalid": "login_failed",
    "userinfo_invalid": "login_failed",
    "assurance_too_low": "assurance",
    "personal_number_missing": "personal_number",
    "personal_number_invalid": "personal_number",
    "coordination_number_not_allowed": "coordination_number",
}
_MESSAGES = {
    "login_invalid": (
        "Inloggningssvaret hör inte till den här inloggningen. Börja om och försök igen.",
        "The login response does not belong to this login. Please start again.",
    ),
    "login_expired": (
        "Inloggningen har gått ut eller startades i en annan webbläsare. Försök igen.",
        "The login has expired or was started in another browser. Please try again.",
    ),
    "cancelled": (
        "Inloggningen avbröts eller misslyckades hos e-legitimationen.",
        "The login was cancelled or failed at the eID provider.",
    ),
    "unavailable": (
        "E-legitimationstjänsten går inte att nå just nu. Försök igen om en stund.",
        "The eID service cannot be reached right now. Please try again later.",
    ),
    "login_failed": (
        "Svaret från e-legitimationen kunde inte verifieras. Försök igen.",
        "The answer from the eID provider could not be verified. Please try again.",
    ),
    "assurance": (
        "E-legitimationen har för låg tillitsnivå. Logga in med BankID eller Freja eID Plus.",
        "The eID's assurance level is too low. Log in with BankID or Freja eID Plus.",
    ),
    "personal_number": (
        "E-legitimationen lämnade inget giltigt personnummer.",
        "The eID provider did not supply a valid personal identity number.",
    ),
    "coordination_number": (
        "Inloggning med samordningsnummer stöds inte här.",
        "Logging in with a coordination number is not supported here.",
    ),
}


class OidcError(ValueError):
    """A login was refused. ``reason`` is a fixed code (tests assert it); the message never
    contains claim values. :meth:`user_message` is the page text."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in _CATEGORIES:
            raise ValueError(f"unknown OIDC error reason {reason!r}")
        self.reason = reason
        self.category = _CATEGORIES[reason]
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def user_message(self, language: str = "sv") -> str:
        swedish, english = _MESSAGES[self.category]
        return english if language.startswith("en") else swedish


# -- configuration -------------------------------------------------------------------------


class OidcConfig(BaseModel):
    """One eID provider (an OP or a broker). Embeddable in a service's settings.

    Assurance: every configured check applies, and at least one must be configured:
    ``accepted_acr_values`` (the ID token's ``acr`` must be one of them) and/or
    ``freja_level_claim`` (that claim must equal ``required_freja_level``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Short name: the cookie name, the log and :attr:`EidIdentity.provider`.
    name: str = "eid"
    discovery_url: str
    #: Only for OPs whose issuer is not the discovery URL's prefix (OIDC Discovery §4.3).
    issuer: str | None = None
    client_id: str
    client_secret: SecretStr
    redirect_uri: str
    scopes: tuple[str, ...] = ("openid", SCOPE_NATURAL_PERSON_NUMBER, SCOPE_NATURAL_PERSON_INFO)
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"  # noqa: S105 - a method name, not a secret
    )
    personal_number_claim: str = PERSONAL_IDENTITY_NUMBER_CLAIM
    allow_coordination_numbers: bool = False
    #: Where the Swedish profile puts a samordningsnummer; brokers use the number claim.
    coordination_number_claim: str | None = COORDINATION_NUMBER_CLAIM
    accepted_acr_values: tuple[str, ...] = (LOA3, LOA4)
    #: Sent as ``acr_values`` (e.g. Idura's ``urn:grn:authn:se:bankid``); not a check.
    request_acr_values: tuple[str, ...] = ()
    freja_level_claim: str | None = None
    required_freja_level: str = FREJA_PLUS
    #: Extra authorization request parameters (``ui_locales``, ``prompt``, ...).
    extra_authorization_params: dict[str, str] = {}
    #: ``when_missing``: ask the userinfo endpoint only if the ID token lacks the number.
    userinfo: Literal["never", "when_missing", "always"] = "when_missing"
    id_token_algorithms: tuple[str, ...] = ID_TOKEN_ALGORITHMS
    #: Audiences besides ``client_id`` that may appear in ``aud`` (OIDC Core §3.1.3.7 step 3).
    trusted_audiences: tuple[str, ...] = ()
    leeway_seconds: int = 60
    max_id_token_age_seconds: int = 600
    login_lifetime_seconds: int = 600
    metadata_ttl_seconds: int = 3600

    @field_validator("id_token_algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(ID_TOKEN_ALGORITHMS)
        if unknown or not value:
            raise ValueError(f"id_token_algorithms must be a subset of {ID_TOKEN_ALGORITHMS}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.replace("_", "").replace("-", "").isalnum() or not value.isascii():
            raise ValueError("name must be ASCII letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _rules(self) -> OidcConfig:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        if not self.accepted_acr_values and not self.freja_level_claim:
            raise ValueError("configure accepted_acr_values or freja_level_claim (assurance)")
        if self.issuer is None and not self.discovery_url.endswith(DISCOVERY_SUFFIX):
            raise ValueError(f"discovery_url must end with {DISCOVERY_SUFFIX} or set issuer")
        for url in (self.discovery_url, self.redirect_uri):
            if not url.startswith(("https://", "http://")) or "#" in url:
                raise ValueError("discovery_url and redirect_uri must be absolute http(s) URLs")
        reserved = {"state", "nonce", "code_challenge", "redirect_uri", "client_id", "scope"}
        if reserved & set(self.extra_authorization_params):
            raise ValueError("extra_authorization_params may not set protocol parameters")
        return self

    @property
    def expected_issuer(self) -> str:
        return self.issuer or self.discovery_url[: -len(DISCOVERY_SUFFIX)]


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the OP's discovery document we use (OIDC Discovery 1.0 §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    iss_parameter_supported: bool


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EidIdentity:
    """Who logged in. ``repr`` shows only the masked number (PersonalIdentityNumber's repr)."""

    personal_number: PersonalIdentityNumber
    given_name: str | None
    family_name: str | None
    birthdate: date | None
    acr: str | None
    provider: str

    @property
    def is_coordination_number(self) -> bool:
        return self.personal_number.is_coordination_number


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and the login cookie to set on that response."""

    authorization_url: str
    cookie_value: str


@dataclass(frozen=True)
class LoginResult:
    identity: EidIdentity
    return_to: str


# -- replay cache for state (single use, security.md I3) ------------------------------------


class ReplayCache(Protocol):
    def use_once(self, key: str, expires_at: int) -> bool:
        """True the first time ``key`` is seen before ``expires_at``, False afterwards."""
        ...


class MemoryReplayCache:
    """One process only (development, tests); use :class:`SqlReplayCache` with replicas."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def use_once(self, key: str, expires_at: int) -> bool:
        now = int(self._clock())
        with self._lock:
            if len(self._seen) > 1024:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True


_replay_metadata = sa.MetaData()
used_login_states = sa.Table(
    "oidc_used_login_state",
    _replay_metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)


class SqlReplayCache:
    """Used states in the service's database: a primary key insert is the atomic check."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    def create_table(self) -> None:
        _replay_metadata.create_all(self.engine, tables=[used_login_states])

    def use_once(self, key: str, expires_at: int) -> bool:
        now = int(self._clock())
        try:
            with db.session(self.engine) as unit:
                unit.execute(
                    sa.delete(used_login_states).where(used_login_states.c.expires_at < now)
                )
                unit.execute(
                    sa.insert(used_login_states).values(state_hash=key, expires_at=expires_at)
                )
        except sa.exc.IntegrityError:
            return False
        return True


# -- helpers -------------------------------------------------------------------------------


def safe_return_path(value: str | None, default: str = "/") -> str:
    """A same-origin path to return to after login; anything else becomes ``default``
    (no open redirect: ``//evil``, ``/\\evil``, schemes and control characters refused)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or len(value) > 512
        or any(ord(c) < 0x21 or c == "\\" for c in value)
    ):
        return default
    return value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_http_url(value: Any, development: bool) -> bool:
    if not isinstance(value, str) or "#" in value:
        return False
    return value.startswith("https://") or (development and value.startswith("http://"))


def _add_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _json_object(response: FetchResponse, what: str, reason: str) -> dict[str, Any]:
    try:
        value = strict_json.loads(response.body)
    except strict_json.StrictJSONError:
        raise OidcError(reason, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise OidcError(reason, f"{what} must be a JSON object")
    return value


@dataclass(frozen=True)
class _RsaKey:
    """An RSA public key from the OP's JWKS, for RS256 ID tokens only (RFC 7518 §3.3)."""

    public_key: rsa.RSAPublicKey
    kid: str | None

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


_VerificationKey = jose.Key | _RsaKey


def _rsa_key(jwk: Mapping[str, Any]) -> _RsaKey:
    if {"d", "p", "q"} & set(jwk):
        raise jose.JoseError("JWK contains private key material")
    n = int.from_bytes(jose.b64url_decode(str(jwk.get("n", ""))), "big")
    e = int.from_bytes(jose.b64url_decode(str(jwk.get("e", ""))), "big")
    if n.bit_length() < MIN_RSA_BITS or e < 3 or e % 2 == 0:
        raise jose.JoseError("RSA key too small or malformed")
    kid = jwk.get("kid")
    return _RsaKey(rsa.RSAPublicNumbers(e, n).public_key(), kid if isinstance(kid, str) else None)


def _parse_jwks(document: Mapping[str, Any]) -> list[tuple[str, _VerificationKey]]:
    """(alg, key) pairs of the usable signing keys; others (enc, P-384, ...) are skipped."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise OidcError("provider_metadata", "JWKS has no keys array")
    usable: list[tuple[str, _VerificationKey]] = []
    for jwk in keys[:MAX_JWKS_KEYS]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        try:
            if jwk.get("kty") == "RSA":
                usable.append(("RS256", _rsa_key(jwk)))
                continue
            public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "kid")}
            key = jose.key_from_jwk(public)
        except (jose.JoseError, ValueError):
            continue
        if "alg" in jwk and jwk["alg"] not in (key.alg, "Ed25519"):
            continue
        usable.append((key.alg, key))
    return usable


def _check_id_token_header(jws: jose.CompactJWS, allowed: tuple[str, ...]) -> str:
    """RFC 8725 §3.1: the algorithm comes from our allow-list; ``crit`` is not understood."""
    alg = "EdDSA" if jws.alg == "Ed25519" else jws.alg
    if alg.lower() == "none" or alg.upper().startswith("HS") or alg not in allowed:
        raise OidcError("id_token_invalid", "ID token algorithm is not allowed")
    if "crit" in jws.header:
        raise OidcError("id_token_invalid", "ID token has a critical header we do not understand")
    if jose.normalise_typ(jws.header.get("typ")) not in _JWT_TYPES:
        raise OidcError("id_token_invalid", "ID token typ is not JWT")
    return alg


# -- the relying party ---------------------------------------------------------------------


class OidcRelyingParty:
    """eID login against one OP. Thread-safe; create one per configured provider at start-up.

    ``client`` is the service's guarded outbound client (every OP call goes through it);
    ``login_key`` seals the login cookie (derive it with :meth:`from_master_key`);
    ``development`` allows ``http`` endpoints on loopback and a non-Secure cookie.
    """

    def __init__(
        self,
        config: OidcConfig,
        client: OutboundClient,
        *,
        login_key: bytes,
        replay_cache: ReplayCache,
        development: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.client = client
        self.development = development
        self._replay = replay_cache
        self._clock = clock
        self._sealer = CookieSealer(login_key, f"{LOGIN_COOKIE_PURPOSE}/{config.name}")
        self.login_cookie = CookiePolicy(
            f"intyg_login_{config.name}",
            secure=not development,
            path=urlsplit(config.redirect_uri).path or "/",
            max_age=config.login_lifetime_seconds,
        )
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires = 0.0
        self._jwks: list[tuple[str, _VerificationKey]] = []
        self._jwks_fetched = 0.0

    @classmethod
    def from_master_key(
        cls,
        config: OidcConfig,
        client: OutboundClient,
        master_key: MasterKeyInput,
        *,
        replay_cache: ReplayCache,
        development: bool = False,
    ) -> OidcRelyingParty:
        key = derive_key(master_key, f"{LOGIN_COOKIE_PURPOSE}/{config.name}")
        return cls(
            config, client, login_key=key, replay_cache=replay_cache, development=development
        )

    def _now(self) -> int:
        return int(self._clock())

    # -- discovery and keys (OIDC Discovery 1.0 §4; OIDC Core §10.1.1) ---------------------

    def metadata(self) -> ProviderMetadata:
        """The OP's metadata, fetched through the guarded client and cached."""
        with self._lock:
            if self._metadata is None or self._clock() >= self._metadata_expires:
                self._metadata = self._fetch_metadata()
                self._metadata_expires = self._clock() + self.config.metadata_ttl_seconds
            return self._metadata

    def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self.client.fetch(url, "application/json")
        except OutboundError as exc:
            logger.warning("eID %s: %s fetch failed (%s)", self.config.name, what, exc.reason)
            raise OidcError("provider_unreachable", f"{what} could not be fetched") from None
        return _json_object(response, what, "provider_metadata")

    def _fetch_metadata(self) -> ProviderMetadata:
        doc = self._get(self.config.discovery_url, "discovery document")
        if doc.get("issuer") != self.config.expected_issuer:
            raise OidcError("provider_metadata", "discovery issuer differs from the configured")
        endpoints = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        if not all(_is_http_url(doc.get(name), self.development) for name in endpoints):
            raise OidcError("provider_metadata", "discovery lacks https endpoints")
        userinfo = doc.get("userinfo_endpoint")
        if userinfo is not None and not _is_http_url(userinfo, self.development):
            raise OidcError("provider_metadata", "userinfo_endpoint is not an https URL")
        methods = doc.get("code_challenge_methods_supported")
        if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
            raise OidcError("provider_metadata", "OP does not support PKCE S256")
        algorithms = doc.get("id_token_signing_alg_values_supported")
        if isinstance(algorithms, list) and not set(algorithms) & set(
            self.config.id_token_algorithms
        ):
            raise OidcError("provider_metadata", "OP signs ID tokens with no allowed algorithm")
        return ProviderMetadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=userinfo,
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported")
            is True,
        )

    def _signing_keys(self, jwks_uri: str, kid: Any) -> list[tuple[str, _VerificationKey]]:
        with self._lock:
            known = any(k.kid == kid for _, k in self._jwks) if kid is not None else self._jwks
            stale = self._clock() - self._jwks_fetched >= self.config.metadata_ttl_seconds
            may_refetch = self._clock() - self._jwks_fetched >= JWKS_REFETCH_SECONDS
            if not self._jwks or stale or (not known and may_refetch):
                self._jwks = _parse_jwks(self._get(jwks_uri, "JWKS"))
                self._jwks_fetched = self._clock()
            return self._jwks

    # -- authorization request (OIDC Core §3.1.2.1; RFC 7636 §4) ---------------------------

    def begin_login(self, return_to: str = "/") -> LoginStart:
        """A fresh ``state`` (256 bits), ``nonce`` and PKCE verifier, sealed into the cookie."""
        metadata = self.metadata()
        state = secrets.token_urlsafe(STATE_BYTES)
        nonce = secrets.token_urlsafe(STATE_BYTES)
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            **self.config.extra_authorization_params,
        }
        if self.config.request_acr_values:
            params["acr_values"] = " ".join(self.config.request_acr_values)
        sealed = {
            "iss": metadata.issuer,
            "state": state,
            "nonce": nonce,
            "cv": verifier,
            "rt": safe_return_path(return_to),
        }
        cookie = self._sealer.seal(sealed, self.config.login_lifetime_seconds, now=self._now())
        return LoginStart(_add_query(metadata.authorization_endpoint, params), cookie)

    def login_response(self, return_to: str = "/") -> RedirectResponse:
        """303 to the OP with the login cookie set (for a service's ``/login`` route)."""
        start = self.begin_login(return_to)
        response = RedirectResponse(start.authorization_url, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        self.login_cookie.set(response, start.cookie_value)
        return response

    def clear_login_cookie(self, response: Response) -> None:
        self.login_cookie.clear(response)

    # -- callback (OIDC Core §3.1.2.5-7; RFC 9207 §2.4; RFC 9700 §4.7) ---------------------

    def callback(self, request: Request) -> LoginResult:
        """Complete the login from a callback request (query parameters + login cookie)."""
        query = request.query_params
        repeated = [
            name for name in ("state", "code", "iss", "error") if len(query.getlist(name)) > 1
        ]
        if repeated:
            raise OidcError("state_mismatch", "repeated callback parameters")
        return self.complete_login(dict(query), self.login_cookie.read(request))

    def complete_login(self, params: Mapping[str, str], login_cookie: str | None) -> LoginResult:
        """Check state against this browser's cookie (once), exchange the code, validate the
        ID token and extract the identity. Raises :class:`OidcError`; returns only on success."""
        try:
            result = self._complete_login(params, login_cookie)
        except OidcError as exc:
            logger.warning(
                "eID login refused (provider=%s, reason=%s)", self.config.name, exc.reason
            )
            metrics.EID_LOGINS.labels(self.config.name, exc.reason).inc()
            raise
        metrics.EID_LOGINS.labels(self.config.name, "completed").inc()
        return result

    def _complete_login(self, params: Mapping[str, str], login_cookie: str | None) -> LoginResult:
        state = params.get("state")
        if not state:
            raise OidcError("state_missing", "callback without state")
        try:
            sealed = self._sealer.open(login_cookie, now=self._now())
        except SessionError:
            raise OidcError("login_expired", "no valid login cookie in this browser") from None
        if not hmac.compare_digest(str(sealed.get("state", "")).encode(), state.encode()):
            raise OidcError("state_mismatch", "state does not belong to this browser's login")
        metadata = self.metadata()
        if sealed.get("iss") != metadata.issuer:
            raise OidcError("issuer_mismatch", "login was started at another provider")
        expires = self._now() + self.config.login_lifetime_seconds
        if not self._replay.use_once(_digest(f"{self.config.name}\x00{state}"), expires):
            raise OidcError("state_reused", "this login response was already used")
        self._check_response_issuer(params, metadata)
        if "error" in params:
            raise OidcError("provider_error", "the provider returned an error")
        code = params.get("code")
        if not code:
            raise OidcError("code_missing", "callback without code")
        tokens = self._exchange_code(metadata, code, str(sealed["cv"]))
        claims = self.validate_id_token(
            tokens["id_token"], nonce=str(sealed["nonce"]), access_token=tokens["access_token"]
        )
        claims = self._with_userinfo(metadata, claims, tokens["access_token"])
        identity = self.identity_from_claims(claims)
        logger.info("eID login completed (provider=%s, acr=%s)", self.config.name, identity.acr)
        return LoginResult(identity, safe_return_path(str(sealed.get("rt", "/"))))

    def _check_response_issuer(self, params: Mapping[str, str], metadata: ProviderMetadata) -> None:
        """RFC 9207 §2.4: compare ``iss`` when present; require it when the OP announces it."""
        iss = params.get("iss")
        if iss is None and metadata.iss_parameter_supported:
            raise OidcError("issuer_mismatch", "authorization response lacks iss")
        if iss is not None and iss != metadata.issuer:
            raise OidcError("issuer_mismatch", "authorization response from another issuer")

    def _exchange_code(
        self, metadata: ProviderMetadata, code: str, verifier: str
    ) -> dict[str, str]:
        """Token request (OIDC Core §3.1.3.1, RFC 6749 §4.1.3, RFC 7636 §4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        headers: dict[str, str] = {}
        secret = self.config.client_secret.get_secret_value()
        if self.config.token_endpoint_auth_method == "client_secret_basic":  # noqa: S105
            # RFC 6749 §2.3.1: form-urlencode id and secret before base64.
            pair = f"{quote_plus(self.config.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + _base64(pair)
        else:
            form["client_id"] = self.config.client_id
            form["client_secret"] = secret
        try:
            response = self.client.post_form(metadata.token_endpoint, form, headers=headers)
        except OutboundError as exc:
            if exc.reason == "status":
                raise OidcError("token_error", "the provider refused the code") from None
            raise OidcError("provider_unreachable", "token endpoint failed") from None
        body = _json_object(response, "token response", "token_error")
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise OidcError("token_error", "token_type must be Bearer")
        if not isinstance(body.get("id_token"), str) or not isinstance(
            body.get("access_token"), str
        ):
            raise OidcError("token_error", "token response lacks id_token or access_token")
        return {"id_token": body["id_token"], "access_token": body["access_token"]}

    # -- ID token validation (OIDC Core §3.1.3.7) ------------------------------------------

    def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims after every check of §3.1.3.7 (steps 2-11) and ``at_hash``."""
        metadata = self.metadata()
        try:
            jws = jose.parse_jws(id_token)
        except jose.JoseError:
            raise OidcError("id_token_invalid", "ID token is not a compact JWS") from None
        alg = _check_id_token_header(jws, self.config.id_token_algorithms)
        self._verify_signature(jws, alg, metadata)
        try:
            claims = jws.claims()
        except jose.JoseError:
            raise OidcError("id_token_invalid", "ID token payload is not a JSON object") from None
        if claims.get("iss") != metadata.issuer:
            raise OidcError("id_token_invalid", "ID token iss is not the provider")
        self._check_audience(claims)
        try:
            jose.check_time_claims(
                claims,
                now=self._now(),
                leeway=self.config.leeway_seconds,
                require=("exp", "iat"),
                max_iat_age=self.config.max_id_token_age_seconds,
            )
        except jose.JoseError as exc:
            raise OidcError("id_token_invalid", f"ID token {exc}") from None
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise OidcError("id_token_invalid", "ID token nonce does not match")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise OidcError("id_token_invalid", "ID token sub missing")
        if access_token is not None and "at_hash" in claims:
            digest = _ACCESS_TOKEN_HASH[alg](access_token.encode("ascii")).digest()
            if claims["at_hash"] != jose.b64url_encode(digest[: len(digest) // 2]):
                raise OidcError("id_token_invalid", "ID token at_hash does not match")
        return claims

    def _verify_signature(self, jws: jose.CompactJWS, alg: str, metadata: ProviderMetadata) -> None:
        kid = jws.header.get("kid")
        keys = self._signing_keys(metadata.jwks_uri, kid)
        candidates = [k for a, k in keys if a == alg and (kid is None or k.kid == kid)]
        if not candidates:
            raise OidcError("id_token_invalid", "no provider key for the ID token")
        if not any(key.verify(jws.signature, jws.signing_input) for key in candidates):
            raise OidcError("id_token_invalid", "ID token signature is not valid")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        """Step 3-5: our client id is an audience, other audiences are trusted, azp rules."""
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        client_id = self.config.client_id
        if not isinstance(audiences, list) or client_id not in audiences:
            raise OidcError("id_token_invalid", "ID token aud does not contain our client id")
        trusted = {client_id, *self.config.trusted_audiences}
        if not all(isinstance(a, str) and a in trusted for a in audiences):
            raise OidcError("id_token_invalid", "ID token has an untrusted audience")
        azp = claims.get("azp")
        if len(audiences) > 1 and azp is None:
            raise OidcError("id_token_invalid", "ID token with several audiences lacks azp")
        if azp is not None and azp != client_id:
            raise OidcError("id_token_invalid", "ID token azp is not our client id")

    # -- userinfo (OIDC Core §5.3) ---------------------------------------------------------

    def _needs_userinfo(self, claims: Mapping[str, Any]) -> bool:
        if self.config.userinfo == "always":
            return True
        return self.config.userinfo == "when_missing" and not self._number_claim_present(claims)

    def _with_userinfo(
        self, metadata: ProviderMetadata, claims: dict[str, Any], access_token: str
    ) -> dict[str, Any]:
        if not self._needs_userinfo(claims) or metadata.userinfo_endpoint is None:
            return claims
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            response = self.client.post_form(metadata.userinfo_endpoint, {}, headers=headers)
        except OutboundError as exc:
            reason = "userinfo_invalid" if exc.reason == "status" else "provider_unreachable"
            raise OidcError(reason, "userinfo request failed") from None
        if not response.content_type.lower().startswith("application/json"):
            raise OidcError("userinfo_invalid", "userinfo must be JSON")
        info = _json_object(response, "userinfo", "userinfo_invalid")
        if info.get("sub") != claims["sub"]:
            # §5.3.4: a response for another subject is a substitution attack.
            raise OidcError("userinfo_invalid", "userinfo sub differs from the ID token")
        protected = {"iss", "aud", "azp", "exp", "iat", "nonce", "acr", "auth_time", "at_hash"}
        merged = {k: v for k, v in info.items() if k not in protected}
        merged.update(claims)
        return merged

    # -- identity (protocols.md §7.2 rules, §7.6) ------------------------------------------

    def _number_claim_present(self, claims: Mapping[str, Any]) -> bool:
        names = (self.config.personal_number_claim, self.config.coordination_number_claim)
        return any(name in claims for name in names if name)

    def check_assurance(self, claims: Mapping[str, Any]) -> None:
        """LoA3 or better (``acr``), and/or Freja registration level ``PLUS``."""
        if (
            self.config.accepted_acr_values
            and claims.get("acr") not in self.config.accepted_acr_values
        ):
            raise OidcError("assurance_too_low", "acr is not an accepted assurance level")
        if self.config.freja_level_claim and (
            claims.get(self.config.freja_level_claim) != self.config.required_freja_level
        ):
            raise OidcError("assurance_too_low", "Freja registration level is too low")

    def personal_number(self, claims: Mapping[str, Any]) -> PersonalIdentityNumber:
        """The configured claim, 12 digits (an optional ``-`` before the last four), checked."""
        raw = claims.get(self.config.personal_number_claim)
        coordination_claim = self.config.coordination_number_claim
        if raw is None and coordination_claim and coordination_claim in claims:
            if not self.config.allow_coordination_numbers:
                raise OidcError("coordination_number_not_allowed", "coordination number given")
            raw = claims[coordination_claim]
        if raw is None:
            raise OidcError("personal_number_missing", "the personal number claim is missing")
        if not isinstance(raw, str) or len(raw.replace("-", "")) != 12 or raw.count("-") > 1:
            raise OidcError("personal_number_invalid", "personal number must have 12 digits")
        try:
            number = personnummer.parse(raw)
        except personnummer.PersonnummerError as exc:
            raise OidcError("personal_number_invalid", str(exc)) from None
        if number.is_coordination_number and not self.config.allow_coordination_numbers:
            raise OidcError("coordination_number_not_allowed", "coordination number given")
        return number

    def identity_from_claims(self, claims: Mapping[str, Any]) -> EidIdentity:
        self.check_assurance(claims)
        number = self.personal_number(claims)
        acr = claims.get("acr")
        return EidIdentity(
            personal_number=number,
            given_name=_text_claim(claims, "given_name"),
            family_name=_text_claim(claims, "family_name"),
            birthdate=_birthdate(claims.get("birthdate")),
            acr=acr if isinstance(acr, str) else None,
            provider=self.config.name,
        )


def _text_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value[:200] if isinstance(value, str) and value else None


def _birthdate(value: Any) -> date | None:
    """OIDC Core §5.1 ``birthdate`` ``YYYY-MM-DD``; ``0000`` (year withheld) gives None."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
