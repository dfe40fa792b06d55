"""Issuer signing keys, the development CA and the published key documents.

- First start (no configured key files): a development CA and an issuer key with a leaf
  certificate (SAN URI = the issuer identifier, SAN DNS = its host) are generated; the
  private keys are sealed with the master key (:class:`~intyg.web.crypto_store.CryptoStore`).
  Issuer signatures carry ``x5c`` = the leaf and any intermediates, never the trust anchor
  (HAIP 1.0, protocols.md §6).
- Production: ``signing_key_file`` + ``signing_cert_chain_file``; the private key is used
  from the file and never copied into the database.
- Rotation (security.md L16): :meth:`KeyRing.rotate` makes a new active key; old keys stay
  in the JWKS and the JWT VC Issuer Metadata until everything they signed has expired,
  then :meth:`KeyRing.retire_expired` removes them.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.x509 import Certificate
from sqlalchemy.engine import Engine

from intyg import jose, x509
from intyg.web import db
from intyg.web.crypto_store import CryptoStore, record_aad

from . import agencies
from .db import lock
from .models import Issuance, SigningKey
from .settings import IssuerSettings

__all__ = ["DEV_CA", "ISSUER", "ActiveKey", "KeyRing", "KeysError"]

ISSUER = "issuer"
DEV_CA = "dev_ca"
DEV_CA_VALID_DAYS = 20 * 365


class KeysError(ValueError):
    """A key could not be loaded, generated or rotated."""


@dataclass(frozen=True)
class ActiveKey:
    """The key new credentials and status lists are signed with, and its ``x5c``."""

    key: jose.Key
    x5c: list[str]

    @property
    def kid(self) -> str:
        assert self.key.kid is not None
        return self.key.kid

    def header(self) -> dict[str, Any]:
        """JWS header members naming the key: ``kid`` and the HAIP ``x5c`` chain."""
        return {"kid": self.kid, "x5c": list(self.x5c)}


def _aad(kid: str) -> bytes:
    return record_aad("signing_key", kid)


def _timestamp(cert: Certificate) -> int:
    return int(cert.not_valid_after_utc.timestamp())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class KeyRing:
    """The issuer's keys in the database, with an in-process copy of the active one."""

    def __init__(
        self,
        engine: Engine,
        settings: IssuerSettings,
        store: CryptoStore,
        clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.store = store
        self.clock = clock
        self._file_key: jose.Key | None = None
        self._active: ActiveKey | None = None
        self._loaded_at = 0
        self._lock = threading.Lock()

    # -- start-up --------------------------------------------------------------------------

    def ensure(self) -> None:
        """Start-up: load the configured key files, or generate keys on first start."""
        now = self.clock()
        with db.session(self.engine) as unit:
            lock(unit, "issuer-keys")
            if self.settings.signing_key_file is not None:
                self._install_file_key(unit, now)
            elif self._active_row(unit) is None:
                self._generate_issuer_key(unit, now)
        self._invalidate()

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
        self._file_key = key
        row = unit.get(SigningKey, key.kid)
        if row is None:
            row = SigningKey(
                kid=key.kid,
                purpose=ISSUER,
                alg=key.alg,
                public_jwk=key.public_jwk(),
                certificate_chain_pem="".join(x509.cert_to_pem(c) for c in chain),
                source="file",
                created_at=now,
                not_after=_timestamp(chain[0]),
            )
            unit.add(row)
        if not row.active:
            self._activate(unit, row, now)

    def _dev_ca(self, unit: db.Session, now: int) -> tuple[jose.Key, Certificate]:
        row = unit.scalars(sa.select(SigningKey).where(SigningKey.purpose == DEV_CA)).first()
        if row is not None:
            assert row.sealed_private_jwk is not None
            key = self.store.open_key(row.sealed_private_jwk, _aad(row.kid))
            return key, x509.cert_from_pem(row.certificate_chain_pem)
        agency = agencies.agency(self.settings.agency)
        key, cert = x509.make_ca(
            # X.509 caps commonName at 64 characters (RFC 5280 ub-common-name): keep it short.
            f"intyg development CA ({self.settings.agency}, not for production)",
            organization=agency.name["sv"],
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

    def _generate_issuer_key(self, unit: db.Session, now: int) -> SigningKey:
        if self.settings.signing_key_file is not None:
            raise KeysError("keys come from files: rotate by replacing the files")
        ca_key, ca_cert = self._dev_ca(unit, now)
        agency = agencies.agency(self.settings.agency)
        key = jose.generate_key("ES256")
        host = self.settings.host
        cert = x509.make_leaf(
            ca_key,
            ca_cert,
            key,
            common_name=agency.name["sv"],
            organization=agency.name["sv"],
            country="SE",
            san_uri=[self.settings.issuer_identifier],
            san_dns=[host] if host and not _is_ip(host) else [],
            valid_days=self.settings.signing_cert_valid_days,
        )
        assert key.kid is not None
        row = SigningKey(
            kid=key.kid,
            purpose=ISSUER,
            alg=key.alg,
            public_jwk=key.public_jwk(),
            sealed_private_jwk=self.store.seal_key(key, _aad(key.kid)),
            certificate_chain_pem=x509.cert_to_pem(cert),
            created_at=now,
            not_after=_timestamp(cert),
        )
        unit.add(row)
        self._activate(unit, row, now)
        return row

    def _activate(self, unit: db.Session, row: SigningKey, now: int) -> None:
        unit.execute(
            sa.update(SigningKey)
            .where(SigningKey.purpose == ISSUER, SigningKey.active.is_(True))  # type: ignore[attr-defined]
            .values(active=False, deactivated_at=now)
        )
        row.active = True
        row.deactivated_at = None
        unit.add(row)
        unit.flush()

    @staticmethod
    def _active_row(unit: db.Session) -> SigningKey | None:
        return unit.scalars(
            sa.select(SigningKey).where(
                SigningKey.purpose == ISSUER,
                SigningKey.active.is_(True),  # type: ignore[attr-defined]
            )
        ).first()

    # -- signing ---------------------------------------------------------------------------

    def cached(self) -> ActiveKey | None:
        """The active key if it was read within ``key_cache_seconds`` (no database), else
        None: for code on the event loop, which must not wait for a read."""
        cached = self._active
        if cached is not None and self.clock() - self._loaded_at < self.settings.key_cache_seconds:
            return cached
        return None

    def active(self) -> ActiveKey:
        """The active key with its ``x5c``, re-read at most every ``key_cache_seconds``."""
        cached = self.cached()
        if cached is not None:
            return cached
        now = self.clock()
        with self._lock:
            with db.session(self.engine, write=False) as unit:
                row = self._active_row(unit)
            if row is None:
                raise KeysError("no active signing key (start-up did not run)")
            self._active = ActiveKey(self._private_key(row), self._x5c(row))
            self._loaded_at = now
            return self._active

    def active_signing_key(self) -> tuple[jose.Key, list[str]]:
        """(private key with ``kid``, ``x5c`` list) for new signatures."""
        active = self.active()
        return active.key, list(active.x5c)

    def _private_key(self, row: SigningKey) -> jose.Key:
        if row.sealed_private_jwk is None:
            if self._file_key is None or self._file_key.kid != row.kid:
                raise KeysError("the active key comes from a key file this instance lacks")
            return self._file_key
        return self.store.open_key(row.sealed_private_jwk, _aad(row.kid)).with_kid(row.kid)

    @staticmethod
    def _x5c(row: SigningKey) -> list[str]:
        return x509.x5c_from_certs(x509.certs_from_pem(row.certificate_chain_pem))

    def _invalidate(self) -> None:
        self._active = None
        self._loaded_at = 0

    # -- rotation --------------------------------------------------------------------------

    def rotate(self) -> str:
        """Make a new active key (development CA); the old one stays published. -> kid."""
        now = self.clock()
        with db.session(self.engine) as unit:
            lock(unit, "issuer-keys")
            row = self._generate_issuer_key(unit, now)
        self._invalidate()
        return row.kid

    def retire_expired(self) -> list[str]:
        """Retire inactive keys whose credentials and status list tokens have all expired.

        A key stays published until the latest ``expires_at`` of the issuances it signed
        and until the last status list token it signed (``status_token_lifetime_seconds``
        after it was deactivated) has expired. Returns the retired ``kid`` values.
        """
        now = self.clock()
        latest = (
            sa.select(sa.func.max(Issuance.expires_at))
            .where(Issuance.kid == SigningKey.kid)
            .scalar_subquery()
        )
        retired: list[str] = []
        with db.session(self.engine) as unit:
            rows = unit.execute(
                sa.select(SigningKey, latest).where(
                    SigningKey.purpose == ISSUER,
                    SigningKey.active.is_(False),  # type: ignore[attr-defined]
                    SigningKey.retired_at.is_(None),  # type: ignore[union-attr]
                )
            ).all()
            for row, last_expiry in rows:
                tokens_until = (row.deactivated_at or now) + (
                    self.settings.status_token_lifetime_seconds
                )
                if now >= max(last_expiry or 0, tokens_until):
                    row.retired_at = now
                    unit.add(row)
                    retired.append(row.kid)
        return retired

    # -- published documents ---------------------------------------------------------------

    def published(self) -> list[SigningKey]:
        """Issuer keys verifiers may need: the active one and unretired old ones."""
        with db.session(self.engine, write=False) as unit:
            return list(
                unit.scalars(
                    sa.select(SigningKey)
                    .where(
                        SigningKey.purpose == ISSUER,
                        SigningKey.retired_at.is_(None),  # type: ignore[union-attr]
                    )
                    .order_by(SigningKey.active.desc(), SigningKey.created_at.desc())  # type: ignore[attr-defined]
                )
            )

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5): public keys with ``use``, ``alg`` and ``x5c``."""
        keys = []
        for row in self.published():
            jwk = dict(row.public_jwk)
            jwk.update({"kid": row.kid, "use": "sig", "alg": row.alg, "x5c": self._x5c(row)})
            keys.append(jwk)
        return {"keys": keys}

    def jwt_vc_issuer_metadata(self) -> dict[str, Any]:
        """JWT VC Issuer Metadata (SD-JWT VC draft -18 §5): ``issuer`` exactly the
        identifier, keys inline as ``jwks``."""
        return {"issuer": self.settings.issuer_identifier, "jwks": self.jwks()}

    def trust_anchor_pem(self) -> str | None:
        """The development CA certificate (to configure verifiers and wallets in
        development), or None when the keys come from files."""
        with db.session(self.engine, write=False) as unit:
            row = unit.scalars(sa.select(SigningKey).where(SigningKey.purpose == DEV_CA)).first()
        return None if row is None else row.certificate_chain_pem
