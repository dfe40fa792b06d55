"""Service settings (design.md "Deployment shapes"): one small pydantic-settings base that
each service extends with its own prefix and fields.

- ``environment`` is ``production`` unless configured otherwise: forgetting it fails safe.
- Every setting that holds a secret (a ``SecretStr`` anywhere in its type: ``master_key``,
  ``database_url``, an eID configuration with its client secret, ...) may come from
  ``<PREFIX>MASTER_KEY`` or from a file named by ``<PREFIX>MASTER_KEY_FILE`` (Docker secrets
  under ``/run/secrets/``, Kubernetes secret volumes); a structured setting's file holds the
  same JSON as its variable would. Setting both is an error rather than a silent precedence
  rule, and so is an empty or unreadable file. :meth:`ServiceSettings.secret_fields` lists
  them.
- Every field whose name starts with ``dev_`` is a development-only toggle; any of them set
  while ``environment=production`` is refused at start-up.
- In production the master key is required and the public base URL must be ``https``.

Example::

    class IssuerSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="INTYG_ISSUER_")
        service_name: ClassVar[str] = "issuer"
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from intyg.web.crypto_store import CryptoStore, MasterKey, generate_master_key
from intyg.web.outbound import OutboundPolicy

__all__ = ["SecretFileSettings", "ServiceSettings", "holds_secret"]

MASTER_KEY_FILE_NAME = "master.key"


def holds_secret(annotation: Any) -> bool:
    """Whether a type is, or contains (``X | None``, tuples, nested models), a ``SecretStr``."""
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(holds_secret(field.annotation) for field in annotation.model_fields.values())
    return any(holds_secret(argument) for argument in typing.get_args(annotation))


class _SecretFileSource(PydanticBaseSettingsSource):
    """``<PREFIX><FIELD>_FILE`` names a file holding a secret field's value."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", "")).lower()
        environ = {name.lower(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in self.settings_cls.secret_fields():  # type: ignore[attr-defined]
            path = environ.get(f"{prefix}{name}_file")
            if not path:
                continue
            variable = f"{prefix}{name}".upper()
            if environ.get(f"{prefix}{name}"):
                raise ValueError(f"{variable} and {variable}_FILE are both set")
            value = _read_secret_file(Path(path), f"{variable}_FILE")
            if not _is_secret_string(self.settings_cls.model_fields[name].annotation):
                try:  # structured: the same JSON as the variable would hold
                    value = json.loads(value)
                except ValueError as exc:  # the message has a position, never the content
                    raise ValueError(f"{variable}_FILE: not JSON ({exc})") from None
            values[name] = value
        return values


def _is_secret_string(annotation: Any) -> bool:
    """``SecretStr`` or ``SecretStr | None``: the file's text is the value itself."""
    members = set(typing.get_args(annotation)) - {type(None)} or {annotation}
    return members == {SecretStr}


def _read_secret_file(path: Path, variable: str) -> str:
    """The file's text without surrounding whitespace; never its content in an error."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{variable}: cannot read {path}: {reason}") from None
    if not value:
        raise ValueError(f"{variable}: {path} is empty")
    return value


class SecretFileSettings(BaseSettings):
    """Settings from ``<PREFIX><FIELD>`` variables whose secret fields may also come from
    ``<PREFIX><FIELD>_FILE`` (the base of :class:`ServiceSettings` and of any other settings
    class that holds secrets)."""

    # hide_input_in_errors: a rejected value may be a secret; errors name the setting only.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """The settings that may come from ``<PREFIX><FIELD>_FILE``: every secret one."""
        return tuple(
            name for name, field in cls.model_fields.items() if holds_secret(field.annotation)
        )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # ``X_FILE`` must mean "X from a file", never another setting called ``x_file``.
        clash = [name for name in cls.secret_fields() if f"{name}_file" in cls.model_fields]
        if clash:
            raise TypeError(f"{cls.__name__}: {clash} clash with settings named <name>_file")

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


class ServiceSettings(SecretFileSettings):
    """Settings every service has; services subclass it with their own prefix."""

    model_config = SettingsConfigDict(env_prefix="INTYG_")

    service_name: ClassVar[str] = "service"

    #: ``development`` relaxes the production rules (http, loopback fetches, ``dev_*``
    #: settings, generated keys); anything else must say ``production``.
    environment: Literal["development", "production"] = "production"
    #: Folder for the service's files: the SQLite database by default, generated keys.
    data_dir: Path = Path("data")
    #: ``postgresql://user:password@host:port/db`` or ``sqlite:///file``; unset: the SQLite
    #: file ``<data_dir>/<service>.sqlite3``.
    database_url: SecretStr | None = None
    #: Key that encrypts keys and stored credentials at rest (envelope encryption,
    #: docs/web-plumbing.md); required in production. ``intyg keys``/``generate_master_key``.
    master_key: SecretStr | None = None
    #: Master keys being rotated out: they still open records, never seal new ones.
    previous_master_keys: tuple[SecretStr, ...] = ()
    #: Where clients reach the service (scheme, host, optional path); identifiers and
    #: links derive from it, so it must be spelt the same everywhere. https in production.
    public_base_url: str = "http://127.0.0.1:8000"
    #: Development only: create ``data_dir/master.key`` on first start if no key is set.
    dev_generate_master_key: bool = False

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
