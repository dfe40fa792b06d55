"""Client secrets at rest: salted scrypt hashes, checked in constant time.

Used for every API client a service registers (the issuer's back-office clients, the
verifier's employer API clients); the plain secret is shown once and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from intyg import jose

__all__ = ["hash_client_secret", "verify_client_secret"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_client_secret(secret: str) -> str:
    """A salted scrypt hash of a back-office client secret: ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(secret.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    parts = (str(_SCRYPT["n"]), str(_SCRYPT["r"]), str(_SCRYPT["p"]))
    return "$".join(("scrypt", *parts, jose.b64url_encode(salt), jose.b64url_encode(derived)))


def verify_client_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against :func:`hash_client_secret` output."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = hashlib.scrypt(
            secret.encode("utf-8"),
            salt=base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(jose.b64url_encode(derived), expected)
