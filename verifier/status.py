"""Status of presented credentials: IETF Token Status List (protocols.md §5.2; security.md
T106-T108, L11).

- The list is fetched through the guarded outbound client (``fetch``), never directly.
- The token's signature is checked with a key of **the credential's issuer** from the trust
  list (:meth:`verifier.trust.TrustList.status_list_key`), never a key the token carries.
- Verified lists are cached **in process memory** per (issuer, uri) for
  :func:`intyg.status.cache_lifetime` seconds (the token's ``ttl`` and ``exp`` clamped into
  the configured bounds, T108). Why memory and not a table: a status list is a public,
  signed document, so a replica fetching its own copy costs one request per ``ttl`` and
  needs no coordination, while a shared table would add a database write per fetch to the
  verification hot path and hold copies after they may be used. ``exp`` is re-checked on
  every use, so a cached list is never used past it (L11).
- Outcomes: a status value, :class:`StatusUnknown` (the list could not be retrieved: the
  template's policy decides) or :class:`StatusRejected` (anything else: bad signature,
  untrusted signer, ``sub`` mismatch, expired, index outside the list, bombs; fail closed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from intyg import jose, status
from intyg.fetch import Fetch

from .trust import TrustedIssuer, TrustError, TrustList

__all__ = ["StatusChecker", "StatusRejected", "StatusUnknown"]

MAX_CACHE_ENTRIES = 4096


class StatusUnknown(ValueError):
    """The status list could not be retrieved (network, timeout, HTTP error)."""


class StatusRejected(ValueError):
    """The status list was retrieved but is not acceptable, or names an unknown index."""


@dataclass(frozen=True)
class _Cached:
    token: status.StatusListToken
    until: int


class StatusChecker:
    """Fetch, verify and cache status list tokens; read a credential's status."""

    def __init__(
        self,
        trust: TrustList,
        fetch: Fetch,
        clock: Callable[[], int],
        *,
        min_cache_seconds: int,
        max_cache_seconds: int,
        leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        self.trust = trust
        self.fetch = fetch
        self.clock = clock
        self.min_cache_seconds = min_cache_seconds
        self.max_cache_seconds = max_cache_seconds
        self.leeway = leeway
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._lock = threading.Lock()

    def status(self, reference: status.StatusListReference, issuer: TrustedIssuer) -> int:
        """The status value of ``reference`` (0 valid, 1 invalid, 2 suspended, ...)."""
        token = self._token(reference.uri, issuer)
        try:
            return token.status(reference)
        except status.StatusError as exc:
            raise StatusRejected(str(exc)) from None

    def _token(self, uri: str, issuer: TrustedIssuer) -> status.StatusListToken:
        now = self.clock()
        key = (issuer.id, uri)
        cached = self._cache.get(key)
        if cached is not None and now < cached.until and not self._expired(cached.token, now):
            return cached.token
        try:
            text = status.fetch_status_list_token(uri, self.fetch)
        except status.StatusError as exc:
            if exc.__cause__ is not None:  # the fetch itself failed
                raise StatusUnknown("status list could not be retrieved") from None
            raise StatusRejected(str(exc)) from None
        token = self._verify(text, uri, issuer, now)
        lifetime = token.cache_lifetime(
            now=now, min_seconds=self.min_cache_seconds, max_seconds=self.max_cache_seconds
        )
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = _Cached(token, now + lifetime)
        return token

    def _verify(
        self, text: str, uri: str, issuer: TrustedIssuer, now: int
    ) -> status.StatusListToken:
        try:
            header = jose.parse_jws(text, max_bytes=status.MAX_STATUS_LIST_TOKEN_BYTES).header
            signer = self.trust.status_list_key(issuer, header, now=now)
            return status.verify_status_list_token(
                text, signer, uri=uri, now=now, leeway=self.leeway
            )
        except (jose.JoseError, status.StatusError, TrustError) as exc:
            raise StatusRejected(f"status list token: {exc}") from None

    def _expired(self, token: status.StatusListToken, now: int) -> bool:
        return token.exp is not None and now > token.exp + self.leeway

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
