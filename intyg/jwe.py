"""Compact JWE (RFC 7516) for OpenID4VP response encryption, behind an allow-list.

OpenID4VP 1.0 §8.3 encrypts the Authorization Response as an unsigned JWE to a key from the
Verifier's ``client_metadata.jwks``; HAIP 1.0 fixes that key agreement to ``ECDH-ES`` on P-256
with ``enc`` ``A128GCM`` or ``A256GCM``. That is the only thing this module does, so the
allow-list is exactly that:

- ``alg`` ``ECDH-ES`` (direct key agreement, RFC 7518 §4.6) on P-256; every other key
  management algorithm (``RSA1_5``, ``RSA-OAEP*``, ``PBES2-*``, ``dir``, ``A*KW``,
  ``ECDH-ES+A*KW``) is refused from the protected header *before* any key derivation or
  padding check (security.md T011, T012);
- ``enc`` ``A128GCM`` or ``A256GCM`` (``A192GCM`` and CBC-HMAC refused);
- no ``zip`` (decompression bombs), no ``crit``; compact serialization only (five parts,
  JSON serialization and unprotected headers refused); the size is checked before anything is
  decoded; the protected header is parsed with :mod:`intyg.strict_json` (duplicates refused);
- the protected header names the recipient key with ``kid``; the decrypting key is chosen by it.

Encryption uses jwcrypto; decryption, the verifier's hot path, is the one allowed algorithm
written out on ``cryptography`` (ECDH, Concat KDF, AES-GCM): no general JOSE machinery runs
on a token before it is authenticated.

Encryption keys are plain JWK dicts (or :class:`intyg.jose.Key` for P-256 private keys):
``jose.Key`` describes signing keys, and an ``ECDH-ES`` JWK is not one.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from intyg import jose, strict_json

ALG_ECDH_ES = "ECDH-ES"
ENC_VALUES: frozenset[str] = frozenset({"A128GCM", "A256GCM"})
#: Largest compact JWE accepted; a VP token with a few SD-JWT presentations is far smaller.
MAX_JWE_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 4096

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: RFC 7518 §5.3: 96-bit IV and 128-bit tag for AES-GCM, as unpadded base64url lengths.
_GCM_IV_CHARS = 16
_GCM_TAG_CHARS = 22
#: RFC 4648 §5 alphabet; a part is base64url when deleting these leaves nothing (a C loop,
#: several times faster than a regex over a ciphertext of kilobytes).
_B64URL_ALPHABET = (string.ascii_letters + string.digits + "-_").encode("ascii")

PrivateKeyInput = Mapping[str, Any] | jose.Key | jwcrypto_jwk.JWK


class JWEError(ValueError):
    """A JWE or an encryption key was refused; the message is safe to show."""


# -- keys -----------------------------------------------------------------------------------


def new_encryption_key(kid: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """An ephemeral P-256 key for one transaction (HAIP 1.0: ephemeral keys per request).

    Returns ``(private_jwk, public_jwk)``. The private JWK has only ``kty crv x y d kid``,
    so :func:`intyg.jose.key_from_jwk` (``allow_private=True``) can load it too; the public
    JWK adds ``use`` ``enc`` and ``alg`` ``ECDH-ES`` for ``client_metadata.jwks``. ``kid``
    defaults to the RFC 7638 thumbprint.
    """
    key = jose.generate_key("ES256", kid=kid)
    private = key.private_jwk()
    public = {**key.public_jwk(), "use": "enc", "alg": ALG_ECDH_ES}
    return private, public


def check_encryption_jwk(jwk: Any) -> dict[str, Any]:
    """A public JWK usable for OpenID4VP response encryption (OpenID4VP §8.3, HAIP 1.0).

    EC P-256 on the curve, ``alg`` ``ECDH-ES`` (§8.3: ``alg`` MUST be present), ``use``
    absent or ``enc`` (errata), a string ``kid``, and no private members (T067).
    """
    if not isinstance(jwk, Mapping):
        raise JWEError("encryption key must be a JSON object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise JWEError("encryption key contains private key material")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise JWEError("encryption key must be an EC P-256 key")
    if jwk.get("alg") != ALG_ECDH_ES:
        raise JWEError("encryption key alg must be ECDH-ES")
    if jwk.get("use", "enc") != "enc":
        raise JWEError("encryption key use must be enc")
    if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        raise JWEError("encryption key needs a kid")
    _public_point(jwk)
    return dict(jwk)


def _public_point(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """Refuse coordinates that are malformed or not on P-256 (invalid-curve attacks)."""
    try:
        key = jose.key_from_jwk({"kty": "EC", "crv": "P-256", "x": jwk.get("x"), "y": jwk.get("y")})
    except jose.JoseError as exc:
        raise JWEError(f"key: {exc}") from exc
    assert isinstance(key.public_key, ec.EllipticCurvePublicKey)
    return key.public_key


def _private_key(key: PrivateKeyInput) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, jwcrypto_jwk.JWK):
        key = key.export_private(as_dict=True)
    if isinstance(key, jose.Key):
        if not isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            raise JWEError("decryption key must be a P-256 private key")
        return key.private_key
    if not isinstance(key, Mapping) or key.get("kty") != "EC" or key.get("crv") != "P-256":
        raise JWEError("decryption key must be a P-256 private JWK")
    try:
        loaded = jose.key_from_jwk(
            {m: key.get(m) for m in ("kty", "crv", "x", "y", "d")}, allow_private=True
        )
    except jose.JoseError as exc:
        raise JWEError(f"decryption key: {exc}") from exc
    return _private_key(loaded)


# -- encryption (RFC 7516 §5.1) ----------------------------------------------------------


def encrypt(
    payload: bytes | Mapping[str, Any],
    recipient_jwk: Mapping[str, Any],
    *,
    enc: str = "A128GCM",
    kid: str | None = None,
) -> str:
    """Encrypt ``payload`` (bytes, or an object serialised as JSON) to ``recipient_jwk``.

    The header is ``{"alg": "ECDH-ES", "enc": enc, "kid": kid}`` plus the ``epk``;
    ``kid`` defaults to the JWK's ``kid`` (OpenID4VP §8.3: the JWE carries the chosen key's).
    """
    jwk = check_encryption_jwk(recipient_jwk)
    if enc not in ENC_VALUES:
        raise JWEError(f"enc {enc[:20]!r} is not allowed")
    kid = kid if kid is not None else jwk["kid"]
    if kid != jwk["kid"]:
        raise JWEError("kid does not name the recipient key")
    body = payload if isinstance(payload, bytes) else strict_json.dumps(payload).encode()
    if not body:
        raise JWEError("nothing to encrypt")  # an empty ciphertext segment is not decodable
    header = {"alg": ALG_ECDH_ES, "enc": enc, "kid": kid}
    token = jwcrypto_jwe.JWE(body, protected=json.dumps(header))
    public = {m: jwk[m] for m in ("kty", "crv", "x", "y")}
    token.add_recipient(jwcrypto_jwk.JWK(**public))
    return token.serialize(compact=True)


# -- decryption (RFC 7516 §5.2) ----------------------------------------------------------


def _is_b64url(part: str) -> bool:
    return part.isascii() and not part.encode("ascii").translate(None, _B64URL_ALPHABET)


def parse_header(token: str, *, max_bytes: int = MAX_JWE_BYTES) -> dict[str, Any]:
    """Steps 1-4 of RFC 7516 §5.2 with the allow-list; no key is touched.

    Returns the protected header. Everything outside the allow-list is refused here, so no
    refused algorithm ever reaches key derivation, unwrapping or decompression.
    """
    if not isinstance(token, str):
        raise JWEError("JWE must be a string")
    if len(token) > max_bytes:
        raise JWEError(f"JWE larger than {max_bytes} bytes")
    if token.lstrip().startswith("{"):
        raise JWEError("only the JWE compact serialization is accepted")
    parts = token.split(".")
    if len(parts) != 5:
        raise JWEError("not a compact JWE (expected five dot-separated parts)")
    header_segment, encrypted_key, iv, ciphertext, tag = parts
    if not all(_is_b64url(part) for part in parts):
        raise JWEError("malformed base64url in JWE")
    if not header_segment or len(header_segment) > MAX_HEADER_BYTES:
        raise JWEError("JWE protected header missing or too large")
    try:
        header = strict_json.loads(jose.b64url_decode(header_segment), max_bytes=MAX_HEADER_BYTES)
    except (strict_json.StrictJSONError, jose.JoseError) as exc:
        raise JWEError(f"JWE header: {exc}") from exc
    if not isinstance(header, dict):
        raise JWEError("JWE header must be a JSON object")
    _check_header(header)
    # RFC 7518 §4.6: with direct key agreement the JWE Encrypted Key is empty.
    if encrypted_key:
        raise JWEError("ECDH-ES JWE must have an empty encrypted key")
    if len(iv) != _GCM_IV_CHARS or len(tag) != _GCM_TAG_CHARS:
        raise JWEError("JWE IV or authentication tag has the wrong length for AES-GCM")
    if not ciphertext:
        raise JWEError("JWE ciphertext is empty")
    return header


def _check_header(header: Mapping[str, Any]) -> None:
    alg = header.get("alg")
    if alg != ALG_ECDH_ES:
        raise JWEError(f"JWE alg {str(alg)[:30]!r} is not allowed (only ECDH-ES)")
    enc = header.get("enc")
    if enc not in ENC_VALUES:
        raise JWEError(f"JWE enc {str(enc)[:30]!r} is not allowed")
    if "zip" in header:
        raise JWEError("compressed JWE (zip) is not accepted")
    if "crit" in header:
        raise JWEError("JWE crit header parameters are not understood")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise JWEError("JWE header needs a kid")
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "EC" or epk.get("crv") != "P-256":
        raise JWEError("JWE epk must be an EC P-256 public key")
    if _PRIVATE_MEMBERS.intersection(epk):
        raise JWEError("JWE epk contains private key material")
    _public_point(epk)


def decrypt(
    token: str,
    private_keys: Sequence[PrivateKeyInput],
    *,
    allowed_enc: Sequence[str] = ("A128GCM", "A256GCM"),
    max_bytes: int = MAX_JWE_BYTES,
) -> tuple[dict[str, Any], bytes]:
    """Decrypt a compact JWE with the key its ``kid`` names; returns ``(header, plaintext)``.

    ``allowed_enc`` is what the Verifier offered in ``encrypted_response_enc_values_supported``
    (intersected with the module allow-list).
    """
    header = parse_header(token, max_bytes=max_bytes)
    if header["enc"] not in allowed_enc:
        raise JWEError("JWE enc was not offered for this response")
    key = _key_by_kid(private_keys, header["kid"])
    try:
        plaintext = _ecdh_es_decrypt(token, header, key)
    except (InvalidTag, JWEError, jose.JoseError, ValueError, TypeError) as exc:
        # One message for every failure: no oracle on which step failed.
        raise JWEError("JWE decryption failed") from exc
    return header, plaintext


def _ecdh_es_decrypt(
    token: str, header: Mapping[str, Any], key: ec.EllipticCurvePrivateKey
) -> bytes:
    """RFC 7518 §4.6 direct key agreement (Concat KDF, §4.6.2) and §5.3 AES GCM, with the
    protected header segment as the additional authenticated data (RFC 7516 §5.2 step 14).
    ``header`` passed :func:`parse_header`."""
    header_segment, _, iv, ciphertext, tag = token.split(".")
    enc = header["enc"]
    size = 16 if enc == "A128GCM" else 32
    shared = key.exchange(ec.ECDH(), _public_point(header["epk"]))
    other_info = b"".join(
        (
            _length_prefixed(enc.encode("ascii")),
            _length_prefixed(_party_info(header, "apu")),
            _length_prefixed(_party_info(header, "apv")),
            (size * 8).to_bytes(4, "big"),
        )
    )
    cek = ConcatKDFHash(hashes.SHA256(), size, other_info).derive(shared)
    return AESGCM(cek).decrypt(
        jose.b64url_decode(iv),
        jose.b64url_decode(ciphertext) + jose.b64url_decode(tag),
        header_segment.encode("ascii"),
    )


def _party_info(header: Mapping[str, Any], name: str) -> bytes:
    value = header.get(name, "")
    if not isinstance(value, str):
        raise JWEError(f"JWE {name} must be a base64url string")
    return jose.b64url_decode(value)


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _key_by_kid(private_keys: Sequence[PrivateKeyInput], kid: str) -> ec.EllipticCurvePrivateKey:
    for candidate in private_keys:
        candidate_kid = (
            candidate.kid if isinstance(candidate, jose.Key) else candidate.get("kid")  # type: ignore[union-attr]
        )
        if candidate_kid == kid:
            return _private_key(candidate)
    raise JWEError("no decryption key with the JWE kid")
