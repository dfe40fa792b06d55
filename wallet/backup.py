"""Export, import and account deletion (issue 4 items 6-7; security.md T074, T084).

Export: ONE JSON document (``intyg-wallet-backup/1``) with

- ``account``: the account key (HMAC of the personal number, never the number);
- ``credentials``: each card's display fields and its instances as the issued strings
  (SD-JWT with all disclosures, or the VC JWT), each naming its holder key by thumbprint;
- ``consent_records``: the person's chain exactly as stored (``seq``, ``prev_hash``,
  ``record_hash``, ``record``, ``delivery_status``) so it stays verifiable, and for each
  consent the thumbprints of the keys kept for withdrawal;
- ``keys``: every private key (holder keys, consent keys) as one JWK map, encrypted with
  AES-256-GCM under a key derived with scrypt (RFC 7914) from a passphrase the person
  types. The passphrase is never stored. The AAD is the canonical JSON of the rest of the
  document, so any change to the file fails decryption as well.

Import (into an account with the SAME account key, i.e. the same person's eID login): all
checks first, then one transaction or nothing — the passphrase opens the keys, every key's
thumbprint matches, the chain verifies (:func:`wallet.consents.check_rows`) and names this
account, and every credential passes the checks made on receipt
(:func:`wallet.issuance.verify_received`: ``x5c`` chain to our issuer trust anchors naming
the issuer, signature, type, ``cnf`` = the imported key it is listed with).

Deletion removes everything of the account: credentials, instances, keys, issuance and
presentation sessions, consent records and consent keys, and the account row.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intyg import jose, strict_json
from intyg.web import db
from intyg.web.crypto_store import record_aad

from . import consents
from .app import WalletContext
from .issuance import (
    CREDENTIAL_PURPOSE,
    HOLDER_KEY_PURPOSE,
    SUPPORTED_FORMATS,
    IssuanceError,
    card_names,
    verify_received,
)
from .models import (
    Account,
    ConsentKey,
    ConsentRecord,
    CredentialInstance,
    HolderKey,
    IssuanceSession,
    KeyState,
    PresentationSession,
    WalletCredential,
)
from .presentation import CONSENT_KEY_PURPOSE

__all__ = [
    "FORMAT",
    "MIN_PASSPHRASE_LENGTH",
    "BackupError",
    "Imported",
    "delete_account",
    "export_document",
    "import_document",
    "open_keys",
    "seal_keys",
]

FORMAT = "intyg-wallet-backup/1"
MIN_PASSPHRASE_LENGTH = 12
MAX_PASSPHRASE_LENGTH = 1024
#: scrypt cost (RFC 7914 §2; OWASP: N=2^17, r=8, p=1 is the interactive upper end).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
#: The largest cost an imported file may ask for (a file must not make us burn memory).
MAX_SCRYPT_N = 2**17
KINDS = (consents.CONSENT, consents.DECLINED, consents.DELIVERY, consents.WITHDRAWAL)
_CARD_FIELDS = (
    "format",
    "vct",
    "configuration_id",
    "credential_issuer",
    "issuer_display",
    "display",
    "received_at",
    "expires_at",
)


class BackupError(ValueError):
    """An export or import refused; the message is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _iso(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat().replace("+00:00", "Z")


def _check_passphrase(passphrase: str) -> bytes:
    if not MIN_PASSPHRASE_LENGTH <= len(passphrase) <= MAX_PASSPHRASE_LENGTH:
        raise BackupError(
            "passphrase_length",
            f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters",
        )
    return passphrase.encode("utf-8")


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def _aad(document: Mapping[str, Any]) -> bytes:
    # Everything but the key section itself: a changed file does not decrypt.
    return consents.canonical({k: v for k, v in document.items() if k != "keys"}).encode("utf-8")


def seal_keys(document: dict[str, Any], private_jwks: Mapping[str, Any], passphrase: str) -> None:
    """Encrypt the key map into ``document["keys"]`` (scrypt + A256GCM, AAD = the rest)."""
    secret = _check_passphrase(passphrase)
    salt, iv = os.urandom(16), os.urandom(12)
    key = _derive(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(
        iv, strict_json.dumps(dict(private_jwks)).encode("utf-8"), _aad(document)
    )
    document["keys"] = {
        "kdf": {
            "alg": "scrypt",
            "salt": jose.b64url_encode(salt),
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
        },
        "enc": "A256GCM",
        "iv": jose.b64url_encode(iv),
        "ciphertext": jose.b64url_encode(ciphertext),
    }


def open_keys(document: Mapping[str, Any], passphrase: str) -> dict[str, Any]:
    """The key map; BackupError on a wrong passphrase or a changed file."""
    secret = passphrase.encode("utf-8")[: MAX_PASSPHRASE_LENGTH * 4]
    sealed = document.get("keys")
    try:
        assert isinstance(sealed, dict) and sealed.get("enc") == "A256GCM"
        kdf = sealed["kdf"]
        assert isinstance(kdf, dict) and kdf.get("alg") == "scrypt"
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        assert type(n) is int and 2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0
        assert r == SCRYPT_R and p == SCRYPT_P
        salt = jose.b64url_decode(kdf["salt"])
        iv = jose.b64url_decode(sealed["iv"])
        ciphertext = jose.b64url_decode(sealed["ciphertext"])
        assert len(salt) >= 16 and len(iv) == 12
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise BackupError("malformed", "the file is not a wallet backup") from exc
    try:
        plain = AESGCM(_derive(secret, salt, n, r, p)).decrypt(iv, ciphertext, _aad(document))
    except InvalidTag as exc:
        raise BackupError(
            "wrong_passphrase", "wrong passphrase, or the file was changed after export"
        ) from exc
    keys = strict_json.loads(plain)
    if not isinstance(keys, dict):
        raise BackupError("malformed", "the file is not a wallet backup")
    return keys


# -- export --------------------------------------------------------------------------------


def export_document(ctx: WalletContext, account_id: int, passphrase: str) -> dict[str, Any]:
    """The backup of one account (see the module docstring)."""
    _check_passphrase(passphrase)
    private: dict[str, Any] = {}
    with db.session(ctx.engine, write=False) as unit:
        account_key = unit.scalar(sa.select(Account.account_key).where(Account.id == account_id))
        if account_key is None:
            raise BackupError("not_found", "no such account")
        cards = list(
            unit.scalars(
                sa.select(WalletCredential)
                .where(WalletCredential.account_id == account_id)  # type: ignore[arg-type]
                .order_by(WalletCredential.id)  # type: ignore[arg-type]
            )
        )
        rows = unit.execute(
            sa.select(CredentialInstance, HolderKey)
            .join(HolderKey, HolderKey.id == CredentialInstance.holder_key_id)  # type: ignore[arg-type]
            .where(CredentialInstance.account_id == account_id)  # type: ignore[arg-type]
            .order_by(CredentialInstance.id)  # type: ignore[arg-type]
        ).all()
        by_card: dict[int, list[dict[str, Any]]] = {}
        for instance, key in rows:
            assert instance.id is not None
            text = ctx.store.open(
                instance.sealed_credential, record_aad(CREDENTIAL_PURPOSE, instance.id)
            ).decode("ascii")
            private[key.thumbprint] = ctx.store.open_jwk(
                key.sealed_private_jwk, record_aad(HOLDER_KEY_PURPOSE, key.thumbprint)
            )
            by_card.setdefault(instance.credential_id, []).append(
                {
                    "credential": text,
                    "key": key.thumbprint,
                    "times_presented": instance.times_presented,
                }
            )
        records = list(
            unit.scalars(
                sa.select(ConsentRecord)
                .where(ConsentRecord.account_id == account_id)  # type: ignore[arg-type]
                .order_by(ConsentRecord.seq)  # type: ignore[arg-type]
            )
        )
        consent_keys: dict[int, list[str]] = {}
        public_ids = {r.id: r.public_id for r in records}
        for kept in unit.scalars(
            sa.select(ConsentKey)
            .where(ConsentKey.account_id == account_id)  # type: ignore[arg-type]
            .order_by(ConsentKey.id)  # type: ignore[arg-type]
        ):
            public_id = public_ids[kept.consent_id]
            private[kept.thumbprint] = ctx.store.open_jwk(
                kept.sealed_private_jwk,
                record_aad(CONSENT_KEY_PURPOSE, f"{public_id}/{kept.thumbprint}"),
            )
            consent_keys.setdefault(kept.consent_id, []).append(kept.thumbprint)
        document: dict[str, Any] = {
            "format": FORMAT,
            "exported_at": _iso(ctx.clock()),
            "account": account_key,
            "credentials": [
                {
                    **{name: getattr(card, name) for name in _CARD_FIELDS},
                    "instances": by_card.get(card.id or 0, []),
                }
                for card in cards
                if by_card.get(card.id or 0)
            ],
            "consent_records": [
                {
                    "seq": r.seq,
                    "prev_hash": r.prev_hash,
                    "record_hash": r.record_hash,
                    "record": r.record,
                    "delivery_status": r.delivery_status,
                    "keys": consent_keys.get(r.id or 0, []),
                }
                for r in records
            ],
        }
    seal_keys(document, private, passphrase)
    return document


# -- import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    credentials: int
    consent_records: int


@dataclass(frozen=True)
class _Card:
    fields: dict[str, Any]
    instances: list[tuple[str, jose.Key, int, dict[str, Any] | None, int | None]]


def _malformed(what: str) -> BackupError:
    return BackupError("malformed", f"the file is not a wallet backup ({what})")


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(what)
    return value


def _private_keys(raw: Mapping[str, Any]) -> dict[str, jose.Key]:
    keys: dict[str, jose.Key] = {}
    for thumbprint, jwk in raw.items():
        try:
            key = jose.key_from_jwk(jwk, allow_private=True)
        except (jose.JoseError, ValueError, TypeError, KeyError) as exc:
            raise _malformed("a key") from exc
        if key.thumbprint() != thumbprint or not key.has_private:
            raise _malformed("a key")
        keys[thumbprint] = key
    return keys


def _checked_chain(
    records: list[Any], account_key: str, keys: Mapping[str, jose.Key]
) -> list[dict[str, Any]]:
    rows: list[consents.ChainRow] = []
    for entry in records:
        record = entry.get("record") if isinstance(entry, dict) else None
        if not isinstance(record, dict) or not isinstance(entry.get("keys"), list):
            raise _malformed("a consent record")
        if (record.get("data_subject") or {}).get("wallet_account") != account_key:
            raise BackupError("chain", "a consent record belongs to someone else")
        for thumbprint in entry["keys"]:
            if not isinstance(thumbprint, str) or thumbprint not in keys:
                raise BackupError("chain", "a consent record's key is missing")
            if record.get("kind") != consents.CONSENT:
                raise BackupError("chain", "a consent record's key is missing")
        rows.append(
            (
                entry.get("seq"),
                entry.get("prev_hash"),
                entry.get("record_hash"),
                record,
                record.get("record_id"),
                record.get("kind"),
                record.get("about"),
                entry.get("delivery_status"),
            )  # type: ignore[arg-type]
        )
    for row in rows:
        if not all(isinstance(v, str) for v in (row[1], row[2], row[4], row[5], row[7])):
            raise _malformed("a consent record")
        # The columns' sizes (models.ConsentRecord): a database error is no answer.
        if len(row[4]) > 32 or row[5] not in KINDS or len(row[7]) > 16:
            raise _malformed("a consent record")
        if row[6] is not None and (not isinstance(row[6], str) or len(row[6]) > 32):
            raise _malformed("a consent record")
    report = consents.check_rows(rows)
    if not report.ok:
        raise BackupError("chain", f"the consent history does not verify: {report.reason}")
    return records


def _checked_cards(
    ctx: WalletContext, cards: list[Any], keys: Mapping[str, jose.Key]
) -> list[_Card]:
    checked: list[_Card] = []
    used: set[str] = set()
    for card in cards:
        if not isinstance(card, dict) or not all(name in card for name in _CARD_FIELDS):
            raise _malformed("a credential")
        fields = {name: card[name] for name in _CARD_FIELDS}
        issuer, fmt, vct = fields["credential_issuer"], fields["format"], fields["vct"]
        if fmt not in SUPPORTED_FORMATS or not isinstance(issuer, str) or len(issuer) > 512:
            raise _malformed("a credential")
        configuration_id, received_at, expires_at = (
            fields["configuration_id"],
            fields["received_at"],
            fields["expires_at"],
        )
        if not isinstance(configuration_id, str) or len(configuration_id) > 200:
            raise _malformed("a credential")
        if type(received_at) is not int or not (expires_at is None or type(expires_at) is int):
            raise _malformed("a credential")
        for shown in (fields["display"], fields["issuer_display"]):
            if not isinstance(shown, dict) or not all(isinstance(v, dict) for v in shown.values()):
                raise _malformed("a credential")
        instances = []
        for item in _list(card.get("instances"), "a credential"):
            thumbprint = item.get("key") if isinstance(item, dict) else None
            if not isinstance(thumbprint, str) or thumbprint not in keys or thumbprint in used:
                raise BackupError("credential", "a credential's key is missing or used twice")
            used.add(thumbprint)
            key = keys[thumbprint]
            try:
                received = verify_received(
                    ctx, item.get("credential"), {"format": fmt, "vct": vct}, issuer, [(0, key)]
                )
            except IssuanceError as exc:
                raise BackupError("credential", f"a credential does not verify: {exc}") from exc
            if received.vct != vct:
                raise BackupError("credential", "a credential is not of the type listed")
            times = item.get("times_presented")
            instances.append(
                (
                    received.text,
                    key,
                    times if type(times) is int and times >= 0 else 0,
                    received.status_reference,
                    received.expires_at,
                )
            )
        if instances:
            checked.append(_Card(fields, instances))
    return checked


def _account_key(ctx: WalletContext, account_id: int) -> str:
    with db.session(ctx.engine, write=False) as unit:
        key = unit.scalar(sa.select(Account.account_key).where(Account.id == account_id))
    if key is None:
        raise BackupError("not_found", "no such account")
    return key  # type: ignore[no-any-return]


def parse(data: str | bytes) -> dict[str, Any]:
    try:
        document = strict_json.loads(data)
    except ValueError as exc:
        raise _malformed("not JSON") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _malformed("unknown format")
    return document


def import_document(
    ctx: WalletContext, account_id: int, data: str | bytes, passphrase: str
) -> Imported:
    """Check everything, then store it all in one transaction (see the module docstring)."""
    document = parse(data)
    account_key = _account_key(ctx, account_id)
    if document.get("account") != account_key:
        # Checked before the passphrase: another person's file is refused whatever it holds.
        raise BackupError("other_person", "the file belongs to another person's account")
    keys = _private_keys(open_keys(document, passphrase))
    records = _checked_chain(
        _list(document.get("consent_records"), "consent records"), account_key, keys
    )
    cards = _checked_cards(ctx, _list(document.get("credentials"), "credentials"), keys)
    try:
        _store(ctx, account_id, cards, records, keys)
    except sa.exc.IntegrityError as exc:
        raise BackupError("conflict", "the file was imported already") from exc
    return Imported(len(cards), len(records))


def _store(
    ctx: WalletContext,
    account_id: int,
    cards: Sequence[_Card],
    records: Sequence[dict[str, Any]],
    keys: Mapping[str, jose.Key],
) -> None:
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        consents.lock_account(unit, account_id)
        if records and unit.scalar(
            sa.select(ConsentRecord.id).where(ConsentRecord.account_id == account_id).limit(1)  # type: ignore[arg-type]
        ):
            # The imported chain starts at seq 1: it cannot be spliced onto another.
            raise BackupError("has_history", "this account already has a consent history")
        for card in cards:
            fields = card.fields
            row = WalletCredential(
                account_id=account_id,
                **fields,
                **card_names(
                    fields["display"],
                    fields["issuer_display"],
                    fields["format"],
                    fields["credential_issuer"],
                ),
                status="valid",
                instance_count=len(card.instances),
            )
            unit.add(row)
            unit.flush()
            assert row.id is not None
            for text, key, times, reference, _ in card.instances:
                thumbprint = key.thumbprint()
                holder = HolderKey(
                    account_id=account_id,
                    thumbprint=thumbprint,
                    public_jwk=key.public_jwk(),
                    sealed_private_jwk=ctx.store.seal_key(
                        key, record_aad(HOLDER_KEY_PURPOSE, thumbprint)
                    ),
                    state=KeyState.BOUND,
                    created_at=now,
                    updated_at=now,
                )
                unit.add(holder)
                unit.flush()
                assert holder.id is not None
                instance = CredentialInstance(
                    credential_id=row.id,
                    account_id=account_id,
                    holder_key_id=holder.id,
                    sealed_credential="",
                    status_reference=reference,
                    times_presented=times,
                    created_at=now,
                )
                unit.add(instance)
                unit.flush()
                assert instance.id is not None
                instance.sealed_credential = ctx.store.seal(
                    text.encode("ascii"), record_aad(CREDENTIAL_PURPOSE, instance.id)
                )
        for entry in records:
            record = entry["record"]
            consent = ConsentRecord(
                public_id=record["record_id"],
                account_id=account_id,
                seq=entry["seq"],
                prev_hash=entry["prev_hash"],
                record_hash=entry["record_hash"],
                record=record,
                delivery_status=entry["delivery_status"],
                created_at=record.get("timestamp") if type(record.get("timestamp")) is int else now,
                kind=record["kind"],
                subject_id=record.get("about"),
            )
            unit.add(consent)
            unit.flush()
            assert consent.id is not None
            for thumbprint in entry["keys"]:
                unit.add(
                    ConsentKey(
                        account_id=account_id,
                        consent_id=consent.id,
                        thumbprint=thumbprint,
                        sealed_private_jwk=ctx.store.seal_key(
                            keys[thumbprint],
                            record_aad(CONSENT_KEY_PURPOSE, f"{consent.public_id}/{thumbprint}"),
                        ),
                    )
                )
        unit.flush()


# -- deletion ------------------------------------------------------------------------------


def delete_account(ctx: WalletContext, account_id: int) -> None:
    """Everything of the account, in one transaction, children first."""
    with db.session(ctx.engine) as unit:
        consents.lock_account(unit, account_id)
        for table in (
            ConsentKey,
            ConsentRecord,
            CredentialInstance,
            WalletCredential,
            HolderKey,
            PresentationSession,
            IssuanceSession,
        ):
            unit.execute(sa.delete(table).where(table.account_id == account_id))  # type: ignore[attr-defined]
        unit.execute(sa.delete(Account).where(Account.id == account_id))  # type: ignore[arg-type]
