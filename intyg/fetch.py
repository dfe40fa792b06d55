"""The shape of an outbound fetch, as the core sees it.

The core never opens a connection. A resolver that needs a document (did:web DID
documents, JWT VC issuer metadata, status list tokens, type metadata) takes a :data:`Fetch`
function; the services pass their one guarded HTTP client (https only outside development,
no private targets, size and time limits, no cross-host redirects), tests pass a dict.

A fetch blocks. Code that runs on an event loop may try a computation that usually needs no
fetch (everything cached) inside :func:`non_blocking`: a :func:`deferrable` fetch called
there raises :class:`WouldBlock` instead of fetching, and the caller runs the computation
again in a thread, where the fetch is allowed. The computation must be pure apart from its
fetches (it is started twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


class FetchError(Exception):
    """The document could not be retrieved (network, status, size, time, policy)."""


@dataclass(frozen=True)
class FetchResponse:
    """What a fetch returns: only 2xx responses become a FetchResponse."""

    body: bytes
    content_type: str = "application/json"
    #: Response headers a protocol needs (lower-case names), e.g. ``dpop-nonce``,
    #: ``retry-after``, ``cache-control``, ``www-authenticate``.
    headers: Mapping[str, str] = field(default_factory=dict)


#: ``fetch(url, accept)`` returns the 2xx response or raises :class:`FetchError`.
Fetch = Callable[[str, str], FetchResponse]


def fetch_from_mapping(documents: Mapping[str, bytes | FetchResponse]) -> Fetch:
    """A :data:`Fetch` over fixed documents, for tests and offline tools."""

    def fetch(url: str, accept: str) -> FetchResponse:
        try:
            document = documents[url]
        except KeyError:
            raise FetchError(f"not found: {url}") from None
        return document if isinstance(document, FetchResponse) else FetchResponse(document)

    return fetch


class WouldBlock(Exception):
    """A :func:`deferrable` fetch was called inside :func:`non_blocking`."""


_NON_BLOCKING: ContextVar[bool] = ContextVar("intyg_fetch_non_blocking", default=False)


@contextmanager
def non_blocking() -> Iterator[None]:
    """Within this block, :func:`deferrable` fetches raise :class:`WouldBlock`."""
    token = _NON_BLOCKING.set(True)
    try:
        yield
    finally:
        _NON_BLOCKING.reset(token)


def deferrable(fetch: Fetch) -> Fetch:
    """``fetch``, refusing with :class:`WouldBlock` inside :func:`non_blocking`."""

    def guarded(url: str, accept: str) -> FetchResponse:
        if _NON_BLOCKING.get():
            raise WouldBlock(url)
        return fetch(url, accept)

    return guarded
