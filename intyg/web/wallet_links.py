"""Wallets an issuer or a verifier knows by name, and the same-device links that open them
(protocols.md §1.1 and §2.7).

A web (cloud) wallet cannot receive the custom schemes ``openid-credential-offer://``
(OpenID4VCI 1.0 §4.1) and ``openid4vp://`` (OpenID4VP 1.0 §5): the browser has no app to hand
them to. Both specifications let the other side invoke a wallet it knows at the wallet's own
URL instead: OpenID4VCI at the wallet's ``credential_offer_endpoint`` (client metadata: an
issuer "may know" the wallet), OpenID4VP at the wallet's ``authorization_endpoint`` (wallet
metadata, §10). An issuer or a verifier configured with such wallets (``INTYG_ISSUER_WALLETS``,
``INTYG_VERIFIER_WALLETS``) shows one "Öppna i <wallet>" / "Open in <wallet>" button per wallet
next to the QR code and the generic custom-scheme link, which stays for every other wallet.

A configured endpoint is checked like an outbound target (:func:`intyg.web.outbound.check_url`:
no user information, a well-formed host, https; http only to loopback and only in
development) and carries no query or fragment: the link appends its own query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from intyg import oid4vci, oid4vp
from intyg.web.outbound import OutboundError, OutboundPolicy, check_url

__all__ = [
    "ENDPOINTS",
    "KnownWallet",
    "WalletLink",
    "WalletName",
    "check_known_wallets",
    "offer_links",
    "request_links",
]

#: The wallet URLs a service may know: OpenID4VCI's offer endpoint, OpenID4VP's endpoint.
ENDPOINTS = ("credential_offer_endpoint", "authorization_endpoint")
MAX_NAME_LENGTH = 60


class WalletName(BaseModel):
    """The wallet's name as people know it, in both page languages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sv: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    en: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)


class KnownWallet(BaseModel):
    """One known wallet: its name and at least one of its endpoints (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: WalletName
    credential_offer_endpoint: str | None = None
    authorization_endpoint: str | None = None

    @field_validator(*ENDPOINTS)
    @classmethod
    def _endpoint_form(cls, value: str | None) -> str | None:
        # The environment's https rule is applied by the settings (check_known_wallets).
        if value is not None:
            _check_endpoint(value, development=True)
        return value

    @model_validator(mode="after")
    def _some_endpoint(self) -> KnownWallet:
        if not any(getattr(self, name) for name in ENDPOINTS):
            raise ValueError(f"a known wallet needs one of {', '.join(ENDPOINTS)}")
        return self


def _check_endpoint(url: str, *, development: bool) -> None:
    try:
        check_url(url, OutboundPolicy(development=development))
    except OutboundError as exc:
        raise ValueError(f"{exc} (http only to loopback in development)") from None
    parts = urlsplit(url)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("a wallet endpoint must not have a query or fragment")


def check_known_wallets(wallets: Iterable[KnownWallet], *, development: bool) -> None:
    """The environment's rule for every configured endpoint: https outside development."""
    for index, wallet in enumerate(wallets):
        for name in ENDPOINTS:
            url = getattr(wallet, name)
            if url is not None:
                try:
                    _check_endpoint(url, development=development)
                except ValueError as exc:
                    raise ValueError(f"wallets[{index}].{name}: {exc}") from None


@dataclass(frozen=True)
class WalletLink:
    """A button: the wallet's name in the page language and where it leads."""

    name: str
    href: str


def offer_links(wallets: Iterable[KnownWallet], offer_uri: str, language: str) -> list[WalletLink]:
    """OpenID4VCI 1.0 §4.1: the offer by reference at each wallet's Credential Offer Endpoint."""
    return [
        WalletLink(
            getattr(wallet.name, language),
            oid4vci.offer_link(offer_uri, scheme=wallet.credential_offer_endpoint),
        )
        for wallet in wallets
        if wallet.credential_offer_endpoint
    ]


def request_links(
    wallets: Iterable[KnownWallet],
    client_id: str,
    request_uri: str,
    language: str,
    request_uri_method: str | None = None,
) -> list[WalletLink]:
    """OpenID4VP 1.0 §5: ``client_id`` + ``request_uri`` at each wallet's authorization
    endpoint (the same parameters as the ``openid4vp://`` link)."""
    return [
        WalletLink(
            getattr(wallet.name, language),
            oid4vp.request_uri_link(
                client_id,
                request_uri,
                scheme=wallet.authorization_endpoint,
                request_uri_method=request_uri_method,
            ),
        )
        for wallet in wallets
        if wallet.authorization_endpoint
    ]
