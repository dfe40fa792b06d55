"""The verifier's request-signing key, its certificate and its client identifier.

- First start without key files: a development CA and a verifier key with a leaf
  certificate (SAN DNS = host of the public base URL, SAN URI = the base URL) are generated;
  private keys are sealed with the master key. Request objects carry ``x5c`` = the leaf and
  any intermediates, never the trust anchor (HAIP 1.0).
- Production: ``signing_key_file`` + ``signing_cert_chain_file``; the private key stays in
  the file.
- The client identifier (OpenID4VP 1.0 §5.9.3) follows ``client_id_prefix``:
  ``x509_hash:<base64url SHA-256 of the DER leaf>`` (HAIP), ``x509_san_dns:<host>`` or
  ``decentralized_identifier:did:web:<host>`` (request objects then carry ``kid`` =
  ``<did>#key-1`` and the DID document is served at ``/.well-known/did.json``).
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.x509 import Certificate
from sqlalchemy.engine import Engine

from intyg import jose, oid4vp, x509
from intyg.web import db
from intyg.web.crypto_store import CryptoStore, record_aad

from .db import lock
from .models import SigningKey
from .settings import VerifierSettings

__all__ = ["DEV_CA", "VERIFIER", "KeysError", "RequestSigner", "VerifierKeys"]

VERIFIER = "verifier"
DEV_CA = "dev_ca"
DEV_CA_VALID_DAYS = 20 * 365
DID_KEY_FRAGMENT = "#key-1"


class KeysError(ValueError):
    """A key could not be loaded or generated."""


@dataclass(frozen=True)
class RequestSigner:
    """The key request objects are signed with, its chain and the client identifier."""

    key: jose.Key
    x5c: tuple[str, ...]
    client_id: str
    #: ``kid`` header for the ``decentralized_identifier`` prefix (no ``x5c`` then).
    did_kid: str | None = None

    def sign(self, claims: dict[str, Any]) -> str:
        """OpenID4VP §5 / RFC 9101: ``typ`` ``oauth-authz-req+jwt`` with ``x5c`` or ``kid``."""
        if self.did_kid is not None:
            return oid4vp.sign_request_object(claims, self.key.with_kid(self.did_kid))
        return oid4vp.sign_request_object(claims, self.key, x5c=list(self.x5c))


def _aad(kid: str) -> bytes:
    return record_aad("verifier_signing_key", kid)


def _timestamp(cert: Certificate) -> int:
    return int(cert.not_valid_after_utc.timestamp())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def client_id_for(settings: VerifierSettings, leaf: Certificate) -> str:
    """The full client identifier (prefix included: the KB-JWT ``aud``)."""
    if settings.client_id_prefix == oid4vp.PREFIX_X509_HASH:
        return oid4vp.client_id_x509_hash(leaf)
    if settings.client_id_prefix == oid4vp.PREFIX_X509_SAN_DNS:
        return oid4vp.client_id_x509_san_dns(settings.host)
    return oid4vp.client_id_did(settings.did_web)


class VerifierKeys:
    """The verifier's keys in the database, with an in-process copy of the active one."""

    def __init__(
        self, engine: Engine, settings: VerifierSettings, store: CryptoStore, clock: Any
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.store = store
        self.clock = clock
        self._signer: RequestSigner | None = None
        self._lock = threading.Lock()

    # -- start-up --------------------------------------------------------------------------

    def ensure(self) -> None:
        """Start-up: load the configured key files, or generate keys on first start."""
        now = self.clock()
        with db.session(self.engine) as unit:
            lock(unit, "verifier-keys")
            if self.settings.signing_key_file is not None:
                self._install_file_key(unit, now)
            elif self._active_row(unit) is None:
                self._generate(unit, now)
        self._signer = None

    def _install_file_key(self, unit: db.Session, now: int) -> None:
        assert self.settings.signing_key_file and self.settings.signing_cert_chain_file
        try:
            key = jose.key_from_pem(self.settings.signing_key_file.read_bytes())
            chain = x509.certs_from_pem(self.settings.signing_cert_chain_file.read_bytes())
        except (OSError, jose.JoseError, x509.X509Error) as exc:
            raise KeysError(f"signing key or certificate file unusable: {exc}") from None
        if not key.has_private or key.alg != "ES256":
            raise KeysError("signing_key_file must hold a P-256 private key")
        if not chain or jose.key_from_public_key(chain[0].public_key()).thumbprint() != (
            key.thumbprint()
        ):
            raise KeysError("the first certificate of the chain is not for the signing key")
        key = key.with_kid(key.thumbprint())
        assert key.kid is not None
        self._file_key = key
        row = unit.get(SigningKey, key.kid) or SigningKey(
            kid=key.kid,
            purpose=VERIFIER,
            alg=key.alg,
            public_jwk=key.public_jwk(),
            certificate_chain_pem="".join(x509.cert_to_pem(c) for c in chain),
            source="file",
            created_at=now,
            not_after=_timestamp(chain[0]),
        )
        self._activate(unit, row)

    def _dev_ca(self, unit: db.Session, now: int) -> tuple[jose.Key, Certificate]:
        row = unit.scalars(sa.select(SigningKey).where(SigningKey.purpose == DEV_CA)).first()
        if row is not None:
            assert row.sealed_private_jwk is not None
            key = self.store.open_key(row.sealed_private_jwk, _aad(row.kid))
            return key, x509.cert_from_pem(row.certificate_chain_pem)
        key, cert = x509.make_ca(
            "intyg verifier development CA (not for production)",
            organization="intyg",
            country="SE",
            valid_days=DEV_CA_VALID_DAYS,
        )
        assert key.kid is not None
        unit.add(
            SigningKey(
                kid=key.kid,
                purpose=DEV_CA,
                alg=key.alg,
                public_jwk=key.public_jwk(),
                sealed_private_jwk=self.store.seal_key(key, _aad(key.kid)),
                certificate_chain_pem=x509.cert_to_pem(cert),
                created_at=now,
                not_after=_timestamp(cert),
            )
        )
        return key, cert

    def _generate(self, unit: db.Session, now: int) -> None:
        ca_key, ca_cert = self._dev_ca(unit, now)
        key = jose.generate_key("ES256")
        host = self.settings.host
        cert = x509.make_leaf(
            ca_key,
            ca_cert,
            key,
            common_name=host or "intyg verifier",
            organization="intyg verifier (development)",
            country="SE",
            san_dns=[host] if host and not _is_ip(host) else [],
            san_uri=[self.settings.public_base_url],
            valid_days=self.settings.signing_cert_valid_days,
        )
        assert key.kid is not None
        self._activate(
            unit,
            SigningKey(
                kid=key.kid,
                purpose=VERIFIER,
                alg=key.alg,
                public_jwk=key.public_jwk(),
                sealed_private_jwk=self.store.seal_key(key, _aad(key.kid)),
                certificate_chain_pem=x509.cert_to_pem(cert),
                created_at=now,
                not_after=_timestamp(cert),
            ),
        )

    @staticmethod
    def _activate(unit: db.Session, row: SigningKey) -> None:
        unit.execute(
            sa.update(SigningKey)
            .where(SigningKey.purpose == VERIFIER, SigningKey.kid != row.kid)
            .values(active=False)
        )
        row.active = True
        unit.add(row)
        unit.flush()

    @staticmethod
    def _active_row(unit: db.Session) -> SigningKey | None:
        return unit.scalars(
            sa.select(SigningKey).where(
                SigningKey.purpose == VERIFIER,
                SigningKey.active.is_(True),  # type: ignore[attr-defined]
            )
        ).first()

    # -- use -------------------------------------------------------------------------------

    def signer(self) -> RequestSigner:
        """The active signing key, chain and client identifier (read once per process)."""
        signer = self._signer
        if signer is not None:
            return signer
        with self._lock:
            with db.session(self.engine, write=False) as unit:
                row = self._active_row(unit)
            if row is None:
                raise KeysError("no active signing key (start-up did not run)")
            if row.sealed_private_jwk is None:
                key = getattr(self, "_file_key", None)
                if key is None or key.kid != row.kid:
                    raise KeysError("the active key comes from a key file this instance lacks")
            else:
                key = self.store.open_key(row.sealed_private_jwk, _aad(row.kid)).with_kid(row.kid)
            chain = x509.certs_from_pem(row.certificate_chain_pem)
            client_id = client_id_for(self.settings, chain[0])
            did_kid = None
            if self.settings.client_id_prefix == oid4vp.PREFIX_DID:
                did_kid = self.settings.did_web + DID_KEY_FRAGMENT
            self._signer = RequestSigner(key, tuple(x509.x5c_from_certs(chain)), client_id, did_kid)
            return self._signer

    @property
    def client_id(self) -> str:
        return self.signer().client_id

    def did_document(self) -> dict[str, Any]:
        """The ``did:web`` DID document (W3C DID Core) naming the request-signing key."""
        did = self.settings.did_web
        jwk = self.signer().key.public_jwk()
        method = did + DID_KEY_FRAGMENT
        return {
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/suites/jws-2020/v1",
            ],
            "id": did,
            "verificationMethod": [
                {"id": method, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk}
            ],
            "assertionMethod": [method],
            "authentication": [method],
        }

    def trust_anchor_pem(self) -> str | None:
        """The development CA certificate (for wallets in development), None with key files."""
        with db.session(self.engine, write=False) as unit:
            row = unit.scalars(sa.select(SigningKey).where(SigningKey.purpose == DEV_CA)).first()
        return None if row is None else row.certificate_chain_pem
