"""Issuer settings (design.md "Deployment shapes"): one instance per agency.

Everything comes from ``INTYG_ISSUER_*`` variables (or ``*_FILE`` for secrets, see
:mod:`intyg.web.settings`). The **credential issuer identifier** is ``public_base_url``,
exactly as configured (trailing ``/`` removed): it is the ``iss`` of every credential, the
``aud`` of every key proof, the SAN URI of the issuer certificate and the ``issuer`` of the
JWT VC Issuer Metadata, so it must be spelt the same everywhere (OpenID4VCI 1.0 §12.2.1).

Times are integer seconds (or days where named so); the defaults follow protocols.md §5 (a
revocation is visible within ``status_ttl_seconds``) and §7.4 (short-lived registration
certificates).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from intyg.web.oidc import OidcConfig
from intyg.web.settings import ServiceSettings
from intyg.web.wallet_links import KnownWallet, check_known_wallets

__all__ = ["IssuerSettings"]


class IssuerSettings(ServiceSettings):
    """Settings of one issuer instance (one agency)."""

    model_config = SettingsConfigDict(env_prefix="INTYG_ISSUER_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "issuer"

    #: Which agency this instance is (issuer/agencies.py).
    agency: Literal["af", "myh"] = "af"

    # -- profile ---------------------------------------------------------------------------
    #: HAIP 1.0 (protocols.md §6): x5c, DPoP, PAR, wallet attestation for the code flow.
    haip: bool = True
    #: RFC 9449 DPoP-bound access tokens required; ``None`` means "as ``haip``".
    dpop_required: bool | None = None

    # -- lifetimes of single-use and short-lived items (seconds) ---------------------------
    #: Lifetime of an OpenID4VCI access token.
    access_token_ttl: int = Field(default=300, gt=0)
    #: Lifetime of a pre-authorized code (single use).
    pre_authorized_code_ttl: int = Field(default=900, gt=0)
    #: Lifetime of a credential offer behind its ``credential_offer_uri``.
    offer_ttl: int = Field(default=900, gt=0)
    #: Lifetime of a ``c_nonce`` from the Nonce Endpoint (single use).
    c_nonce_ttl: int = Field(default=300, gt=0)
    #: Lifetime of an authorization code (code flow, single use).
    authorization_code_ttl: int = Field(default=60, gt=0)
    #: Lifetime of a pushed authorization request's ``request_uri`` (RFC 9126).
    par_ttl: int = Field(default=60, gt=0)
    #: How long a DPoP / proof ``jti`` is remembered for replay detection.
    jti_ttl: int = Field(default=600, gt=0)

    # -- issuance --------------------------------------------------------------------------
    #: OpenID4VCI §12.2.4 ``batch_credential_issuance.batch_size``.
    batch_size: int = Field(default=5, ge=1, le=100)
    #: Digits of the transaction code (``tx_code``) sent to the person out of band.
    tx_code_length: int = Field(default=6, ge=4, le=12)
    #: Wrong tx_code attempts after which a pre-authorized code is dead.
    tx_code_max_attempts: int = Field(default=5, ge=1, le=20)
    #: RegistrationCertificate ``exp``: short, registrations change (protocols.md §7.4).
    registration_validity_days: int = Field(default=30, ge=1)
    #: QualificationAttestation ``exp``; never after ``decision_valid_until`` when present.
    qualification_validity_days: int = Field(default=5 * 365, ge=1)

    # -- status lists (protocols.md §5) ----------------------------------------------------
    #: Entries per list; a Bitstring list is never smaller than 131,072 entries.
    status_list_size: int = Field(default=131_072, ge=16)
    #: Bits per Token Status List entry: 2 so SUSPENDED (0x02) can be expressed.
    status_list_bits: Literal[1, 2, 4, 8] = 2
    #: ``ttl`` of the status list token, in-memory cache age and HTTP ``max-age``.
    status_ttl_seconds: int = Field(default=5, ge=1, le=3600)
    #: ``exp`` of a status list token relative to its ``iat``.
    status_token_lifetime_seconds: int = Field(default=3600, ge=60)

    # -- keys ------------------------------------------------------------------------------
    #: Production: PEM private key of the issuer signing key (P-256).
    signing_key_file: Path | None = None
    #: Production: PEM chain, leaf first, intermediates after; never the trust anchor.
    signing_cert_chain_file: Path | None = None
    #: Validity of generated issuer certificates; must outlast what the key signs.
    signing_cert_valid_days: int = Field(default=3 * 365 + 5 * 365, ge=1)
    #: How long an in-process copy of the active key is used before re-reading it.
    key_cache_seconds: int = Field(default=60, ge=0)

    # -- wallets ---------------------------------------------------------------------------
    #: PEM files with trust anchors of wallet providers (HAIP wallet attestation).
    trusted_wallet_providers: tuple[Path, ...] = ()
    #: Wallets the person's page offers an "Open in <wallet>" button for (JSON list of
    #: ``{"name": {"sv", "en"}, "credential_offer_endpoint"}``, OpenID4VCI §4.1); https
    #: outside development. The ``openid-credential-offer://`` link stays for other wallets.
    wallets: tuple[KnownWallet, ...] = ()

    # -- person's page (issuer/pages.py) ---------------------------------------------------
    #: The eID provider people log in with (``INTYG_ISSUER_EID`` as JSON, docs/eid.md);
    #: ``None`` hides the login. ``redirect_uri`` is ``<public_base_url>/login/callback``.
    eid: OidcConfig | None = None
    #: Lifetime of the page's browser session (seconds).
    page_session_seconds: int = Field(default=1800, ge=60, le=12 * 3600)
    #: Lifetime of an offer made on the person's page (no tx_code there, so kept short).
    page_offer_ttl: int = Field(default=300, ge=30)

    # -- back office (issuer/backoffice.py) ------------------------------------------------
    #: Lifetime of a back-office bearer token from the client credentials grant.
    backoffice_token_ttl: int = Field(default=300, ge=30, le=3600)
    #: Development only: a back-office client ``dev-backoffice`` with every scope and this
    #: secret is created on first use (refused in production like every ``dev_*`` field).
    dev_backoffice_secret: SecretStr | None = None

    # -- service ---------------------------------------------------------------------------
    #: Largest request body accepted (413 above it).
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    #: Development only: load the sample MYH catalogue and sample records on start.
    dev_sample_data: bool = False

    @model_validator(mode="after")
    def _key_files_together(self) -> IssuerSettings:
        if (self.signing_key_file is None) != (self.signing_cert_chain_file is None):
            raise ValueError("signing_key_file and signing_cert_chain_file go together")
        return self

    @model_validator(mode="after")
    def _wallet_endpoints(self) -> IssuerSettings:
        check_known_wallets(self.wallets, development=self.is_development)
        return self

    @property
    def issuer_identifier(self) -> str:
        """The Credential Issuer Identifier, byte for byte as it appears everywhere."""
        return self.public_base_url

    @property
    def host(self) -> str:
        """Host name of the identifier (no port), for the certificate's SAN DNS name."""
        return urlsplit(self.public_base_url).hostname or ""

    @property
    def requires_dpop(self) -> bool:
        return self.haip if self.dpop_required is None else self.dpop_required

    def url(self, path: str) -> str:
        """An absolute URL under the issuer identifier; ``path`` starts with ``/``."""
        return self.public_base_url + path

    def status_list_url(self, list_id: int) -> str:
        """IETF Token Status List ``uri`` (the token's ``sub``)."""
        return self.url(f"/statuslists/{list_id}")

    def bitstring_list_url(self, list_id: int) -> str:
        """W3C ``statusListCredential`` URL (and the list credential's ``id``)."""
        return self.url(f"/status/{list_id}")
