"""The trust list: which issuer may issue which credential type, with its keys.

A trust list file (JSON, or YAML when the name ends in ``.yaml``/``.yml``)::

    issuers:
      - id: af
        name: {sv: Arbetsförmedlingen, en: Swedish Public Employment Service}
        org_number: "202100-2114"
        vct: ["https://intyg.example/vct/af-inskrivningsintyg/1"]
        trust_anchors: ["af-ca.pem"]            # PEM files, relative to the list file
        trust_anchors_pem: ["-----BEGIN ..."]   # or inline PEM
        issuer_identifiers: ["https://af.intyg.example"]  # optional: allowed ``iss`` values
        metadata_issuer: "https://af.intyg.example"       # optional: JWT VC Issuer Metadata

Rules (issue 5 item 4; security.md T093, T096):

- Only the Arbetsförmedlingen entry (organisation number 202100-2114) may list the
  registration certificate ``vct``; a list that gives it to anyone else is refused on load.
- An issuer key comes from an ``x5c`` chain validated against **that entry's** anchors
  (HAIP 1.0: no anchor in the chain, no self-signed leaf), or from the JWT VC Issuer Metadata
  of the entry's ``metadata_issuer``; never from a ``jwk``/``jku``/``x5u`` in the token.
- With ``x5c``, an ``iss`` must be named by the leaf certificate (SAN URI, or its host
  as SAN DNS name), so one trusted issuer cannot sign in another's name; an ``iss`` that is
  not an https URL gets no exemption (T017: ``http`` near-misses, no scheme).
- A trusted issuer presenting a ``vct`` it is not listed for fails the check
  ``issuer_trusted_for_type`` (an ``extends`` chain or ``aka_vcts`` gives no authority, T096).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography.x509 import Certificate

from intyg import jose, sdjwt, sdjwt_vc, x509
from intyg.fetch import Fetch
from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT

__all__ = [
    "AF_ORG_NUMBER",
    "ISSUER_TRUSTED",
    "ISSUER_TRUSTED_FOR_TYPE",
    "IssuerKey",
    "TrustError",
    "TrustList",
    "TrustedIssuer",
    "dev_trust_list",
    "load_trust_list",
    "parse_trust_list",
]

AF_ORG_NUMBER = "202100-2114"
MYH_ORG_NUMBER = "202100-6230"
ISSUER_TRUSTED = "issuer_trusted"
ISSUER_TRUSTED_FOR_TYPE = "issuer_trusted_for_type"
#: Only these organisations may issue these types, whatever a trust list file says.
RESERVED_TYPES: Mapping[str, str] = MappingProxyType({REGISTRATION_CERTIFICATE_VCT: AF_ORG_NUMBER})
_SELF_KEY_HEADERS = ("jwk", "jku", "x5u")
MAX_TRUST_LIST_BYTES = 1024 * 1024
MAX_CACHED_CHAINS = 1024


class TrustError(sdjwt_vc.SDJWTVCError):
    """A credential's issuer is not trusted (for its type); ``check`` names the failed check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class TrustListError(ValueError):
    """A trust list file is malformed or breaks a rule."""


@dataclass(frozen=True)
class TrustedIssuer:
    """One trust list entry."""

    id: str
    name: Mapping[str, str]
    org_number: str
    vct: frozenset[str]
    trust_anchors: tuple[Certificate, ...] = ()
    issuer_identifiers: frozenset[str] = frozenset()
    metadata_issuer: str | None = None

    def summary(self) -> dict[str, Any]:
        """What a result shows about the issuer (no keys)."""
        return {"id": self.id, "name": dict(self.name), "org_number": self.org_number}


@dataclass(frozen=True)
class IssuerKey:
    """The trust list entry a credential's signing key belongs to, and the key."""

    issuer: TrustedIssuer
    key: jose.Key


class TrustList:
    """Lookup of issuers and their keys; immutable after load."""

    def __init__(self, issuers: Iterable[TrustedIssuer], fetch: Fetch | None = None) -> None:
        self.issuers = tuple(issuers)
        self.fetch = fetch
        ids = [issuer.id for issuer in self.issuers]
        if len(set(ids)) != len(ids):
            raise TrustListError("trust list ids must be unique")
        for issuer in self.issuers:
            for vct, owner in RESERVED_TYPES.items():
                if vct in issuer.vct and issuer.org_number != owner:
                    raise TrustListError(
                        f"trust list entry {issuer.id!r} may not issue {vct} "
                        "(only Arbetsförmedlingen may)"
                    )
        # _by_chain's answers of the current second (a chain is valid or not for the whole
        # second; an issuer presents the same chain in every credential).
        self._chains: dict[tuple[tuple[str, ...], str | None], IssuerKey | TrustError] = {}
        self._chains_at = 0

    def with_fetch(self, fetch: Fetch) -> TrustList:
        return TrustList(self.issuers, fetch)

    # -- issuer identification (issuer_trusted) --------------------------------------------

    def identify(
        self, header: Mapping[str, Any], claims: Mapping[str, Any], *, now: int
    ) -> IssuerKey:
        """The entry and key for a signed token: ``x5c`` chain or issuer metadata."""
        for name in _SELF_KEY_HEADERS:
            if name in header:
                raise TrustError(ISSUER_TRUSTED, f"header {name!r} is never a key source")
        iss = claims.get("iss")
        if "x5c" in header:
            return self._by_chain(header["x5c"], iss, now)
        if isinstance(iss, str):
            for issuer in self.issuers:
                if issuer.metadata_issuer == iss:
                    return IssuerKey(issuer, self._metadata_key(issuer, header, claims))
        raise TrustError(ISSUER_TRUSTED, "the issuer is not on the trust list")

    def _by_chain(self, x5c: Any, iss: Any, now: int) -> IssuerKey:
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
            raise TrustError(ISSUER_TRUSTED, "x5c must be a non-empty array of certificates")
        if iss is not None and not isinstance(iss, str):
            return self._chain_lookup(x5c, iss, now)
        if now != self._chains_at or len(self._chains) > MAX_CACHED_CHAINS:
            self._chains, self._chains_at = {}, now
        key = (tuple(x5c), iss)
        answer = self._chains.get(key)
        if answer is None:
            try:
                answer = self._chain_lookup(x5c, iss, now)
            except TrustError as exc:
                answer = exc
            self._chains[key] = answer
        if isinstance(answer, TrustError):
            raise TrustError(answer.check, str(answer))
        return answer

    def _chain_lookup(self, x5c: list[str], iss: Any, now: int) -> IssuerKey:
        matches: list[tuple[TrustedIssuer, x509.ValidatedChain]] = []
        for issuer in self.issuers:
            if not issuer.trust_anchors:
                continue
            try:
                matches.append((issuer, x509.validate_x5c(x5c, issuer.trust_anchors, now=now)))
            except x509.X509Error:
                continue
        if isinstance(iss, str) and len(matches) > 1:
            matches = [m for m in matches if iss in m[0].issuer_identifiers] or matches
        if len(matches) != 1:
            reason = "no" if not matches else "more than one"
            raise TrustError(
                ISSUER_TRUSTED, f"the certificate chain leads to {reason} trusted issuer"
            )
        issuer, chain = matches[0]
        if issuer.issuer_identifiers and iss not in issuer.issuer_identifiers:
            raise TrustError(ISSUER_TRUSTED, "iss is not an identifier of the trusted issuer")
        # SD-JWT VC "X.509 Certificates": whatever its scheme, iss must be named by the leaf.
        if isinstance(iss, str) and not _names(chain, iss):
            raise TrustError(ISSUER_TRUSTED, "iss is not named in the issuer certificate")
        return IssuerKey(issuer, chain.key)

    def _metadata_key(
        self, issuer: TrustedIssuer, header: Mapping[str, Any], claims: Mapping[str, Any]
    ) -> jose.Key:
        if self.fetch is None:
            raise TrustError(ISSUER_TRUSTED, "issuer metadata cannot be fetched here")
        resolver = sdjwt_vc.MetadataKeyResolver(
            self.fetch, trusted_issuers=[issuer.metadata_issuer]
        )
        try:
            return resolver(header, claims)
        except sdjwt.SDJWTError as exc:
            raise TrustError(ISSUER_TRUSTED, str(exc)) from None

    # -- authority for the type (issuer_trusted_for_type) ----------------------------------

    @staticmethod
    def check_type(issuer: TrustedIssuer, vct: Any) -> None:
        if not isinstance(vct, str) or vct not in issuer.vct:
            raise TrustError(
                ISSUER_TRUSTED_FOR_TYPE,
                f"{issuer.id} is not trusted to issue this credential type",
            )

    def key_resolver(self, *, now: int) -> sdjwt.IssuerKeyResolver:
        """An issuer key resolver for :func:`intyg.sdjwt_vc.verify_vc`: chain or metadata of
        a trusted issuer, then its authority for the ``vct`` (raises :class:`TrustError`)."""

        def resolve(header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
            found = self.identify(header, claims, now=now)
            self.check_type(found.issuer, claims.get("vct"))
            return found.key

        return resolve

    # -- status list tokens ----------------------------------------------------------------

    def status_list_key(
        self, issuer: TrustedIssuer, header: Mapping[str, Any], *, now: int
    ) -> jose.Key:
        """The key a status list token of ``issuer`` must be signed with: an ``x5c`` chain to
        that issuer's anchors, or its metadata key by ``kid``; never a key the token carries."""
        for name in _SELF_KEY_HEADERS:
            if name in header:
                raise TrustError(ISSUER_TRUSTED, f"header {name!r} is never a key source")
        if "x5c" in header and issuer.trust_anchors:
            try:
                return x509.validate_x5c(header["x5c"], issuer.trust_anchors, now=now).key
            except (x509.X509Error, TypeError) as exc:
                raise TrustError(ISSUER_TRUSTED, f"status list signer: {exc}") from None
        if issuer.metadata_issuer is not None:
            claims = {"iss": issuer.metadata_issuer}
            return self._metadata_key(issuer, header, claims)
        raise TrustError(ISSUER_TRUSTED, "status list token is not signed by the issuer")


def _names(chain: x509.ValidatedChain, iss: str) -> bool:
    host = urlsplit(iss).hostname or ""
    return iss in chain.san_uri or host.lower() in (name.lower() for name in chain.san_dns)


# -- loading -------------------------------------------------------------------------------


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustListError(f"{what} must be a list of strings")
    return tuple(value)


def _entry(raw: Any, base_dir: Path | None) -> TrustedIssuer:
    if not isinstance(raw, Mapping):
        raise TrustListError("each trust list entry must be an object")
    entry_id, org_number = raw.get("id"), raw.get("org_number")
    if not isinstance(entry_id, str) or not entry_id:
        raise TrustListError("trust list entry needs an id")
    if not isinstance(org_number, str) or not org_number:
        raise TrustListError(f"trust list entry {entry_id!r} needs an org_number")
    name = raw.get("name", entry_id)
    names = {"sv": name, "en": name} if isinstance(name, str) else name
    if not isinstance(names, Mapping) or not all(isinstance(v, str) for v in names.values()):
        raise TrustListError(f"trust list entry {entry_id!r}: name must be a string or sv/en")
    anchors: list[Certificate] = []
    try:
        for file_name in _strings(raw.get("trust_anchors"), "trust_anchors"):
            path = Path(file_name)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if path.exists():
                anchors.extend(x509.certs_from_pem(path.read_bytes()))
        for pem in _strings(raw.get("trust_anchors_pem"), "trust_anchors_pem"):
            anchors.extend(x509.certs_from_pem(pem))
    except (OSError, x509.X509Error) as exc:
        raise TrustListError(f"trust list entry {entry_id!r}: {exc}") from None
    metadata_issuer = raw.get("metadata_issuer")
    if metadata_issuer is not None and not isinstance(metadata_issuer, str):
        raise TrustListError(f"trust list entry {entry_id!r}: metadata_issuer must be a URL")
    vct = frozenset(_strings(raw.get("vct"), "vct"))
    if not vct:
        raise TrustListError(f"trust list entry {entry_id!r} lists no vct")
    return TrustedIssuer(
        id=entry_id,
        name=MappingProxyType(dict(names)),
        org_number=org_number,
        vct=vct,
        trust_anchors=tuple(anchors),
        issuer_identifiers=frozenset(_strings(raw.get("issuer_identifiers"), "issuer_identifiers")),
        metadata_issuer=metadata_issuer,
    )


def parse_trust_list(document: Any, base_dir: Path | None = None) -> TrustList:
    """A trust list from its parsed document ``{"issuers": [...]}``."""
    if not isinstance(document, Mapping) or not isinstance(document.get("issuers"), list):
        raise TrustListError("a trust list is an object with an issuers list")
    return TrustList(_entry(raw, base_dir) for raw in document["issuers"])


def load_trust_list(path: Path) -> TrustList:
    """Read a trust list file (JSON, or YAML for ``.yaml``/``.yml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrustListError(f"trust list file unreadable: {exc}") from None
    if len(text) > MAX_TRUST_LIST_BYTES:
        raise TrustListError("trust list file is too large")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise TrustListError(f"trust list file is not valid: {exc}") from None
    return parse_trust_list(document, path.parent)


#: The development trust list: the two issuer instances of ``intyg up``.
DEV_TRUST_LIST: Mapping[str, Any] = {
    "issuers": [
        {
            "id": "af",
            "name": {"sv": "Arbetsförmedlingen", "en": "Swedish Public Employment Service"},
            "org_number": AF_ORG_NUMBER,
            "vct": [REGISTRATION_CERTIFICATE_VCT],
            "trust_anchors": ["af-dev-ca.pem"],
        },
        {
            "id": "myh",
            "name": {
                "sv": "Myndigheten för yrkeshögskolan",
                "en": "Swedish National Agency for Higher Vocational Education",
            },
            "org_number": MYH_ORG_NUMBER,
            "vct": [QUALIFICATION_ATTESTATION_VCT],
            "trust_anchors": ["myh-dev-ca.pem"],
        },
    ]
}


def dev_trust_list(anchor_dir: Path) -> TrustList:
    """:data:`DEV_TRUST_LIST` with the issuers' development CA files from ``anchor_dir``
    (``af-dev-ca.pem``, ``myh-dev-ca.pem``; a missing file leaves that issuer untrusted)."""
    return parse_trust_list(DEV_TRUST_LIST, anchor_dir)


def issuers_for(trust: TrustList, vct_values: Collection[str]) -> Sequence[TrustedIssuer]:
    """Entries allowed to issue any of ``vct_values`` (for pages and documentation)."""
    return [issuer for issuer in trust.issuers if issuer.vct & set(vct_values)]
