"""Service settings (design.md "Deployment shapes"): one small pydantic-settings base that
each service extends with its own prefix and fields.

- ``environment`` is ``production`` unless configured otherwise: forgetting it fails safe.
- Secrets (``master_key``, ``database_url``) may come from ``<PREFIX>MASTER_KEY`` or from a
  file named by ``<PREFIX>MASTER_KEY_FILE`` (Docker/Kubernetes secrets); setting both is an
  error rather than a silent precedence rule.
- Every field whose name starts with ``dev_`` is a development-only toggle; any of them set
  while ``environment=production`` is refused at start-up.
- In production the master key is required and the public base URL must be ``https``.

Example::

    class IssuerSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="INTYG_ISSUER_")
        service_name: ClassVar[str] = "issuer"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from intyg.web.crypto_store import CryptoStore, MasterKey, generate_master_key
from intyg.web.outbound import OutboundPolicy

__all__ = ["ServiceSettings"]

MASTER_KEY_FILE_NAME = "master.key"


class _SecretFileSource(PydanticBaseSettingsSource):
    """``<PREFIX><FIELD>_FILE`` names a file holding the field's value."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", "")).lower()
        environ = {name.lower(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in getattr(self.settings_cls, "secret_file_fields", ()):
            path = environ.get(f"{prefix}{name}_file")
            if not path:
                continue
            if environ.get(f"{prefix}{name}"):
                variable = f"{prefix}{name}".upper()
                raise ValueError(f"{variable} and {variable}_FILE are both set")
            values[name] = Path(path).read_text(encoding="utf-8").strip()
        return values


class ServiceSettings(BaseSettings):
    """Settings every service has; services subclass it with their own prefix."""

    model_config = SettingsConfigDict(env_prefix="INTYG_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "service"
    secret_file_fields: ClassVar[tuple[str, ...]] = ("master_key", "database_url")

    environment: Literal["development", "production"] = "production"
    data_dir: Path = Path("data")
    database_url: SecretStr | None = None
    master_key: SecretStr | None = None
    #: Master keys being rotated out: they still open records, never seal new ones.
    previous_master_keys: tuple[SecretStr, ...] = ()
    public_base_url: str = "http://127.0.0.1:8000"
    #: Development only: create ``data_dir/master.key`` on first start if no key is set.
    dev_generate_master_key: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _SecretFileSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("master_key", "previous_master_keys")
    @classmethod
    def _master_key_format(cls, value: Any) -> Any:
        # Fail at start-up, not at the first encryption.
        keys = value if isinstance(value, tuple) else (value,)
        for key in keys:
            if key is not None:
                MasterKey.from_config(key.get_secret_value())
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url_form(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "#" in value or "?" in value:
            raise ValueError("public_base_url must be an absolute http(s) URL without query")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_rules(self) -> ServiceSettings:
        if self.environment != "production":
            return self
        toggles = [name for name in type(self).model_fields if name.startswith("dev_")]
        enabled = [name for name in toggles if getattr(self, name)]
        if enabled:
            raise ValueError(f"development-only settings enabled in production: {enabled}")
        if not self.public_base_url.startswith("https://"):
            raise ValueError("public_base_url must be https in production")
        if self.master_key is None:
            raise ValueError("master_key (or master_key_file) is required in production")
        return self

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def sqlalchemy_url(self) -> str:
        """The configured database, or ``<data_dir>/<service>.sqlite3`` (embedded shape)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / f'{self.service_name}.sqlite3'}"

    def outbound_policy(self, **overrides: Any) -> OutboundPolicy:
        """The guarded client's policy for this environment."""
        return OutboundPolicy(development=self.is_development, **overrides)

    def crypto_store(self) -> CryptoStore:
        """Envelope encryption under the configured master key(s)."""
        previous = [key.get_secret_value() for key in self.previous_master_keys]
        if self.master_key is not None:
            return CryptoStore.from_config(self.master_key.get_secret_value(), previous)
        if not self.dev_generate_master_key:
            raise ValueError("no master_key configured")
        return CryptoStore.from_config(self._development_master_key(), previous)

    def _development_master_key(self) -> str:
        path = self.data_dir / MASTER_KEY_FILE_NAME
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(generate_master_key() + "\n")
        return path.read_text(encoding="ascii").strip()
