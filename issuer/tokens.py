"""Access tokens, DPoP and wallet attestations for the OpenID4VCI endpoints.

- Access tokens (RFC 6749 §1.4, OpenID4VCI 1.0 §6.2): 256 random bits, stored only as
  :func:`~issuer.models.digest`, bound to a person, a record, the configurations (and
  ``credential_identifiers``) they may fetch and, when DPoP is used, the key thumbprint
  (RFC 9449 §6). They are accepted only from the ``Authorization`` header (RFC 6750 §2.1;
  the query form is refused, security.md T031).
- DPoP proofs (RFC 9449 §4.3) with ``jti`` replay detection in ``jti_replay_cache`` (§11.1):
  the insert of ``(kind, digest(jti))`` is the check, so two replicas cannot both accept.
- Wallet attestations (OAuth 2.0 Attestation-Based Client Authentication; HAIP 1.0
  "Wallet Attestation"): the attester's ``x5c`` chain must end at a configured wallet
  provider anchor; the PoP ``jti`` goes to the same replay cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from starlette.requests import Request

from intyg import client_attestation, dpop, oid4vci, x509
from intyg.web import db
from intyg.web.errors import BearerTokenError, ProtocolError

from .db import Unit
from .models import AccessToken, CNonce, ReplayEntry, digest

__all__ = [
    "ALGORITHMS",
    "AuthenticatedToken",
    "TokenGrant",
    "authenticate",
    "check_client_attestation",
    "check_dpop",
    "dpop_replay_jti",
    "endpoint_url",
    "issue_access_token",
    "maybe_sweep",
    "presented_token",
    "remember_jti",
    "sweep_due",
    "wallet_trust_anchors",
]

#: HAIP 1.0: ES256 for proofs, DPoP, attestations and our signatures.
ALGORITHMS = ("ES256",)
DPOP_REPLAY = "dpop"
POP_REPLAY = "client_pop"
SWEEP_INTERVAL_SECONDS = 60
_sweep_lock = threading.Lock()
_last_sweep = 0.0
# Hot-path statements built once (construction and cache keys cost more than the query).
_ACCESS_TOKENS = AccessToken.__table__  # type: ignore[attr-defined]
_LOOKUP = db.Prepared(
    sa.select(_ACCESS_TOKENS).where(_ACCESS_TOKENS.c.token_hash == sa.bindparam("hash"))
)
_INSERT_TOKEN = db.Prepared(sa.insert(_ACCESS_TOKENS))


def endpoint_url(ctx: Any, path: str) -> str:
    """The public URL of one of our endpoints: DPoP ``htu`` is compared with this, not with
    what a proxy forwarded (the identifier is the one spelling, OpenID4VCI §12.2.1)."""
    return str(ctx.settings.url(path))


# -- replay cache ---------------------------------------------------------------------------


def _remember_statement(dialect: Any) -> db.Prepared:
    table = ReplayEntry.__table__  # type: ignore[attr-defined]
    return db.Prepared(
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=["kind", "jti_hash"])
        .returning(table.c.id)
    )


_REMEMBER = {"postgresql": _remember_statement(postgresql), "sqlite": _remember_statement(sqlite)}


def remember_jti(unit: Unit, kind: str, jti: str, expires_at: int) -> bool:
    """Record a ``jti`` once; False if it was already there (a replay).

    ``INSERT ... ON CONFLICT DO NOTHING`` on the ``(kind, jti_hash)`` unique constraint: one
    statement, no aborted transaction on PostgreSQL, exactly one winner under concurrency.
    """
    values = {"kind": kind, "jti_hash": digest(jti), "expires_at": expires_at}
    statement = _REMEMBER[db.dialect_name(unit)]
    with db.translate_errors():
        return statement.first(unit, values) is not None


def sweep_due() -> bool:
    """Whether :func:`maybe_sweep` would sweep now (no database needed to ask)."""
    return time.monotonic() - _last_sweep >= SWEEP_INTERVAL_SECONDS


def maybe_sweep(ctx: Any, now: int) -> None:
    """Delete expired nonces and replay entries, at most once a minute per process.

    Expired rows are refused by every lookup anyway; this only keeps the tables small.
    """
    global _last_sweep
    if not sweep_due() or not _sweep_lock.acquire(blocking=False):
        return
    try:
        _last_sweep = time.monotonic()
        with db.session(ctx.engine) as unit:
            unit.execute(sa.delete(CNonce).where(CNonce.expires_at < now))  # type: ignore[arg-type]
            unit.execute(sa.delete(ReplayEntry).where(ReplayEntry.expires_at < now))  # type: ignore[arg-type]
    finally:
        _sweep_lock.release()


# -- DPoP (RFC 9449) ------------------------------------------------------------------------


def _dpop_header(request: Request) -> str | None:
    values = request.headers.getlist(dpop.DPOP_HEADER)
    if len(values) > 1:
        raise ProtocolError(dpop.INVALID_DPOP_PROOF, "more than one DPoP header")
    return values[0] if values else None


def check_dpop(
    request: Request,
    unit: Unit | None,
    ctx: Any,
    path: str,
    *,
    now: int,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    resource: bool = False,
    remember: bool = True,
) -> dpop.DPoPProof | None:
    """Verify the request's DPoP proof, if any, and record its ``jti`` (RFC 9449 §4.3, §11.1).

    At the token endpoint a broken proof is 400 ``invalid_dpop_proof`` (§5); at a resource
    (``resource=True``) it is 401 with a ``WWW-Authenticate: DPoP`` challenge (§7.1).
    ``remember=False`` leaves recording the ``jti`` (:func:`dpop_replay_jti`) to the caller,
    who must then do it in the transaction that acts on the request.
    """
    proof = _dpop_header(request)
    if proof is None:
        return None
    try:
        verified = dpop.verify_dpop_proof(
            proof,
            htm=request.method,
            htu=endpoint_url(ctx, path),
            now=now,
            access_token=access_token,
            expected_jkt=expected_jkt,
            algorithms=ALGORITHMS,
        )
        # Keyed by the key too, so one wallet cannot block another's jti.
        if remember and not remember_jti(
            unit, DPOP_REPLAY, dpop_replay_jti(verified), now + ctx.settings.jti_ttl
        ):
            raise dpop.DPoPError("DPoP proof jti was already used")
    except dpop.DPoPError as exc:
        raise dpop_error(exc.error, exc.description, resource=resource) from None
    return verified


def dpop_replay_jti(proof: dpop.DPoPProof) -> str:
    """What the replay cache records for a DPoP proof (kind :data:`DPOP_REPLAY`; stored as
    its digest): the ``jti`` keyed by the proof's key."""
    return f"{proof.jkt}:{proof.jti}"


def dpop_error(error: str, description: str, *, resource: bool) -> ProtocolError:
    """RFC 9449 §7.1 (resource: 401 + challenge) or §5 (token endpoint: 400)."""
    if resource:
        challenge = dpop.www_authenticate(error, description, ALGORITHMS)
        return ProtocolError(error, description, 401, {"WWW-Authenticate": challenge})
    return ProtocolError(error, description, 400)


# -- wallet attestation ---------------------------------------------------------------------


def wallet_trust_anchors(ctx: Any) -> tuple[x509.Certificate, ...]:
    """The configured wallet provider anchors, read once per context."""
    cached = ctx.extras.get("wallet_anchors")
    if cached is None:
        certs: list[x509.Certificate] = []
        for path in ctx.settings.trusted_wallet_providers:
            certs.extend(x509.certs_from_pem(path.read_bytes()))
        cached = ctx.extras["wallet_anchors"] = tuple(certs)
    return cached  # type: ignore[no-any-return]


def check_client_attestation(
    request: Request,
    unit: Unit,
    ctx: Any,
    *,
    now: int,
    required: bool,
    client_id: str | None,
    dpop_jkt: str | None = None,
) -> client_attestation.ClientAttestation | None:
    """Attestation-based client authentication (§7; HAIP 1.0): 401 ``invalid_client``.

    ``client_id`` is the request's parameter (it must equal the attestation ``sub``).
    Without the PoP header the DPoP key must be the attested instance key (§5.2).
    """
    attestation = request.headers.get(client_attestation.ATTESTATION_HEADER)
    pop = request.headers.get(client_attestation.POP_HEADER)
    if attestation is None:
        if required:
            raise _invalid_client("wallet attestation (OAuth-Client-Attestation) is required")
        return None
    anchors = wallet_trust_anchors(ctx)
    if not anchors:
        raise _invalid_client("no wallet providers are trusted by this issuer")
    try:
        verified = client_attestation.verify_client_attestation(
            attestation,
            pop,
            audience=ctx.settings.issuer_identifier,
            now=now,
            trust_anchors=anchors,
            expected_client_id=client_id,
            dpop_jkt=dpop_jkt,
            algorithms=ALGORITHMS,
        )
    except client_attestation.ClientAttestationError as exc:
        raise _invalid_client(exc.description, exc.error) from None
    if verified.pop_jti is not None and not remember_jti(
        unit, POP_REPLAY, f"{verified.instance_jkt}:{verified.pop_jti}", now + ctx.settings.jti_ttl
    ):
        raise _invalid_client("client attestation PoP jti was already used")
    return verified


def _invalid_client(description: str, error: str = "invalid_client") -> ProtocolError:
    # RFC 6749 §5.2: 401 for a failed client authentication.
    return ProtocolError(error, description, 401)


# -- access tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    """What an access token may fetch."""

    person_id: int
    record_id: int | None
    configuration_ids: tuple[str, ...]
    #: credential_identifier -> configuration id (OpenID4VCI §6.2), empty with scopes/offers.
    credential_identifiers: dict[str, str]
    client_id: str | None
    dpop_jkt: str | None


def issue_access_token(unit: Unit, ctx: Any, grant: TokenGrant, now: int) -> str:
    """A fresh access token for ``grant`` (stored as a digest only)."""
    token = oid4vci.new_opaque_value()
    _INSERT_TOKEN.rows(
        unit,
        dict(
            token_hash=digest(token),
            person_id=grant.person_id,
            record_id=grant.record_id,
            configuration_ids=list(grant.configuration_ids),
            credential_identifiers=[
                f"{identifier}\n{configuration}"
                for identifier, configuration in grant.credential_identifiers.items()
            ],
            dpop_jkt=grant.dpop_jkt,
            client_id=grant.client_id,
            created_at=now,
            expires_at=now + ctx.settings.access_token_ttl,
        ),
    )
    return token


@dataclass(frozen=True)
class AuthenticatedToken:
    """An access token that passed :func:`authenticate`."""

    row: Any  # the access_tokens row (columns as attributes)
    token: str

    @property
    def credential_identifiers(self) -> dict[str, str] | None:
        if not self.row.credential_identifiers:
            return None
        return dict(entry.split("\n", 1) for entry in self.row.credential_identifiers)  # type: ignore[misc]

    @property
    def anonymous(self) -> bool:
        return self.row.client_id is None


def presented_token(request: Request, scheme_required: str | None) -> tuple[str, str]:
    """RFC 6750 §2.1 / RFC 9449 §7.1: ``Authorization: Bearer|DPoP <token>`` only."""
    challenge = "DPoP" if scheme_required == "DPoP" else "Bearer"
    if "access_token" in request.query_params:
        raise BearerTokenError(
            "invalid_request", "access tokens are accepted in the Authorization header only"
        )
    values = request.headers.getlist("authorization")
    if not values:
        raise BearerTokenError(None, scheme=challenge)
    if len(values) > 1:
        raise BearerTokenError("invalid_request", "more than one Authorization header")
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "dpop") or not token or len(token) > 512:
        raise BearerTokenError("invalid_token", "malformed Authorization header", scheme=challenge)
    return ("DPoP" if scheme.lower() == "dpop" else "Bearer"), token


def authenticate(
    request: Request,
    unit: Unit,
    ctx: Any,
    path: str,
    *,
    now: int,
    lookup: Callable[[Unit, str], AccessToken | None] | None = None,
) -> AuthenticatedToken:
    """The access token of a request to a protected endpoint (RFC 6750 §3, RFC 9449 §7).

    Unknown or expired: 401 ``invalid_token``. A DPoP-bound token needs the DPoP scheme and
    a proof with the matching key and ``ath``; a Bearer token sent as DPoP is refused.
    """
    dpop_required = ctx.settings.requires_dpop
    scheme, token = presented_token(request, "DPoP" if dpop_required else None)
    row = (lookup or _lookup)(unit, token)
    if row is None or row.expires_at <= now:
        raise BearerTokenError(
            "invalid_token", "the access token is unknown or expired", scheme=scheme
        )
    if row.dpop_jkt is not None:
        if scheme != "DPoP":
            raise dpop_error(
                "invalid_token",
                "this access token is DPoP-bound: use the DPoP scheme",
                resource=True,
            )
        if _dpop_header(request) is None:
            raise dpop_error(dpop.INVALID_DPOP_PROOF, "DPoP proof is missing", resource=True)
        check_dpop(
            request,
            unit,
            ctx,
            path,
            now=now,
            access_token=token,
            expected_jkt=row.dpop_jkt,
            resource=True,
        )
    elif scheme == "DPoP":
        raise BearerTokenError("invalid_token", "this access token is not DPoP-bound")
    return AuthenticatedToken(row, token)


def _lookup(unit: Unit, token: str) -> Any:
    """The token's row (columns as attributes, like :class:`AccessToken`), or None; a Core
    select, since the row is only read."""
    return _LOOKUP.first(unit, {"hash": digest(token)})
