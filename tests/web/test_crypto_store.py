"""Envelope encryption at rest: round trips, rotation and one negative test per refusal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from intyg import jose
from intyg.web.crypto_store import (
    CryptoStore,
    CryptoStoreError,
    MasterKey,
    generate_master_key,
    record_aad,
)
from intyg.web.settings import ServiceSettings

KEY_A = generate_master_key()
KEY_B = generate_master_key()
AAD = record_aad("credential", 42)


@pytest.fixture
def store() -> CryptoStore:
    return CryptoStore.from_config(KEY_A)


@settings(max_examples=50)
@given(
    plaintext=st.binary(max_size=2000), purpose=st.text(max_size=20), record=st.text(max_size=20)
)
def test_round_trip(plaintext: bytes, purpose: str, record: str) -> None:
    store = CryptoStore.from_config(KEY_A)
    aad = record_aad(purpose, record)
    assert store.open(store.seal(plaintext, aad), aad) == plaintext


def test_sealed_form(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    version, kid, *rest = sealed.split(".")
    assert version == "v1" and kid == store.current.kid and len(rest) == 3
    assert sealed.isascii() and "secret" not in sealed
    # A fresh data key and nonce each time.
    assert store.seal(b"secret", AAD) != sealed


def test_generate_master_key() -> None:
    key = generate_master_key()
    assert len(jose.b64url_decode(key)) == 32
    assert key != generate_master_key()
    assert KEY_A not in repr(MasterKey.from_config(KEY_A))


@pytest.mark.parametrize(
    "text", ["", "c2hvcnQ", "A" * 44, KEY_A + "==", KEY_A[:-1] + "+", " " + KEY_A[:-2]]
)
def test_malformed_master_key(text: str) -> None:
    with pytest.raises(CryptoStoreError, match="master key must be"):
        MasterKey.from_config(text)


def test_wrong_aad_refused(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    with pytest.raises(CryptoStoreError, match="does not open for this record"):
        store.open(sealed, record_aad("credential", 43))
    with pytest.raises(CryptoStoreError, match="does not open for this record"):
        store.open(sealed, record_aad("wallet_key", 42))


def test_record_aad_is_unambiguous() -> None:
    assert record_aad("a:b", "c") != record_aad("a", "b:c")
    assert record_aad("a", 1) == record_aad("a", "1")


def test_wrong_master_key_refused(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    other = CryptoStore.from_config(KEY_B)
    with pytest.raises(CryptoStoreError, match="unknown master key"):
        other.open(sealed, AAD)
    # Same kid claimed, different key bytes: the unwrap integrity check refuses it.
    impostor = CryptoStore(MasterKey.from_config(KEY_B))
    impostor._keys[store.current.kid] = impostor.current
    with pytest.raises(CryptoStoreError, match="does not open"):
        impostor.open(sealed, AAD)


@pytest.mark.parametrize("part", [2, 3, 4])
def test_tampered_parts_refused(store: CryptoStore, part: int) -> None:
    parts = store.seal(b"secret payload", AAD).split(".")
    raw = bytearray(jose.b64url_decode(parts[part]))
    raw[len(raw) // 2] ^= 1
    parts[part] = jose.b64url_encode(bytes(raw))
    with pytest.raises(CryptoStoreError, match="does not open"):
        store.open(".".join(parts), AAD)


@pytest.mark.parametrize("cut", [1, 10, 30, 60, 100])
def test_truncated_refused(store: CryptoStore, cut: int) -> None:
    sealed = store.seal(b"secret payload", AAD)
    with pytest.raises(CryptoStoreError):
        store.open(sealed[:-cut], AAD)


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        ("v2.kid.a.b.c", "unknown sealed value version"),
        ("", "unknown sealed value version"),
        ("v1.kid.a.b", "malformed"),
        ("v1.kid.a.b.c.d", "malformed"),
        ("v1.kid.!!.b.c", "malformed"),
    ],
)
def test_malformed_sealed_values(store: CryptoStore, sealed: str, message: str) -> None:
    with pytest.raises(CryptoStoreError, match=message):
        store.open(sealed, AAD)


def test_version_is_authenticated(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    # The version is part of the GCM associated data: the bare aad does not open it.
    _, _, wrapped, nonce, ciphertext = sealed.split(".")
    data_key = aes_key_unwrap(store.current.key, jose.b64url_decode(wrapped))
    with pytest.raises(InvalidTag):
        AESGCM(data_key).decrypt(jose.b64url_decode(nonce), jose.b64url_decode(ciphertext), AAD)


def test_rotation_rewrap(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    rotated = CryptoStore.from_config(KEY_B, previous=[KEY_A])
    assert rotated.needs_rewrap(sealed)
    assert rotated.open(sealed, AAD) == b"secret"
    rewrapped = rotated.rewrap(sealed, AAD)
    assert not rotated.needs_rewrap(rewrapped)
    assert rewrapped.split(".")[4] == sealed.split(".")[4]  # ciphertext untouched
    # After the old key is retired, only the rewrapped value opens.
    retired = CryptoStore.from_config(KEY_B)
    assert retired.open(rewrapped, AAD) == b"secret"
    with pytest.raises(CryptoStoreError, match="unknown master key"):
        retired.open(sealed, AAD)


def test_rewrap_refuses_foreign_record(store: CryptoStore) -> None:
    sealed = store.seal(b"secret", AAD)
    rotated = CryptoStore.from_config(KEY_B, previous=[KEY_A])
    with pytest.raises(CryptoStoreError, match="does not open"):
        rotated.rewrap(sealed, record_aad("credential", 7))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_seal_and_open_signing_key(store: CryptoStore, alg: str) -> None:
    key = jose.generate_key(alg)
    aad = record_aad("issuer_signing_key", key.kid or "")
    sealed = store.seal_key(key, aad)
    assert key.private_jwk()["d"] not in sealed
    opened = store.open_key(sealed, aad)
    assert opened.private_jwk() == key.private_jwk()
    signature = opened.sign(b"data")
    assert key.verify(signature, b"data")


def test_open_jwk_requires_object(store: CryptoStore) -> None:
    with pytest.raises(CryptoStoreError, match="not a JWK"):
        store.open_jwk(store.seal(b"[1]", AAD), AAD)
    assert store.open_jwk(store.seal_jwk({"kty": "oct"}, AAD), AAD) == {"kty": "oct"}


# -- settings: where the master key comes from ---------------------------------------------
# (settings.py has no test file of its own in this task's file list; it is tested here.)


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTYG_DEMO_")
    service_name: ClassVar[str] = "demo"
    dev_seed_sample_data: bool = False


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("INTYG_DEMO_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_settings_production_defaults_fail_safe(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="https in production"):
        DemoSettings()
    clean_env.setenv("INTYG_DEMO_PUBLIC_BASE_URL", "https://issuer.example/")
    with pytest.raises(ValidationError, match="master_key .* required in production"):
        DemoSettings()
    clean_env.setenv("INTYG_DEMO_MASTER_KEY", KEY_A)
    settings = DemoSettings()
    assert settings.environment == "production" and not settings.is_development
    assert settings.public_base_url == "https://issuer.example"
    assert settings.crypto_store().current.kid == MasterKey.from_config(KEY_A).kid
    assert settings.outbound_policy().development is False
    assert KEY_A not in repr(settings)


@pytest.mark.parametrize("toggle", ["DEV_GENERATE_MASTER_KEY", "DEV_SEED_SAMPLE_DATA"])
def test_settings_dev_toggles_refused_in_production(
    clean_env: pytest.MonkeyPatch, toggle: str
) -> None:
    clean_env.setenv("INTYG_DEMO_PUBLIC_BASE_URL", "https://issuer.example")
    clean_env.setenv("INTYG_DEMO_MASTER_KEY", KEY_A)
    clean_env.setenv(f"INTYG_DEMO_{toggle}", "true")
    with pytest.raises(ValidationError, match="development-only settings enabled in production"):
        DemoSettings()
    clean_env.setenv("INTYG_DEMO_ENVIRONMENT", "development")
    assert getattr(DemoSettings(), toggle.lower()) is True


def test_settings_master_key_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "master_key"
    secret.write_text(KEY_B + "\n")
    clean_env.setenv("INTYG_DEMO_PUBLIC_BASE_URL", "https://issuer.example")
    clean_env.setenv("INTYG_DEMO_MASTER_KEY_FILE", str(secret))
    clean_env.setenv("INTYG_DEMO_DATABASE_URL", "postgresql://intyg@db/issuer")
    settings = DemoSettings()
    assert settings.crypto_store().current.kid == MasterKey.from_config(KEY_B).kid
    assert settings.sqlalchemy_url() == "postgresql://intyg@db/issuer"
    clean_env.setenv("INTYG_DEMO_MASTER_KEY", KEY_A)
    with pytest.raises(ValueError, match="both set"):
        DemoSettings()


def test_settings_malformed_master_key_refused_at_start(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("INTYG_DEMO_ENVIRONMENT", "development")
    clean_env.setenv("INTYG_DEMO_MASTER_KEY", "not-a-key")
    with pytest.raises(ValidationError, match="master key must be base64url of 32 bytes"):
        DemoSettings()


def test_settings_development_embedded_defaults(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("INTYG_DEMO_ENVIRONMENT", "development")
    clean_env.setenv("INTYG_DEMO_DATA_DIR", str(tmp_path / "data"))
    settings = DemoSettings()
    assert settings.sqlalchemy_url() == f"sqlite:///{tmp_path / 'data' / 'demo.sqlite3'}"
    assert settings.outbound_policy(max_redirects=2).development is True
    with pytest.raises(ValueError, match="no master_key configured"):
        settings.crypto_store()
    clean_env.setenv("INTYG_DEMO_DEV_GENERATE_MASTER_KEY", "1")
    first = DemoSettings().crypto_store()
    key_file = tmp_path / "data" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Reused on the next start: records sealed before a restart still open.
    sealed = first.seal(b"kept", AAD)
    assert DemoSettings().crypto_store().open(sealed, AAD) == b"kept"
    with pytest.raises(ValidationError):
        DemoSettings(public_base_url="ftp://x")
