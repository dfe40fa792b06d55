"""OAuth 2.0 Attestation-Based Client Authentication (wallet attestations).

Built against draft-ietf-oauth-attestation-based-client-auth-11 (editor's copy of 3 Sep
2026) and compatible with draft -07, the version OpenID4VCI 1.0 pins:

- the Client Attestation JWT (§4; ``typ`` ``oauth-client-attestation+jwt``) is signed by
  the Client Attester (the wallet provider), names the client in ``sub`` and binds the
  Client Instance Key in ``cnf.jwk``; it travels in the ``OAuth-Client-Attestation`` header;
- the Client Attestation PoP JWT (§5.1; ``typ`` ``oauth-client-attestation-pop+jwt``) is
  signed with that instance key and carries ``aud``, ``jti``, ``iat`` and the optional
  server ``challenge``; it travels in the ``OAuth-Client-Attestation-PoP`` header;
- in DPoP combined mode (§5.2) a DPoP proof signed with the same key replaces the PoP.

Draft -07 also required ``iss`` in both JWTs (the PoP's ``iss`` being the ``client_id``);
-11 dropped both. We emit them when asked and check them when present.

OpenID4VCI 1.0 Appendix E adds the wallet attestation claims ``wallet_name``,
``wallet_link`` and ``status``; HAIP 1.0 (Wallet Attestation) requires the attester's
certificate (and chain, without the trust anchor) in the ``x5c`` header and a ``sub``
shared by all instances of the wallet (no per-instance identifier).

Nothing here is stateful: the PoP ``jti`` is returned for the caller's replay check
(§12.1) and the challenge the server issued is passed in.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intyg import jose, x509
from intyg.dpop import new_jti

ATTESTATION_TYP = "oauth-client-attestation+jwt"
POP_TYP = "oauth-client-attestation-pop+jwt"
#: HTTP header fields (§4, §5.1, §6.1).
ATTESTATION_HEADER = "OAuth-Client-Attestation"
POP_HEADER = "OAuth-Client-Attestation-PoP"
CHALLENGE_HEADER = "OAuth-Client-Attestation-Challenge"
#: Token endpoint authentication methods (§8).
AUTH_METHOD = "attest_jwt_client_auth"
AUTH_METHOD_DPOP = "attest_jwt_client_auth_dpop"
#: Error codes (§7.4, RFC 6749 §5.2).
INVALID_CLIENT = "invalid_client"
USE_ATTESTATION_CHALLENGE = "use_attestation_challenge"
USE_FRESH_ATTESTATION = "use_fresh_attestation"
DEFAULT_MAX_POP_AGE_SECONDS = 300
MAX_JTI_LENGTH = 256

#: ``(header, unverified claims) -> attester key`` for attesters trusted by key, not x5c.
AttesterKeyResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], jose.Key]


class ClientAttestationError(ValueError):
    """A client attestation or its PoP was refused; ``error`` is the OAuth error code."""

    def __init__(self, description: str, error: str = INVALID_CLIENT) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ClientAttestation:
    """A verified client attestation and proof of possession."""

    client_id: str
    #: The attester: the x5c leaf certificate's subject DN, else the ``iss`` claim.
    provider: str
    instance_key: jose.Key
    #: RFC 7638 thumbprint of the instance key (bind codes and tokens to it, §10.3-10.4).
    instance_jkt: str
    #: The PoP ``jti`` to record for replay detection; None in DPoP combined mode.
    pop_jti: str | None
    claims: dict[str, Any]
    pop_claims: dict[str, Any] | None
    chain: x509.ValidatedChain | None = None

    @property
    def wallet_name(self) -> str | None:
        value = self.claims.get("wallet_name")
        return value if isinstance(value, str) else None

    @property
    def wallet_link(self) -> str | None:
        value = self.claims.get("wallet_link")
        return value if isinstance(value, str) else None


# -- client attester and client instance ----------------------------------------------------


def make_client_attestation(
    provider_key: jose.Key,
    *,
    x5c: Sequence[str] | None,
    client_id: str,
    instance_key_jwk: Mapping[str, Any] | jose.Key,
    exp: int,
    iat: int | None = None,
    issuer: str | None = None,
    wallet_name: str | None = None,
    wallet_link: str | None = None,
    status: Mapping[str, Any] | None = None,
) -> str:
    """A Client Attestation JWT (§4; OpenID4VCI Appendix E) signed by the attester.

    ``x5c`` is the attester's certificate chain without the trust anchor (HAIP); without
    it the header carries the key's ``kid``. ``issuer`` adds the ``iss`` claim that draft
    -07 receivers require. ``client_id`` must be shared by all instances (HAIP).
    """
    if isinstance(instance_key_jwk, jose.Key):
        jwk: dict[str, Any] = instance_key_jwk.public_jwk()
    else:
        jose.key_from_jwk(instance_key_jwk)  # refuses private members and unusable keys
        jwk = dict(instance_key_jwk)
    claims: dict[str, Any] = {
        "sub": client_id,
        "iat": int(time.time()) if iat is None else iat,
        "exp": exp,
        "cnf": {"jwk": jwk},
    }
    optional = {"iss": issuer, "wallet_name": wallet_name, "wallet_link": wallet_link}
    claims.update({name: value for name, value in optional.items() if value is not None})
    if status is not None:
        claims["status"] = dict(status)
    header: dict[str, Any] = {"typ": ATTESTATION_TYP}
    if x5c:
        header["x5c"] = list(x5c)
    elif provider_key.kid:
        header["kid"] = provider_key.kid
    return jose.encode_jws(claims, provider_key, header)


def make_client_attestation_pop(
    instance_key: jose.Key,
    *,
    client_id: str | None,
    audience: str,
    challenge: str | None = None,
    jti: str | None = None,
    iat: int | None = None,
) -> str:
    """A Client Attestation PoP JWT (§5.1) for one request to ``audience`` (the AS issuer).

    ``client_id`` becomes ``iss`` (draft -07; ignored by -11 receivers); ``challenge`` is
    the server's most recent ``OAuth-Client-Attestation-Challenge`` (§6).
    """
    claims: dict[str, Any] = {
        "aud": audience,
        "jti": jti or new_jti(),
        "iat": int(time.time()) if iat is None else iat,
    }
    if client_id is not None:
        claims["iss"] = client_id
    if challenge is not None:
        claims["challenge"] = challenge
    return jose.encode_jws(claims, instance_key, {"typ": POP_TYP})


# -- authorization server / resource server (§7) --------------------------------------------


def verify_client_attestation(
    attestation_jwt: str,
    pop_jwt: str | None,
    *,
    audience: str,
    now: int,
    trust_anchors: Sequence[x509.Certificate] | None = None,
    key_resolver: AttesterKeyResolver | None = None,
    expected_client_id: str | None = None,
    challenge: str | Collection[str] | None = None,
    dpop_jkt: str | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_pop_age: int = DEFAULT_MAX_POP_AGE_SECONDS,
    max_attestation_age: int | None = None,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
) -> ClientAttestation:
    """Authenticate a client by attestation and PoP (§7.1, §7.2) or DPoP (§7.3).

    The attester is trusted through exactly one of ``trust_anchors`` (the attestation must
    carry an ``x5c`` chain to one of them, HAIP) or ``key_resolver``. ``expected_client_id``
    is the request's ``client_id`` parameter, if any (§7.5). ``challenge``: the challenge(s)
    the server currently accepts; a missing or different ``challenge`` claim raises
    ``use_attestation_challenge``. With ``pop_jwt`` None the request must be in DPoP
    combined mode: ``dpop_jkt`` is the thumbprint of the already verified DPoP proof.
    """
    claims, instance_key, provider, chain = verify_client_attestation_jwt(
        attestation_jwt,
        now=now,
        trust_anchors=trust_anchors,
        key_resolver=key_resolver,
        expected_client_id=expected_client_id,
        leeway=leeway,
        max_age=max_attestation_age,
        algorithms=algorithms,
    )
    client_id: str = claims["sub"]
    instance_jkt = instance_key.thumbprint()
    pop_claims = None
    if pop_jwt is not None:
        pop_claims = verify_client_attestation_pop(
            pop_jwt,
            instance_key,
            client_id=client_id,
            audience=audience,
            now=now,
            challenge=challenge,
            leeway=leeway,
            max_age=max_pop_age,
            algorithms=algorithms,
        )
    elif dpop_jkt is None:
        raise ClientAttestationError("client attestation without proof of possession")
    elif not _equal(dpop_jkt, instance_jkt):
        raise ClientAttestationError("DPoP key is not the attested client instance key")
    return ClientAttestation(
        client_id=client_id,
        provider=provider,
        instance_key=instance_key,
        instance_jkt=instance_jkt,
        pop_jti=pop_claims["jti"] if pop_claims is not None else None,
        claims=claims,
        pop_claims=pop_claims,
        chain=chain,
    )


def verify_client_attestation_jwt(
    attestation_jwt: str,
    *,
    now: int,
    trust_anchors: Sequence[x509.Certificate] | None = None,
    key_resolver: AttesterKeyResolver | None = None,
    expected_client_id: str | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int | None = None,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
) -> tuple[dict[str, Any], jose.Key, str, x509.ValidatedChain | None]:
    """§7.1: returns ``(claims, instance key, provider, validated chain or None)``."""
    if (trust_anchors is None) == (key_resolver is None):
        raise TypeError("pass exactly one of trust_anchors and key_resolver")
    jws = _parse(attestation_jwt, ATTESTATION_TYP, algorithms, "client attestation")
    try:
        claims = jws.claims()
    except jose.JoseError as exc:
        raise ClientAttestationError(f"client attestation: {exc}") from exc
    chain = None
    if trust_anchors is not None:
        chain = _validated_chain(jws.header, trust_anchors, now)
        signer, provider = chain.key, chain.subject
    else:
        signer = _resolve(key_resolver, jws.header, claims)  # type: ignore[arg-type]
        provider = claims["iss"] if isinstance(claims.get("iss"), str) else ""
    _verify(jws, signer, "client attestation")
    _check_time(claims, now=now, leeway=leeway, require=("exp",), what="client attestation")
    if max_age is not None:
        iat = claims.get("iat")
        if type(iat) is not int or iat < now - max_age:
            raise ClientAttestationError(
                "client attestation is not fresh enough", USE_FRESH_ATTESTATION
            )
    client_id = claims.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise ClientAttestationError("client attestation needs a sub (the client_id)")
    if expected_client_id is not None and client_id != expected_client_id:
        raise ClientAttestationError("client_id does not match the client attestation")
    return claims, _instance_key(claims), provider, chain


def verify_client_attestation_pop(
    pop_jwt: str,
    instance_key: jose.Key,
    *,
    client_id: str,
    audience: str,
    now: int,
    challenge: str | Collection[str] | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int = DEFAULT_MAX_POP_AGE_SECONDS,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
) -> dict[str, Any]:
    """§7.2: the PoP, signed with the attested instance key; returns its claims."""
    jws = _parse(pop_jwt, POP_TYP, algorithms, "client attestation PoP")
    _verify(jws, instance_key, "client attestation PoP")
    try:
        claims = jws.claims()
        jose.check_audience(claims, audience)
    except jose.JoseError as exc:
        raise ClientAttestationError(f"client attestation PoP: {exc}") from exc
    _check_time(
        claims,
        now=now,
        leeway=leeway,
        require=("iat",),
        max_iat_age=max_age,
        what="client attestation PoP",
    )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise ClientAttestationError("client attestation PoP needs a jti string")
    if "iss" in claims and claims["iss"] != client_id:
        raise ClientAttestationError("client attestation PoP iss is not the attested client_id")
    if challenge is not None:
        accepted = (challenge,) if isinstance(challenge, str) else challenge
        sent = claims.get("challenge")
        if not any(_equal(sent, value) for value in accepted):
            raise ClientAttestationError(
                "a fresh attestation challenge is required", USE_ATTESTATION_CHALLENGE
            )
    return claims


def _parse(token: str, typ: str, algorithms: Collection[str], what: str) -> jose.CompactJWS:
    try:
        jws = jose.parse_jws(token)
        jose.check_header(jws, algorithms=algorithms)
    except jose.JoseError as exc:
        raise ClientAttestationError(f"{what}: {exc}") from exc
    if jws.header.get("typ") != typ:
        raise ClientAttestationError(f"{what}: typ must be {typ}")
    return jws


def _validated_chain(
    header: Mapping[str, Any], trust_anchors: Sequence[x509.Certificate], now: int
) -> x509.ValidatedChain:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise ClientAttestationError("client attestation needs an x5c certificate chain")
    try:
        return x509.validate_x5c(x5c, trust_anchors, now=now)
    except x509.X509Error as exc:
        raise ClientAttestationError(f"client attestation x5c: {exc}") from exc


def _resolve(
    resolver: AttesterKeyResolver, header: Mapping[str, Any], claims: Mapping[str, Any]
) -> jose.Key:
    try:
        key = resolver(header, claims)
    except (ValueError, LookupError) as exc:  # JoseError, X509Error, unknown kid
        raise ClientAttestationError("client attestation signer is not trusted") from exc
    if not isinstance(key, jose.Key):
        raise ClientAttestationError("client attestation signer is not trusted")
    return key


def _verify(jws: jose.CompactJWS, key: jose.Key, what: str) -> None:
    try:
        jose.verify_signature(jws, key)
    except jose.JoseError as exc:
        raise ClientAttestationError(f"{what}: {exc}") from exc


def _check_time(claims: Mapping[str, Any], *, what: str, **kwargs: Any) -> None:
    try:
        jose.check_time_claims(claims, **kwargs)
    except jose.JoseError as exc:
        raise ClientAttestationError(f"{what}: {exc}") from exc


def _instance_key(claims: Mapping[str, Any]) -> jose.Key:
    """§7.1 step 5: ``cnf.jwk`` is required and must not be a private key."""
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or not isinstance(cnf.get("jwk"), dict):
        raise ClientAttestationError("client attestation needs cnf.jwk")
    try:
        return jose.key_from_jwk(cnf["jwk"])
    except jose.JoseError as exc:
        raise ClientAttestationError(f"client attestation cnf.jwk: {exc}") from exc


def _equal(a: Any, b: Any) -> bool:
    if not isinstance(a, str) or not isinstance(b, str) or not (a.isascii() and b.isascii()):
        return False
    return hmac.compare_digest(a.encode(), b.encode())
