"""JOSE for intyg: keys (RFC 7517), thumbprints (RFC 7638) and compact JWS (RFC 7515).

Only asymmetric algorithms on an explicit allow-list are ever used (RFC 8725 §3.1-3.2):
``ES256`` (P-256, HAIP 1.0 mandatory) and ``EdDSA`` / ``Ed25519`` (RFC 8037, RFC 9864).
``none`` and every HMAC algorithm are refused whatever the caller asks for, and the header
``alg`` must fit the key that verifies it; the key never comes from the token unless the
caller decided so (key proofs and KB-JWTs, where the key is bound elsewhere).

Only the compact serialization is parsed (security.md T006, T009); tokens are size-limited
before any base64 decoding (T013); base64url must be strict (T014); JSON is parsed with
:mod:`intyg.strict_json` (T016); ``crit`` must be understood (RFC 7515 §4.1.11, T004).
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from intyg import strict_json

#: Header ``alg`` value -> (JWK ``kty``, ``crv``) of the only key type that may verify it.
ALGORITHM_KEY_TYPES: dict[str, tuple[str, str]] = {
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
}
DEFAULT_ALGORITHMS: frozenset[str] = frozenset({"ES256", "EdDSA", "Ed25519"})
MAX_TOKEN_BYTES = 64 * 1024
DEFAULT_LEEWAY_SECONDS = 60
#: NumericDate values beyond this (year ~2286) are refused (T018).
MAX_NUMERIC_DATE = 10_000_000_000

_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL_TO_STD = bytes.maketrans(b"-_+/=", b"+/!!!")
_STD_TO_B64URL = bytes.maketrans(b"+/", b"-_")
_B64_PADDING = (b"", b"", b"==", b"=")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(Prehashed(hashes.SHA256()))
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


class JoseError(ValueError):
    """A JOSE object or key was refused; the message is safe to show to the sender."""


# -- base64url (RFC 7515 §2, Appendix C) -------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Base64url without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_STD_TO_B64URL, b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url: URL-safe alphabet only, no padding, no whitespace (T014)."""
    try:
        return _b64url_decode_ascii(text.encode("ascii"))
    except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise JoseError("malformed base64url") from exc


def b64url_decode_sha256(text: str) -> tuple[bytes, str]:
    """``(b64url_decode(text), sha256_b64url(text))`` in one step, sharing the ASCII encoding:
    an SD-JWT verifier both decodes and digests every Disclosure (RFC 9901 §4.2.3)."""
    try:
        raw = text.encode("ascii")
        decoded = _b64url_decode_ascii(raw)
    except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise JoseError("malformed base64url") from exc
    return decoded, _b64url_sha256(raw)


def _b64url_decode_ascii(raw: bytes) -> bytes:
    """The standard-alphabet characters ``+ / =`` are mapped to ``!`` so that binascii's
    strict mode refuses them together with everything else outside the alphabet."""
    return binascii.a2b_base64(
        raw.translate(_B64URL_TO_STD) + _B64_PADDING[len(raw) % 4], strict_mode=True
    )


def _b64url_sha256(raw: bytes) -> str:
    # b64url_encode inlined: this runs once per Disclosure on the verifier's hot path.
    digest = hashlib.sha256(raw).digest()
    return binascii.b2a_base64(digest, newline=False).translate(_STD_TO_B64URL, b"=").decode()


def sha256_b64url(text: str) -> str:
    """base64url(SHA-256(ASCII text)), the digest form used by SD-JWT, x5t#S256 and PKCE."""
    return _b64url_sha256(text.encode("ascii"))


# -- keys (RFC 7517, RFC 8037) ------------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Key:
    """An ES256 or Ed25519 key pair, or only its public half.

    ``alg`` is the algorithm this key signs with; :func:`verify_jws` also accepts the
    other name of the same algorithm (``EdDSA`` / ``Ed25519``).
    """

    alg: str
    public_key: PublicKey
    private_key: PrivateKey | None = field(default=None, repr=False)
    kid: str | None = None

    @property
    def kty(self) -> str:
        return ALGORITHM_KEY_TYPES[self.alg][0]

    @property
    def has_private(self) -> bool:
        return self.private_key is not None

    @cached_property
    def _members(self) -> dict[str, str]:
        # Computed once per key object (the instance is frozen; keys repeat: a wallet's
        # DPoP key, a holder key checked, thumbprinted and bound within one request).
        return _public_members(self.public_key)

    @cached_property
    def _thumbprint(self) -> str:
        return jwk_thumbprint(self._members)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (with ``kid`` when known)."""
        jwk = dict(self._members)
        if self.kid:
            jwk["kid"] = self.kid
        return jwk

    def private_jwk(self) -> dict[str, str]:
        """The private JWK; for storage by the caller, which encrypts it at rest."""
        if self.private_key is None:
            raise JoseError("no private key")
        jwk = self.public_jwk()
        jwk["d"] = b64url_encode(_private_bytes(self.private_key))
        return jwk

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key."""
        return self._thumbprint

    def public(self) -> Key:
        return Key(self.alg, self.public_key, None, self.kid)

    def with_kid(self, kid: str | None) -> Key:
        return Key(self.alg, self.public_key, self.private_key, kid)

    def sign(self, data: bytes) -> bytes:
        """JWS signature over ``data`` (RFC 7518 §3.4 raw r||s for ES256)."""
        if self.private_key is None:
            raise JoseError("no private key to sign with")
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            der = self.private_key.sign(data, _ECDSA_SHA256)
            r, s = decode_dss_signature(der)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.private_key.sign(data)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True iff ``signature`` is valid for ``data`` under this public key."""
        public_key = self.public_key
        try:
            if _is_ec_public_key(public_key):
                if len(signature) != 64:
                    return False
                # SHA-256 by hashlib, then ECDSA over the digest: the same check, less overhead.
                digest = hashlib.sha256(data).digest()
                public_key.verify(ecdsa_der_signature(signature), digest, _ECDSA_PREHASHED_SHA256)
            else:
                public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


_EC_PUBLIC_KEY_TYPES: dict[type, bool] = {}


def _is_ec_public_key(public_key: PublicKey) -> bool:
    """``isinstance(public_key, EllipticCurvePublicKey)``, memoised per concrete class
    (an ABC check costs about a microsecond on every verification)."""
    cls = type(public_key)
    known = _EC_PUBLIC_KEY_TYPES.get(cls)
    if known is None:
        known = _EC_PUBLIC_KEY_TYPES[cls] = isinstance(public_key, ec.EllipticCurvePublicKey)
    return known


def _der_integer(value: bytes) -> bytes:
    """A DER INTEGER (X.690 §8.3) for an unsigned big-endian value: minimal length, with a
    leading zero octet when the high bit is set so it stays positive."""
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + len(value).to_bytes(1, "big") + value


def ecdsa_der_signature(signature: bytes) -> bytes:
    """RFC 7518 §3.4 ``R || S`` (32 octets each) as the DER ``Ecdsa-Sig-Value`` (RFC 3279
    §2.2.3) that `cryptography` verifies; the same bytes as ``encode_dss_signature``."""
    r, s = signature[:32], signature[32:]
    if 0 < r[0] < 0x80 and 0 < s[0] < 0x80:  # the common case: both 32 octets, positive
        return b"\x30\x44\x02\x20" + r + b"\x02\x20" + s
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + len(body).to_bytes(1, "big") + body


def generate_key(alg: str = "ES256", kid: str | None = None) -> Key:
    """A fresh key pair for ``alg``; ``kid`` defaults to the RFC 7638 thumbprint."""
    if alg == "ES256":
        private: PrivateKey = ec.generate_private_key(ec.SECP256R1())
    elif alg in ("EdDSA", "Ed25519"):
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise JoseError(f"unsupported algorithm {alg!r}")
    key = Key(alg, private.public_key(), private)
    return key.with_kid(kid or key.thumbprint())


def key_from_jwk(jwk: Mapping[str, Any], *, allow_private: bool = False) -> Key:
    """Import a JWK (RFC 7517 §4) as a :class:`Key`.

    Only P-256 ``EC`` and Ed25519 ``OKP`` keys are accepted. A JWK carrying private members
    is refused unless ``allow_private`` (T008: a proof header must not hold a private key);
    when allowed, the private part must match the public part.
    """
    if type(jwk) is dict and not allow_private:
        try:
            return _public_key_from_members(frozenset(jwk.items()))
        except TypeError:  # a member value is not hashable (e.g. an object): full path
            pass
    return _key_from_jwk(jwk, allow_private)


@lru_cache(maxsize=1024)
def _public_key_from_members(members: frozenset[tuple[str, Any]]) -> Key:
    """Public keys repeat (holder keys in KB-JWTs, issuer keys): import each once."""
    return _key_from_jwk(dict(members), False)


def _key_from_jwk(jwk: Mapping[str, Any], allow_private: bool) -> Key:
    if not isinstance(jwk, Mapping):
        raise JoseError("JWK must be a JSON object")
    private_members = _PRIVATE_JWK_MEMBERS.intersection(jwk)
    if private_members and not allow_private:
        raise JoseError("JWK contains private key material")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        public: PublicKey = _ec_public_key(jwk.get("x"), jwk.get("y"))
        alg = "ES256"
    elif kty == "OKP" and crv == "Ed25519":
        public = _ed25519_public_key(jwk.get("x"))
        alg = "EdDSA"
    else:
        raise JoseError("unsupported JWK key type (only EC P-256 and OKP Ed25519)")
    if "alg" in jwk and jwk["alg"] not in ALGORITHM_KEY_TYPES:
        raise JoseError("JWK alg is not allowed")
    if "alg" in jwk and ALGORITHM_KEY_TYPES[jwk["alg"]] != (kty, crv):
        raise JoseError("JWK alg does not match its key type")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JoseError("JWK kid must be a string")
    private = _private_key(jwk, public) if private_members else None
    return Key(alg, public, private, kid)


def key_from_pem(pem: bytes, kid: str | None = None) -> Key:
    """Import a PEM private or public key (P-256 or Ed25519)."""
    try:
        loaded: Any = serialization.load_pem_private_key(pem, password=None)
        private = loaded
        public = loaded.public_key()
    except ValueError:
        try:
            public = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise JoseError("not a PEM key") from exc
        private = None
    return _key_from_public(public, private, kid)


def key_from_public_key(public: Any, kid: str | None = None) -> Key:
    """Wrap a `cryptography` public key (e.g. from an X.509 certificate)."""
    return _key_from_public(public, None, kid)


def _key_from_public(public: Any, private: Any, kid: str | None) -> Key:
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        alg = "ES256"
    elif isinstance(public, ed25519.Ed25519PublicKey):
        alg = "EdDSA"
    else:
        raise JoseError("unsupported key type (only P-256 and Ed25519)")
    key = Key(alg, public, private)
    return key.with_kid(kid or key.thumbprint())


_P256 = ec.SECP256R1()


@lru_cache(maxsize=4096)
def _ec_public_from_coordinates(x: str, y: str) -> ec.EllipticCurvePublicKey:
    xb, yb = b64url_decode(x), b64url_decode(y)
    if len(xb) != 32 or len(yb) != 32:
        raise JoseError("EC JWK coordinates must be 32 bytes for P-256")
    try:  # SEC 1 §2.3.4 uncompressed point; checked to lie on the curve
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + xb + yb)
    except ValueError as exc:
        raise JoseError("EC JWK point is not on P-256") from exc


def _ec_public_key(x: Any, y: Any) -> ec.EllipticCurvePublicKey:
    if not isinstance(x, str) or not isinstance(y, str):
        raise JoseError("EC JWK needs x and y")
    return _ec_public_from_coordinates(x, y)


@lru_cache(maxsize=4096)
def _ed25519_from_x(x: str) -> ed25519.Ed25519PublicKey:
    raw = b64url_decode(x)
    if len(raw) != 32:
        raise JoseError("Ed25519 JWK x must be 32 bytes")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _ed25519_public_key(x: Any) -> ed25519.Ed25519PublicKey:
    if not isinstance(x, str):
        raise JoseError("OKP JWK needs x")
    return _ed25519_from_x(x)


def _private_key(jwk: Mapping[str, Any], public: PublicKey) -> PrivateKey:
    d = b64url_decode(jwk.get("d", ""))
    if set(jwk).intersection(_PRIVATE_JWK_MEMBERS) != {"d"} or len(d) != 32:
        raise JoseError("malformed private JWK")
    private: PrivateKey
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            private = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(d)
    except ValueError as exc:
        raise JoseError("malformed private JWK") from exc
    if _public_members(private.public_key()) != _public_members(public):
        raise JoseError("private JWK does not match its public part")
    return private


def _public_members(public: PublicKey) -> dict[str, str]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def _private_bytes(private: PrivateKey) -> bytes:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.private_numbers().private_value.to_bytes(32, "big")
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 over the required members in lexicographic order."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise JoseError("JWK lacks the members its thumbprint needs")
    canonical = strict_json.dumps({m: jwk[m] for m in members})
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def jwk_thumbprint_uri(jwk: Mapping[str, Any]) -> str:
    """RFC 9278 JWK thumbprint URI."""
    return "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + jwk_thumbprint(jwk)


# -- compact JWS (RFC 7515 §3.1, §5) -------------------------------------------------------


class CompactJWS(NamedTuple):
    """A parsed, not yet verified, compact JWS (a NamedTuple: cheap to build, immutable)."""

    header: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes
    payload: bytes

    @property
    def alg(self) -> str:
        return self.header["alg"]

    def payload_bytes(self) -> bytes:
        return self.payload

    def claims(self) -> dict[str, Any]:
        """The payload as a JSON object (RFC 7519 §7.2 step 10)."""
        try:
            claims = strict_json.loads(self.payload, max_bytes=MAX_TOKEN_BYTES * 16)
        except strict_json.StrictJSONError as exc:
            raise JoseError(f"JWT payload: {exc}") from exc
        if not isinstance(claims, dict):
            raise JoseError("JWT payload must be a JSON object")
        return claims


def encode_jws(
    payload: Mapping[str, Any] | bytes, key: Key, header: Mapping[str, Any] | None = None
) -> str:
    """Sign ``payload`` into a compact JWS; ``alg`` always comes from ``key``."""
    full_header: dict[str, Any] = {"alg": key.alg}
    if header:
        full_header.update(header)
        full_header["alg"] = key.alg
    try:
        body = payload if isinstance(payload, bytes) else strict_json.dumps(payload).encode()
        header_bytes = strict_json.dumps(full_header).encode()
    except UnicodeEncodeError as exc:
        raise JoseError("header or payload is not valid Unicode") from exc
    signing_input = (b64url_encode(header_bytes) + "." + b64url_encode(body)).encode("ascii")
    return signing_input.decode("ascii") + "." + b64url_encode(key.sign(signing_input))


def _decode_header(segment: str, max_bytes: int) -> dict[str, Any]:
    """RFC 7515 §5.2 steps 2-4 for the protected header."""
    try:
        header = strict_json.loads(b64url_decode(segment), max_bytes=max_bytes)
    except strict_json.StrictJSONError as exc:
        raise JoseError(f"JWS header: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise JoseError("JWS header must be an object with a string alg")
    return header


#: Protected headers repeat (every credential of an issuer, every KB-JWT), so decoding them is
#: memoised like JWK imports; only the decoding: every check still runs on every token, and a
#: refused header is never cached (lru_cache does not keep exceptions).
MAX_CACHED_HEADER_SEGMENT = 4096


@lru_cache(maxsize=512)
def _cached_header(segment: str) -> dict[str, Any]:
    return _decode_header(segment, MAX_CACHED_HEADER_SEGMENT)


def parse_jws(token: str, *, max_bytes: int = MAX_TOKEN_BYTES) -> CompactJWS:
    """Split and decode a compact JWS without verifying it (size checked first, T013)."""
    if not isinstance(token, str):
        raise JoseError("token must be a string")
    if len(token) > max_bytes:
        raise JoseError(f"token larger than {max_bytes} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not a compact JWS (expected three dot-separated parts)")
    header_segment, payload_segment, signature_segment = parts
    if not header_segment or not signature_segment:
        raise JoseError("empty JWS header or signature")
    if len(header_segment) <= MAX_CACHED_HEADER_SEGMENT:
        header = dict(_cached_header(header_segment))  # a copy: callers may not share it
    else:
        header = _decode_header(header_segment, max_bytes)
    payload = b64url_decode(payload_segment)  # refuses non-ASCII before the encode below
    signature = b64url_decode(signature_segment)
    signing_input = token[: len(token) - len(signature_segment) - 1].encode("ascii")
    return CompactJWS(header, payload_segment, signing_input, signature, payload)


def check_header(
    jws: CompactJWS,
    *,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    typ: str | None = None,
    understood_crit: Collection[str] = (),
) -> None:
    """Header rules of RFC 7515 §4.1 and RFC 8725 §3.1, §3.11 (explicit typing)."""
    header = jws.header
    alg = header["alg"]
    # The allow-list never holds "none" or an HMAC algorithm, so the usual case needs one test.
    if alg not in ALGORITHM_KEY_TYPES or alg not in algorithms:
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise JoseError(f"algorithm {alg!r} is never accepted")
        raise JoseError(f"algorithm {alg!r} is not allowed here")
    if "crit" in header:
        crit = header["crit"]
        if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
            raise JoseError("crit must be a non-empty array of header names")
        unknown = [c for c in crit if c not in understood_crit or c not in header]
        if unknown:
            raise JoseError(f"critical header parameter not understood: {unknown[0][:40]!r}")
    # An identical string normalises identically; only a different spelling needs the work.
    if typ is not None and header.get("typ") != typ:
        if normalise_typ(header.get("typ")) != normalise_typ(typ):
            raise JoseError(f"typ must be {typ!r}")


def normalise_typ(value: Any) -> str | None:
    """RFC 7515 §4.1.9: media types compare case-insensitively, ``application/`` optional."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value[len("application/") :] if value.startswith("application/") else value


def verify_signature(jws: CompactJWS, key: Key) -> None:
    """Verify the signature with ``key``, which must be of the type ``alg`` demands (T003)."""
    if ALGORITHM_KEY_TYPES.get(jws.header["alg"]) != ALGORITHM_KEY_TYPES[key.alg]:
        raise JoseError("algorithm does not match the key type")
    if not key.verify(jws.signature, jws.signing_input):
        raise JoseError("signature verification failed")


def verify_jws(
    token: str | CompactJWS,
    key: Key,
    *,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    typ: str | None = None,
    understood_crit: Collection[str] = (),
    max_bytes: int = MAX_TOKEN_BYTES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse, check the header, verify the signature; return ``(header, claims)``."""
    jws = token if isinstance(token, CompactJWS) else parse_jws(token, max_bytes=max_bytes)
    check_header(jws, algorithms=algorithms, typ=typ, understood_crit=understood_crit)
    verify_signature(jws, key)
    return jws.header, jws.claims()


# -- JWT claims (RFC 7519 §4.1) ----------------------------------------------------------


def numeric_date(claims: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """An integer NumericDate claim; strings, floats, booleans and absurd values refused (T018)."""
    if name not in claims:
        if required:
            raise JoseError(f"missing {name}")
        return None
    value = claims[name]
    if type(value) is not int or not 0 <= value <= MAX_NUMERIC_DATE:
        raise JoseError(f"{name} must be an integer NumericDate")
    return value


def check_time_claims(
    claims: Mapping[str, Any],
    *,
    now: int | None = None,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    require: Collection[str] = (),
    max_iat_age: int | None = None,
) -> None:
    """``exp`` (§4.1.4), ``nbf`` (§4.1.5) and ``iat`` (§4.1.6) against ``now`` ± ``leeway``.

    ``iat`` in the future beyond the leeway is refused; with ``max_iat_age`` an ``iat``
    older than that is refused too (KB-JWT and key-proof freshness windows).
    """
    now = int(time.time()) if now is None else now
    exp = nbf = iat = None  # absent and not required: nothing to check
    if "exp" in claims or "exp" in require:
        exp = numeric_date(claims, "exp", required=True)
    if "nbf" in claims or "nbf" in require:
        nbf = numeric_date(claims, "nbf", required=True)
    if "iat" in claims or "iat" in require:
        iat = numeric_date(claims, "iat", required=True)
    if exp is not None and now - leeway >= exp:
        raise JoseError("token has expired (exp)")
    if nbf is not None and now + leeway < nbf:
        raise JoseError("token is not yet valid (nbf)")
    if iat is not None:
        if iat > now + leeway:
            raise JoseError("iat is in the future")
        if max_iat_age is not None and iat < now - max_iat_age - leeway:
            raise JoseError("iat is too old")


def check_audience(claims: Mapping[str, Any], expected: str) -> None:
    """``aud`` must be exactly ``expected``: one string, plain comparison (T017)."""
    if claims.get("aud") != expected or not isinstance(claims.get("aud"), str):
        raise JoseError("aud does not match")
