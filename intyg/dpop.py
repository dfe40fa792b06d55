"""OAuth 2.0 Demonstrating Proof of Possession (DPoP), RFC 9449.

The client side makes proofs (:func:`make_dpop_proof`, §4.2); the server side checks them
(:func:`verify_dpop_proof`, §4.3) and binds tokens to the proof key's RFC 7638 thumbprint
(:func:`jkt`, §6.1). Nothing here is stateful: the caller keeps the ``jti`` replay cache
(§11.1) and the server nonces (§8, §9), so :func:`verify_dpop_proof` *returns* the ``jti``
for the caller to consume and takes the nonce the server currently expects.

Errors carry the RFC 9449 §12.2 codes: ``invalid_dpop_proof`` for every broken proof and
``use_dpop_nonce`` when the server demands a nonce the proof does not carry (§8: the caller
then answers with a fresh ``DPoP-Nonce`` header).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from intyg import jose

DPOP_TYP = "dpop+jwt"
#: HTTP header carrying the proof (§4.1) and the server nonce (§8.1).
DPOP_HEADER = "DPoP"
DPOP_NONCE_HEADER = "DPoP-Nonce"
#: Token type of DPoP-bound access tokens (§5) and the ``Authorization`` scheme (§7.1).
TOKEN_TYPE = "DPoP"  # noqa: S105 (a token type name, not a secret)
INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"
#: A proof is a small JWT; anything bigger is refused before decoding (security.md T013).
MAX_PROOF_BYTES = 8 * 1024
MAX_HTU_LENGTH = 4096
MAX_JTI_LENGTH = 256
DEFAULT_MAX_AGE_SECONDS = 300
JTI_BYTES = 16  # 128 bits; §4.2 asks for at least 96

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_NOT_NQSCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class DPoPError(ValueError):
    """A DPoP proof was refused; ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``."""

    def __init__(self, description: str, error: str = INVALID_DPOP_PROOF) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class DPoPProof(NamedTuple):
    """A proof that passed :func:`verify_dpop_proof`."""

    jkt: str
    jti: str
    iat: int
    key: jose.Key
    htm: str
    htu: str
    nonce: str | None
    claims: dict[str, Any]


# -- helpers (§4.2, §6.1, RFC 7638) -------------------------------------------------------


def jkt(jwk: Mapping[str, Any]) -> str:
    """§6.1: the JWK SHA-256 thumbprint (RFC 7638) a token is bound to (``cnf.jkt``)."""
    return jose.jwk_thumbprint(jwk)


def ath(access_token: str) -> str:
    """§4.2: base64url(SHA-256(ASCII access token)), the ``ath`` claim."""
    return jose.b64url_encode(hashlib.sha256(access_token.encode("utf-8")).digest())


def new_jti() -> str:
    """A fresh ``jti``: 128 random bits, base64url."""
    return jose.b64url_encode(secrets.token_bytes(JTI_BYTES))


def normalize_htu(uri: str) -> str:
    """The form of an HTTP URI that ``htu`` comparisons use (§4.3 step 9).

    Query and fragment are dropped; then RFC 3986 §6.2.2 syntax-based normalisation (case
    of scheme and host, percent-encoding case, unreserved characters decoded, dot segments
    removed) and §6.2.3 scheme-based normalisation (default port removed, empty path is
    ``/``). Raises :class:`DPoPError` for anything that is not an absolute http(s) URI.
    """
    if not isinstance(uri, str) or not uri or len(uri) > MAX_HTU_LENGTH:
        raise DPoPError("htu must be a non-empty string URI")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise DPoPError("htu is not a valid URI") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise DPoPError("htu must be an absolute http or https URI")
    if parts.username is not None or parts.password is not None:
        raise DPoPError("htu must not contain user information")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _remove_dot_segments(_PERCENT_ENCODED.sub(_normalize_escape, parts.path)) or "/"
    return f"{scheme}://{netloc}{path}"


def _normalize_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    if "." not in path:
        return path
    output: list[str] = []
    for segment in path.split("/")[1:] if path.startswith("/") else path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    result = "/" + "/".join(output)
    if path.endswith(("/.", "/..")) and not result.endswith("/"):
        result += "/"
    return result


# -- client side (§4.2) -------------------------------------------------------------------


def make_dpop_proof(
    key: jose.Key,
    *,
    htm: str,
    htu: str,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
) -> str:
    """A DPoP proof JWT for one request (§4.2).

    ``htu`` is sent without its query and fragment; with ``access_token`` the proof carries
    ``ath``; ``nonce`` is the last ``DPoP-Nonce`` the server sent.
    """
    parts = urlsplit(htu)
    claims: dict[str, Any] = {
        "jti": jti or new_jti(),
        "htm": htm,
        "htu": parts._replace(query="", fragment="").geturl(),
        "iat": int(time.time()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = ath(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    public = key.public_jwk()
    public.pop("kid", None)  # the key identifies itself; a kid only helps correlation
    return jose.encode_jws(claims, key, {"typ": DPOP_TYP, "jwk": public})


# -- server side (§4.3, §7.1, §8) ---------------------------------------------------------


def verify_dpop_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: int,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int = DEFAULT_MAX_AGE_SECONDS,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    nonce: str | Collection[str] | None = None,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
) -> DPoPProof:
    """Check a DPoP proof received with a request to ``htm`` ``htu`` (§4.3).

    - ``access_token``: the token presented with the request; ``ath`` must match (§7.1).
    - ``expected_jkt``: the thumbprint the token (or authorization code, §10) is bound to.
    - ``nonce``: the server nonce(s) currently accepted; a missing or different ``nonce``
      claim raises ``use_dpop_nonce`` (§8, §9).

    The returned ``jti`` must be recorded by the caller and a repeat refused (§11.1).
    """
    jws = _parse(proof, algorithms)
    key = _header_key(jws)
    try:
        jose.verify_signature(jws, key)
        claims = jws.claims()
    except jose.JoseError as exc:
        raise DPoPError(f"DPoP proof: {exc}") from exc
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise DPoPError("DPoP proof needs a jti string")
    if claims.get("htm") != htm:
        raise DPoPError("htm does not match the request method")
    if normalize_htu(claims.get("htu")) != normalize_htu(htu):  # type: ignore[arg-type]
        raise DPoPError("htu does not match the request URI")
    try:
        jose.check_time_claims(
            claims, now=now, leeway=leeway, require=("iat",), max_iat_age=max_age
        )
    except jose.JoseError as exc:
        raise DPoPError(f"DPoP proof: {exc}") from exc
    thumbprint = key.thumbprint()
    if access_token is not None and not _equal(claims.get("ath"), ath(access_token)):
        raise DPoPError("ath does not match the access token")
    if expected_jkt is not None and not _equal(thumbprint, expected_jkt):
        raise DPoPError("DPoP key does not match the key the token is bound to")
    sent_nonce = claims.get("nonce")
    if nonce is not None:
        accepted = (nonce,) if isinstance(nonce, str) else nonce
        if not isinstance(sent_nonce, str) or not any(_equal(sent_nonce, n) for n in accepted):
            raise DPoPError("a fresh DPoP nonce is required", USE_DPOP_NONCE)
    elif sent_nonce is not None and not isinstance(sent_nonce, str):
        raise DPoPError("nonce must be a string")
    return DPoPProof(
        jkt=thumbprint,
        jti=jti,
        iat=claims["iat"],
        key=key,
        htm=htm,
        htu=claims["htu"],
        nonce=sent_nonce,
        claims=claims,
    )


def _parse(proof: str, algorithms: Collection[str]) -> jose.CompactJWS:
    """§4.3 steps 2-5: a well-formed JWT, ``typ`` exactly ``dpop+jwt``, allowed ``alg``."""
    try:
        jws = jose.parse_jws(proof, max_bytes=MAX_PROOF_BYTES)
        jose.check_header(jws, algorithms=algorithms)
    except jose.JoseError as exc:
        raise DPoPError(f"DPoP proof: {exc}") from exc
    if jws.header.get("typ") != DPOP_TYP:
        raise DPoPError("DPoP proof typ must be dpop+jwt")
    return jws


def _header_key(jws: jose.CompactJWS) -> jose.Key:
    """§4.3 steps 6-7: the public key in the ``jwk`` header, never a private one."""
    jwk = jws.header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPError("DPoP proof header needs a jwk")
    try:
        return jose.key_from_jwk(jwk)
    except jose.JoseError as exc:
        raise DPoPError(f"DPoP proof jwk: {exc}") from exc


def _equal(a: Any, b: str) -> bool:
    """Constant-time comparison of ASCII strings; anything else is unequal."""
    if not isinstance(a, str) or not a.isascii() or not b.isascii():
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def www_authenticate(
    error: str | None = None,
    description: str | None = None,
    algorithms: Collection[str] = (),
) -> str:
    """§7.1 ``WWW-Authenticate: DPoP ...`` challenge value (descriptions must be ASCII)."""
    params: list[str] = []
    if error:
        params.append(f'error="{error}"')
    if description:
        params.append(f'error_description="{_NOT_NQSCHAR.sub("?", description)}"')
    if algorithms:
        params.append('algs="{}"'.format(" ".join(sorted(algorithms))))
    return TOKEN_TYPE + (" " + ", ".join(params) if params else "")
