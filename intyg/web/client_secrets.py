"""Client secrets at rest: salted scrypt hashes, checked in constant time.

Used for every API client a service registers (the issuer's back-office clients, the
verifier's employer API clients); the plain secret is shown once and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from intyg import jose

__all__ = ["hash_client_secret", "verify_client_secret"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
#: scrypt takes 128 * n * r bytes (16 MiB here) per call, and the C allocator keeps that much
#: per thread that ever ran one: run them on this many threads of their own, so a burst of
#: API calls (or bad secrets) cannot grow memory with the request thread pool (security.md
#: L24; bench/faults/run.py bombs measured +300 MiB after 10 at once without it).
SCRYPT_THREADS = 2
_scrypt_pool = ThreadPoolExecutor(max_workers=SCRYPT_THREADS, thread_name_prefix="scrypt")


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return _scrypt_pool.submit(
        hashlib.scrypt, secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32
    ).result()


def hash_client_secret(secret: str) -> str:
    """A salted scrypt hash of a back-office client secret: ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    derived = _scrypt(secret, salt, **_SCRYPT)
    parts = (str(_SCRYPT["n"]), str(_SCRYPT["r"]), str(_SCRYPT["p"]))
    return "$".join(("scrypt", *parts, jose.b64url_encode(salt), jose.b64url_encode(derived)))


def verify_client_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against :func:`hash_client_secret` output."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = _scrypt(
            secret,
            base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)),
            int(n),
            int(r),
            int(p),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(jose.b64url_encode(derived), expected)
