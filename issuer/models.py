"""All issuer state as SQLModel tables (SQLAlchemy 2); the schema Alembic migrates to.

Rules every table follows (design.md "House rules", security.md T124, I1-I3):

- Times are integer Unix seconds (one clock, ``IssuerContext.clock``); calendar facts
  (registered since, awarded on) are ``DATE``.
- Codes, tokens, nonces, ``jti`` values and ``tx_code`` are stored only as
  :func:`digest` (SHA-256, base64url): a database dump redeems nothing.
- Personal identity numbers are never stored in plain text: :class:`Person` keeps a sealed
  copy (:class:`~intyg.web.crypto_store.CryptoStore`) and an HMAC ``lookup_key``.
- Single-use rows have ``used_at`` and are redeemed with
  :func:`intyg.web.db.consume_once` (pass ``now=<int>``; the column is an integer).
- An issuance keeps no credential and no holder key (T124), only what status management
  and audit need; ``proof_hash`` is UNIQUE so a retried request never mints twice.
- A status list index is allocated once and never reused (:class:`StatusEntry`).
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from intyg import jose
from intyg.web.client_secrets import hash_client_secret, verify_client_secret

__all__ = [
    "AFRegistration",
    "AccessToken",
    "AuditEntry",
    "AuthorizationCode",
    "AuthorizationRequest",
    "BackOfficeClient",
    "CNonce",
    "CredentialOffer",
    "Issuance",
    "IssuanceStatus",
    "MYHAward",
    "MYHQualification",
    "Person",
    "ReplayEntry",
    "ServiceSecret",
    "SigningKey",
    "StatusEntry",
    "StatusListRow",
    "digest",
    "hash_client_secret",
    "metadata",
    "verify_client_secret",
]

#: The issuer's own metadata (not SQLModel's global one, which other services share), with
#: deterministic constraint names so later migrations can refer to them on both backends.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class IssuerModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every issuer table."""


#: SHA-256 base64url digests are 43 characters.
DIGEST_LENGTH = 43


def _str(length: int) -> Any:
    return sa.String(length)


def _text() -> Any:
    return sa.Text()


def _json() -> Any:
    return sa.JSON()


def _int() -> Any:
    return sa.BigInteger()


# -- helpers for the columns' meaning ------------------------------------------------------


def digest(value: str) -> str:
    """What is stored for a code, token, nonce or ``jti``: SHA-256, base64url (43 chars)."""
    return jose.sha256_b64url(value)


# -- keys and service secrets --------------------------------------------------------------


class SigningKey(IssuerModel, table=True):
    """An issuer signing key (``purpose="issuer"``) or the development CA (``"dev_ca"``).

    The private JWK is sealed; it is NULL for keys loaded from files in production (the
    file stays the only copy). ``deactivated_at`` is set when another key becomes active;
    ``retired_at`` when nothing it signed is still valid and it leaves the JWKS.
    """

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, sa_type=_str(128))
    purpose: str = Field(sa_type=_str(16), index=True)
    alg: str = Field(sa_type=_str(16))
    public_jwk: dict[str, Any] = Field(sa_type=_json())
    sealed_private_jwk: str | None = Field(default=None, sa_type=_text())
    #: PEM certificates, leaf first; for the dev CA its own self-signed certificate.
    certificate_chain_pem: str = Field(sa_type=_text())
    source: str = Field(default="generated", sa_type=_str(16))
    created_at: int = Field(sa_type=_int())
    not_after: int = Field(sa_type=_int())
    active: bool = Field(default=False)
    deactivated_at: int | None = Field(default=None, sa_type=_int())
    retired_at: int | None = Field(default=None, sa_type=_int())


class ServiceSecret(IssuerModel, table=True):
    """Sealed service-wide secrets, e.g. the HMAC key for person lookups.

    Kept apart from the master key so a master-key rotation (re-wrap) does not change any
    lookup key.
    """

    __tablename__ = "service_secrets"

    name: str = Field(primary_key=True, sa_type=_str(64))
    sealed: str = Field(sa_type=_text())
    created_at: int = Field(sa_type=_int())


# -- people and records --------------------------------------------------------------------


class Person(IssuerModel, table=True):
    """A person: HMAC lookup key of the 12-digit number, everything else sealed."""

    __tablename__ = "persons"

    id: int | None = Field(default=None, primary_key=True)
    lookup_key: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    sealed_personal_number: str = Field(sa_type=_text())
    #: Sealed JSON ``{"given_name", "family_name", "birthdate"}``.
    sealed_identity: str = Field(sa_type=_text())
    created_at: int = Field(sa_type=_int())
    updated_at: int = Field(sa_type=_int())


class AFRegistration(IssuerModel, table=True):
    """A person's current registration as a job seeker (protocols.md §7.4)."""

    __tablename__ = "af_registrations"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="persons.id", unique=True)
    registered: bool
    registered_since: datetime.date | None = Field(default=None)
    category_code: str = Field(sa_type=_str(2))
    category_label: str = Field(sa_type=_str(200))
    programme_code: str | None = Field(default=None, sa_type=_str(32))
    programme_label: str | None = Field(default=None, sa_type=_str(200))
    programme_since: datetime.date | None = Field(default=None)
    office: str | None = Field(default=None, sa_type=_str(200))
    created_at: int = Field(sa_type=_int())
    updated_at: int = Field(sa_type=_int())


class MYHQualification(IssuerModel, table=True):
    """A qualification of MYH's catalogue; ``data`` holds the subject's qualification claims."""

    __tablename__ = "myh_qualifications"

    qualification_id: str = Field(primary_key=True, sa_type=_str(36))
    alt_id: str | None = Field(default=None, sa_type=_str(64), index=True)
    status: str = Field(sa_type=_str(32))
    data: dict[str, Any] = Field(sa_type=_json())
    imported_at: int = Field(sa_type=_int())


class MYHAward(IssuerModel, table=True):
    """A qualification awarded to a person."""

    __tablename__ = "myh_awards"
    __table_args__ = (sa.UniqueConstraint("person_id", "qualification_id"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="persons.id", index=True)
    qualification_id: str = Field(
        foreign_key="myh_qualifications.qualification_id", sa_type=_str(36)
    )
    awarded_on: datetime.date
    created_at: int = Field(sa_type=_int())
    updated_at: int = Field(sa_type=_int())


# -- OpenID4VCI single-use and short-lived items -------------------------------------------


class CredentialOffer(IssuerModel, table=True):
    """A credential offer with its pre-authorized code (OpenID4VCI §4.1, §6.1).

    ``offer_id`` is the random last segment of the ``credential_offer_uri``.
    ``record_id`` names the agency record (AF registration or MYH award) it is for.
    """

    __tablename__ = "credential_offers"

    id: int | None = Field(default=None, primary_key=True)
    offer_id: str = Field(sa_type=_str(64), unique=True)
    pre_authorized_code_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    tx_code_hash: str | None = Field(default=None, sa_type=_str(DIGEST_LENGTH))
    tx_code_attempts: int = Field(default=0)
    person_id: int = Field(foreign_key="persons.id", index=True)
    record_id: int | None = Field(default=None)
    configuration_ids: list[str] = Field(sa_type=_json())
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    used_at: int | None = Field(default=None, sa_type=_int())


class AuthorizationRequest(IssuerModel, table=True):
    """A pushed authorization request (RFC 9126); ``request_uri`` stored as a digest."""

    __tablename__ = "authorization_requests"

    id: int | None = Field(default=None, primary_key=True)
    request_uri_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    client_id: str = Field(sa_type=_str(512))
    params: dict[str, Any] = Field(sa_type=_json())
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    used_at: int | None = Field(default=None, sa_type=_int())


class AuthorizationCode(IssuerModel, table=True):
    """An authorization code (RFC 6749 §4.1) bound to PKCE S256 and optionally DPoP."""

    __tablename__ = "authorization_codes"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    code_challenge: str = Field(sa_type=_str(128))
    redirect_uri: str = Field(sa_type=_str(2048))
    client_id: str = Field(sa_type=_str(512))
    person_id: int = Field(foreign_key="persons.id", index=True)
    authorization_details: list[dict[str, Any]] = Field(sa_type=_json())
    scope: str | None = Field(default=None, sa_type=_str(1024))
    dpop_jkt: str | None = Field(default=None, sa_type=_str(DIGEST_LENGTH))
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    used_at: int | None = Field(default=None, sa_type=_int())


class AccessToken(IssuerModel, table=True):
    """An access token: bound to a person, the configurations it may be used for and,
    when DPoP-bound, the key thumbprint ``dpop_jkt`` (RFC 9449 §6)."""

    __tablename__ = "access_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    person_id: int = Field(foreign_key="persons.id", index=True)
    record_id: int | None = Field(default=None)
    configuration_ids: list[str] = Field(sa_type=_json())
    credential_identifiers: list[str] = Field(default_factory=list, sa_type=_json())
    dpop_jkt: str | None = Field(default=None, sa_type=_str(DIGEST_LENGTH))
    client_id: str | None = Field(default=None, sa_type=_str(512))
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)


class CNonce(IssuerModel, table=True):
    """A redeemed ``c_nonce`` (OpenID4VCI §7, §8.3): the nonce endpoint stores nothing (the
    nonce carries its expiry under a MAC); a credential request inserts the digest here in
    its transaction, and the UNIQUE ``nonce_hash`` refuses a second redemption. Swept after
    ``expires_at``, when the MAC'd expiry refuses the nonce anyway."""

    __tablename__ = "c_nonces"

    id: int | None = Field(default=None, primary_key=True)
    nonce_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    used_at: int | None = Field(default=None, sa_type=_int())


class ReplayEntry(IssuerModel, table=True):
    """A seen ``jti`` (DPoP proof, key proof, client attestation PoP): inserting a
    duplicate ``(kind, jti_hash)`` fails, which is the replay check."""

    __tablename__ = "jti_replay_cache"
    __table_args__ = (sa.UniqueConstraint("kind", "jti_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=_str(16))
    jti_hash: str = Field(sa_type=_str(DIGEST_LENGTH))
    expires_at: int = Field(sa_type=_int(), index=True)


# -- issuance and status -------------------------------------------------------------------


class IssuanceStatus:
    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"


class StatusListRow(IssuerModel, table=True):
    """A status list: ``kind`` ``tsl`` (IETF Token Status List) or ``bitstring`` (W3C).

    ``content`` is the uncompressed list; ``version`` grows with every change, so a
    publisher knows when its signed copy is stale. A Bitstring revocation list names its
    suspension companion, which shares its indices. ``full`` lists take no new entries.
    """

    __tablename__ = "status_lists"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=_str(16), index=True)
    purpose: str = Field(sa_type=_str(16))
    size: int
    bits: int
    content: bytes = Field(sa_type=sa.LargeBinary())
    version: int = Field(default=1, sa_type=_int())
    full: bool = Field(default=False)
    suspension_list_id: int | None = Field(default=None, foreign_key="status_lists.id")
    created_at: int = Field(sa_type=_int())
    updated_at: int = Field(sa_type=_int())


class StatusEntry(IssuerModel, table=True):
    """An allocated index: the primary key makes allocation unique; rows are never
    deleted, so an index is never handed out twice (TSL "Default Values and Double
    Allocation", I2)."""

    __tablename__ = "status_entries"

    status_list_id: int = Field(foreign_key="status_lists.id", primary_key=True)
    idx: int = Field(primary_key=True)
    allocated_at: int = Field(sa_type=_int())


class Issuance(IssuerModel, table=True):
    """One credential that left the issuer (I1). No credential or holder key is kept."""

    __tablename__ = "issuances"
    __table_args__ = (
        sa.UniqueConstraint("status_list_id", "status_idx"),
        sa.ForeignKeyConstraint(
            ["status_list_id", "status_idx"],
            ["status_entries.status_list_id", "status_entries.idx"],
        ),
    )

    id: str = Field(primary_key=True, sa_type=_str(36))
    person_id: int = Field(foreign_key="persons.id", index=True)
    record_id: int | None = Field(default=None, index=True)
    configuration_id: str = Field(sa_type=_str(128))
    format: str = Field(sa_type=_str(32))
    status_list_id: int
    status_idx: int
    #: ``kid`` of the signing key, so a key is retired only after what it signed expired.
    kid: str = Field(sa_type=_str(128), index=True)
    #: Digest of the key proof the credential was minted for; UNIQUE: retries never mint twice.
    proof_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    notification_id: str | None = Field(default=None, sa_type=_str(64), index=True)
    notification_event: str | None = Field(default=None, sa_type=_str(32))
    issued_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int())
    status: str = Field(default=IssuanceStatus.VALID, sa_type=_str(16))
    status_changed_at: int | None = Field(default=None, sa_type=_int())


# -- back office and audit -----------------------------------------------------------------


class BackOfficeClient(IssuerModel, table=True):
    """A client of the agency back-office API; the secret only as :func:`hash_client_secret`."""

    __tablename__ = "backoffice_clients"

    client_id: str = Field(primary_key=True, sa_type=_str(128))
    secret_hash: str = Field(sa_type=_str(256))
    name: str = Field(sa_type=_str(200))
    scopes: list[str] = Field(sa_type=_json())
    created_at: int = Field(sa_type=_int())
    disabled_at: int | None = Field(default=None, sa_type=_int())


class AuditEntry(IssuerModel, table=True):
    """Who did what to which object, when. Never a personal identity number."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_int(), index=True)
    actor: str = Field(sa_type=_str(200))
    action: str = Field(sa_type=_str(64), index=True)
    subject: str | None = Field(default=None, sa_type=_str(200), index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=_json())
