"""Selective Disclosure for JWTs (SD-JWT), RFC 9901.

Issuance (§4, §5), holder presentation with Key Binding (§4.3, §7.2) and verification
(§7.1, §7.3). The compact serialization only (§4; the JWS JSON serialization of §8 is not
implemented). Digests are SHA-256 only (``_sd_alg`` ``sha-256``, §4.1.1); anything else is
refused.

Selectively disclosable parts of an input payload are marked with :class:`SD`, either on
the key or on the value of an object member, or on an array element::

    issue({"iss": "...", SD("given_name"): "Erik", "address": {"street": SD("Storgatan 1")},
           "nationalities": [SD("SE"), "FI"]}, issuer_key)

Claim paths (holder selection, reported disclosures) use the claims path pointer syntax of
OpenID4VP §7: strings are object keys, non-negative integers array indices, ``None`` all
elements of an array.

Security notes: the issuer JWT never supplies the key that verifies it (the caller passes a
key or a resolver); Key Binding is required by the verifier's *policy* argument, never
inferred from the presence of a KB-JWT (§7.3); the KB-JWT is verified with the ``cnf.jwk``
key only. Sizes are checked before anything is decoded (security.md T013).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, NoReturn

from intyg import jose, strict_json

SD_DIGESTS_KEY = "_sd"
ARRAY_DIGEST_KEY = "..."
SD_ALG_KEY = "_sd_alg"
SD_HASH_KEY = "sd_hash"
SD_ALG = "sha-256"
KB_JWT_TYP = "kb+jwt"
SEPARATOR = "~"

#: Whole SD-JWT (+KB) size limit and disclosure count limit, checked before decoding (T013).
MAX_SD_JWT_BYTES = 256 * 1024
MAX_DISCLOSURES = 512
#: Nesting limit across recursive disclosures (each disclosure is depth-limited on its own).
MAX_PROCESSING_DEPTH = 128
DEFAULT_KB_MAX_AGE_SECONDS = 300
SALT_BYTES = 16  # 128 bits, RFC 9901 §9.3

_RESERVED_NAMES = frozenset({SD_DIGESTS_KEY, ARRAY_DIGEST_KEY})
#: Names with a meaning in SD-JWT payloads; objects without any take the processor's fast path.
_SPECIAL_NAMES = _ISSUER_RESERVED_NAMES = _RESERVED_NAMES | {SD_ALG_KEY}

ClaimPath = tuple[str | int, ...]
PathPattern = Sequence[str | int | None]
IssuerKeyResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], jose.Key]


class SDJWTError(ValueError):
    """An SD-JWT was refused; the message is safe to show (it never echoes claim values)."""


# -- data model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SD:
    """Marks an object member (wrap its key or its value) or an array element as
    selectively disclosable at issuance."""

    value: Any

    def __hash__(self) -> int:
        return hash(("SD", self.value))


class Disclosure(NamedTuple):
    """A decoded Disclosure (§4.2.1 object property, §4.2.2 array element).

    A named tuple rather than a dataclass: verification builds one per disclosure.
    """

    salt: str
    name: str | None
    value: Any
    encoded: str
    digest: str

    @property
    def is_array_element(self) -> bool:
        return self.name is None


@dataclass(frozen=True)
class SDJWT:
    """A parsed, unverified SD-JWT or SD-JWT+KB in compact serialization (§4)."""

    issuer_jwt: str
    jws: jose.CompactJWS
    disclosures: tuple[Disclosure, ...]
    kb_jwt: str | None
    kb_jws: jose.CompactJWS | None
    #: ``<Issuer-signed JWT>~<Disclosure 1>~...~<Disclosure N>~``: the ``sd_hash`` input.
    sd_hash_input: str

    def serialize(self) -> str:
        return self.sd_hash_input + (self.kb_jwt or "")


@dataclass(frozen=True)
class Verified:
    """Result of :func:`verify`: the processed payload and what was disclosed."""

    header: dict[str, Any]
    claims: dict[str, Any]
    disclosed_paths: tuple[ClaimPath, ...]
    key_binding: dict[str, Any] | None
    sd_jwt: SDJWT


@dataclass(frozen=True)
class Decoded:
    """Result of :func:`decode_unverified`: NOTHING here has been verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    disclosed_paths: tuple[ClaimPath, ...]
    kb_header: dict[str, Any] | None
    kb_claims: dict[str, Any] | None
    verified: bool = False


# -- disclosures (§4.2) -------------------------------------------------------------------


def new_salt() -> str:
    """128 bits from the OS CSPRNG, base64url (RFC 9901 §9.3)."""
    return jose.b64url_encode(secrets.token_bytes(SALT_BYTES))


def digest(encoded: str) -> str:
    """§4.2.3: base64url(SHA-256(ASCII bytes of the encoded Disclosure))."""
    return jose.sha256_b64url(encoded)


def make_disclosure(value: Any, name: str | None = None, *, salt: str | None = None) -> Disclosure:
    """Create an object-property (``name`` given) or array-element Disclosure (§4.2.1-2)."""
    salt = new_salt() if salt is None else salt
    array = [salt, value] if name is None else [salt, name, value]
    encoded = jose.b64url_encode(strict_json.dumps(array).encode("utf-8"))
    return _new_disclosure((salt, name, value, encoded, jose.sha256_b64url(encoded)))


def decode_disclosure(encoded: str) -> Disclosure:
    """Decode one Disclosure strictly: base64url, JSON array of 2 or 3, string salt/name."""
    return decode_disclosures((encoded,))[0]


def decode_disclosures(encoded: Iterable[str]) -> tuple[Disclosure, ...]:
    """:func:`decode_disclosure` for each, in one loop (this is the verifier's hot path)."""
    loads, decode_and_digest = strict_json.loads, jose.b64url_decode_sha256
    decoded = []
    append = decoded.append
    for text in encoded:
        try:
            raw, text_digest = decode_and_digest(text)  # the digest as digest(text), §4.2.3
            array = loads(raw, max_bytes=MAX_SD_JWT_BYTES)
        except (jose.JoseError, strict_json.StrictJSONError) as exc:
            raise SDJWTError(f"malformed disclosure: {exc}") from exc
        if type(array) is not list or not 2 <= len(array) <= 3:
            raise SDJWTError("disclosure must be a JSON array of 2 or 3 elements")
        salt, value = array[0], array[-1]
        if type(salt) is not str:
            raise SDJWTError("disclosure salt must be a string")
        name = None
        if len(array) == 3:
            name = array[1]
            if type(name) is not str:
                raise SDJWTError("disclosure claim name must be a string")
        append(_new_disclosure((salt, name, value, text, text_digest)))
    return tuple(decoded)


#: ``Disclosure(*fields)`` without the Python-level ``__new__`` of a named tuple.
_new_disclosure = partial(tuple.__new__, Disclosure)


def decoy_digest() -> str:
    """256 random bits: indistinguishable from a SHA-256 digest of a Disclosure (§4.2.5)."""
    return jose.b64url_encode(secrets.token_bytes(32))


# -- issuance (§4, §5.1) ------------------------------------------------------------------


def issue(
    payload: Mapping[Any, Any],
    issuer_key: jose.Key,
    *,
    header: Mapping[str, Any] | None = None,
    holder_jwk: Mapping[str, Any] | None = None,
    decoys: int = 0,
) -> str:
    """Issue an SD-JWT: ``<Issuer-signed JWT>~<Disclosure 1>~...~<Disclosure N>~``.

    ``payload`` marks selectively disclosable parts with :class:`SD`. ``holder_jwk`` becomes
    ``cnf.jwk`` (RFC 7800) for Key Binding. Every object that has selectively disclosable
    members gets between ``decoys`` and ``2 * decoys`` decoy digests (§4.2.5), so the count
    of hidden claims does not leak. ``_sd`` arrays are sorted (§4.2.4.1).
    """
    encoded_payload, disclosures = blind_payload(payload, decoys=decoys)
    if holder_jwk is not None:
        if "cnf" in encoded_payload:
            raise SDJWTError("payload already has cnf; pass holder_jwk or cnf, not both")
        encoded_payload["cnf"] = {"jwk": _public_jwk(holder_jwk)}
    jwt = jose.encode_jws(strict_json.dumps(encoded_payload).encode("utf-8"), issuer_key, header)
    return SEPARATOR.join([jwt, *(d.encoded for d in disclosures)]) + SEPARATOR


def blind_payload(payload: Mapping[Any, Any], *, decoys: int = 0) -> tuple[dict, list]:
    """§4.2: replace marked claims by digests; return ``(payload, disclosures)``."""
    if not isinstance(payload, Mapping):
        raise SDJWTError("payload must be an object")
    if isinstance(decoys, bool) or not isinstance(decoys, int) or decoys < 0:
        raise SDJWTError("decoys must be a non-negative integer")
    disclosures: list[Disclosure] = []
    blinded = _blind_object(payload, disclosures, decoys)
    blinded[SD_ALG_KEY] = SD_ALG
    return blinded, disclosures


_SCALARS = (str, int, float, bool, type(None))


def _blind(value: Any, disclosures: list[Disclosure], decoys: int) -> Any:
    cls = type(value)
    if cls in _SCALARS:  # the common case, without the cost of ABC isinstance checks
        return value
    if cls is SD:
        raise SDJWTError("SD marks an object member or an array element, not a nested value")
    if cls is dict or isinstance(value, Mapping):
        return _blind_object(value, disclosures, decoys)
    if cls is list or cls is tuple:
        return _blind_array(value, disclosures, decoys)
    return value


def _blind_object(obj: Mapping[Any, Any], disclosures: list[Disclosure], decoys: int) -> dict:
    result: dict[str, Any] = {}
    names: set[str] = set()
    digests: list[str] = []
    for key, value in obj.items():
        name, member_sd = (key.value, True) if type(key) is SD else (key, False)
        if type(value) is SD:
            value, member_sd = value.value, True
        if type(name) is not str:
            raise SDJWTError("claim names must be strings")
        if name in _ISSUER_RESERVED_NAMES:
            raise SDJWTError(f"claim name {name!r} is reserved by SD-JWT")
        if name in names:
            raise SDJWTError(f"claim name {name[:40]!r} appears twice")
        names.add(name)
        blinded = _blind(value, disclosures, decoys)
        if member_sd:
            disclosure = make_disclosure(blinded, name)
            disclosures.append(disclosure)
            digests.append(disclosure.digest)
        else:
            result[name] = blinded
    if digests:
        digests.extend(decoy_digest() for _ in range(decoys + secrets.randbelow(decoys + 1)))
        result[SD_DIGESTS_KEY] = sorted(digests)
    return result


def _blind_array(items: Iterable[Any], disclosures: list[Disclosure], decoys: int) -> list:
    result: list[Any] = []
    for item in items:
        if type(item) is SD:
            disclosure = make_disclosure(_blind(item.value, disclosures, decoys))
            disclosures.append(disclosure)
            result.append({ARRAY_DIGEST_KEY: disclosure.digest})
        else:
            result.append(_blind(item, disclosures, decoys))
    return result


def _public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    try:
        jose.key_from_jwk(jwk)  # refuses private members and unsupported key types
    except jose.JoseError as exc:
        raise SDJWTError(f"holder key: {exc}") from exc
    return dict(jwk)


# -- parsing (§4) -------------------------------------------------------------------------


def parse(
    text: str, *, max_bytes: int = MAX_SD_JWT_BYTES, max_disclosures: int = MAX_DISCLOSURES
) -> SDJWT:
    """Split ``<JWT>~<D1>~...~<DN>~[<KB-JWT>]`` and decode its parts; nothing is verified.

    Size and disclosure count are checked on the raw text before any decoding (T013).
    """
    if not isinstance(text, str):
        raise SDJWTError("SD-JWT must be a string")
    if len(text) > max_bytes:
        raise SDJWTError(f"SD-JWT larger than {max_bytes} bytes")
    # At most max_disclosures + 1 separators: splitting one further tells whether there are more.
    parts = text.split(SEPARATOR, max_disclosures + 2)
    if len(parts) > max_disclosures + 2:
        raise SDJWTError(f"more than {max_disclosures} disclosures")
    if not text.isascii():
        raise SDJWTError("SD-JWT must be ASCII")
    if len(parts) < 2:
        raise SDJWTError("not an SD-JWT: no '~' separator")
    issuer_jwt, encoded, last = parts[0], parts[1:-1], parts[-1]
    if "" in encoded:
        raise SDJWTError("empty disclosure")
    jws = _parse_jws(issuer_jwt, "issuer-signed JWT")
    kb_jws = _parse_jws(last, "KB-JWT") if last else None
    disclosures = decode_disclosures(encoded)
    # Positional: a frozen dataclass is built noticeably faster without keywords.
    return SDJWT(issuer_jwt, jws, disclosures, last or None, kb_jws, text[: len(text) - len(last)])


def _parse_jws(token: str, what: str) -> jose.CompactJWS:
    try:
        return jose.parse_jws(token)
    except jose.JoseError as exc:
        raise SDJWTError(f"{what}: {exc}") from exc


# -- processing the payload (§7.1 steps 3-5) ----------------------------------------------


class _Processor:
    """One pass of RFC 9901 §7.1 step 3 over the issuer payload, with steps 4 and 5.

    ``placed`` and ``paths`` list, in the same order, each Disclosure used and the claim
    path where it landed.
    """

    __slots__ = ("by_digest", "paths", "placed", "seen")

    def __init__(self, disclosures: Sequence[Disclosure]) -> None:
        self.by_digest: dict[str, Disclosure] = {d.digest: d for d in disclosures}
        if len(self.by_digest) != len(disclosures):
            raise SDJWTError("the same disclosure is included more than once")
        self.seen: set[str] = set()
        self.placed: list[Disclosure] = []
        self.paths: list[ClaimPath] = []

    def run(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        sd_alg = payload.get(SD_ALG_KEY, SD_ALG)
        if sd_alg != SD_ALG:
            raise SDJWTError("unsupported _sd_alg (only sha-256)")
        result = self.object(payload, (), 0)
        result.pop(SD_ALG_KEY, None)  # step 3.5: remove the top-level _sd_alg
        if len(self.placed) != len(self.by_digest):  # step 5
            raise SDJWTError("a disclosure is not referenced by any digest")
        return result

    def value(self, value: Any, path: ClaimPath, depth: int) -> Any:
        cls = type(value)
        if cls is not dict and cls is not list:  # parsed JSON: only these two nest
            return value
        if depth > MAX_PROCESSING_DEPTH:
            raise SDJWTError("SD-JWT nested too deeply")
        if cls is dict:
            return self.object(value, path, depth)
        return self.array(value, path, depth)

    def object(self, obj: Mapping[str, Any], path: ClaimPath, depth: int) -> dict[str, Any]:
        if not _SPECIAL_NAMES.isdisjoint(obj):
            return self.object_with_special_names(obj, path, depth)
        result: dict[str, Any] = {}
        for name, member in obj.items():
            cls = type(member)
            if cls is dict or cls is list:  # scalars need neither a path nor a call
                result[name] = self.value(member, (*path, name), depth + 1)
            else:
                result[name] = member
        return result

    def object_with_special_names(
        self, obj: Mapping[str, Any], path: ClaimPath, depth: int
    ) -> dict[str, Any]:
        """§7.1 step 3.2: an object with ``_sd``, ``...`` or ``_sd_alg`` among its names."""
        if ARRAY_DIGEST_KEY in obj:
            raise SDJWTError("'...' may only appear alone in an array element")
        if SD_ALG_KEY in obj and depth:
            raise SDJWTError("_sd_alg is only allowed at the top level")
        result: dict[str, Any] = {}
        for name, member in obj.items():
            cls = type(member)
            if cls is dict or cls is list:
                if name != SD_DIGESTS_KEY:
                    result[name] = self.value(member, (*path, name), depth + 1)
            else:
                result[name] = member
        if SD_DIGESTS_KEY in obj:
            result.pop(SD_DIGESTS_KEY, None)  # a non-array _sd is refused just below
            self.embedded_object_digests(obj[SD_DIGESTS_KEY], result, path, depth)
        return result

    def embedded_object_digests(
        self, digests: Any, result: dict[str, Any], path: ClaimPath, depth: int
    ) -> None:
        """§7.1 step 3.2.2: digests in an ``_sd`` array."""
        if type(digests) is not list:
            raise SDJWTError("_sd must be an array of strings")
        self.take_all(digests)
        by_digest, place, add_path = self.by_digest, self.placed.append, self.paths.append
        for value in digests:
            disclosure = by_digest.get(value)
            if disclosure is None:  # a decoy or an undisclosed claim (step 3.2.2.3)
                if type(value) is not str:
                    raise SDJWTError("_sd must be an array of strings")
                continue
            name = disclosure.name
            if name is None or name in _SPECIAL_NAMES or name in result:
                self.refuse_placement(name)
            claim_path = (*path, name)
            place(disclosure)
            add_path(claim_path)
            member = disclosure.value
            cls = type(member)
            if cls is dict or cls is list:
                result[name] = self.value(member, claim_path, depth + 1)
            else:
                result[name] = member

    @staticmethod
    def refuse_placement(name: str | None) -> NoReturn:
        """Why a Disclosure found through an ``_sd`` digest cannot be placed (§7.1 step 3.2.2)."""
        if name is None:
            raise SDJWTError("array-element disclosure referenced from an _sd array")
        if name in _SPECIAL_NAMES:
            raise SDJWTError(f"disclosed claim name {name!r} is not allowed")
        raise SDJWTError(f"disclosed claim {name[:40]!r} already exists at its level")

    def array(self, items: list, path: ClaimPath, depth: int) -> list:
        """§7.1 step 3.2.3: ``{"...": digest}`` placeholders in arrays."""
        result: list[Any] = []
        for item in items:
            if isinstance(item, dict) and ARRAY_DIGEST_KEY in item:
                if len(item) != 1:
                    raise SDJWTError("array element digest object has keys besides '...'")
                value = item[ARRAY_DIGEST_KEY]
                if not isinstance(value, str):
                    raise SDJWTError("array element digest must be a string")
                disclosure = self.take(value)
                if disclosure is None:
                    continue  # step 3.3: undisclosed or decoy placeholder is removed
                if disclosure.name is not None:
                    raise SDJWTError("object-property disclosure referenced from an array")
                element_path = (*path, len(result))
                self.placed.append(disclosure)
                self.paths.append(element_path)
                result.append(self.value(disclosure.value, element_path, depth + 1))
            else:
                result.append(self.value(item, (*path, len(result)), depth + 1))
        return result

    def take(self, value: str) -> Disclosure | None:
        """Step 4: every digest may occur once, whether in the payload or in disclosures."""
        if value in self.seen:
            raise SDJWTError("a digest value appears more than once")
        self.seen.add(value)
        return self.by_digest.get(value)

    def take_all(self, digests: list) -> None:
        """Step 4 for a whole ``_sd`` array at once."""
        seen = self.seen
        before = len(seen)
        try:
            seen.update(digests)
        except TypeError:  # an unhashable member: not a digest string
            raise SDJWTError("_sd must be an array of strings") from None
        if len(seen) != before + len(digests):
            raise SDJWTError("a digest value appears more than once")


def process(
    payload: Mapping[str, Any], disclosures: Sequence[Disclosure]
) -> tuple[dict[str, Any], tuple[ClaimPath, ...]]:
    """RFC 9901 §7.1 steps 3-5: the processed payload and the paths of the disclosed claims."""
    processor = _Processor(disclosures)
    claims = processor.run(payload)
    return claims, tuple(processor.paths)


# -- verification (§7.1, §7.3) ------------------------------------------------------------


def verify(
    text: str | SDJWT,
    issuer_key: jose.Key | IssuerKeyResolver,
    *,
    require_key_binding: bool,
    audience: str | None = None,
    nonce: str | None = None,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    kb_max_age: int = DEFAULT_KB_MAX_AGE_SECONDS,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    typ: str | None = None,
    required_claims: Collection[str] = (),
) -> Verified:
    """Verify an SD-JWT (or SD-JWT+KB) as a Verifier, RFC 9901 §7.3.

    ``require_key_binding`` is the verifier's policy (§7.3 step 2): when true a KB-JWT
    for ``audience`` and ``nonce`` must be present, when false the presentation must end
    in ``~``. ``issuer_key`` is the issuer's key or a resolver
    ``(header, unverified_claims) -> Key``; the token never supplies its own key.
    """
    sd_jwt = text if isinstance(text, SDJWT) else parse(text)
    if require_key_binding:
        if audience is None or nonce is None:
            raise SDJWTError("key binding requires an expected audience and nonce")
        if sd_jwt.kb_jws is None:
            raise SDJWTError("key binding is required but no KB-JWT was presented")
    elif sd_jwt.kb_jws is not None:
        raise SDJWTError("a KB-JWT was presented where an SD-JWT ending in '~' was expected")
    header, payload = verify_issuer_jwt(sd_jwt.jws, issuer_key, algorithms=algorithms, typ=typ)
    claims, paths = process(payload, sd_jwt.disclosures)
    try:
        jose.check_time_claims(claims, now=now, leeway=leeway, require=required_claims)
    except jose.JoseError as exc:
        raise SDJWTError(f"SD-JWT: {exc}") from exc
    for name in required_claims:  # §7.1 step 6: required claims present after processing
        if name not in claims:
            raise SDJWTError(f"SD-JWT: missing required claim {name[:40]!r}")
    kb_claims = None
    if require_key_binding:
        kb_claims = verify_key_binding(
            sd_jwt,
            claims,
            audience=audience or "",  # both checked above; never empty here
            nonce=nonce or "",
            now=now,
            leeway=leeway,
            max_age=kb_max_age,
            algorithms=algorithms,
        )
    return Verified(header, claims, paths, kb_claims, sd_jwt)


def verify_issuer_jwt(
    jws: jose.CompactJWS,
    issuer_key: jose.Key | IssuerKeyResolver,
    *,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    typ: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """§7.1 step 2: algorithm policy, issuer key, signature; returns ``(header, payload)``."""
    try:
        jose.check_header(jws, algorithms=algorithms, typ=typ)
        payload = jws.claims()
        key = issuer_key if isinstance(issuer_key, jose.Key) else issuer_key(jws.header, payload)
        if not isinstance(key, jose.Key):
            raise SDJWTError("issuer key resolver returned no key")
        jose.verify_signature(jws, key)
    except jose.JoseError as exc:
        raise SDJWTError(f"issuer-signed JWT: {exc}") from exc
    return jws.header, payload


def verify_key_binding(
    sd_jwt: SDJWT,
    claims: Mapping[str, Any],
    *,
    audience: str,
    nonce: str,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int = DEFAULT_KB_MAX_AGE_SECONDS,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
) -> dict[str, Any]:
    """§7.3 step 5: the KB-JWT, checked against the ``cnf.jwk`` of the processed payload."""
    kb_jws = sd_jwt.kb_jws
    if kb_jws is None:
        raise SDJWTError("key binding is required but no KB-JWT was presented")
    holder_key = holder_key_from_cnf(claims)
    try:
        jose.check_header(kb_jws, algorithms=algorithms, typ=KB_JWT_TYP)
        jose.verify_signature(kb_jws, holder_key)
        kb_claims = kb_jws.claims()
        jose.check_time_claims(
            kb_claims, now=now, leeway=leeway, require=("iat",), max_iat_age=max_age
        )
        jose.check_audience(kb_claims, audience)
    except jose.JoseError as exc:
        raise SDJWTError(f"KB-JWT: {exc}") from exc
    if type(kb_claims.get("nonce")) is not str or kb_claims["nonce"] != nonce:
        raise SDJWTError("KB-JWT: nonce does not match")
    if kb_claims.get(SD_HASH_KEY) != jose.sha256_b64url(sd_jwt.sd_hash_input):  # sd_hash()
        raise SDJWTError("KB-JWT: sd_hash does not match the presented SD-JWT")
    return kb_claims


def holder_key_from_cnf(claims: Mapping[str, Any]) -> jose.Key:
    """The holder's key from ``cnf.jwk`` (RFC 7800 §3.2); the only key a KB-JWT may use."""
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or not isinstance(cnf.get("jwk"), dict):
        raise SDJWTError("key binding requires a cnf claim with a jwk")
    try:
        return jose.key_from_jwk(cnf["jwk"])
    except jose.JoseError as exc:
        raise SDJWTError(f"cnf.jwk: {exc}") from exc


def sd_hash(sd_hash_input: str) -> str:
    """§4.3.1: digest over ``<Issuer-signed JWT>~<Disclosures>~`` with the ``_sd_alg``."""
    return digest(sd_hash_input)


# -- holder (§7.2) ------------------------------------------------------------------------


def accept_issued(
    text: str,
    issuer_key: jose.Key | IssuerKeyResolver | None = None,
    *,
    holder_jwk: Mapping[str, Any] | None = None,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    typ: str | None = None,
) -> SDJWT:
    """Holder-side checks on an SD-JWT received at issuance (§7.2 step 1).

    Rejects an SD-JWT+KB, malformed or unreferenced disclosures and, when ``issuer_key``
    is given, a bad issuer signature; when ``holder_jwk`` is given, ``cnf.jwk`` must be
    that key (security.md T082).
    """
    sd_jwt = parse(text)
    if sd_jwt.kb_jws is not None:
        raise SDJWTError("an SD-JWT+KB is not acceptable at issuance")
    if issuer_key is not None:
        _, payload = verify_issuer_jwt(sd_jwt.jws, issuer_key, algorithms=algorithms, typ=typ)
    else:
        payload = _unverified_payload(sd_jwt)
    claims, _ = process(payload, sd_jwt.disclosures)
    if holder_jwk is not None:
        bound = holder_key_from_cnf(claims)
        if bound.thumbprint() != jose.jwk_thumbprint(holder_jwk):
            raise SDJWTError("cnf.jwk is not the holder's key")
    return sd_jwt


def present(
    sd_jwt: str | SDJWT,
    claim_paths: Iterable[PathPattern],
    *,
    holder_key: jose.Key | None = None,
    aud: str | None = None,
    nonce: str | None = None,
    iat: int | None = None,
) -> str:
    """Build a presentation disclosing ``claim_paths`` (§7.2 steps 2-3).

    Selecting a path discloses the claim there with everything below it, plus every
    parent Disclosure needed to reach it. Paths not present in the credential are refused.
    With ``holder_key`` a KB-JWT for ``aud``/``nonce`` is appended (§4.3).
    """
    sd_jwt = parse(sd_jwt) if isinstance(sd_jwt, str) else sd_jwt
    if sd_jwt.kb_jws is not None:
        raise SDJWTError("cannot present an SD-JWT that already has a KB-JWT")
    chosen = select_disclosures(sd_jwt, claim_paths)
    prefix = SEPARATOR.join([sd_jwt.issuer_jwt, *(d.encoded for d in chosen)]) + SEPARATOR
    if holder_key is None:
        return prefix
    return prefix + key_binding_jwt(prefix, holder_key, aud=aud, nonce=nonce, iat=iat)


def key_binding_jwt(
    sd_hash_input: str,
    holder_key: jose.Key,
    *,
    aud: str | None,
    nonce: str | None,
    iat: int | None = None,
) -> str:
    """§4.3: a KB-JWT (``typ`` ``kb+jwt``) over ``sd_hash_input``."""
    if not isinstance(aud, str) or not aud or not isinstance(nonce, str) or not nonce:
        raise SDJWTError("a KB-JWT needs a non-empty aud and nonce")
    claims = {
        "iat": int(time.time()) if iat is None else iat,
        "aud": aud,
        "nonce": nonce,
        SD_HASH_KEY: sd_hash(sd_hash_input),
    }
    return jose.encode_jws(claims, holder_key, {"typ": KB_JWT_TYP})


def select_disclosures(sd_jwt: SDJWT, claim_paths: Iterable[PathPattern]) -> list[Disclosure]:
    """The Disclosures needed for ``claim_paths``, in issuance order."""
    full, placed = _process_all(sd_jwt)
    wanted: set[str] = set()
    for pattern in claim_paths:
        concrete = _expand(full, tuple(pattern))
        if not concrete:
            raise SDJWTError("a requested claim path is not in the credential")
        for path in concrete:
            for disclosure, placed_path in placed:
                length = min(len(path), len(placed_path))
                if path[:length] == placed_path[:length]:  # ancestor, itself or descendant
                    wanted.add(disclosure.digest)
    return [d for d in sd_jwt.disclosures if d.digest in wanted]


def disclosable_paths(sd_jwt: str | SDJWT) -> list[ClaimPath]:
    """Paths of every selectively disclosable claim in an issued SD-JWT (for wallets/CLI)."""
    sd_jwt = parse(sd_jwt) if isinstance(sd_jwt, str) else sd_jwt
    return [path for _, path in _process_all(sd_jwt)[1]]


def _process_all(sd_jwt: SDJWT) -> tuple[dict[str, Any], list[tuple[Disclosure, ClaimPath]]]:
    processor = _Processor(sd_jwt.disclosures)
    claims = processor.run(_unverified_payload(sd_jwt))
    return claims, list(zip(processor.placed, processor.paths, strict=True))


def _expand(value: Any, pattern: tuple[str | int | None, ...]) -> list[ClaimPath]:
    """Concrete paths in ``value`` matching a claims path pointer (OpenID4VP §7.1)."""
    paths: list[tuple[ClaimPath, Any]] = [((), value)]
    for step in pattern:
        nxt: list[tuple[ClaimPath, Any]] = []
        for path, node in paths:
            if isinstance(step, str) and isinstance(node, dict) and step in node:
                nxt.append(((*path, step), node[step]))
            elif step is None and isinstance(node, list):
                nxt.extend(((*path, i), item) for i, item in enumerate(node))
            elif type(step) is int and isinstance(node, list) and 0 <= step < len(node):
                nxt.append(((*path, step), node[step]))
        paths = nxt
    return [p for p, _ in paths]


# -- display --------------------------------------------------------------------------------


def decode_unverified(text: str) -> Decoded:
    """Resolve the disclosures into the payload for display. NOTHING is verified: not the
    issuer signature, not the KB-JWT, not any time claim."""
    sd_jwt = parse(text)
    claims, paths = process(_unverified_payload(sd_jwt), sd_jwt.disclosures)
    kb_header = kb_claims = None
    if sd_jwt.kb_jws is not None:
        kb_header = sd_jwt.kb_jws.header
        kb_claims = _claims(sd_jwt.kb_jws, "KB-JWT")
    return Decoded(sd_jwt.jws.header, claims, paths, kb_header, kb_claims)


def _unverified_payload(sd_jwt: SDJWT) -> dict[str, Any]:
    return _claims(sd_jwt.jws, "issuer-signed JWT")


def _claims(jws: jose.CompactJWS, what: str) -> dict[str, Any]:
    try:
        return jws.claims()
    except jose.JoseError as exc:
        raise SDJWTError(f"{what}: {exc}") from exc
