"""did:web verifiers: the DID resolver behind OpenID4VP's ``decentralized_identifier``
client identifier prefix (OpenID4VP 1.0 §5.9.3; did:web "Read"; DID Core §5.3;
protocols.md §2.3; design.md "Every outbound fetch").

The request object's JWS ``kid`` must be a DID URL of the client's DID (checked by
:func:`intyg.oid4vp.verify_request_object`); the key is the verification method it names in
the DID document, listed under ``authentication`` or ``assertionMethod``
(:func:`intyg.did.verification_key`). Only ``did:web`` is accepted: a did:jwk or did:key
verifier would be nobody in particular.

The document is fetched only through the wallet's guarded outbound client (https and
public addresses outside development; in development http to loopback, as for request
URIs), at most :data:`intyg.did.MAX_DID_DOCUMENT_BYTES`, no redirects, and kept per DID for
``did_cache_seconds`` (a failed fetch is not kept). A document of another DID, a ``kid``
the document does not list, an unreachable host or an oversize document refuse the
request before anything is sent to the verifier.
"""

from __future__ import annotations

from collections.abc import Callable

from intyg import did, jose
from intyg.fetch import FetchError, FetchResponse

from .app import WalletContext

__all__ = ["REQUEST_SIGNING_RELATIONSHIPS", "document_url", "resolver"]

#: Verification relationships under which a verifier's request-signing key may be listed.
REQUEST_SIGNING_RELATIONSHIPS = ("authentication", "assertionMethod")
CACHE_KEY = "did_documents"
#: Most DID documents kept per process (oldest dropped first).
MAX_CACHED_DOCUMENTS = 256


def document_url(ctx: WalletContext, did_value: str) -> str:
    """Where the DID document of ``did_value`` is fetched from (did:web "Read")."""
    return did.did_web_url(did_value, allow_http_localhost=ctx.settings.is_development)


def _fetch(ctx: WalletContext, url: str) -> FetchResponse:
    # The guarded client's own limits, tightened: the document size, no redirects.
    try:
        return ctx.outbound.fetch(
            url, did.DID_ACCEPT, max_redirects=0, max_bytes=did.MAX_DID_DOCUMENT_BYTES
        )
    except FetchError as exc:
        raise did.DIDError(f"could not retrieve the did:web DID document ({exc})") from exc


def _document(ctx: WalletContext, did_value: str) -> dict[str, object]:
    now = ctx.clock()
    cache: dict[str, tuple[int, dict[str, object]]] = ctx.extras.setdefault(CACHE_KEY, {})
    cached = cache.get(did_value)
    if cached is not None and cached[0] > now:
        return cached[1]
    document = did.parse_did_web_document(did_value, _fetch(ctx, document_url(ctx, did_value)))
    while len(cache) >= MAX_CACHED_DOCUMENTS:
        cache.pop(next(iter(cache)))
    cache[did_value] = (now + ctx.settings.did_cache_seconds, document)
    return document


def resolver(ctx: WalletContext) -> Callable[[str], jose.Key]:
    """An :data:`intyg.oid4vp.DIDResolver`: ``kid`` (a DID URL) -> the verification key."""

    def resolve(kid: str) -> jose.Key:
        did_value, method, _ = did.split_did_url(kid)
        if method != "web":
            raise did.DIDError("only did:web verifiers are accepted")
        return did.verification_key(
            _document(ctx, did_value), kid, relationships=REQUEST_SIGNING_RELATIONSHIPS
        )

    return resolve
