"""SD-JWT-based Verifiable Credentials (draft-ietf-oauth-sd-jwt-vc-18), on :mod:`intyg.sdjwt`.

- Header ``typ`` is ``dc+sd-jwt`` (§3.2.1); the legacy ``vc+sd-jwt`` is not accepted.
- ``vct`` is required; ``iss``, ``nbf``, ``exp``, ``cnf``, ``vct``, ``vct#integrity``,
  ``aka_vcts`` and ``status`` must never be selectively disclosable (§3.2.2.2), which the
  issuer refuses to do and the verifier rejects (security.md T094).
- Issuer keys are found by an injected resolver (§3.5 and ecosystem mechanisms): JWT VC
  Issuer Metadata, DIDs or an X.509 chain. The credential never supplies the key that
  verifies it: a ``jwk``, ``jku`` or ``x5u`` in the issuer header is refused (T093).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from intyg import did, jose, sdjwt, status, strict_json
from intyg.fetch import Fetch, FetchError

SD_JWT_VC_TYP = "dc+sd-jwt"
#: Claims that MUST NOT be selectively disclosable, nor anything beneath them (§3.2.2.2).
NON_SELECTIVELY_DISCLOSABLE = frozenset(
    {"iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "aka_vcts", "status"}
)
#: Header parameters through which a token would name its own verification key.
_SELF_KEY_HEADERS = ("jwk", "jku", "x5u")
WELL_KNOWN_JWT_VC_ISSUER = "/.well-known/jwt-vc-issuer"
MAX_METADATA_BYTES = 256 * 1024


class SDJWTVCError(sdjwt.SDJWTError):
    """An SD-JWT VC was refused (also an :class:`intyg.sdjwt.SDJWTError`)."""


@dataclass(frozen=True)
class VerifiedVC:
    """A verified SD-JWT VC presentation (draft -18 §3.5 plus RFC 9901 §7.3)."""

    vct: str
    issuer: str | None
    claims: dict[str, Any]
    disclosed_paths: tuple[sdjwt.ClaimPath, ...]
    key_binding: dict[str, Any] | None
    #: Parsed ``status`` reference (``intyg.status.StatusListReference``) or ``None``; the
    #: verifier's policy decides whether to fetch and check it.
    status: Any
    header: dict[str, Any]


# -- issuance -------------------------------------------------------------------------------


def issue_vc(
    payload: Mapping[Any, Any],
    issuer_key: jose.Key,
    *,
    holder_jwk: Mapping[str, Any] | None = None,
    header: Mapping[str, Any] | None = None,
    decoys: int = 2,
) -> str:
    """Issue an SD-JWT VC: ``payload`` as for :func:`intyg.sdjwt.issue`, ``typ`` forced."""
    plain = _check_issuer_payload(payload)
    if holder_jwk is None and "cnf" not in plain:
        raise SDJWTVCError("an SD-JWT VC for a holder needs cnf (pass holder_jwk)")
    full_header = {**(header or {}), "typ": SD_JWT_VC_TYP}
    for name in _SELF_KEY_HEADERS:
        if name in full_header:
            raise SDJWTVCError(f"header {name!r} is not used: verifiers resolve issuer keys")
    return sdjwt.issue(
        payload, issuer_key, header=full_header, holder_jwk=holder_jwk, decoys=decoys
    )


def _check_issuer_payload(payload: Mapping[Any, Any]) -> dict[str, Any]:
    """Issuer-side §3.2.2 rules; returns the top-level plaintext members."""
    if not isinstance(payload, Mapping):
        raise SDJWTVCError("payload must be an object")
    plain: dict[str, Any] = {}
    for key, value in payload.items():
        marked = isinstance(key, sdjwt.SD) or isinstance(value, sdjwt.SD)
        name = key.value if isinstance(key, sdjwt.SD) else key
        if name in NON_SELECTIVELY_DISCLOSABLE:
            if marked or _contains_sd(value):
                raise SDJWTVCError(f"{name!r} must not be selectively disclosable")
        if not marked:
            plain[name] = value
    check_vc_claims(plain)
    return plain


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _contains_sd(value: Any) -> bool:
    """Whether an :class:`intyg.sdjwt.SD` mark appears anywhere in ``value`` (keys included)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _JSON_SCALARS:  # most items: skip the slower ABC checks below
            continue
        if isinstance(item, sdjwt.SD):
            return True
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def check_vc_claims(claims: Mapping[str, Any], *, check_times: bool = True) -> Any:
    """§3.2.2.1-2 claim types, shared by issuer and verifier; returns the status reference.

    ``check_times=False`` skips the NumericDate checks of ``iat``, ``nbf`` and ``exp`` for a
    caller that has made them already (:func:`intyg.jose.check_time_claims`).
    """
    vct = claims.get("vct")
    if not isinstance(vct, str) or not vct:
        raise SDJWTVCError("vct is required and must be a string")
    if "iss" in claims and (not isinstance(claims["iss"], str) or not claims["iss"]):
        raise SDJWTVCError("iss must be a string")
    if "vct#integrity" in claims and not isinstance(claims["vct#integrity"], str):
        raise SDJWTVCError("vct#integrity must be a string")
    if "aka_vcts" in claims:
        aka = claims["aka_vcts"]
        if not isinstance(aka, list) or not all(isinstance(v, str) and v for v in aka):
            raise SDJWTVCError("aka_vcts must be an array of strings")
        if vct in aka or len(set(aka)) != len(aka):
            raise SDJWTVCError("aka_vcts must not repeat vct or itself")
    for name in ("iat", "nbf", "exp") if check_times else ():
        try:
            jose.numeric_date(claims, name)
        except jose.JoseError as exc:
            raise SDJWTVCError(str(exc)) from exc
    if "status" not in claims:
        return None
    try:
        return status.parse_status_reference(claims["status"])
    except ValueError as exc:
        raise SDJWTVCError(f"status: {exc}") from exc


# -- verification ---------------------------------------------------------------------------


def verify_vc(
    text: str,
    resolver: sdjwt.IssuerKeyResolver,
    *,
    require_key_binding: bool = True,
    audience: str | None = None,
    nonce: str | None = None,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    kb_max_age: int = sdjwt.DEFAULT_KB_MAX_AGE_SECONDS,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    required_claims: Collection[str] = (),
) -> VerifiedVC:
    """Verify an SD-JWT VC presentation (draft -18 §3.5; RFC 9901 §7.3).

    ``resolver(header, unverified_claims) -> Key`` ties the key to the issuer (see
    :func:`issuer_key_resolver`); a key that cannot be tied to the issuer means rejection.
    ``required_claims`` adds claims that must be present (e.g. ``("exp",)``).
    """
    try:
        verified = sdjwt.verify(
            text,
            _refusing_self_keys(resolver),
            require_key_binding=require_key_binding,
            audience=audience,
            nonce=nonce,
            now=now,
            leeway=leeway,
            kb_max_age=kb_max_age,
            algorithms=algorithms,
            typ=SD_JWT_VC_TYP,
            required_claims=required_claims,
        )
    except SDJWTVCError:
        raise
    except sdjwt.SDJWTError as exc:
        raise SDJWTVCError(str(exc)) from exc
    disclosed_names = {path[0] for path in verified.disclosed_paths}  # top-level claim names
    if not NON_SELECTIVELY_DISCLOSABLE.isdisjoint(disclosed_names):
        name = min(NON_SELECTIVELY_DISCLOSABLE.intersection(disclosed_names))
        raise SDJWTVCError(f"{name!r} must not be delivered in a disclosure")
    # sdjwt.verify has already checked iat, nbf and exp as NumericDates.
    status_reference = check_vc_claims(verified.claims, check_times=False)
    claims = verified.claims
    return VerifiedVC(  # positional: vct, issuer, claims, disclosed_paths, key_binding, ...
        claims["vct"],
        claims.get("iss"),
        claims,
        verified.disclosed_paths,
        verified.key_binding,
        status_reference,
        verified.header,
    )


def _refusing_self_keys(resolver: sdjwt.IssuerKeyResolver) -> sdjwt.IssuerKeyResolver:
    if not callable(resolver) or isinstance(resolver, jose.Key):
        raise SDJWTVCError("an issuer key resolver is required")

    def resolve(header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        for name in _SELF_KEY_HEADERS:
            if name in header:
                raise SDJWTVCError(f"issuer header {name!r} is never a key source")
        return resolver(header, claims)

    return resolve


# -- issuer key resolution (§3.5 and ecosystem mechanisms) ----------------------------------


def jwt_vc_issuer_metadata_url(iss: str) -> str:
    """§5 (JWT VC Issuer Metadata): ``https://{host}/.well-known/jwt-vc-issuer{path}``."""
    parts = urlsplit(iss)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise SDJWTVCError("iss must be an https URL without query or fragment")
    if "@" in parts.netloc:
        raise SDJWTVCError("iss must not contain user information")
    return f"https://{parts.netloc}{WELL_KNOWN_JWT_VC_ISSUER}{parts.path.rstrip('/')}"


class MetadataKeyResolver:
    """Issuer key from JWT VC Issuer Metadata (draft -18 §5), fetched with ``fetch``.

    The metadata ``issuer`` must equal ``iss`` exactly; it carries exactly one of
    ``jwks`` / ``jwks_uri``; the key is chosen by the header ``kid`` (or is the only one).
    ``trusted_issuers``, when given, limits which ``iss`` values are looked up at all.
    """

    def __init__(self, fetch: Fetch, *, trusted_issuers: Collection[str] | None = None):
        self.fetch = fetch
        self.trusted_issuers = None if trusted_issuers is None else frozenset(trusted_issuers)

    def __call__(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise SDJWTVCError("iss is required to find the issuer's metadata")
        if self.trusted_issuers is not None and iss not in self.trusted_issuers:
            raise SDJWTVCError("issuer is not trusted")
        metadata = self._get_json(jwt_vc_issuer_metadata_url(iss), "application/json")
        if metadata.get("issuer") != iss:
            raise SDJWTVCError("issuer metadata: issuer does not equal iss")
        if ("jwks" in metadata) == ("jwks_uri" in metadata):
            raise SDJWTVCError("issuer metadata: exactly one of jwks and jwks_uri is required")
        jwks = metadata.get("jwks")
        if jwks is None:
            uri = metadata["jwks_uri"]
            if not isinstance(uri, str) or urlsplit(uri).scheme != "https":
                raise SDJWTVCError("issuer metadata: jwks_uri must be an https URL")
            jwks = self._get_json(uri, "application/jwk-set+json, application/json")
        return key_from_jwks(jwks, header.get("kid"))

    def _get_json(self, url: str, accept: str) -> dict[str, Any]:
        try:
            response = self.fetch(url, accept)
            document = strict_json.loads(response.body, max_bytes=MAX_METADATA_BYTES)
        except FetchError as exc:
            raise SDJWTVCError(f"issuer metadata could not be retrieved: {exc}") from exc
        except strict_json.StrictJSONError as exc:
            raise SDJWTVCError(f"issuer metadata: {exc}") from exc
        if not isinstance(document, dict):
            raise SDJWTVCError("issuer metadata must be a JSON object")
        return document


def key_from_jwks(jwks: Any, kid: Any) -> jose.Key:
    """The one signing key of a JWK Set matching ``kid`` (or the only key when no kid)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise SDJWTVCError("JWK Set must be an object with a keys array")
    if kid is not None and not isinstance(kid, str):
        raise SDJWTVCError("kid must be a string")
    candidates = [
        jwk
        for jwk in jwks["keys"]
        if isinstance(jwk, dict)
        and jwk.get("use", "sig") == "sig"
        and (kid is None or jwk.get("kid") == kid)
    ]
    if len(candidates) != 1:
        raise SDJWTVCError("no unique issuer key for this kid")
    try:
        return jose.key_from_jwk(candidates[0])
    except jose.JoseError as exc:
        raise SDJWTVCError(f"issuer key: {exc}") from exc


class DIDKeyResolver:
    """Issuer key from a DID (did:jwk, did:web, ...) named by ``iss`` and the header ``kid``.

    ``resolve_verification_key(did_url, fetch) -> Key`` defaults to
    :func:`intyg.did.resolve_verification_key`.
    """

    def __init__(
        self,
        fetch: Fetch | None = None,
        resolve_verification_key: Callable[[str, Fetch | None], jose.Key] | None = None,
    ):
        self.fetch = fetch
        self.resolve_verification_key = resolve_verification_key

    def __call__(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        iss, kid = claims.get("iss"), header.get("kid")
        if not isinstance(iss, str) or not iss.startswith("did:"):
            raise SDJWTVCError("iss must be a DID for DID-based key resolution")
        if not isinstance(kid, str) or not kid:
            raise SDJWTVCError("kid is required for DID-based key resolution")
        did_url = iss + kid if kid.startswith("#") else kid
        if not did_url.startswith(iss + "#"):
            raise SDJWTVCError("kid must be a verification method of the iss DID")
        resolve = self.resolve_verification_key or did.resolve_verification_key
        try:
            return resolve(did_url, self.fetch)
        except SDJWTVCError:
            raise
        except (ValueError, FetchError) as exc:
            raise SDJWTVCError(f"DID resolution failed: {exc}") from exc


class X5CKeyResolver:
    """Issuer key from the ``x5c`` header, through an injected chain validator.

    ``validate_chain(x5c, header) -> Key`` must check the chain against the trust anchors
    (and, per HAIP, refuse a self-signed leaf) and return the end-entity key; tying the
    certificate subject to ``iss`` is part of that policy.
    """

    def __init__(self, validate_chain: Callable[[list[str], Mapping[str, Any]], jose.Key]):
        self.validate_chain = validate_chain

    def __call__(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        x5c = header.get("x5c")
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) and c for c in x5c):
            raise SDJWTVCError("x5c must be a non-empty array of certificates")
        try:
            return self.validate_chain(list(x5c), header)
        except SDJWTVCError:
            raise
        except ValueError as exc:
            raise SDJWTVCError(f"x5c chain rejected: {exc}") from exc


def issuer_key_resolver(
    *,
    metadata: MetadataKeyResolver | None = None,
    did: DIDKeyResolver | None = None,
    x5c: X5CKeyResolver | None = None,
) -> sdjwt.IssuerKeyResolver:
    """Dispatch to the mechanisms this verifier allows: ``x5c`` header, DID ``iss``,
    https ``iss`` (metadata). A credential that needs a mechanism not given is rejected."""

    def resolve(header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        iss = claims.get("iss")
        chosen: sdjwt.IssuerKeyResolver | None
        if "x5c" in header:
            chosen = x5c
        elif isinstance(iss, str) and iss.startswith("did:"):
            chosen = did
        elif isinstance(iss, str) and iss.startswith("https://"):
            chosen = metadata
        else:
            raise SDJWTVCError("no way to tie the signing key to the issuer")
        if chosen is None:
            raise SDJWTVCError("issuer key mechanism not allowed by this verifier")
        return chosen(header, claims)

    return resolve


def disclosable_claims(credential: str) -> list[sdjwt.ClaimPath]:
    """Claim paths a holder may choose from (the wallet's consent screen)."""
    return sdjwt.disclosable_paths(credential)


def present_vc(
    credential: str,
    claim_paths: Sequence[sdjwt.PathPattern],
    *,
    holder_key: jose.Key,
    aud: str,
    nonce: str,
    iat: int | None = None,
) -> str:
    """A presentation with a KB-JWT (SD-JWT VC §3.5 expects key binding when ``cnf``)."""
    return sdjwt.present(
        credential, claim_paths, holder_key=holder_key, aud=aud, nonce=nonce, iat=iat
    )
