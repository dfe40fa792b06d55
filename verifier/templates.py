"""Journey templates: what an employer asks for, why, for how long, under which policy.

Two built-in templates (design.md "The two reference journeys"):

- ``registration_certificate`` (A): is the person registered as a jobseeker, and since when.
- ``work_practice`` (B): a registration certificate **and** a qualification at EQF level 5 or
  higher, from their two issuers, in one request (DCQL ``credential_sets``).

DCQL ``values`` can only enumerate and is a privacy hint the wallet may ignore (OpenID4VP
§6.3), so the EQF rule is also a :class:`MinimumValue` the pipeline enforces itself.
Employers may also send their own DCQL query (:func:`custom_template`) or keep templates in
the ``templates`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from intyg import dcql
from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT

__all__ = [
    "REGISTRATION_CERTIFICATE",
    "TEMPLATES",
    "WORK_PRACTICE",
    "MinimumValue",
    "Template",
    "TemplateError",
    "builtin",
    "custom_template",
]

STATUS_POLICIES = frozenset({"reject", "accept"})


class TemplateError(ValueError):
    """An unknown template or an unusable custom query."""


@dataclass(frozen=True)
class MinimumValue:
    """A numeric lower bound on a disclosed claim of one credential query."""

    credential_id: str
    path: tuple[str | int | None, ...]
    minimum: int

    def describe(self) -> str:
        return f"{self.credential_id}: {'.'.join(str(p) for p in self.path)} >= {self.minimum}"


@dataclass(frozen=True)
class Template:
    """A journey template (not an HTML template)."""

    name: str
    dcql_query: Mapping[str, Any]
    purpose: Mapping[str, str]
    retention_days: int
    #: What an unreachable status list means: ``reject`` (default) or ``accept``.
    status_unknown_policy: str = "reject"
    constraints: tuple[MinimumValue, ...] = field(default_factory=tuple)

    def query(self) -> dcql.DCQLQuery:
        return dcql.parse_query(dict(self.dcql_query))


def _registration_query(*, must_be_registered: bool) -> dict[str, Any]:
    registered: dict[str, Any] = {"id": "registered", "path": ["registered"]}
    if must_be_registered:
        registered["values"] = [True]
    return {
        "id": "registration",
        "format": dcql.FORMAT_SD_JWT_VC,
        "meta": {"vct_values": [REGISTRATION_CERTIFICATE_VCT]},
        "claims": [
            registered,
            {"id": "registered_since", "path": ["registered_since"]},
            {"id": "registration_category", "path": ["registration_category"]},
        ],
        # A person who is not registered has no registered_since: the second option lets
        # the wallet answer "no" truthfully.
        "claim_sets": [
            ["registered", "registered_since", "registration_category"],
            ["registered", "registration_category"],
        ],
    }


REGISTRATION_CERTIFICATE = Template(
    name="registration_certificate",
    dcql_query=MappingProxyType({"credentials": [_registration_query(must_be_registered=False)]}),
    purpose=MappingProxyType(
        {
            "sv": "Är personen inskriven som arbetssökande, och sedan när?",
            "en": "Is the person registered as a jobseeker, and since when?",
        }
    ),
    retention_days=30,
)

WORK_PRACTICE = Template(
    name="work_practice",
    dcql_query=MappingProxyType(
        {
            "credentials": [
                _registration_query(must_be_registered=True),
                {
                    "id": "qualification",
                    "format": dcql.FORMAT_SD_JWT_VC,
                    "meta": {"vct_values": [QUALIFICATION_ATTESTATION_VCT]},
                    "claims": [
                        {"id": "title", "path": ["title"]},
                        {"id": "eqf_level", "path": ["eqf_level"], "values": [5, 6, 7, 8]},
                        {"id": "awarding_body", "path": ["awarding_body", "name"]},
                    ],
                },
            ],
            "credential_sets": [
                {"options": [["registration"]], "required": True},
                {"options": [["qualification"]], "required": True},
            ],
        }
    ),
    purpose=MappingProxyType(
        {
            "sv": (
                "Ansökan om arbetspraktik: är personen inskriven som arbetssökande, och har "
                "personen en kvalifikation på EQF-nivå 5 eller högre?"
            ),
            "en": (
                "Work-practice application: is the person registered as a jobseeker, and do "
                "they hold a qualification at EQF level 5 or higher?"
            ),
        }
    ),
    retention_days=90,
    constraints=(MinimumValue("qualification", ("eqf_level",), 5),),
)

TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {template.name: template for template in (REGISTRATION_CERTIFICATE, WORK_PRACTICE)}
)


def builtin(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise TemplateError("unknown template") from None


def _purpose(purpose: Any, default: Mapping[str, str]) -> dict[str, str]:
    if purpose is None:
        return dict(default)
    if isinstance(purpose, str):
        purpose = {"sv": purpose, "en": purpose}
    if (
        not isinstance(purpose, Mapping)
        or not purpose
        or not set(purpose) <= {"sv", "en"}
        or not all(isinstance(v, str) and 0 < len(v) <= 500 for v in purpose.values())
    ):
        raise TemplateError("purpose must be a text or {sv, en} texts of at most 500 characters")
    return {
        "sv": purpose.get("sv") or purpose["en"],
        "en": purpose.get("en") or purpose["sv"],
    }


def with_purpose(template: Template, purpose: Any) -> Template:
    """``template`` with the employer's own purpose text (when given)."""
    if purpose is None:
        return template
    return Template(
        template.name,
        template.dcql_query,
        MappingProxyType(_purpose(purpose, template.purpose)),
        template.retention_days,
        template.status_unknown_policy,
        template.constraints,
    )


def custom_template(
    dcql_query: Any,
    purpose: Any,
    *,
    retention_days: int,
    status_unknown_policy: str,
    name: str = "custom",
) -> Template:
    """A template from an employer's own DCQL query (checked by :func:`intyg.dcql.parse_query`).

    Only ``dc+sd-jwt`` credentials are verified by this service; a purpose is required.
    """
    if purpose is None:
        raise TemplateError("a custom query needs a purpose")
    if status_unknown_policy not in STATUS_POLICIES:
        raise TemplateError("status_unknown_policy must be reject or accept")
    try:
        query = dcql.parse_query(dcql_query)
    except dcql.DCQLError as exc:
        raise TemplateError(f"dcql_query: {exc}") from None
    if any(item.format != dcql.FORMAT_SD_JWT_VC for item in query.credentials):
        raise TemplateError("this verifier accepts dc+sd-jwt credential queries only")
    return Template(
        name=name,
        dcql_query=MappingProxyType(query.to_json()),
        purpose=MappingProxyType(_purpose(purpose, {})),
        retention_days=retention_days,
        status_unknown_policy=status_unknown_policy,
    )
