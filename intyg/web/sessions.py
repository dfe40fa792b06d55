"""Browser sessions and CSRF tokens for the services' pages (design.md "House rules": sessions
in HttpOnly, Secure (outside development), SameSite cookies; CSRF protection on every form;
security.md T076, T078).

Framework-neutral pieces, reused by the issuer, the wallet and the verifier:

- :func:`derive_key` turns the configured master key into independent keys, one per purpose
  (HKDF-SHA256, RFC 5869), so a cookie key never equals an encryption or account key.
- :class:`CookieSealer` seals a small JSON object into a cookie value with AES-256-GCM. The
  purpose is authenticated, so a login cookie does not open as a session cookie, and the
  expiry sits inside the ciphertext, so a client cannot extend it.
- :class:`CookiePolicy` holds the attributes (``HttpOnly``, ``SameSite=Lax``, ``Secure``
  outside development, ``__Host-`` prefix where the browser allows it).
- :class:`SessionManager` issues a fresh session id at every login (T078: the pre-login
  cookie is replaced, never upgraded), loads and clears sessions.
- :func:`csrf_token` / :func:`check_csrf` are synchronizer tokens bound to the session id
  (OWASP CSRF cheat sheet, "Synchronizer Token Pattern"): a token from one session never
  passes in another.

The cookie is stateless, so logout alone would leave a copy of it valid until it expires.
:class:`EndedSessions` is the deny-list every service keeps in one of its tables (T078: the
old session id is dead at logout): a hash of each ended session id until the cookie would
have expired anyway, checked on every authenticated request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from sqlalchemy.dialects import postgresql, sqlite
from starlette.requests import HTTPConnection
from starlette.responses import Response

from intyg import jose, strict_json
from intyg.web import db
from intyg.web.crypto_store import MasterKey

__all__ = [
    "CSRF_FIELD",
    "BrowserSession",
    "CookiePolicy",
    "CookieSealer",
    "EndedSessions",
    "SessionError",
    "SessionManager",
    "check_csrf",
    "csrf_token",
    "derive_key",
]

KEY_BYTES = 32
NONCE_BYTES = 12
#: Browsers drop cookies above ~4096 bytes; refuse to read anything larger.
MAX_COOKIE_CHARS = 4000
#: Name of the hidden form field carrying the CSRF token.
CSRF_FIELD = "csrf_token"
SESSION_PURPOSE = "intyg/session-cookie/v1"
CSRF_PURPOSE = "intyg/csrf/v1"

MasterKeyInput = str | bytes | SecretStr | MasterKey


class SessionError(ValueError):
    """A cookie or CSRF token was refused; the message is safe to show and names no value."""


def _master_key_bytes(master_key: MasterKeyInput) -> bytes:
    if isinstance(master_key, MasterKey):
        return master_key.key
    if isinstance(master_key, SecretStr):
        master_key = master_key.get_secret_value()
    if isinstance(master_key, str):
        return MasterKey.from_config(master_key).key
    return MasterKey(bytes(master_key)).key


def derive_key(master_key: MasterKeyInput, purpose: str, length: int = KEY_BYTES) -> bytes:
    """A key for one ``purpose``, derived from the master key (RFC 5869 HKDF-SHA256).

    ``purpose`` goes into HKDF ``info``, so keys for different purposes are independent and
    rotating the master key rotates all of them.
    """
    if not purpose:
        raise ValueError("a key purpose is required")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(_master_key_bytes(master_key))


class CookieSealer:
    """Seals a JSON object with an expiry into a cookie value (AES-256-GCM, purpose as AAD).

    Form: ``b64url(nonce || ciphertext || tag)``; the plaintext is ``{"exp": ..., "d": data}``.
    """

    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("cookie key must be 32 bytes")
        self._aead = AESGCM(key)
        self._aad = purpose.encode("utf-8")

    @classmethod
    def from_master_key(cls, master_key: MasterKeyInput, purpose: str) -> CookieSealer:
        return cls(derive_key(master_key, purpose), purpose)

    def seal(self, data: Mapping[str, Any], max_age: int, *, now: int | None = None) -> str:
        expires = (int(time.time()) if now is None else now) + max_age
        plaintext = strict_json.dumps({"d": dict(data), "exp": expires}).encode("utf-8")
        nonce = secrets.token_bytes(NONCE_BYTES)
        value = jose.b64url_encode(nonce + self._aead.encrypt(nonce, plaintext, self._aad))
        if len(value) > MAX_COOKIE_CHARS:
            raise ValueError("sealed cookie would be too large for a browser")
        return value

    def open(self, value: str | None, *, now: int | None = None) -> dict[str, Any]:
        """The sealed object; :class:`SessionError` if absent, forged, of another purpose or
        expired."""
        if not value:
            raise SessionError("no cookie")
        if len(value) > MAX_COOKIE_CHARS:
            raise SessionError("cookie too large")
        try:
            raw = jose.b64url_decode(value)
            if len(raw) < NONCE_BYTES + 16:
                raise SessionError("malformed cookie")
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad)
            wrapped = strict_json.loads(plaintext)
        except (jose.JoseError, InvalidTag, strict_json.StrictJSONError):
            raise SessionError("cookie is not valid") from None
        current = int(time.time()) if now is None else now
        if not isinstance(wrapped, dict) or type(wrapped.get("exp")) is not int:
            raise SessionError("cookie is not valid")
        if current >= wrapped["exp"]:
            raise SessionError("cookie has expired")
        data = wrapped.get("d")
        if not isinstance(data, dict):
            raise SessionError("cookie is not valid")
        return data


@dataclass(frozen=True)
class CookiePolicy:
    """Cookie attributes. ``secure`` is true outside development (plain http on loopback).

    With ``secure`` and ``path="/"`` the name gets the ``__Host-`` prefix (RFC 6265bis
    §4.1.3.2): the browser then refuses the cookie from a sibling subdomain or over http.
    """

    base_name: str
    secure: bool = True
    path: str = "/"
    max_age: int = 8 * 3600
    same_site: Literal["lax", "strict"] = "lax"

    @property
    def name(self) -> str:
        if self.secure and self.path == "/":
            return f"__Host-{self.base_name}"
        return self.base_name

    def set(self, response: Response, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(
            self.name,
            value,
            max_age=self.max_age if max_age is None else max_age,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite=self.same_site,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path=self.path, secure=self.secure, httponly=True, samesite=self.same_site
        )

    def read(self, connection: HTTPConnection) -> str | None:
        return connection.cookies.get(self.name)


@dataclass(frozen=True)
class BrowserSession:
    """An opened session cookie. ``subject`` is the account key (never a personal number);
    ``None`` for an anonymous session that only carries CSRF protection."""

    sid: str
    subject: str | None
    issued_at: int
    expires_at: int
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        return self.subject is not None


class SessionManager:
    """Issues, loads and clears the session cookie of one service."""

    def __init__(self, sealer: CookieSealer, policy: CookiePolicy, csrf_key: bytes) -> None:
        self.sealer = sealer
        self.policy = policy
        self._csrf_key = csrf_key

    @classmethod
    def from_master_key(
        cls, master_key: MasterKeyInput, *, base_name: str, development: bool, max_age: int
    ) -> SessionManager:
        """Keys derived per service (``base_name``), so one service's cookie is not another's."""
        return cls(
            CookieSealer.from_master_key(master_key, f"{SESSION_PURPOSE}/{base_name}"),
            CookiePolicy(base_name, secure=not development, max_age=max_age),
            derive_key(master_key, f"{CSRF_PURPOSE}/{base_name}"),
        )

    def issue(
        self,
        response: Response,
        subject: str | None,
        data: Mapping[str, Any] | None = None,
        *,
        now: int | None = None,
    ) -> BrowserSession:
        """A new session with a new id, set on ``response`` (T078: rotate at every login)."""
        issued = int(time.time()) if now is None else now
        session = BrowserSession(
            sid=secrets.token_urlsafe(32),
            subject=subject,
            issued_at=issued,
            expires_at=issued + self.policy.max_age,
            data=dict(data or {}),
        )
        payload = {"sid": session.sid, "sub": subject, "iat": issued, "data": session.data}
        self.policy.set(response, self.sealer.seal(payload, self.policy.max_age, now=issued))
        return session

    def load(self, connection: HTTPConnection, *, now: int | None = None) -> BrowserSession | None:
        """The session from the request's cookie, or None if absent, forged or expired."""
        try:
            payload = self.sealer.open(self.policy.read(connection), now=now)
        except SessionError:
            return None
        sid, subject, issued, data = (payload.get(k) for k in ("sid", "sub", "iat", "data"))
        if not isinstance(sid, str) or type(issued) is not int or not isinstance(data, dict):
            return None
        if subject is not None and not isinstance(subject, str):
            return None
        return BrowserSession(sid, subject, issued, issued + self.policy.max_age, data)

    def clear(self, response: Response) -> None:
        self.policy.clear(response)

    def csrf_token(self, session: BrowserSession) -> str:
        return csrf_token(self._csrf_key, session)

    def check_csrf(self, session: BrowserSession | None, token: str | None) -> None:
        check_csrf(self._csrf_key, session, token)


@dataclass(frozen=True)
class EndedSessions:
    """Sessions ended before their cookie expires (logout; T078, OWASP Session Management
    Cheat Sheet "Manual Session Expiration"), kept in a table of the service.

    ``table`` has the unique column ``key`` and an ``expires_at`` column (Unix seconds);
    ``scope`` holds fixed column values that set these rows apart in a shared table (the
    issuer's ``jti_replay_cache`` ``kind``). ``reference`` turns a session id into the stored
    key: a hash, never the id, so a database dump revives no cookie. A row is needed only
    until the cookie's own expiry, which refuses the cookie anyway; :meth:`purge` then
    deletes it.
    """

    table: sa.Table
    key: str
    scope: Mapping[str, str] = field(default_factory=dict)
    reference: Callable[[str], str] = jose.sha256_b64url

    def end(self, unit: db.Session | sa.Connection, session: BrowserSession) -> None:
        """Record ``session`` as ended (in the caller's transaction); ending it twice (two
        logouts racing with one cookie) is no error."""
        dialect = postgresql if db.dialect_name(unit) == "postgresql" else sqlite
        values = {**self.scope, self.key: self.reference(session.sid)}
        statement = dialect.insert(self.table).values(**values, expires_at=session.expires_at)
        unit.execute(statement.on_conflict_do_nothing())

    def ended(self, unit: db.Session | sa.Connection, session: BrowserSession) -> bool:
        """Whether ``session`` was ended (check it before trusting an authenticated cookie)."""
        columns = self.table.c
        match = [columns[name] == value for name, value in self.scope.items()]
        found = unit.scalar(
            sa.select(sa.literal(1))
            .select_from(self.table)
            .where(columns[self.key] == self.reference(session.sid), *match)
        )
        return found is not None

    def purge(self, unit: db.Session | sa.Connection, now: int) -> int:
        """Delete the rows whose cookies have expired; -> how many."""
        columns = self.table.c
        match = [columns[name] == value for name, value in self.scope.items()]
        deleted = unit.execute(sa.delete(self.table).where(columns.expires_at < now, *match))
        return int(deleted.rowcount)  # type: ignore[attr-defined]


def csrf_token(key: bytes, session: BrowserSession) -> str:
    """The synchronizer token of ``session``: HMAC-SHA256 over its id."""
    digest = hmac.new(key, session.sid.encode("ascii"), hashlib.sha256).digest()
    return jose.b64url_encode(digest)


def check_csrf(key: bytes, session: BrowserSession | None, token: str | None) -> None:
    """Refuse a form post whose token is missing or belongs to another session."""
    if session is None:
        raise SessionError("no session: reload the page and try again")
    if not isinstance(token, str) or not token:
        raise SessionError("missing CSRF token")
    if not hmac.compare_digest(token.encode("ascii", "replace"), csrf_token(key, session).encode()):
        raise SessionError("CSRF token does not match this session")
