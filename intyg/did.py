"""Decentralized identifiers for intyg: did:jwk, did:key and did:web (DID Core 1.0).

Used for OpenID4VP's ``decentralized_identifier:`` client identifier prefix (§5.9.3: the key
comes from the DID document's verification method named by the JWS ``kid``), for
``kid`` values in OpenID4VCI key proofs and for W3C VC issuers.

- ``did:jwk`` (did-jwk spec): the DID is base64url(JWK); the only verification method is
  ``#0``. A JWK with private members is refused.
- ``did:key`` (W3C CCG did:key v0.7): ``z`` + base58btc(multicodec varint || public key) for
  P-256 (``p256-pub`` 0x1200, 33-byte compressed point) and Ed25519 (``ed25519-pub`` 0xed).
- ``did:web`` (W3C CCG did:web): the document is fetched through the caller's
  :data:`intyg.fetch.Fetch` (this module does no network I/O), parsed with
  :mod:`intyg.strict_json` (:func:`parse_did_web_document`), must carry ``id`` equal to the
  DID, and the key must be a verification method of that DID listed under a relationship
  the caller accepts (:func:`verification_key`, for callers that cache documents). In
  development, ``http`` is used for ``localhost`` and loopback IPv4 literals
  (``did:web:127.0.0.1%3A8404``), so services on one machine can name each other.

Only P-256 and Ed25519 public keys are ever returned (via :func:`intyg.jose.key_from_jwk`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from intyg import jose, strict_json
from intyg.fetch import Fetch, FetchError, FetchResponse

#: Longest DID URL accepted (a P-256 did:jwk is about 150 characters).
MAX_DID_URL_LENGTH = 2048
#: Largest did:web document accepted.
MAX_DID_DOCUMENT_BYTES = 100_000
#: Verification relationships a caller may ask for (DID Core §5.3).
RELATIONSHIPS = frozenset({"assertionMethod", "authentication"})
#: Multicodec codes (multiformats table) of the public keys did:key supports.
MULTICODEC_P256_PUB = 0x1200
MULTICODEC_ED25519_PUB = 0xED
DID_ACCEPT = "application/did+json, application/json"

_DID_CONTEXT = "https://www.w3.org/ns/did/v1"
_JWS_2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
_MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
_ALL_RELATIONSHIPS = (
    "assertionMethod",
    "authentication",
    "capabilityInvocation",
    "capabilityDelegation",
)
_DOCUMENT_MEDIA_TYPES = frozenset(
    {"application/did+json", "application/did+ld+json", "application/json", "application/ld+json"}
)
_PRIVATE_VM_MEMBERS = ("privateKeyJwk", "privateKeyMultibase", "privateKeyBase58", "secretKeyJwk")
_JWK_VM_TYPES = frozenset({"JsonWebKey", "JsonWebKey2020"})

# DID Core §3.1: did:method:method-specific-id, idchar = ALPHA / DIGIT / "." / "-" / "_" /
# pct-encoded; a DID URL may add a fragment. Paths and queries are refused separately.
_IDCHAR = r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})"
_DID = re.compile(rf"did:([a-z0-9]+):((?:{_IDCHAR}*:)*{_IDCHAR}+)")
_FRAGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_PORT_SEPARATOR = re.compile("%3a", re.IGNORECASE)


class DIDError(ValueError):
    """A DID, DID URL or DID document was refused; the message is safe to show."""


# -- DID URL syntax (DID Core §3.1, §3.2) --------------------------------------------------


def split_did_url(did_url: str) -> tuple[str, str, str | None]:
    """Split a DID URL into ``(did, method, fragment)``; paths and queries are refused."""
    if not isinstance(did_url, str) or len(did_url) > MAX_DID_URL_LENGTH:
        raise DIDError("DID URL must be a string of reasonable length")
    did, sep, fragment = did_url.partition("#")
    if "/" in did or "?" in did:
        raise DIDError("DID URL path and query are not supported")
    match = _DID.fullmatch(did)
    if match is None:
        raise DIDError("not a syntactically valid DID")
    if sep and not _FRAGMENT.fullmatch(fragment):
        raise DIDError("DID URL fragment is empty or malformed")
    return did, match.group(1), fragment if sep else None


# -- base58btc and multibase (draft-msporny-base58, multibase "z") -----------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}
#: Longest base58 text decoded; bounds the big-integer work (keys need < 50 characters).
MAX_BASE58_LENGTH = 256


def base58btc_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58: each leading zero byte becomes ``1``."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_B58_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    """Inverse of :func:`base58btc_encode`; any character outside the alphabet is refused."""
    if len(text) > MAX_BASE58_LENGTH:
        raise DIDError("base58 value too long")
    number = 0
    for char in text:
        index = _B58_INDEX.get(char)
        if index is None:
            raise DIDError("malformed base58btc")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes) -> tuple[int, int]:
    """Unsigned varint (multiformats spec): value and length; non-minimal forms refused."""
    value = 0
    for position, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            if position and byte == 0:
                raise DIDError("multicodec varint is not minimally encoded")
            return value, position + 1
    raise DIDError("malformed multicodec varint")


def encode_multikey(key: jose.Key) -> str:
    """Multikey ``publicKeyMultibase``: ``z`` + base58btc(multicodec || raw public key)."""
    public = key.public_key
    if isinstance(public, ec.EllipticCurvePublicKey):
        raw = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        codec = MULTICODEC_P256_PUB
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        codec = MULTICODEC_ED25519_PUB
    return "z" + base58btc_encode(_varint(codec) + raw)


def decode_multikey(value: str) -> jose.Key:
    """Inverse of :func:`encode_multikey`: only P-256 and Ed25519 public keys."""
    if not isinstance(value, str) or not value.startswith("z"):
        raise DIDError("only base58btc ('z') multibase keys are supported")
    data = base58btc_decode(value[1:])
    codec, offset = _read_varint(data)
    raw = data[offset:]
    if codec not in (MULTICODEC_P256_PUB, MULTICODEC_ED25519_PUB):
        raise DIDError("unsupported multikey type (only P-256 and Ed25519)")
    expected_length = 33 if codec == MULTICODEC_P256_PUB else 32
    if len(raw) != expected_length:
        raise DIDError("multikey public key has the wrong length")
    public: jose.PublicKey
    try:
        if codec == MULTICODEC_P256_PUB:
            # Compressed SEC1 point only: 0x02/0x03 prefix; off-curve points raise here.
            if raw[0] not in (2, 3):
                raise ValueError("not a compressed point")
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        else:
            public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise DIDError("multikey public key is not a valid compressed point or key") from exc
    return jose.key_from_public_key(public)


# -- did:jwk (did-jwk method specification) -----------------------------------------------


def encode_did_jwk(key: jose.Key) -> str:
    """did-jwk "Create": ``did:jwk:`` + base64url(UTF-8 JSON of the public JWK).

    Members are sorted and ``kid`` is left out, so one key gives one DID.
    """
    jwk = {k: v for k, v in sorted(key.public_jwk().items()) if k != "kid"}
    return "did:jwk:" + jose.b64url_encode(strict_json.dumps(jwk).encode("utf-8"))


def _did_jwk_document(did: str) -> dict[str, Any]:
    """did-jwk "Read": decode, validate the JWK, build the document."""
    try:
        jwk = strict_json.loads(jose.b64url_decode(did[len("did:jwk:") :]), max_bytes=4096)
    except (jose.JoseError, strict_json.StrictJSONError) as exc:
        raise DIDError("did:jwk does not hold base64url JSON") from exc
    if not isinstance(jwk, dict):
        raise DIDError("did:jwk does not hold a JWK object")
    try:
        jose.key_from_jwk(jwk)
    except jose.JoseError as exc:
        raise DIDError(f"did:jwk key refused: {exc}") from exc
    vm_id = did + "#0"
    use = jwk.get("use")
    relationships = () if use == "enc" else _ALL_RELATIONSHIPS
    document: dict[str, Any] = {
        "@context": [_DID_CONTEXT, _JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            {"id": vm_id, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk}
        ],
    }
    for relationship in relationships:
        document[relationship] = [vm_id]
    if use != "sig":
        document["keyAgreement"] = [vm_id]
    return document


# -- did:key (W3C CCG did:key v0.7) --------------------------------------------------------


def encode_did_key(key: jose.Key) -> str:
    """did:key "Create" for P-256 and Ed25519."""
    return "did:key:" + encode_multikey(key)


def _did_key_document(did: str) -> dict[str, Any]:
    """did:key "Read": the one Multikey verification method ``did:key:z...#z...``."""
    multibase = did[len("did:key:") :]
    decode_multikey(multibase)
    vm_id = f"{did}#{multibase}"
    document: dict[str, Any] = {
        "@context": [_DID_CONTEXT, _MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": vm_id,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": multibase,
            }
        ],
    }
    for relationship in _ALL_RELATIONSHIPS:
        document[relationship] = [vm_id]
    return document


def verification_method_id(did: str) -> str:
    """The ``kid`` a holder uses for its own did:jwk or did:key DID."""
    did, method, fragment = split_did_url(did)
    if fragment is not None:
        raise DIDError("expected a DID, not a DID URL")
    if method == "jwk":
        return did + "#0"
    if method == "key":
        return f"{did}#{did[len('did:key:') :]}"
    raise DIDError("verification method id is only implied for did:jwk and did:key")


# -- did:web (W3C CCG did:web, "Read (Resolve)") -------------------------------------------


def did_web_url(did: str, *, allow_http_localhost: bool = False) -> str:
    """The DID document URL of a did:web DID.

    ``:`` separates path segments; a port is written ``%3A``. Anything that could make the
    URL point elsewhere than the named host and path is refused: IP literals, userinfo,
    other percent-encodings, empty, ``.`` and ``..`` segments. ``allow_http_localhost``
    (development mode only) permits ``localhost`` and loopback IPv4 literals, over ``http``.
    """
    did, method, fragment = split_did_url(did)
    if method != "web" or fragment is not None:
        raise DIDError("expected a did:web DID")
    host_segment, *path = did[len("did:web:") :].split(":")
    host, port = _did_web_host(host_segment, allow_loopback=allow_http_localhost)
    for segment in path:
        if not _PATH_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise DIDError("did:web path segment is empty or not allowed")
    local = host == "localhost" or _is_loopback_ipv4(host)
    scheme = "http" if allow_http_localhost and local else "https"
    authority = f"{host}:{port}" if port else host
    location = "/".join(path) if path else ".well-known"
    return f"{scheme}://{authority}/{location}/did.json"


def _did_web_host(segment: str, *, allow_loopback: bool = False) -> tuple[str, str | None]:
    parts = _PORT_SEPARATOR.split(segment)
    if len(parts) > 2:
        raise DIDError("did:web host has more than one port")
    host, port = parts[0], parts[1] if len(parts) == 2 else None
    if "%" in host:
        raise DIDError("did:web host must not contain percent-encoded characters")
    if port is not None and (not _PORT.fullmatch(port) or int(port) > 65535):
        raise DIDError("did:web port is not valid")
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise DIDError("did:web host is not a valid DNS name")
    if allow_loopback and _is_loopback_ipv4(host):
        return host, port
    if _is_ip_address(host) or labels[-1].isdigit():
        raise DIDError("did:web must not use an IP address")
    return host.lower(), port


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback_ipv4(host: str) -> bool:
    """A loopback IPv4 address in its canonical dotted form (``127.0.0.1``, not ``127.1``)."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return address.is_loopback and str(address) == host


def _did_web_document(did: str, fetch: Fetch, allow_http_localhost: bool) -> dict[str, Any]:
    url = did_web_url(did, allow_http_localhost=allow_http_localhost)
    try:
        response = fetch(url, DID_ACCEPT)
    except FetchError as exc:
        raise DIDError("could not retrieve the did:web DID document") from exc
    return parse_did_web_document(did, response)


def parse_did_web_document(did: str, response: FetchResponse) -> dict[str, Any]:
    """did:web "Read": the fetched document of ``did`` as a JSON object (media type, size,
    strict JSON, ``id`` identical to the DID)."""
    media_type = response.content_type.split(";", 1)[0].strip().lower()
    if media_type not in _DOCUMENT_MEDIA_TYPES:
        raise DIDError("did:web DID document has an unexpected media type")
    try:
        document = strict_json.loads(response.body, max_bytes=MAX_DID_DOCUMENT_BYTES)
    except strict_json.StrictJSONError as exc:
        raise DIDError(f"did:web DID document: {exc}") from exc
    if not isinstance(document, dict):
        raise DIDError("DID document must be a JSON object")
    if document.get("id") != did:
        raise DIDError("DID document id does not match the DID")
    return document


# -- resolution and verification method selection (DID Core §7.1, §7.2, §5.2-5.3) -------


def resolve(
    did: str, fetch: Fetch | None = None, *, allow_http_localhost: bool = False
) -> dict[str, Any]:
    """Resolve a DID to its DID document (a fresh dict the caller may keep)."""
    did, method, fragment = split_did_url(did)
    if fragment is not None:
        raise DIDError("expected a DID, not a DID URL")
    if method == "jwk":
        return _did_jwk_document(did)
    if method == "key":
        return _did_key_document(did)
    if method == "web":
        if fetch is None:
            raise DIDError("did:web resolution needs a fetch function")
        return _did_web_document(did, fetch, allow_http_localhost)
    raise DIDError("unsupported DID method (only did:jwk, did:key and did:web)")


def resolve_verification_key(
    did_url: str,
    fetch: Fetch | None = None,
    *,
    relationship: str = "assertionMethod",
    allow_http_localhost: bool = False,
) -> jose.Key:
    """The public key of the verification method ``did_url`` names (e.g. a JWS ``kid``).

    The method must belong to the DID and be listed under ``relationship``. Without a
    fragment, the DID must have exactly one method under ``relationship``. The returned
    key's ``kid`` is the absolute verification method id.
    """
    _check_relationships((relationship,))
    did, method, fragment = split_did_url(did_url)
    if method in ("jwk", "key"):
        return _self_certifying_key(did, fragment, relationship)
    document = resolve(did, fetch, allow_http_localhost=allow_http_localhost)
    return _verification_key(document, did, fragment, (relationship,))


def verification_key(
    document: Mapping[str, Any],
    did_url: str,
    *,
    relationships: Sequence[str] = ("assertionMethod",),
) -> jose.Key:
    """The key of the verification method ``did_url`` names in an already resolved
    ``document`` of its DID (for callers that cache documents), listed under any of
    ``relationships``; the same rules as :func:`resolve_verification_key`."""
    _check_relationships(relationships)
    did, _, fragment = split_did_url(did_url)
    if document.get("id") != did:
        raise DIDError("DID document id does not match the DID")
    return _verification_key(document, did, fragment, tuple(relationships))


def _check_relationships(relationships: Sequence[str]) -> None:
    if not relationships:
        raise DIDError("no verification relationship given")
    for relationship in relationships:
        if relationship not in RELATIONSHIPS:
            raise DIDError(f"unsupported verification relationship {relationship[:40]!r}")


@lru_cache(maxsize=1024)
def _self_certifying_key(did: str, fragment: str | None, relationship: str) -> jose.Key:
    # did:jwk and did:key documents are a pure function of the DID: safe to cache.
    return _verification_key(resolve(did), did, fragment, (relationship,))


def _verification_key(
    document: Mapping[str, Any], did: str, fragment: str | None, relationships: tuple[str, ...]
) -> jose.Key:
    methods = _verification_methods(document, did)
    authorised: set[str] = set()
    for relationship in relationships:
        authorised |= _relationship_ids(document, did, relationship, methods)
    if fragment is None:
        if len(authorised) != 1:
            raise DIDError("DID URL must name a verification method (fragment)")
        target = next(iter(authorised))
    else:
        target = f"{did}#{fragment}"
    if target not in methods:
        raise DIDError("verification method not found in the DID document")
    if target not in authorised:
        raise DIDError(f"verification method is not listed under {' or '.join(relationships)}")
    method = methods[target]
    if method.get("controller") != did:
        raise DIDError("verification method controller does not match the DID")
    return _key_from_verification_method(method).with_kid(target)


def _absolute_id(did: str, value: Any) -> str | None:
    """DID Core §5.2.1: ids are DID URLs; a relative ``#frag`` is resolved against the DID."""
    if not isinstance(value, str):
        raise DIDError("verification method id must be a string")
    if value.startswith("#"):
        value = did + value
    return value if value.startswith(did + "#") else None


def _verification_methods(document: Mapping[str, Any], did: str) -> dict[str, dict[str, Any]]:
    """All verification methods of ``did``, including those embedded in relationships."""
    candidates = document.get("verificationMethod", [])
    if not isinstance(candidates, list):
        raise DIDError("DID document verificationMethod must be an array")
    candidates = list(candidates)
    for name in sorted(RELATIONSHIPS):
        entries = document.get(name, [])
        if not isinstance(entries, list):
            raise DIDError(f"DID document {name} must be an array")
        candidates.extend(entry for entry in entries if isinstance(entry, dict))
    methods: dict[str, dict[str, Any]] = {}
    for entry in candidates:
        if not isinstance(entry, dict):
            raise DIDError("verification method must be a JSON object")
        method_id = _absolute_id(did, entry.get("id"))
        if method_id is None:
            continue  # another DID's method can never be the one asked for
        if method_id in methods:
            raise DIDError("DID document has duplicate verification method ids")
        methods[method_id] = entry
    return methods


def _relationship_ids(
    document: Mapping[str, Any], did: str, relationship: str, methods: Mapping[str, Any]
) -> set[str]:
    ids = set()
    for entry in document.get(relationship, []):
        if isinstance(entry, str):
            method_id = _absolute_id(did, entry)
        elif isinstance(entry, dict):
            method_id = _absolute_id(did, entry.get("id"))
        else:
            raise DIDError(f"DID document {relationship} entries must be strings or objects")
        if method_id is not None:
            ids.add(method_id)
    return ids


def _key_from_verification_method(method: Mapping[str, Any]) -> jose.Key:
    """JsonWebKey / JsonWebKey2020 (``publicKeyJwk``) or Multikey (``publicKeyMultibase``)."""
    if any(member in method for member in _PRIVATE_VM_MEMBERS):
        raise DIDError("verification method contains private key material")
    kind = method.get("type")
    if kind in _JWK_VM_TYPES and "publicKeyMultibase" not in method:
        jwk = method.get("publicKeyJwk")
        if not isinstance(jwk, dict):
            raise DIDError("verification method publicKeyJwk must be a JWK object")
        try:
            return jose.key_from_jwk(jwk)
        except jose.JoseError as exc:
            raise DIDError(f"verification method key refused: {exc}") from exc
    if kind == "Multikey" and "publicKeyJwk" not in method:
        return decode_multikey(method.get("publicKeyMultibase"))  # type: ignore[arg-type]
    raise DIDError("unsupported verification method type or key format")
