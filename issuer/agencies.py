"""The two agency profiles the embedded default runs (design.md "Who uses it").

Each issuer instance is one agency: its names (sv/en) and organisation number, the
credential type it issues and that type's two credential configurations (OpenID4VCI 1.0
§12.2.4): an SD-JWT VC (``dc+sd-jwt``) and a W3C VCDM 2.0 credential secured as a JWT
(``jwt_vc_json``), both made from the same record. HAIP 1.0 wants a ``scope`` for every
configuration (protocols.md §6): the type in lower snake case, ``_vcdm`` for the VCDM one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT

__all__ = [
    "AF",
    "AGENCIES",
    "JWT_VC_JSON",
    "MYH",
    "SD_JWT_VC",
    "Agency",
    "AgencyError",
    "CredentialConfiguration",
    "agency",
]

SD_JWT_VC = "dc+sd-jwt"
JWT_VC_JSON = "jwt_vc_json"


class AgencyError(ValueError):
    """An unknown agency, configuration or scope."""


@dataclass(frozen=True)
class CredentialConfiguration:
    """One entry of ``credential_configurations_supported`` (OpenID4VCI §12.2.4)."""

    id: str
    format: str
    scope: str
    type_name: str
    vct: str
    #: ``display`` entries of the credential (sv, en).
    display: tuple[Mapping[str, Any], ...]

    @property
    def is_sd_jwt_vc(self) -> bool:
        return self.format == SD_JWT_VC


@dataclass(frozen=True)
class Agency:
    """An agency profile: who issues, what, and how it is shown in wallets."""

    key: str
    name: Mapping[str, str]
    org_number: str
    type_name: str
    vct: str
    #: Credential display names (sv, en).
    credential_name: Mapping[str, str]
    configurations: tuple[CredentialConfiguration, ...]
    #: An SVG logo as a ``data:`` URI (HAIP: wallets render data: logos), or None.
    logo_uri: str | None = None

    def display(self) -> list[dict[str, Any]]:
        """Issuer ``display`` for the Credential Issuer Metadata (§12.2.4), sv first."""
        entries: list[dict[str, Any]] = []
        for locale in ("sv", "en"):
            entry: dict[str, Any] = {"name": self.name[locale], "locale": locale}
            if self.logo_uri:
                entry["logo"] = {"uri": self.logo_uri, "alt_text": self.name[locale]}
            entries.append(entry)
        return entries

    def configuration(self, configuration_id: str) -> CredentialConfiguration:
        for configuration in self.configurations:
            if configuration.id == configuration_id:
                return configuration
        raise AgencyError("unknown credential configuration")

    def configuration_for_scope(self, scope: str) -> CredentialConfiguration:
        for configuration in self.configurations:
            if configuration.scope == scope:
                return configuration
        raise AgencyError("unknown scope")

    @property
    def configuration_ids(self) -> tuple[str, ...]:
        return tuple(configuration.id for configuration in self.configurations)


def _logo(initials: str, colour: str) -> str:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="12" fill="{colour}"/>'
        '<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="bold" '
        f'fill="#ffffff" text-anchor="middle">{initials}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _configurations(
    type_name: str, vct: str, scope: str, name: Mapping[str, str], colour: str
) -> tuple[CredentialConfiguration, ...]:
    display = tuple(
        {
            "name": name[locale],
            "locale": locale,
            "background_color": colour,
            "text_color": "#FFFFFF",
        }
        for locale in ("sv", "en")
    )
    return (
        CredentialConfiguration(
            f"{type_name}_{SD_JWT_VC}", SD_JWT_VC, scope, type_name, vct, display
        ),
        CredentialConfiguration(
            f"{type_name}_{JWT_VC_JSON}", JWT_VC_JSON, f"{scope}_vcdm", type_name, vct, display
        ),
    )


_AF_NAME = {"sv": "Inskrivningsintyg", "en": "Registration certificate"}
AF = Agency(
    key="af",
    name=MappingProxyType({"sv": "Arbetsförmedlingen", "en": "Swedish Public Employment Service"}),
    org_number="202100-2114",
    type_name="RegistrationCertificate",
    vct=REGISTRATION_CERTIFICATE_VCT,
    credential_name=MappingProxyType(_AF_NAME),
    configurations=_configurations(
        "RegistrationCertificate",
        REGISTRATION_CERTIFICATE_VCT,
        "registration_certificate",
        _AF_NAME,
        "#0B4F6C",
    ),
    logo_uri=_logo("AF", "#0B4F6C"),
)

_MYH_NAME = {"sv": "Kvalifikationsintyg", "en": "Qualification attestation"}
MYH = Agency(
    key="myh",
    name=MappingProxyType(
        {
            "sv": "Myndigheten för yrkeshögskolan",
            "en": "Swedish National Agency for Higher Vocational Education",
        }
    ),
    org_number="202100-6230",
    type_name="QualificationAttestation",
    vct=QUALIFICATION_ATTESTATION_VCT,
    credential_name=MappingProxyType(_MYH_NAME),
    configurations=_configurations(
        "QualificationAttestation",
        QUALIFICATION_ATTESTATION_VCT,
        "qualification_attestation",
        _MYH_NAME,
        "#5A2A82",
    ),
    logo_uri=_logo("MYH", "#5A2A82"),
)

AGENCIES: Mapping[str, Agency] = MappingProxyType({"af": AF, "myh": MYH})


def agency(key: str) -> Agency:
    """The profile for ``"af"`` or ``"myh"``."""
    try:
        return AGENCIES[key]
    except KeyError:
        raise AgencyError("unknown agency") from None
