"""Envelope encryption at rest (design.md "Keys and stored credentials are encrypted at
rest (envelope encryption, master key from configuration)").

Each record gets a fresh 256-bit data key. The record is encrypted with AES-256-GCM under
the data key; the data key is wrapped with the master key by AES Key Wrap (RFC 3394). The
GCM associated data binds the ciphertext to its record (purpose and id, see
:func:`record_aad`), so a sealed value copied into another row does not open there.

Sealed form (ASCII, fits a text column)::

    v1.<kid>.<b64url(wrapped data key)>.<b64url(nonce)>.<b64url(ciphertext || tag)>

``kid`` names the master key (derived from it), so several keys can be configured during
a rotation: :meth:`CryptoStore.rewrap` re-wraps a record's data key under the current
master key without touching its ciphertext.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from intyg import jose, strict_json

__all__ = [
    "CryptoStore",
    "CryptoStoreError",
    "MasterKey",
    "generate_master_key",
    "record_aad",
]

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_SEALED_CHARS = 16 * 1024 * 1024


class CryptoStoreError(ValueError):
    """A sealed value could not be opened or a key is malformed; never says more."""


def generate_master_key() -> str:
    """A new master key in its configuration form: base64url of 32 random bytes."""
    return jose.b64url_encode(secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True, repr=False)
class MasterKey:
    """A master key and its id (the first 8 bytes of a SHA-256 over a label and the key)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise CryptoStoreError("master key must be 32 bytes")

    @classmethod
    def from_config(cls, text: str) -> MasterKey:
        try:
            return cls(jose.b64url_decode(text.strip()))
        except jose.JoseError:
            raise CryptoStoreError("master key must be base64url of 32 bytes") from None

    @property
    def kid(self) -> str:
        return jose.b64url_encode(
            hashlib.sha256(b"intyg master key id\x00" + self.key).digest()[:8]
        )

    def __repr__(self) -> str:
        return f"MasterKey(kid={self.kid!r})"


def record_aad(purpose: str, record_id: str | int) -> bytes:
    """Associated data naming what a sealed value belongs to, unambiguously encoded."""
    return strict_json.dumps([purpose, str(record_id)]).encode("utf-8")


def _aad(aad: bytes | str) -> bytes:
    # The version is authenticated too, so a blob cannot be relabelled to another format.
    return (
        VERSION.encode("ascii") + b"\x00" + (aad.encode("utf-8") if isinstance(aad, str) else aad)
    )


@dataclass(frozen=True)
class _Sealed:
    kid: str
    wrapped: bytes
    nonce: bytes
    ciphertext: bytes


def _parse(sealed: str) -> _Sealed:
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS:
        raise CryptoStoreError("malformed sealed value")
    parts = sealed.split(".")
    if parts[0] != VERSION:
        raise CryptoStoreError("unknown sealed value version")
    if len(parts) != 5:
        raise CryptoStoreError("malformed sealed value")
    try:
        wrapped, nonce, ciphertext = (jose.b64url_decode(part) for part in parts[2:])
    except jose.JoseError:
        raise CryptoStoreError("malformed sealed value") from None
    if len(wrapped) != KEY_BYTES + 8 or len(nonce) != NONCE_BYTES or len(ciphertext) < 16:
        raise CryptoStoreError("malformed sealed value")
    return _Sealed(parts[1], wrapped, nonce, ciphertext)


def _format(kid: str, wrapped: bytes, nonce: bytes, ciphertext: bytes) -> str:
    encoded = (jose.b64url_encode(part) for part in (wrapped, nonce, ciphertext))
    return ".".join((VERSION, kid, *encoded))


class CryptoStore:
    """Seals and opens records under the current master key; older keys only open."""

    def __init__(self, current: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self.current = current
        self._keys = {key.kid: key for key in (*previous, current)}

    @classmethod
    def from_config(cls, current: str, previous: Sequence[str] = ()) -> CryptoStore:
        """From the configured base64url master key and any keys being rotated out."""
        return cls(MasterKey.from_config(current), [MasterKey.from_config(k) for k in previous])

    def seal(self, plaintext: bytes, aad: bytes | str) -> str:
        """Encrypt ``plaintext`` for the record named by ``aad``."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _aad(aad))
        return _format(
            self.current.kid, aes_key_wrap(self.current.key, data_key), nonce, ciphertext
        )

    def open(self, sealed: str, aad: bytes | str) -> bytes:
        """Decrypt a sealed value of the record named by ``aad``."""
        parsed = _parse(sealed)
        data_key = self._unwrap(parsed)
        try:
            return AESGCM(data_key).decrypt(parsed.nonce, parsed.ciphertext, _aad(aad))
        except InvalidTag:
            raise CryptoStoreError("sealed value does not open for this record") from None

    def needs_rewrap(self, sealed: str) -> bool:
        """True if the value is wrapped by a master key other than the current one."""
        return _parse(sealed).kid != self.current.kid

    def rewrap(self, sealed: str, aad: bytes | str) -> str:
        """Re-wrap the data key under the current master key (rotation).

        The record is opened first, so a value that does not belong to ``aad`` is refused
        rather than carried forward.
        """
        self.open(sealed, aad)
        parsed = _parse(sealed)
        wrapped = aes_key_wrap(self.current.key, self._unwrap(parsed))
        return _format(self.current.kid, wrapped, parsed.nonce, parsed.ciphertext)

    def _unwrap(self, parsed: _Sealed) -> bytes:
        master = self._keys.get(parsed.kid)
        if master is None:
            raise CryptoStoreError("sealed with an unknown master key")
        try:
            return aes_key_unwrap(master.key, parsed.wrapped)
        except InvalidUnwrap:
            raise CryptoStoreError("sealed value does not open for this record") from None

    # -- keys ------------------------------------------------------------------------

    def seal_jwk(self, jwk: Mapping[str, Any], aad: bytes | str) -> str:
        """Seal a (private) JWK for storage."""
        return self.seal(strict_json.dumps(dict(jwk)).encode("utf-8"), aad)

    def open_jwk(self, sealed: str, aad: bytes | str) -> dict[str, Any]:
        value = strict_json.loads(self.open(sealed, aad))
        if not isinstance(value, dict):
            raise CryptoStoreError("sealed value is not a JWK")
        return value

    def seal_key(self, key: jose.Key, aad: bytes | str) -> str:
        """Seal a signing key (its private JWK)."""
        return self.seal_jwk(key.private_jwk(), aad)

    def open_key(self, sealed: str, aad: bytes | str) -> jose.Key:
        """Open a sealed signing key; the private part is checked against the public one."""
        return jose.key_from_jwk(self.open_jwk(sealed, aad), allow_private=True)
