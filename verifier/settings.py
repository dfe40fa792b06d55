"""Verifier settings (design.md "Deployment shapes"; issue 5).

Everything comes from ``INTYG_VERIFIER_*`` variables (or ``*_FILE`` for secrets, see
:mod:`intyg.web.settings`). ``public_base_url`` is where wallets reach the verifier: the
``response_uri`` (``<base>/response``), the ``request_uri`` (``<base>/request/<id>``) and the
certificate's SAN DNS name (its host) all derive from it.

The **client identifier prefix** (OpenID4VP 1.0 §5.9.3) is ``x509_hash`` by default (HAIP 1.0);
``x509_san_dns`` and ``decentralized_identifier`` (``did:web`` of the host) are alternatives.
Times are integer seconds unless named ``_days``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from intyg.web.settings import ServiceSettings
from intyg.web.wallet_links import KnownWallet, check_known_wallets

__all__ = ["VerifierSettings"]

ClientIdPrefix = Literal["x509_hash", "x509_san_dns", "decentralized_identifier"]
StatusPolicy = Literal["reject", "accept"]


class VerifierSettings(ServiceSettings):
    """Settings of the verifier service."""

    model_config = SettingsConfigDict(env_prefix="INTYG_VERIFIER_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "verifier"

    # -- OpenID4VP requests ----------------------------------------------------------------
    #: Client Identifier Prefix (OpenID4VP 1.0 §5.9.3) of the verifier's ``client_id``.
    client_id_prefix: ClientIdPrefix = "x509_hash"
    #: ``direct_post.jwt`` (HAIP 1.0: encrypted to a per-transaction key) or ``direct_post``.
    response_mode: Literal["direct_post.jwt", "direct_post"] = "direct_post.jwt"
    #: ``request_uri_method`` put in the QR link; ``None`` = omitted (the wallet GETs). The
    #: request URI answers both GET and POST whatever this says.
    request_uri_method: Literal["get", "post"] | None = None
    #: Lifetime of a transaction (QR, request object, direct_post), seconds.
    transaction_ttl: int = Field(default=600, ge=30, le=24 * 3600)
    #: Request object ``enc`` values offered (HAIP: both).
    enc_values: tuple[Literal["A128GCM", "A256GCM"], ...] = ("A128GCM", "A256GCM")

    # -- verification ----------------------------------------------------------------------
    #: Trust list file (JSON or YAML, docs/verifier.md). ``None``: the development trust
    #: list (AF and MYH with the CA files under ``dev_trust_anchor_dir``); refused in production.
    trust_list_file: Path | None = None
    #: Development: folder with ``af-dev-ca.pem`` / ``myh-dev-ca.pem`` (the issuers' dev CAs).
    dev_trust_anchor_dir: Path | None = None
    #: Clock skew accepted on ``iat``/``nbf``/``exp`` of credentials, KB-JWTs and status lists.
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    #: Oldest KB-JWT ``iat`` accepted (seconds before now).
    kb_max_age_seconds: int = Field(default=300, ge=10, le=3600)
    #: Default policy when a status list cannot be fetched (templates may override).
    status_unknown_policy: StatusPolicy = "reject"
    #: Status list cache bounds (TSL ``ttl`` is clamped into them; security.md T108).
    status_cache_min_seconds: int = Field(default=30, ge=0)
    #: Upper bound of the status list cache (see ``status_cache_min_seconds``).
    status_cache_max_seconds: int = Field(default=3600, ge=1)

    # -- retention -------------------------------------------------------------------------
    #: Default retention of disclosed claims for templates that do not set one.
    default_retention_days: int = Field(default=30, ge=0, le=3650)
    #: How often the purge job runs in each process.
    purge_interval_seconds: int = Field(default=300, ge=5)
    #: Rejection records (reasons only) are kept this long.
    rejection_retention_days: int = Field(default=90, ge=1)
    #: Rejection records kept per transaction at most (junk posted with a known state).
    max_rejections_per_transaction: int = Field(default=20, ge=1)

    # -- keys ------------------------------------------------------------------------------
    #: Production: PEM private key of the request-signing key (P-256).
    signing_key_file: Path | None = None
    #: Production: PEM chain, leaf first, never the trust anchor (HAIP 1.0).
    signing_cert_chain_file: Path | None = None
    #: Validity of generated request-signing certificates.
    signing_cert_valid_days: int = Field(default=2 * 365, ge=1)

    # -- employer API ----------------------------------------------------------------------
    #: Lifetime of an employer API bearer token (client credentials grant).
    api_token_ttl: int = Field(default=300, ge=30, le=3600)
    #: Development only: an employer "Utvecklingsarbetsgivaren AB" with an API client
    #: ``dev-employer`` holding this secret is created on start.
    dev_api_client_secret: SecretStr | None = None

    # -- outbound (status lists, issuer metadata) ------------------------------------------
    #: Whole-exchange time limit of one outbound fetch (seconds).
    outbound_total_timeout: float = Field(default=5.0, gt=0, le=60)
    #: Largest outbound response accepted (status lists, metadata).
    outbound_max_response_bytes: int = Field(default=2_000_000, ge=1024)

    # -- employer pages (verifier/pages.py) ------------------------------------------------
    #: Lifetime of a page user's session cookie.
    page_session_seconds: int = Field(default=8 * 3600, ge=300, le=7 * 86400)
    #: Development only: a page user ``dev-user`` of the development employer with this
    #: password is created on first use of the login page.
    dev_page_user_password: SecretStr | None = None
    #: Wallets the same-device page offers an "Open in <wallet>" button for (JSON list of
    #: ``{"name": {"sv", "en"}, "authorization_endpoint"}``, OpenID4VP §5); https outside
    #: development. The ``openid4vp://`` link stays for other wallets.
    wallets: tuple[KnownWallet, ...] = ()

    # -- webhooks (verifier/webhooks.py) ----------------------------------------------------
    #: How often each process looks for due webhook deliveries.
    webhook_poll_seconds: float = Field(default=2.0, gt=0, le=300)
    #: Attempts before a delivery is marked failed.
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    #: First retry delay; doubled per attempt (with jitter), capped at the maximum.
    webhook_backoff_seconds: int = Field(default=10, ge=1)
    #: Longest delay between two attempts of a delivery.
    webhook_backoff_max_seconds: int = Field(default=3600, ge=1)
    #: Whole-exchange timeout of one delivery.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    #: Deliveries per pass of the sender.
    webhook_batch_size: int = Field(default=50, ge=1, le=1000)

    # -- service ---------------------------------------------------------------------------
    #: Largest request body accepted (413 above it), except ``direct_post``.
    max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    #: Largest ``direct_post`` body (two SD-JWT VCs with KB-JWTs fit easily).
    max_response_bytes: int = Field(default=256 * 1024, ge=1024)

    @model_validator(mode="after")
    def _consistent(self) -> VerifierSettings:
        if (self.signing_key_file is None) != (self.signing_cert_chain_file is None):
            raise ValueError("signing_key_file and signing_cert_chain_file go together")
        if not self.is_development and self.trust_list_file is None:
            raise ValueError("trust_list_file is required in production")
        if self.status_cache_min_seconds > self.status_cache_max_seconds:
            raise ValueError("status_cache_min_seconds must not exceed status_cache_max_seconds")
        return self

    @model_validator(mode="after")
    def _wallet_endpoints(self) -> VerifierSettings:
        check_known_wallets(self.wallets, development=self.is_development)
        return self

    @property
    def host(self) -> str:
        """Host of the public base URL: the SAN DNS name of the verifier certificate."""
        return urlsplit(self.public_base_url).hostname or ""

    @property
    def did_web(self) -> str:
        """``did:web`` of the public base URL (port percent-encoded, path as ``:`` segments)."""
        parts = urlsplit(self.public_base_url)
        authority = quote(parts.netloc, safe="")
        path = ":".join(segment for segment in parts.path.split("/") if segment)
        return f"did:web:{authority}" + (f":{path}" if path else "")

    def url(self, path: str) -> str:
        """An absolute URL under the public base URL; ``path`` starts with ``/``."""
        return self.public_base_url + path

    @property
    def response_uri(self) -> str:
        return self.url("/response")

    @property
    def deletion_uri(self) -> str:
        return self.url("/deletion")

    def request_uri(self, transaction_id: str) -> str:
        return self.url(f"/request/{transaction_id}")
