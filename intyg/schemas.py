"""Credential types of intyg: JSON Schemas and SD-JWT VC Type Metadata (design.md, schemas/).

Each type lives in ``schemas/<TypeName>/`` at the top of the repository:
``schema.json`` (JSON Schema draft 2020-12 of the subject claims, i.e. the SD-JWT VC
payload without the token's own claims ``iss``, ``iat``, ``nbf``, ``exp``, ``cnf``,
``vct``, ``status``), ``type-metadata.json`` (SD-JWT VC draft -18, "Type Metadata") and
``examples/*.json``. Documents are read once and cached; lookups accept the ``vct`` or the
short type name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from numbers import Number
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from intyg import personnummer, strict_json

REGISTRATION_CERTIFICATE_VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"
QUALIFICATION_ATTESTATION_VCT = "https://intyg.example/vct/myh-kvalifikation/1"

#: Short type name -> vct. The type name is also the folder name under ``schemas/``.
CREDENTIAL_TYPES: Mapping[str, str] = {
    "RegistrationCertificate": REGISTRATION_CERTIFICATE_VCT,
    "QualificationAttestation": QUALIFICATION_ATTESTATION_VCT,
}
#: ``intyg/_schemas`` is a symbolic link to the repository's ``schemas/`` folder, so the
#: same path works in the source tree and in an installed wheel (package data).
SCHEMAS_DIR = Path(__file__).parent / "_schemas"

#: A claims path (SD-JWT VC "Claim Path"): keys, ``None`` for all array elements, indices.
ClaimPath = tuple[str | int | None, ...]

_TYPE_NAMES = {vct: name for name, vct in CREDENTIAL_TYPES.items()}
_SD_VALUES = frozenset({"always", "allowed", "never"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_ORG_NUMBER_PATH: ClaimPath = ("awarding_body", "org_number")
#: JSON Schema keyword -> message; ``{limit}`` is the schema's value, never the claim's.
_RULE_MESSAGES = {
    "type": "must be of type {limit}",
    "required": "required claim is missing",
    "additionalProperties": "claim is not allowed here",
    "not": "claim is not allowed here",
    "minimum": "must be at least {limit}",
    "maximum": "must be at most {limit}",
    "pattern": "does not match the pattern {limit}",
    "format": "is not a valid {limit}",
    "minLength": "must be at least {limit} characters",
    "maxLength": "must be at most {limit} characters",
    "minItems": "must have at least {limit} items",
    "maxItems": "must have at most {limit} items",
    "uniqueItems": "items must be unique",
    "const": "has a value that is not allowed",
    "enum": "has a value that is not allowed",
}


class SchemaError(ValueError):
    """A subject or a type was refused; the message names the JSON path and the rule.

    The message never contains claim values (they may be personal numbers), only paths,
    rule names and schema-side limits. ``path`` and ``rule`` carry the same for code.
    """

    def __init__(self, message: str, *, path: str = "$", rule: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.rule = rule


@dataclass(frozen=True, slots=True)
class CredentialType:
    """One credential type's documents, loaded from ``schemas/<name>/``."""

    name: str
    vct: str
    schema: dict[str, Any]
    type_metadata: dict[str, Any]
    validator: Draft202012Validator


def resolve_type(vct_or_type: str) -> CredentialType:
    """The credential type for a ``vct`` or a short type name; unknown → :class:`SchemaError`."""
    name = vct_or_type if vct_or_type in CREDENTIAL_TYPES else _TYPE_NAMES.get(vct_or_type)
    if name is None:
        raise SchemaError("unknown credential type (vct)", rule="vct")
    return _load_type(name)


@cache
def _load_type(name: str) -> CredentialType:
    folder = SCHEMAS_DIR / name
    schema = _load_json(folder / "schema.json")
    metadata = _load_json(folder / "type-metadata.json")
    Draft202012Validator.check_schema(schema)
    vct = CREDENTIAL_TYPES[name]
    if metadata.get("vct") != vct:
        raise SchemaError(f"type metadata of {name} names a different vct", rule="vct")
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return CredentialType(name, vct, schema, metadata, validator)


def _load_json(path: Path) -> dict[str, Any]:
    # Our own files, but strict parsing still catches duplicate keys introduced by an edit.
    return strict_json.loads(path.read_bytes())


def json_schema(vct_or_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the type's subject claims. Do not mutate."""
    return resolve_type(vct_or_type).schema


def type_metadata(vct: str) -> dict[str, Any]:
    """The SD-JWT VC Type Metadata document (SD-JWT VC draft -18) for ``vct`` (or type name).

    Returns the cached document; treat it as read-only.
    """
    return resolve_type(vct).type_metadata


def example_subjects(vct_or_type: str) -> dict[str, dict[str, Any]]:
    """The type's example subjects, ``examples/<stem>.json`` → ``{stem: subject}``."""
    folder = SCHEMAS_DIR / resolve_type(vct_or_type).name / "examples"
    return {path.stem: _load_json(path) for path in sorted(folder.glob("*.json"))}


# --- validation ---------------------------------------------------------------------------


def validate_subject(
    vct_or_type: str, subject: Mapping[str, Any], *, partial: bool = False
) -> None:
    """Validate subject claims against the type's JSON Schema and the Swedish number rules.

    ``partial=True`` is for disclosed claims at a verifier: a claim that was not disclosed
    is not missing (SD-JWT VC draft -18: absence must not be inferred), so ``required``
    is not enforced; every other rule is. Personal identity numbers are checked with
    :mod:`intyg.personnummer` (the schema pattern cannot check the Luhn digit) and
    organisation numbers with the same check digit.

    Raises :class:`SchemaError` for the first failure (in path order) naming its JSON path.
    """
    credential_type = resolve_type(vct_or_type)
    if not isinstance(subject, Mapping):
        raise SchemaError("$: subject must be a JSON object", rule="type")
    if not _valid(credential_type.name, subject, partial):
        errors = [
            error
            for error in credential_type.validator.iter_errors(subject)
            if not (partial and error.validator == "required")
        ]
        if errors:
            raise _schema_error(min(errors, key=_error_order))
    _check_personal_identity_number(subject)
    _check_org_number(subject)


# --- compiled validity check -------------------------------------------------------------
#
# jsonschema walks a schema per instance and builds an error object for every rule that does
# not hold (~0.5 ms per subject here). A verifier checks every presented subject, and nearly
# all are valid, so the schema is also compiled once into plain predicates that answer only
# "valid" with the same semantics (JSON Schema 2020-12 as jsonschema implements it, for the
# keywords our schemas use). Anything else — "invalid", a keyword or value the compiler does
# not know — goes to jsonschema, which then also names the failing rule.

_Predicate = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples"})
_TYPE_PREDICATES: dict[str, _Predicate] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, Number) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


class _NotCompiled(Exception):
    """A schema construct the compiler does not cover: jsonschema decides alone."""


def _valid(name: str, subject: Any, partial: bool) -> bool:
    """True only if jsonschema would report no error (``required`` ones dropped when
    ``partial``, as :func:`validate_subject` does)."""
    predicate = _compiled(name, partial)
    return predicate is not None and predicate(subject)


@cache
def _compiled(name: str, partial: bool) -> _Predicate | None:
    try:
        return _compile(_load_type(name).schema, report_required=not partial)
    except _NotCompiled:
        return None


def _compile(schema: Any, *, report_required: bool) -> _Predicate:
    """``report_required=False`` drops ``required`` where jsonschema would report it as an
    error; inside ``if`` and ``not`` (validity questions, not errors) it always applies."""
    if schema is True or schema == {}:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, Mapping):
        raise _NotCompiled
    if "patternProperties" in schema or "prefixItems" in schema:
        raise _NotCompiled
    checks = [
        _keyword(keyword, value, schema, report_required)
        for keyword, value in schema.items()
        if keyword not in _ANNOTATIONS and keyword not in ("then", "else")
    ]
    active = [check for check in checks if check is not None]
    return lambda v: all(check(v) for check in active)


def _keyword(
    keyword: str, value: Any, schema: Mapping[str, Any], report_required: bool
) -> _Predicate | None:
    def compiled(sub: Any, *, required: bool = report_required) -> _Predicate:
        return _compile(sub, report_required=required)

    if keyword == "type" and isinstance(value, str) and value in _TYPE_PREDICATES:
        return _TYPE_PREDICATES[value]
    if keyword == "required" and isinstance(value, list):
        names = tuple(value)
        if not report_required:
            return None
        return lambda v: not isinstance(v, dict) or all(n in v for n in names)
    if keyword == "properties" and isinstance(value, Mapping):
        members = tuple((name, compiled(sub)) for name, sub in value.items())
        return lambda v: (
            not isinstance(v, dict) or all(check(v[name]) for name, check in members if name in v)
        )
    if keyword == "additionalProperties" and value is False:
        known = frozenset(schema.get("properties", {}))
        return lambda v: not isinstance(v, dict) or all(name in known for name in v)
    if keyword == "items" and isinstance(value, Mapping | bool):
        item = compiled(value)
        return lambda v: not isinstance(v, list) or all(item(x) for x in v)
    if keyword in ("minItems", "maxItems", "minLength", "maxLength") and type(value) is int:
        kind = list if keyword.endswith("Items") else str
        if keyword.startswith("min"):
            return lambda v: not isinstance(v, kind) or len(v) >= value
        return lambda v: not isinstance(v, kind) or len(v) <= value
    if keyword == "uniqueItems" and isinstance(value, bool):
        if not value:
            return None
        return lambda v: not isinstance(v, list) or _unique_strings(v)
    if keyword == "pattern" and isinstance(value, str):
        regex = re.compile(value)
        return lambda v: not isinstance(v, str) or regex.search(v) is not None
    if keyword == "format" and isinstance(value, str):
        checker = Draft202012Validator.FORMAT_CHECKER
        return lambda v: checker.conforms(v, value)
    if keyword in ("minimum", "maximum") and _TYPE_PREDICATES["number"](value):
        number = _TYPE_PREDICATES["number"]
        if keyword == "minimum":  # jsonschema's own comparisons (NaN included)
            return lambda v: not number(v) or not v < value
        return lambda v: not number(v) or not v > value
    if keyword == "const" and (isinstance(value, bool) or value is None):
        return lambda v: v is value
    if keyword == "const" and isinstance(value, str):
        return lambda v: isinstance(v, str) and v == value
    if keyword == "enum" and isinstance(value, list) and all(isinstance(e, str) for e in value):
        allowed = frozenset(value)
        return lambda v: isinstance(v, str) and v in allowed
    if keyword == "allOf" and isinstance(value, list):
        parts = tuple(compiled(sub) for sub in value)
        return lambda v: all(part(v) for part in parts)
    if keyword == "not":
        negated = compiled(value, required=True)
        return lambda v: not negated(v)
    if keyword == "if":
        condition = compiled(value, required=True)
        then, otherwise = compiled(schema.get("then", True)), compiled(schema.get("else", True))
        return lambda v: then(v) if condition(v) else otherwise(v)
    raise _NotCompiled


def _unique_strings(items: list[Any]) -> bool:
    """``uniqueItems`` for string arrays; other item types: not decided here (False lets
    jsonschema judge, with its own equality rules)."""
    return all(isinstance(x, str) for x in items) and len(set(items)) == len(items)


def _check_personal_identity_number(subject: Mapping[str, Any]) -> None:
    value = subject.get("personal_identity_number")
    if value is None:
        return
    try:
        personnummer.parse(value)
    except personnummer.PersonnummerError as exc:
        raise SchemaError(
            f"$.personal_identity_number: {exc}",
            path="$.personal_identity_number",
            rule="personnummer",
        ) from None


def _check_org_number(subject: Mapping[str, Any]) -> None:
    body = subject.get(_ORG_NUMBER_PATH[0])
    value = body.get(_ORG_NUMBER_PATH[1]) if isinstance(body, Mapping) else None
    if value is None:
        return
    digits = value.replace("-", "")
    # Organisationsnummer carry the same Luhn check digit as personnummer.
    if personnummer.luhn_check_digit(digits[:9]) != int(digits[9]):
        path = json_path(_ORG_NUMBER_PATH)
        raise SchemaError(
            f"{path}: organisationsnummer check digit (Luhn) does not match",
            path=path,
            rule="organisationsnummer",
        )


def _error_order(error: ValidationError) -> tuple[str, str]:
    return (json_path(_error_path(error)), str(error.validator))


def _error_path(error: ValidationError) -> list[str | int]:
    """Path of the offending claim; for missing/extra members the member itself."""
    path: list[str | int] = list(error.absolute_path)
    instance, schema = error.instance, error.schema
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = [name for name in error.validator_value if name not in instance]
        path.extend(missing[:1])
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        extra = sorted(name for name in instance if name not in allowed)
        path.extend(extra[:1])
    return path


def _schema_error(error: ValidationError) -> SchemaError:
    path = json_path(_error_path(error))
    return SchemaError(f"{path}: {_describe(error)}", path=path, rule=str(error.validator))


def _describe(error: ValidationError) -> str:
    """Human-readable rule, built from the schema side only (never echoes the value)."""
    template = _RULE_MESSAGES.get(str(error.validator), "fails the {rule} rule")
    return template.format(rule=error.validator, limit=error.validator_value)


def json_path(path: Iterable[str | int | None]) -> str:
    """Render a claims path as a JSONPath-like string: ``$.learning_outcomes.skills[2]``."""
    parts = ["$"]
    for component in path:
        if component is None:
            parts.append("[*]")
        elif isinstance(component, int):
            parts.append(f"[{component}]")
        elif _IDENTIFIER.fullmatch(component):
            parts.append(f".{component}")
        else:
            # Member names may come from the untrusted subject: quote and bound them.
            parts.append(f"[{component[:40]!r}]")
    return "".join(parts)


# --- type metadata ------------------------------------------------------------------------


def sd_rules(vct: str) -> dict[ClaimPath, str]:
    """Claim path → ``sd`` value (``always`` | ``allowed`` | ``never``; default ``allowed``)."""
    return dict(_sd_rules(resolve_type(vct).name))


@cache
def _sd_rules(name: str) -> tuple[tuple[ClaimPath, str], ...]:
    claims = _load_type(name).type_metadata.get("claims", [])
    return tuple((tuple(claim["path"]), claim.get("sd", "allowed")) for claim in claims)


def selectively_disclosable_paths(vct: str) -> frozenset[ClaimPath]:
    """Paths the issuer makes selectively disclosable: ``sd`` ``always`` or ``allowed``.

    intyg makes every claim the metadata allows selectively disclosable, so the holder
    decides what to share (design.md). The set includes nested members (e.g.
    ``("programme", "since")``); an issuer that discloses objects whole uses the
    one-element paths only. Verifiers check ``always`` with :func:`always_disclosable_paths`.
    """
    return frozenset(path for path, sd in _sd_rules(resolve_type(vct).name) if sd != "never")


def always_disclosable_paths(vct: str) -> frozenset[ClaimPath]:
    """Paths with ``sd`` ``always``: a credential where they are plain claims is refused."""
    return frozenset(path for path, sd in _sd_rules(resolve_type(vct).name) if sd == "always")


def mandatory_paths(vct: str) -> frozenset[ClaimPath]:
    """Paths the metadata marks ``mandatory`` (relative to their parent being present)."""
    claims = resolve_type(vct).type_metadata.get("claims", [])
    return frozenset(tuple(claim["path"]) for claim in claims if claim.get("mandatory"))


def claim_display(vct: str, locale: str) -> dict[ClaimPath, str]:
    """Claim path → label in ``locale`` (for wallet and verifier pages).

    Language tags match exactly first, then on the primary language (``sv-SE`` → ``sv``),
    then fall back to English, then to the first label the metadata gives.
    """
    return dict(_claim_display(resolve_type(vct).name, locale.lower()))


@lru_cache(maxsize=32)  # locales come from request headers: keep the cache bounded
def _claim_display(name: str, locale: str) -> tuple[tuple[ClaimPath, str], ...]:
    labels = []
    for claim in _load_type(name).type_metadata.get("claims", []):
        display = claim.get("display") or []
        if display:
            labels.append((tuple(claim["path"]), _pick_locale(display, locale)["label"]))
    return tuple(labels)


def _pick_locale(entries: list[Mapping[str, Any]], locale: str) -> Mapping[str, Any]:
    language = locale.split("-", 1)[0]
    by_locale = {str(entry.get("locale", "")).lower(): entry for entry in entries}
    by_language = {tag.split("-", 1)[0]: entry for tag, entry in reversed(by_locale.items())}
    return by_locale.get(locale) or by_language.get(language) or by_language.get("en") or entries[0]


def check_type_metadata(vct: str) -> None:
    """Check the type metadata against the JSON Schema (SD-JWT VC draft -18 "Claim Metadata").

    Every claim path must exist in the schema, ``sd`` must be a defined value, ``mandatory``
    must agree with the schema's ``required`` at that level, and each claim must have a
    label in every locale of the type's ``display``. Raises :class:`SchemaError`.
    """
    credential_type = resolve_type(vct)
    locales = {entry["locale"] for entry in credential_type.type_metadata.get("display", [])}
    seen: set[ClaimPath] = set()
    for claim in credential_type.type_metadata.get("claims", []):
        path = tuple(claim["path"])
        where = json_path(path)
        if path in seen:
            raise SchemaError(f"{where}: claim path listed twice in the metadata", path=where)
        seen.add(path)
        parent = _schema_at(credential_type.schema, path[:-1]) if path else None
        if not path or parent is None or _child_schema(parent, path[-1]) is None:
            raise SchemaError(f"{where}: metadata claim path not in the schema", path=where)
        if claim.get("sd", "allowed") not in _SD_VALUES:
            raise SchemaError(f"{where}: sd must be always, allowed or never", path=where)
        required = isinstance(path[-1], str) and path[-1] in parent.get("required", [])
        if bool(claim.get("mandatory", False)) != required:
            raise SchemaError(f"{where}: mandatory disagrees with the schema", path=where)
        missing = locales - {entry.get("locale") for entry in claim.get("display", [])}
        if missing:
            raise SchemaError(f"{where}: no label for locale {sorted(missing)}", path=where)


def _schema_at(schema: Mapping[str, Any], path: ClaimPath) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for component in path:
        if node is None:
            return None
        node = _child_schema(node, component)
    return node


def _child_schema(node: Mapping[str, Any], component: str | int | None) -> Mapping[str, Any] | None:
    if isinstance(component, str):
        child = node.get("properties", {}).get(component)
    else:
        child = node.get("items")
    return child if isinstance(child, Mapping) else None
