"""Secrets from files (``<PREFIX><FIELD>_FILE``, Docker secrets under ``/run/secrets``): every
setting holding a ``SecretStr`` accepts a file, structured ones as JSON (intyg/web/settings.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from eid.settings import EidSettings
from intyg.web.crypto_store import generate_master_key
from intyg.web.settings import ServiceSettings
from issuer.settings import IssuerSettings
from verifier.settings import VerifierSettings
from wallet.settings import WalletSettings

BASE_SECRETS = {"database_url", "master_key", "previous_master_keys"}
EID_CONFIG = {
    "discovery_url": "http://127.0.0.1:8400/.well-known/openid-configuration",
    "client_id": "issuer-af",
    "client_secret": "s3cret-from-a-file",
    "redirect_uri": "http://127.0.0.1:8401/login/callback",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No INTYG_* variable from the outside world; development so no https is needed."""
    for name in list(os.environ):
        if name.upper().startswith("INTYG_"):
            monkeypatch.delenv(name)
    for prefix in ("ISSUER", "WALLET", "VERIFIER", "EID"):
        monkeypatch.setenv(f"INTYG_{prefix}_ENVIRONMENT", "development")
    return monkeypatch


def _secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("settings", "own"),
    [
        (IssuerSettings, {"eid", "dev_backoffice_secret"}),
        (WalletSettings, {"eid"}),
        (VerifierSettings, {"dev_api_client_secret", "dev_page_user_password"}),
        (EidSettings, {"clients", "signing_key_jwk"}),
    ],
)
def test_every_secret_setting_accepts_a_file(
    settings: type[ServiceSettings], own: set[str]
) -> None:
    assert set(settings.secret_fields()) == BASE_SECRETS | own


def test_issuer_eid_and_backoffice_secret_from_files(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = generate_master_key()
    env.setenv("INTYG_ISSUER_MASTER_KEY_FILE", _secret_file(tmp_path, "key", key))
    env.setenv("INTYG_ISSUER_EID_FILE", _secret_file(tmp_path, "eid", json.dumps(EID_CONFIG)))
    env.setenv("INTYG_ISSUER_DEV_BACKOFFICE_SECRET_FILE", _secret_file(tmp_path, "bo", "b0"))
    env.setenv("INTYG_ISSUER_DATABASE_URL_FILE", _secret_file(tmp_path, "db", "postgresql://a/b"))
    settings = IssuerSettings()
    assert settings.master_key is not None and settings.master_key.get_secret_value() == key
    assert settings.eid is not None and settings.eid.client_id == "issuer-af"
    assert settings.eid.client_secret.get_secret_value() == "s3cret-from-a-file"
    assert settings.dev_backoffice_secret == SecretStr("b0")
    assert settings.sqlalchemy_url() == "postgresql://a/b"


def test_eid_clients_and_signing_key_from_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clients = [{"client_id": "w", "client_secret": "x", "redirect_uris": ["http://w/cb"]}]
    env.setenv("INTYG_EID_CLIENTS_FILE", _secret_file(tmp_path, "clients", json.dumps(clients)))
    env.setenv("INTYG_EID_SIGNING_KEY_JWK_FILE", _secret_file(tmp_path, "jwk", '{"kty":"EC"}'))
    settings = EidSettings()
    assert [client.client_id for client in settings.clients] == ["w"]
    assert settings.clients[0].client_secret.get_secret_value() == "x"
    assert settings.signing_key_jwk == SecretStr('{"kty":"EC"}')


def test_verifier_previous_master_keys_from_a_json_file(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = [generate_master_key(), generate_master_key()]
    env.setenv(
        "INTYG_VERIFIER_PREVIOUS_MASTER_KEYS_FILE", _secret_file(tmp_path, "old", json.dumps(old))
    )
    env.setenv("INTYG_VERIFIER_DEV_PAGE_USER_PASSWORD_FILE", _secret_file(tmp_path, "pw", "pw1"))
    settings = VerifierSettings()
    assert [key.get_secret_value() for key in settings.previous_master_keys] == old
    assert settings.dev_page_user_password == SecretStr("pw1")


def test_variable_and_file_together_are_refused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("INTYG_WALLET_EID", json.dumps(EID_CONFIG))
    env.setenv("INTYG_WALLET_EID_FILE", _secret_file(tmp_path, "eid", json.dumps(EID_CONFIG)))
    with pytest.raises(ValueError, match="INTYG_WALLET_EID and INTYG_WALLET_EID_FILE are both set"):
        WalletSettings()


def test_missing_file_is_named_without_content(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("INTYG_WALLET_EID_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match=r"INTYG_WALLET_EID_FILE: cannot read .*absent"):
        WalletSettings()


def test_empty_file_is_refused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("INTYG_VERIFIER_DEV_API_CLIENT_SECRET_FILE", _secret_file(tmp_path, "e", "  "))
    with pytest.raises(ValueError, match="INTYG_VERIFIER_DEV_API_CLIENT_SECRET_FILE: .* is empty"):
        VerifierSettings()


def test_malformed_json_file_does_not_echo_the_secret(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("INTYG_ISSUER_EID_FILE", _secret_file(tmp_path, "eid", "not-json-but-s3cret"))
    with pytest.raises(ValueError) as raised:
        IssuerSettings()
    assert "s3cret" not in str(raised.value)


def test_a_non_secret_setting_is_not_read_from_a_file(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("INTYG_ISSUER_AGENCY_FILE", _secret_file(tmp_path, "agency", "myh"))
    assert IssuerSettings().agency == "af"


def test_a_setting_named_like_a_secret_file_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="clash"):

        class Clash(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="INTYG_CLASH_")
            service_name: ClassVar[str] = "clash"
            token: SecretStr | None = None
            token_file: Path | None = None


def test_a_rejected_value_is_not_echoed_in_the_error(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = {**EID_CONFIG, "client_secret": 97531864, "redirect_uri": "ftp://x"}
    env.setenv("INTYG_WALLET_EID_FILE", _secret_file(tmp_path, "eid", json.dumps(config)))
    with pytest.raises(ValueError) as raised:
        WalletSettings()
    assert "client_secret" in str(raised.value) and "97531864" not in str(raised.value)
