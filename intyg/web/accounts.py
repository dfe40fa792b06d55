"""Account keys: a person's account is keyed by an HMAC of the personal number (design.md
"secrets and personal numbers never reach logs or URLs"; issue 4 item 3).

``account_key = HMAC-SHA256(key, "YYYYMMDDNNNC")``, with the key derived from the master key
for this purpose (HKDF, :func:`intyg.web.sessions.derive_key`). The database, URLs and logs
only ever see the account key: a leaked table cannot be reversed by enumerating the ~10^9
valid numbers without the master key, and the same person always finds the same account.

The functions are pure; each service keeps its own accounts table keyed by this value.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

from intyg import jose, personnummer
from intyg.personnummer import PersonalIdentityNumber
from intyg.web.sessions import MasterKeyInput, derive_key

__all__ = [
    "ACCOUNT_KEY_PURPOSE",
    "AccountKeyer",
    "account_key",
    "derive_account_hmac_key",
]

#: HKDF ``info`` label; changing it re-keys every account, so it carries a version.
ACCOUNT_KEY_PURPOSE = "intyg/account-key/v1"
MIN_KEY_BYTES = 32

Encoding = Literal["hex", "base64url"]


def derive_account_hmac_key(
    master_key: MasterKeyInput, purpose: str = ACCOUNT_KEY_PURPOSE
) -> bytes:
    """The 32-byte HMAC key for account keys, derived from the master key (RFC 5869).

    Services that must agree on account keys (none today) would share the purpose label;
    a different label gives unlinkable keys per service.
    """
    return derive_key(master_key, purpose)


def _twelve_digits(number: PersonalIdentityNumber | str) -> str:
    if isinstance(number, PersonalIdentityNumber):
        return number.twelve_digits
    return personnummer.parse(number).twelve_digits


def account_key(
    number: PersonalIdentityNumber | str, key: bytes, *, encoding: Encoding = "hex"
) -> str:
    """HMAC-SHA256 of the 12-digit number under ``key`` (hex: 64 chars; base64url: 43).

    A string is parsed first (:func:`intyg.personnummer.parse`), so every accepted spelling
    of a number (10 or 12 digits, with or without separator) gives the same account.
    """
    if len(key) < MIN_KEY_BYTES:
        raise ValueError("account HMAC key must be at least 32 bytes")
    digest = hmac.new(key, _twelve_digits(number).encode("ascii"), hashlib.sha256).digest()
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64url":
        return jose.b64url_encode(digest)
    raise ValueError("encoding must be 'hex' or 'base64url'")


@dataclass(frozen=True)
class AccountKeyer:
    """Holds the derived key so request handlers only pass the number."""

    key: bytes = field(repr=False)
    encoding: Encoding = "hex"

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError("account HMAC key must be at least 32 bytes")

    @classmethod
    def from_master_key(
        cls, master_key: MasterKeyInput, *, encoding: Encoding = "hex"
    ) -> AccountKeyer:
        return cls(derive_account_hmac_key(master_key), encoding)

    def __call__(self, number: PersonalIdentityNumber | str) -> str:
        return account_key(number, self.key, encoding=self.encoding)
