"""Settings of the development eID (``INTYG_EID_*``).

``environment`` must be ``development``: the default (``production``, inherited from
:class:`intyg.web.settings.ServiceSettings`) is refused, so forgetting it fails safe.
Clients are registered here with their exact redirect URIs, e.g.::

    INTYG_EID_ENVIRONMENT=development
    INTYG_EID_PUBLIC_BASE_URL=http://127.0.0.1:8100
    INTYG_EID_CLIENTS='[{"client_id": "wallet", "client_secret": "...",
                         "redirect_uris": ["http://127.0.0.1:8200/login/callback"]}]'
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from eid.persons import MAX_LOAD_PERSONS
from intyg.web.settings import ServiceSettings

__all__ = ["EidClient", "EidSettings", "ProductionRefused"]


class ProductionRefused(RuntimeError):
    """The development eID was asked to run with environment=production."""


class EidClient(BaseModel):
    """A registered relying party: exact redirect URIs (RFC 9700 §4.1.3), a secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr
    redirect_uris: tuple[str, ...]

    @field_validator("redirect_uris")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not u.startswith(("http://", "https://")) or "#" in u for u in value):
            raise ValueError("redirect_uris must be absolute http(s) URLs without fragment")
        return value


class EidSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTYG_EID_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "eid"

    #: Registered relying parties: client id, secret, exact redirect URIs.
    clients: tuple[EidClient, ...] = ()
    #: RFC 6749 §4.1.2 recommends at most 10 minutes; a person picker needs far less.
    code_lifetime_seconds: int = 60
    #: Lifetime of an access token for ``/userinfo``.
    access_token_lifetime_seconds: int = 300
    #: ``exp`` of an ID token relative to its ``iat``.
    id_token_lifetime_seconds: int = 300
    #: How long the person-picker page stays usable.
    picker_lifetime_seconds: int = 600
    #: SQLite file for codes and tokens; ``:memory:`` keeps them in the process.
    store_path: str = ":memory:"
    #: Private signing JWK (P-256); a fresh key is generated at start when unset.
    signing_key_jwk: SecretStr | None = None
    #: Synthetic persons for load tests (eid/persons.py ``load_person``; bench/load.py).
    dev_load_persons: int = Field(default=0, ge=0, le=MAX_LOAD_PERSONS)

    @model_validator(mode="after")
    def _production_rules(self) -> EidSettings:  # replaces the base rule on purpose
        if self.environment != "development":
            raise ValueError("the development eID provider never runs with environment=production")
        return self

    @property
    def issuer(self) -> str:
        return self.public_base_url
