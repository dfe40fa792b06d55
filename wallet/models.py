"""All wallet state as SQLModel tables (SQLAlchemy 2); the schema Alembic migrates to.

Rules every table follows (design.md "House rules", security.md T074, T083, T084, I4, I5):

- Every row that belongs to a person carries ``account_id`` and every query filters by it
  (wallet/accounts.py gives the one dependency that yields the account). Public ids in URLs
  are random (``public_id``), never the integer key.
- Accounts are keyed by :func:`intyg.web.accounts.account_key` (HMAC of the number); the
  personal number itself is never stored.
- Private keys, credentials, pre-authorized codes and PKCE verifiers are sealed with
  :class:`~intyg.web.crypto_store.CryptoStore` under ``record_aad(purpose, row id)``.
- Times are integer Unix seconds.
- I5: a holder key is ``generated`` -> ``proof_sent`` -> ``bound`` (its credential instance
  stored in the same transaction) or ``failed``; a credential instance always has its key.

List page (design.md target: 1,000 credentials < 50 ms): :class:`WalletCredential` is the
card a person sees; it keeps the *non-personal* display fields (issuer and credential
display from the issuer's metadata / type metadata, dates, status) in clear so the list is
one indexed query with no decryption. Claim values (personal data) live only in the sealed
:class:`CredentialInstance` rows and are opened for the detail page.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "Account",
    "ConsentKey",
    "ConsentRecord",
    "CredentialInstance",
    "HolderKey",
    "IssuanceSession",
    "KeyState",
    "KnownVerifier",
    "PresentationSession",
    "ProviderKey",
    "UsedLoginState",
    "WalletCredential",
    "metadata",
    "new_public_id",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class WalletModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every wallet table."""


def _str(length: int) -> Any:
    return sa.String(length)


def _text() -> Any:
    return sa.Text()


def _json() -> Any:
    return sa.JSON()


def _int() -> Any:
    return sa.BigInteger()


def new_public_id() -> str:
    """A random id for URLs (128 bits, base64url, 22 chars)."""
    return secrets.token_urlsafe(16)


class KeyState:
    """Holder key life cycle (security.md I5)."""

    GENERATED = "generated"
    PROOF_SENT = "proof_sent"
    BOUND = "bound"
    FAILED = "failed"


# -- accounts and login --------------------------------------------------------------------


class Account(WalletModel, table=True):
    """A person's wallet, keyed by the HMAC of the personal number."""

    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    account_key: str = Field(sa_type=_str(64), unique=True)
    created_at: int = Field(sa_type=_int())
    last_login_at: int = Field(sa_type=_int())


class UsedLoginState(WalletModel, table=True):
    """eID login ``state`` values already used (I3; shared by every replica)."""

    __tablename__ = "used_login_states"

    state_hash: str = Field(primary_key=True, sa_type=_str(64))
    expires_at: int = Field(sa_type=_int(), index=True)


# -- the wallet provider -------------------------------------------------------------------


class ProviderKey(WalletModel, table=True):
    """The wallet provider's development CA (``purpose="dev_ca"``) or attestation key
    (``"attestation"``). The private JWK is sealed; NULL when it comes from a file."""

    __tablename__ = "provider_keys"

    kid: str = Field(primary_key=True, sa_type=_str(128))
    purpose: str = Field(sa_type=_str(16), index=True)
    public_jwk: dict[str, Any] = Field(sa_type=_json())
    sealed_private_jwk: str | None = Field(default=None, sa_type=_text())
    #: PEM certificates, leaf first (for the CA its own certificate).
    certificate_chain_pem: str = Field(sa_type=_text())
    created_at: int = Field(sa_type=_int())
    not_after: int = Field(sa_type=_int())


# -- receiving credentials (OpenID4VCI) ----------------------------------------------------


class IssuanceSession(WalletModel, table=True):
    """A credential offer being looked at or accepted (OpenID4VCI §4.1, §6-§8), or a
    wallet-initiated authorization code flow (§5; wallet/authorization.py).

    ``sealed_offer`` holds the offer (it contains the pre-authorized code), or for the code
    flow the authorization request sent; issuer and AS metadata are public documents kept
    in clear. ``state``: ``offered`` -> ``accepted`` -> ``done`` | ``failed`` (``declined``
    when the person says no); the code flow starts ``authorizing``. Its OAuth ``state`` is
    kept only as a SHA-256 digest (``authorization_state_hash``), bound to the browser
    session that started it (``browser_session_hash``) and redeemed once (``authorized_at``,
    :func:`intyg.web.db.consume_once`); PKCE verifier and DPoP key are sealed (0004).
    """

    __tablename__ = "issuance_sessions"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=_str(32), unique=True, default_factory=new_public_id)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    state: str = Field(sa_type=_str(16))
    credential_issuer: str = Field(sa_type=_str(512))
    configuration_ids: list[str] = Field(sa_type=_json())
    sealed_offer: str = Field(sa_type=_text())
    issuer_metadata: dict[str, Any] = Field(sa_type=_json())
    as_metadata: dict[str, Any] = Field(sa_type=_json())
    tx_code: dict[str, Any] | None = Field(default=None, sa_type=_json())
    sealed_pkce_verifier: str | None = Field(default=None, sa_type=_text())
    sealed_dpop_key: str | None = Field(default=None, sa_type=_text())
    #: A short, safe message for the person when the session failed.
    error: str | None = Field(default=None, sa_type=_str(300))
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    finished_at: int | None = Field(default=None, sa_type=_int())
    authorization_state_hash: str | None = Field(default=None, sa_type=_str(64), unique=True)
    browser_session_hash: str | None = Field(default=None, sa_type=_str(64))
    authorized_at: int | None = Field(default=None, sa_type=_int())


class HolderKey(WalletModel, table=True):
    """One holder key per credential instance (T083); the private JWK sealed (T084)."""

    __tablename__ = "holder_keys"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    issuance_id: int | None = Field(default=None, foreign_key="issuance_sessions.id")
    thumbprint: str = Field(sa_type=_str(64), unique=True)
    public_jwk: dict[str, Any] = Field(sa_type=_json())
    sealed_private_jwk: str = Field(sa_type=_text())
    state: str = Field(sa_type=_str(16), index=True)
    created_at: int = Field(sa_type=_int())
    updated_at: int = Field(sa_type=_int())


class WalletCredential(WalletModel, table=True):
    """A credential as the person sees it (one card), with one or more instances (batch).

    Only non-personal display data is in clear (see the module docstring); ``display`` and
    ``issuer_display`` come from the issuer's metadata, keyed by locale.
    """

    __tablename__ = "credentials"
    __table_args__ = (sa.Index("ix_credentials_account_received", "account_id", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=_str(32), unique=True, default_factory=new_public_id)
    account_id: int = Field(foreign_key="accounts.id")
    format: str = Field(sa_type=_str(32))
    vct: str | None = Field(default=None, sa_type=_str(512))
    configuration_id: str = Field(sa_type=_str(200))
    credential_issuer: str = Field(sa_type=_str(512))
    issuer_display: dict[str, Any] = Field(sa_type=_json())
    display: dict[str, Any] = Field(sa_type=_json())
    received_at: int = Field(sa_type=_int())
    expires_at: int | None = Field(default=None, sa_type=_int())
    #: ``valid`` | ``revoked`` | ``suspended`` | ``unknown`` (last status list check).
    status: str = Field(default="valid", sa_type=_str(16))
    status_checked_at: int | None = Field(default=None, sa_type=_int())
    instance_count: int = Field(default=1)
    #: The list page's names in plain columns (0003): no JSON decoding per card.
    name_sv: str = Field(default="", sa_type=_str(200), sa_column_kwargs={"server_default": ""})
    name_en: str = Field(default="", sa_type=_str(200), sa_column_kwargs={"server_default": ""})
    issuer_name_sv: str = Field(
        default="", sa_type=_str(200), sa_column_kwargs={"server_default": ""}
    )
    issuer_name_en: str = Field(
        default="", sa_type=_str(200), sa_column_kwargs={"server_default": ""}
    )


class CredentialInstance(WalletModel, table=True):
    """One issued copy bound to one holder key; the credential text sealed."""

    __tablename__ = "credential_instances"

    id: int | None = Field(default=None, primary_key=True)
    credential_id: int = Field(foreign_key="credentials.id", index=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    holder_key_id: int = Field(foreign_key="holder_keys.id", unique=True)
    sealed_credential: str = Field(sa_type=_text())
    #: Token Status List / Bitstring reference (``{"uri", "idx"}`` or the W3C entry).
    status_reference: dict[str, Any] | None = Field(default=None, sa_type=_json())
    times_presented: int = Field(default=0)
    created_at: int = Field(sa_type=_int())


# -- answering requests (OpenID4VP) and consent (issue 4 items 5-6) ------------------------


class PresentationSession(WalletModel, table=True):
    """A verifier's request being answered; the checked request kept for the consent."""

    __tablename__ = "presentation_sessions"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=_str(32), unique=True, default_factory=new_public_id)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    state: str = Field(sa_type=_str(16))
    client_id: str = Field(sa_type=_str(1024))
    request: dict[str, Any] = Field(sa_type=_json())
    created_at: int = Field(sa_type=_int())
    expires_at: int = Field(sa_type=_int(), index=True)
    #: The consent (or decline) record written for this request (0002).
    consent_id: str | None = Field(default=None, sa_type=_str(32))
    #: Where the verifier asked the browser to go next (same device; https or dev loopback).
    redirect_uri: str | None = Field(default=None, sa_type=_str(2048))


class ConsentRecord(WalletModel, table=True):
    """A consent (ISO/IEC TS 27560 shaped), hash-chained per account (``seq``, ``prev_hash``)."""

    __tablename__ = "consent_records"
    __table_args__ = (sa.UniqueConstraint("account_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=_str(32), unique=True, default_factory=new_public_id)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    seq: int
    prev_hash: str = Field(sa_type=_str(64))
    record_hash: str = Field(sa_type=_str(64))
    record: dict[str, Any] = Field(sa_type=_json())
    delivery_status: str = Field(sa_type=_str(16))
    created_at: int = Field(sa_type=_int())
    #: ``consent`` | ``declined`` | ``delivery`` | ``withdrawal`` (0002).
    kind: str = Field(default="consent", sa_type=_str(16))
    #: For ``delivery`` / ``withdrawal``: the ``public_id`` of the record it is about.
    subject_id: str | None = Field(default=None, sa_type=_str(32), index=True)


class ConsentKey(WalletModel, table=True):
    """A holder key used in a consent's presentation, sealed under the consent (0002).

    A copy, not a reference: deleting the credential (and its keys) must not make the
    consent impossible to withdraw (the verifier's deletion proof needs this key).
    """

    __tablename__ = "consent_keys"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    consent_id: int = Field(foreign_key="consent_records.id", index=True)
    thumbprint: str = Field(sa_type=_str(64))
    sealed_private_jwk: str = Field(sa_type=_text())


class KnownVerifier(WalletModel, table=True):
    """The verifier registry (loaded from ``verifier_registry_file``)."""

    __tablename__ = "known_verifiers"

    client_id: str = Field(primary_key=True, sa_type=_str(512))
    name: dict[str, Any] = Field(sa_type=_json())
    organisation_number: str | None = Field(default=None, sa_type=_str(16))
    registered_needs: list[Any] = Field(sa_type=_json())
    updated_at: int = Field(sa_type=_int())
