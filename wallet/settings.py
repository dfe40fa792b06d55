"""Wallet settings (design.md "Deployment shapes"): ``INTYG_WALLET_*`` variables.

The wallet is an OAuth client of every issuer (OpenID4VCI) and the authorization endpoint of
every verifier (OpenID4VP). What it trusts is configured here: the eID provider people log
in with, PEM trust anchors for issuer ``x5c`` chains and for verifier request-object ``x5c``
chains, and a registry file of known verifiers. It is its own wallet provider (HAIP wallet
attestation): ``provider_key_file`` + ``provider_cert_chain_file`` in production, a
development CA generated on first start otherwise (wallet/keys.py).

Outbound fetches (offers by reference, issuer and AS metadata, status lists, request URIs)
follow :meth:`outbound_policy`: https and public addresses only outside development
(security.md T085); in development http to loopback is allowed so the services of
``intyg up`` can reach each other.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from intyg import oid4vci
from intyg.web.oidc import OidcConfig
from intyg.web.settings import ServiceSettings

__all__ = ["WalletSettings"]


class WalletSettings(ServiceSettings):
    """Settings of the wallet service."""

    model_config = SettingsConfigDict(env_prefix="INTYG_WALLET_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "wallet"

    #: The eID provider people log in with (``INTYG_WALLET_EID`` as JSON, docs/eid.md).
    #: ``redirect_uri`` is ``<public_base_url>/login/callback``.
    eid: OidcConfig | None = None
    #: Lifetime of a person's browser session.
    session_seconds: int = Field(default=1800, ge=60, le=12 * 3600)

    # -- trust -----------------------------------------------------------------------------
    #: PEM files with trust anchors for issuer signatures (``x5c`` in credentials).
    issuer_trust_anchors: tuple[Path, ...] = ()
    #: PEM files with trust anchors for verifiers' signed request objects.
    verifier_trust_anchors: tuple[Path, ...] = ()
    #: JSON file: known verifiers (name, organisation number, registered needs).
    verifier_registry_file: Path | None = None

    # -- the wallet as its own wallet provider (HAIP wallet attestation) -------------------
    #: OAuth ``client_id`` shared by all instances (attestation ``sub``); default: base URL.
    client_id: str | None = None
    #: ``wallet_name`` in wallet attestations: what issuers show and log.
    wallet_name: str = "intyg wallet"
    #: Production: PEM private key (P-256) and chain (leaf first, never the anchor).
    provider_key_file: Path | None = None
    #: Production: PEM chain of the provider key (leaf first, never the anchor).
    provider_cert_chain_file: Path | None = None
    #: Lifetime of a wallet attestation JWT.
    attestation_ttl: int = Field(default=3600, ge=60, le=86400)

    # -- issuance --------------------------------------------------------------------------
    #: Lifetime of a pending issuance (offer shown, waiting for the person).
    issuance_ttl: int = Field(default=900, ge=60)
    #: Upper bound of holder keys (credential instances) asked for in one batch.
    max_batch_size: int = Field(default=5, ge=1, le=20)
    #: How long a fetched status is trusted before the list is fetched again (seconds).
    status_cache_seconds: int = Field(default=300, ge=0)
    #: Credential issuers offered on "Get a credential" (wallet-initiated issuance,
    #: OpenID4VCI §5): their identifiers, exactly as they publish them
    #: (``INTYG_WALLET_CREDENTIAL_ISSUERS='["https://af.example", ...]'``).
    credential_issuers: tuple[str, ...] = ()
    #: How long a started authorization (PAR, eID login at the issuer) may take (seconds).
    authorization_ttl: int = Field(default=600, ge=60, le=3600)
    #: How long fetched issuer metadata (the "Get a credential" list) is reused (seconds).
    issuer_metadata_cache_seconds: int = Field(default=300, ge=0)

    # -- verifiers -------------------------------------------------------------------------
    #: How long a did:web DID document is reused before it is fetched again (seconds).
    did_cache_seconds: int = Field(default=300, ge=0, le=86400)

    #: Largest request body accepted (413 above it), except the backup import.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: The backup import (``POST /settings/import``) carries every credential: larger.
    max_import_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)

    @model_validator(mode="after")
    def _provider_files_together(self) -> WalletSettings:
        if (self.provider_key_file is None) != (self.provider_cert_chain_file is None):
            raise ValueError("provider_key_file and provider_cert_chain_file go together")
        return self

    @model_validator(mode="after")
    def _credential_issuers_are_identifiers(self) -> WalletSettings:
        # OpenID4VCI §12.2.1: https URLs (http only in development), no query or fragment.
        for identifier in self.credential_issuers:
            oid4vci.check_issuer_identifier(identifier, allow_http=self.is_development)
        if len(set(self.credential_issuers)) != len(self.credential_issuers):
            raise ValueError("credential_issuers lists an issuer twice")
        return self

    @property
    def oauth_client_id(self) -> str:
        return self.client_id or self.public_base_url

    @property
    def host(self) -> str:
        """Host name of the base URL, for the provider certificate's SAN DNS name."""
        return urlsplit(self.public_base_url).hostname or ""

    @property
    def host_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def url(self, path: str) -> str:
        return self.public_base_url + path
