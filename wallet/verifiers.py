"""Who is asking: the wallet's verifier registry and how a request's verifier was
identified (issue 4 item 5; security.md T058, T060, T064).

The registry file (``INTYG_WALLET_VERIFIER_REGISTRY_FILE``, JSON) lists known verifiers::

    {"verifiers": [{
        "match": ["x509_hash:...", "san_dns:verifier.example", "subject:CN=...,O=..."],
        "name": {"sv": "Arbetsgivaren AB", "en": "Employer Ltd"},
        "organisation_number": "556000-0000",
        "needs": [{"vct": "https://.../af-inskrivningsintyg/1",
                   "claims": [["registered"], ["registered_since"]]}]}]}

It is loaded into ``known_verifiers`` on start (one row per ``match`` key, so a verifier is
found by its full client id, by a SAN DNS name of its validated certificate, or by the
certificate's subject: the x509_hash changes when the certificate is renewed, the name in a
certificate that chains to our trust anchors does not). A did:web verifier
(``decentralized_identifier`` prefix, wallet/dids.py) is found by its full client id or by
its DID (``"did:web:verifier.example"``); it is identified by the DID document fetched from
its host. A request from a verifier that is
not in the registry gets a strong warning; a request for a credential type or a claim the
verifier did not register a need for is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from intyg import dcql, oid4vp, strict_json
from intyg.web import db

from . import dids
from .app import WalletContext
from .db import lock
from .models import KnownVerifier

__all__ = [
    "RegistryError",
    "VerifierIdentity",
    "beyond_need",
    "identify",
    "load_registry",
]

MAX_REGISTRY_BYTES = 1_000_000


class RegistryError(ValueError):
    """The registry file is not usable."""


@dataclass(frozen=True)
class VerifierIdentity:
    """What the consent screen and the consent record say about the verifier."""

    client_id: str
    prefix: str
    #: How the verifier was authenticated: certificate subject and SAN names, chain anchor.
    certificate_subject: str | None = None
    san_dns: tuple[str, ...] = ()
    san_uri: tuple[str, ...] = ()
    trust_anchor: str | None = None
    #: ``decentralized_identifier``: the DID and where its document was fetched from.
    did: str | None = None
    did_document_url: str | None = None
    #: Registry entry (None: unknown verifier).
    name: Mapping[str, str] | None = None
    organisation_number: str | None = None
    registry_key: str | None = None
    needs: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def known(self) -> bool:
        return self.name is not None

    def display_name(self, language: str) -> str:
        if self.name:
            return self.name.get(language) or self.name.get("sv") or next(iter(self.name.values()))
        if self.san_dns:
            return self.san_dns[0]
        if self.did_document_url:
            return urlsplit(self.did_document_url).netloc
        return self.certificate_subject or self.client_id

    @property
    def authenticated_by(self) -> str:
        """How the request's signer was identified, for the consent screen."""
        return self.certificate_subject or self.did or self.client_id

    def to_json(self) -> dict[str, Any]:
        """The controller part of a consent record (ISO/IEC TS 27560 "controller")."""
        return {
            "client_id": self.client_id,
            "client_id_prefix": self.prefix,
            "name": dict(self.name) if self.name else None,
            "organisation_number": self.organisation_number,
            "identified_by": {
                "certificate_subject": self.certificate_subject,
                "san_dns": list(self.san_dns),
                "san_uri": list(self.san_uri),
                "trust_anchor": self.trust_anchor,
                **({"did": self.did, "did_document": self.did_document_url} if self.did else {}),
                "registry_match": self.registry_key,
            },
        }


def _entries(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("verifiers"), list):
        raise RegistryError("the registry needs a 'verifiers' array")
    entries = []
    for entry in document["verifiers"]:
        keys = entry.get("match") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise RegistryError("every verifier needs a non-empty 'match' array of strings")
        if not isinstance(name, dict) or not all(isinstance(v, str) for v in name.values()):
            raise RegistryError("every verifier needs a 'name' object {sv, en}")
        needs = entry.get("needs", [])
        if not isinstance(needs, list) or not all(
            isinstance(n, dict) and isinstance(n.get("vct"), str) for n in needs
        ):
            raise RegistryError("'needs' must be an array of {vct, claims}")
        for need in needs:
            for path in need.get("claims", []):
                dcql.check_claims_path(path)
        entries.append(entry)
    return entries


def load_registry(ctx: WalletContext) -> int:
    """Replace ``known_verifiers`` with the file's entries. Every replica does the same, one
    at a time (start-up lock): a replica replacing the rows while another does would not
    see the other's new rows and insert its own beside them."""
    path = ctx.settings.verifier_registry_file
    if path is None:
        return 0
    raw = path.read_bytes()
    if len(raw) > MAX_REGISTRY_BYTES:
        raise RegistryError("the registry file is too large")
    entries = _entries(strict_json.loads(raw))
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        lock(unit, "wallet-verifier-registry")
        unit.execute(sa.delete(KnownVerifier))
        seen: set[str] = set()
        for entry in entries:
            for key in entry["match"]:
                if key in seen:
                    raise RegistryError("a match key appears twice in the registry")
                seen.add(key)
                unit.add(
                    KnownVerifier(
                        client_id=key[:512],
                        name=dict(entry["name"]),
                        organisation_number=entry.get("organisation_number"),
                        registered_needs=list(entry.get("needs", [])),
                        updated_at=now,
                    )
                )
    return len(entries)


def _match_keys(request: oid4vp.AuthorizationRequest) -> list[str]:
    keys = [request.client_id]
    chain = request.certificate_chain
    if chain is not None:
        keys.extend(f"san_dns:{name.lower()}" for name in chain.san_dns)
        keys.append(f"subject:{chain.subject}")
    if request.client_id_prefix == oid4vp.PREFIX_DID:
        keys.append(request.original_client_id)
    return keys


def identify(ctx: WalletContext, request: oid4vp.AuthorizationRequest) -> VerifierIdentity:
    """The verifier as authenticated by the request object, with its registry entry."""
    chain = request.certificate_chain
    keys = _match_keys(request)
    with db.session(ctx.engine, write=False) as unit:
        rows = {
            row.client_id: row
            for row in unit.scalars(
                sa.select(KnownVerifier).where(KnownVerifier.client_id.in_(keys))  # type: ignore[attr-defined]
            )
        }
    found = next((rows[key] for key in keys if key in rows), None)
    did_value = None
    if request.client_id_prefix == oid4vp.PREFIX_DID:
        did_value = request.original_client_id
    return VerifierIdentity(
        client_id=request.client_id,
        prefix=request.client_id_prefix,
        certificate_subject=chain.subject if chain else None,
        san_dns=chain.san_dns if chain else (),
        san_uri=chain.san_uri if chain else (),
        trust_anchor=chain.trust_anchor.subject.rfc4514_string() if chain else None,
        did=did_value,
        did_document_url=dids.document_url(ctx, did_value) if did_value else None,
        name=found.name if found else None,
        organisation_number=found.organisation_number if found else None,
        registry_key=found.client_id if found else None,
        needs=tuple(found.registered_needs) if found else (),
    )


def _covered(path: tuple[Any, ...], allowed: Iterable[list[Any]]) -> bool:
    # A registered path covers itself and everything below it; None matches any index.
    for pattern in allowed:
        if len(pattern) <= len(path) and all(
            p is None or p == q for p, q in zip(pattern, path, strict=False)
        ):
            return True
    return False


def beyond_need(
    identity: VerifierIdentity, query: dcql.DCQLQuery
) -> dict[str, list[tuple[Any, ...]]]:
    """Per credential query id: the requested claim paths beyond the registered need
    (an empty tuple stands for "this credential type was not registered at all")."""
    flagged: dict[str, list[tuple[Any, ...]]] = {}
    if not identity.known:
        return flagged
    for credential_query in query.credentials:
        types = set(credential_query.vct_values) or {
            t for inner in credential_query.type_values for t in inner
        }
        needs = [n for n in identity.needs if n.get("vct") in types]
        if not needs:
            flagged[credential_query.id] = [()]
            continue
        allowed = [p for n in needs for p in n.get("claims", [])]
        extra = [
            tuple(claim.path)
            for claim in credential_query.claims or ()
            if not _covered(tuple(claim.path), allowed)
        ]
        if extra:
            flagged[credential_query.id] = extra
    return flagged
