"""All verifier state as SQLModel tables (SQLAlchemy 2); the schema Alembic migrates to.

Rules every table follows (design.md "House rules", security.md T102-T111, I3):

- Times are integer Unix seconds (one clock, ``VerifierContext.clock``).
- ``state`` and ``response_code`` are stored only as :func:`digest` (SHA-256, base64url),
  API client secrets only as a salted scrypt hash: a database dump redeems nothing.
- Everything a wallet disclosed is sealed (:class:`~intyg.web.crypto_store.CryptoStore`, AAD
  bound to the transaction) and has a retention deadline; the purge job deletes it.
- A rejection keeps reasons (check names and safe descriptions), never claim values.
- The audit log never holds a personal identity number or a claim value.
- All transaction state is in the database, so replicas need no sticky sessions (L10).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from intyg import jose
from intyg.web.client_secrets import hash_client_secret, verify_client_secret
from intyg.web.sessions import EndedSessions

__all__ = [
    "ENDED_SESSIONS",
    "ApiClient",
    "AuditEntry",
    "DisclosedClaims",
    "Employer",
    "EmployerTemplate",
    "EndedSession",
    "PageUser",
    "Rejection",
    "Result",
    "SigningKey",
    "Transaction",
    "TransactionStatus",
    "WebhookOutbox",
    "digest",
    "hash_client_secret",
    "metadata",
    "verify_client_secret",
]

#: The verifier's own metadata, with deterministic constraint names (as the issuer's).
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class VerifierModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every verifier table."""


DIGEST_LENGTH = 43


def _str(length: int) -> Any:
    return sa.String(length)


def _text() -> Any:
    return sa.Text()


def _json() -> Any:
    return sa.JSON()


def _int() -> Any:
    return sa.BigInteger()


def digest(value: str) -> str:
    """What is stored for a ``state`` or ``response_code``: SHA-256, base64url (43 chars)."""
    return jose.sha256_b64url(value)


# -- keys ----------------------------------------------------------------------------------


class SigningKey(VerifierModel, table=True):
    """The request-object signing key (``purpose="verifier"``) or the dev CA (``"dev_ca"``).

    The private JWK is sealed; NULL for a key loaded from files in production.
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


# -- employers -----------------------------------------------------------------------------


class Employer(VerifierModel, table=True):
    """An organisation that asks for proof. ``webhook_url`` + the sealed HMAC secret are for
    the webhook sender (issue 5 item 5)."""

    __tablename__ = "employers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=_str(200))
    org_number: str = Field(sa_type=_str(16), unique=True)
    webhook_url: str | None = Field(default=None, sa_type=_str(2048))
    sealed_webhook_secret: str | None = Field(default=None, sa_type=_text())
    created_at: int = Field(sa_type=_int())
    disabled_at: int | None = Field(default=None, sa_type=_int())


class ApiClient(VerifierModel, table=True):
    """A client of the employer API (an HR system); secret only as a scrypt hash."""

    __tablename__ = "api_clients"

    client_id: str = Field(primary_key=True, sa_type=_str(128))
    employer_id: int = Field(foreign_key="employers.id", index=True)
    secret_hash: str = Field(sa_type=_str(256))
    name: str = Field(sa_type=_str(200))
    scopes: list[str] = Field(sa_type=_json())
    created_at: int = Field(sa_type=_int())
    disabled_at: int | None = Field(default=None, sa_type=_int())


class PageUser(VerifierModel, table=True):
    """A person using the employer pages (filled in by the pages work): ``subject`` is the
    eID account key (HMAC, intyg.web.accounts), never a personal identity number."""

    __tablename__ = "page_users"
    __table_args__ = (sa.UniqueConstraint("employer_id", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    employer_id: int = Field(foreign_key="employers.id", index=True)
    subject: str = Field(sa_type=_str(128))
    display_name: str = Field(sa_type=_str(200))
    role: str = Field(default="verifier", sa_type=_str(32))
    created_at: int = Field(sa_type=_int())
    disabled_at: int | None = Field(default=None, sa_type=_int())
    #: Password login to the employer page (intyg.web.client_secrets scrypt hash; 0002).
    password_hash: str | None = Field(default=None, sa_type=_str(256))


class EndedSession(VerifierModel, table=True):
    """A page session ended by logout before its cookie expired (T078): the SHA-256 of the
    session id (:class:`intyg.web.sessions.EndedSessions`), until the cookie's own expiry;
    the purge job deletes it then (0003)."""

    __tablename__ = "ended_sessions"

    session_hash: str = Field(primary_key=True, sa_type=_str(DIGEST_LENGTH))
    expires_at: int = Field(sa_type=_int(), index=True)


#: The deny-list of ended page sessions on that table (verifier/pages.py, retention.py).
ENDED_SESSIONS = EndedSessions(EndedSession.__table__, "session_hash")  # type: ignore[attr-defined]


class EmployerTemplate(VerifierModel, table=True):
    """An employer's own journey template (the built-in ones live in verifier/templates.py)."""

    __tablename__ = "templates"
    __table_args__ = (sa.UniqueConstraint("employer_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    employer_id: int = Field(foreign_key="employers.id", index=True)
    name: str = Field(sa_type=_str(64))
    dcql_query: dict[str, Any] = Field(sa_type=_json())
    purpose: dict[str, str] = Field(sa_type=_json())
    retention_days: int
    status_unknown_policy: str = Field(default="reject", sa_type=_str(8))
    created_at: int = Field(sa_type=_int())


# -- transactions --------------------------------------------------------------------------


class TransactionStatus:
    PENDING = "pending"
    #: The response arrived and consumed the transaction; the result is being computed.
    PROCESSING = "processing"
    VERIFIED = "verified"
    REJECTED = "rejected"
    #: The wallet answered with an OpenID4VP error response (e.g. access_denied).
    ERROR = "error"
    EXPIRED = "expired"  # computed on read: pending past expires_at


class Transaction(VerifierModel, table=True):
    """One presentation request (OpenID4VP §5, §13.3 reference design).

    ``sealed_request`` holds the Request Object claims (they include ``state``), so the
    ``request_uri`` serves the same ``nonce`` every time (T109). ``encryption_kid`` names the
    ephemeral ``direct_post.jwt`` key whose private half is ``sealed_encryption_key``.
    ``used_at`` is set by the one ``direct_post`` that consumed the transaction (I3).
    """

    __tablename__ = "transactions"

    id: str = Field(primary_key=True, sa_type=_str(43))
    employer_id: int = Field(foreign_key="employers.id", index=True)
    client_id: str | None = Field(default=None, sa_type=_str(128))
    template: str = Field(sa_type=_str(64))
    state_hash: str = Field(sa_type=_str(DIGEST_LENGTH), unique=True)
    #: Not a secret (the wallet reads it from the request object); needed for the KB-JWT.
    nonce: str = Field(sa_type=_str(128))
    response_mode: str = Field(sa_type=_str(32))
    sealed_request: str | None = Field(default=None, sa_type=_text())
    encryption_kid: str | None = Field(default=None, sa_type=_str(64), unique=True)
    sealed_encryption_key: str | None = Field(default=None, sa_type=_text())
    dcql_query: dict[str, Any] = Field(sa_type=_json())
    purpose: dict[str, str] = Field(sa_type=_json())
    retention_days: int
    status_unknown_policy: str = Field(sa_type=_str(8))
    #: Same-device flow: where the wallet sends the browser back (with ``#response_code``).
    same_device_redirect: str | None = Field(default=None, sa_type=_str(2048))
    response_code_hash: str | None = Field(default=None, sa_type=_str(DIGEST_LENGTH), unique=True)
    response_code_used_at: int | None = Field(default=None, sa_type=_int())
    status: str = Field(default=TransactionStatus.PENDING, sa_type=_str(16), index=True)
    wallet_error: str | None = Field(default=None, sa_type=_str(64))
    wallet_error_description: str | None = Field(default=None, sa_type=_str(300))
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    used_at: int | None = Field(default=None, sa_type=_int())
    completed_at: int | None = Field(default=None, sa_type=_int())


class Result(VerifierModel, table=True):
    """A verified presentation's result: every named check (no claim values), the credentials'
    types and issuers, the claims dropped as not requested (paths only).

    ``holder_key_refs`` are SHA-256 digests of ``transaction id + cnf thumbprint``: they
    authorise a deletion request from the same holder key and link nothing across transactions.
    """

    __tablename__ = "results"

    transaction_id: str = Field(primary_key=True, foreign_key="transactions.id", sa_type=_str(43))
    outcome: str = Field(sa_type=_str(16))
    checks: list[dict[str, Any]] = Field(sa_type=_json())
    credentials: list[dict[str, Any]] = Field(sa_type=_json())
    dropped_claims: list[dict[str, Any]] = Field(default_factory=list, sa_type=_json())
    holder_key_refs: list[str] = Field(default_factory=list, sa_type=_json())
    created_at: int = Field(sa_type=_int())
    claims_deleted_at: int | None = Field(default=None, sa_type=_int())
    #: ``retention`` (purge job) or ``holder`` (deletion endpoint).
    claims_deleted_by: str | None = Field(default=None, sa_type=_str(16))


class DisclosedClaims(VerifierModel, table=True):
    """The requested claims a wallet disclosed, sealed, until ``retain_until``."""

    __tablename__ = "disclosed_claims"

    transaction_id: str = Field(primary_key=True, foreign_key="transactions.id", sa_type=_str(43))
    sealed_claims: str = Field(sa_type=_text())
    created_at: int = Field(sa_type=_int())
    retain_until: int = Field(sa_type=_int(), index=True)


class Rejection(VerifierModel, table=True):
    """Why a response was refused: ``kind`` ``presentation`` (checks failed), ``replay``
    (transaction already used) or ``wallet_error``. Never a claim value."""

    __tablename__ = "rejections"

    id: int | None = Field(default=None, primary_key=True)
    transaction_id: str | None = Field(
        default=None, foreign_key="transactions.id", sa_type=_str(43), index=True
    )
    kind: str = Field(sa_type=_str(16))
    failed_checks: list[str] = Field(sa_type=_json())
    checks: list[dict[str, Any]] = Field(sa_type=_json())
    error: str | None = Field(default=None, sa_type=_str(64))
    error_description: str | None = Field(default=None, sa_type=_str(300))
    at: int = Field(sa_type=_int(), index=True)


class AuditEntry(VerifierModel, table=True):
    """Who did what to which transaction, when. Never a personal number or claim value."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_int(), index=True)
    actor: str = Field(sa_type=_str(200))
    action: str = Field(sa_type=_str(64), index=True)
    subject: str | None = Field(default=None, sa_type=_str(200), index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=_json())


class WebhookOutbox(VerifierModel, table=True):
    """A result event waiting for the employer's webhook (written in the same database
    transaction as the result; the sender builds the body at send time, so no claim is
    copied here)."""

    __tablename__ = "webhook_outbox"

    id: int | None = Field(default=None, primary_key=True)
    employer_id: int = Field(foreign_key="employers.id", index=True)
    transaction_id: str = Field(foreign_key="transactions.id", sa_type=_str(43), index=True)
    event: str = Field(sa_type=_str(32))
    created_at: int = Field(sa_type=_int())
    next_attempt_at: int = Field(sa_type=_int(), index=True)
    attempts: int = Field(default=0)
    delivered_at: int | None = Field(default=None, sa_type=_int())
    last_error: str | None = Field(default=None, sa_type=_str(300))
    #: Set when the sender gave up after the configured attempts (0002).
    failed_at: int | None = Field(default=None, sa_type=_int())
