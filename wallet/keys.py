"""The wallet as its own wallet provider (HAIP 1.0 "Wallet Attestation", OAuth
Attestation-Based Client Authentication).

The provider key signs wallet attestations whose ``x5c`` carries the provider certificate
(never the trust anchor). In production the key and chain come from files; in development a
provider CA and a leaf are generated on first start and kept in ``provider_keys`` (private
keys sealed). Issuers trust the wallet by configuring the CA certificate
(:meth:`ProviderKeys.trust_anchor_pem`, also written to ``data_dir/wallet-provider-ca.pem``).

Every issuance uses a fresh instance key (the DPoP key) in the attestation's ``cnf`` so
attestations are not linkable across issuers; ``sub`` is the client id shared by every
instance (OpenID4VCI Appendix E).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.x509 import Certificate
from sqlalchemy.engine import Engine

from intyg import client_attestation, jose, x509
from intyg.web import db
from intyg.web.crypto_store import CryptoStore, record_aad

from .db import lock
from .models import ProviderKey
from .settings import WalletSettings

__all__ = ["ANCHOR_FILE_NAME", "ProviderKeys"]

DEV_CA = "dev_ca"
ATTESTATION = "attestation"
ANCHOR_FILE_NAME = "wallet-provider-ca.pem"


@dataclass(frozen=True)
class _Signer:
    key: jose.Key
    x5c: list[str]


def _aad(kid: str) -> bytes:
    return record_aad("wallet/provider-key", kid)


def _not_after(cert: Certificate) -> int:
    return int(cert.not_valid_after_utc.replace(tzinfo=datetime.UTC).timestamp())


class ProviderKeys:
    """Load or create the provider key; sign wallet attestations."""

    def __init__(
        self,
        engine: Engine,
        settings: WalletSettings,
        store: CryptoStore,
        clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.store = store
        self.clock = clock
        self._signer: _Signer | None = None

    def ensure(self) -> None:
        """Load the signer (files in production, generated in development)."""
        if self.settings.provider_key_file is not None:
            assert self.settings.provider_cert_chain_file is not None
            key = jose.key_from_pem(self.settings.provider_key_file.read_bytes())
            chain = x509.certs_from_pem(self.settings.provider_cert_chain_file.read_bytes())
            self._signer = _Signer(key, x509.x5c_from_certs(chain))
            return
        with db.session(self.engine) as unit:
            lock(unit, "wallet-provider-keys")
            self._signer = self._generated(unit)
        anchor = self.trust_anchor_pem()
        if anchor is not None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            (self.settings.data_dir / ANCHOR_FILE_NAME).write_text(anchor, encoding="ascii")

    def _row(self, unit: db.Session, purpose: str) -> ProviderKey | None:
        return unit.scalars(sa.select(ProviderKey).where(ProviderKey.purpose == purpose)).first()

    def _store(
        self, unit: db.Session, purpose: str, key: jose.Key, chain: list[Certificate]
    ) -> None:
        assert key.kid is not None
        unit.add(
            ProviderKey(
                kid=key.kid,
                purpose=purpose,
                public_jwk=key.public_jwk(),
                sealed_private_jwk=self.store.seal_key(key, _aad(key.kid)),
                certificate_chain_pem="".join(x509.cert_to_pem(c) for c in chain),
                created_at=self.clock(),
                not_after=_not_after(chain[0]),
            )
        )

    def _open(self, row: ProviderKey) -> jose.Key:
        assert row.sealed_private_jwk is not None
        return self.store.open_key(row.sealed_private_jwk, _aad(row.kid))

    def _generated(self, unit: db.Session) -> _Signer:
        leaf_row = self._row(unit, ATTESTATION)
        if leaf_row is not None:
            certs = x509.certs_from_pem(leaf_row.certificate_chain_pem)
            return _Signer(self._open(leaf_row), x509.x5c_from_certs(certs))
        ca_row = self._row(unit, DEV_CA)
        if ca_row is None:
            ca_key, ca_cert = x509.make_ca(
                "intyg wallet provider dev CA", organization="intyg (development)", country="SE"
            )
            self._store(unit, DEV_CA, ca_key, [ca_cert])
        else:
            ca_key = self._open(ca_row)
            ca_cert = x509.cert_from_pem(ca_row.certificate_chain_pem)
        key = jose.generate_key("ES256")
        host = self.settings.host
        leaf = x509.make_leaf(
            ca_key,
            ca_cert,
            key,
            common_name="intyg wallet attestation",
            organization="intyg (development)",
            country="SE",
            san_uri=[self.settings.oauth_client_id],
            san_dns=[host] if host and not self.settings.host_is_ip else [],
        )
        self._store(unit, ATTESTATION, key, [leaf])
        return _Signer(key, x509.x5c_from_certs([leaf]))

    def trust_anchor_pem(self) -> str | None:
        """The development provider CA (configure it at issuers), or None with file keys."""
        with db.session(self.engine, write=False) as unit:
            row = self._row(unit, DEV_CA)
        return None if row is None else row.certificate_chain_pem

    def wallet_attestation(self, instance_key: jose.Key) -> str:
        """A client attestation JWT for ``instance_key`` (Attestation-Based Client Auth §5.1)."""
        if self._signer is None:
            raise RuntimeError("provider keys not loaded")
        now = self.clock()
        return client_attestation.make_client_attestation(
            self._signer.key,
            x5c=self._signer.x5c,
            client_id=self.settings.oauth_client_id,
            instance_key_jwk=instance_key.public_jwk(),
            iat=now,
            exp=now + self.settings.attestation_ttl,
            wallet_name=self.settings.wallet_name,
            wallet_link=self.settings.public_base_url,
        )
