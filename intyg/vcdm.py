"""W3C Verifiable Credentials Data Model 2.0, secured with JOSE per VC-JOSE-COSE.

Both are W3C Recommendations of 15 May 2025:
https://www.w3.org/TR/2025/REC-vc-data-model-2.0-20250515/ (VCDM 2.0) and
https://www.w3.org/TR/2025/REC-vc-jose-cose-20250515/ (VC-JOSE-COSE).

A ``vc+jwt`` is a compact JWS whose payload *is* the credential JSON (VC-JOSE-COSE §3.1.1);
JWT claims such as ``iss``, ``iat``, ``exp`` and ``cnf`` sit next to the credential's own
properties, and the VCDM 1.1 wrapper claims ``vc`` / ``vp`` must not appear. A ``vp+jwt``
(§3.1.2) carries its credentials as ``EnvelopedVerifiableCredential`` data URLs.

Keys never come from the token (design.md): the caller passes a resolver that maps the
protected header and the unverified payload to a :class:`intyg.jose.Key`.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from intyg import jose, status

if TYPE_CHECKING:
    from intyg.status import BitstringStatusEntry

CREDENTIALS_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
VERIFIABLE_CREDENTIAL = "VerifiableCredential"
VERIFIABLE_PRESENTATION = "VerifiablePresentation"
ENVELOPED_VERIFIABLE_CREDENTIAL = "EnvelopedVerifiableCredential"
VC_JWT_TYP = "vc+jwt"
VP_JWT_TYP = "vp+jwt"
VC_JWT_DATA_URL_PREFIX = "data:application/vc+jwt,"
BITSTRING_STATUS_LIST_ENTRY = "BitstringStatusListEntry"
JSON_SCHEMA = "JsonSchema"

#: VCDM 1.1 JWT wrapper claims; VC-JOSE-COSE §3.1.1 / §3.1.2: MUST NOT be present.
FORBIDDEN_CLAIMS = ("vc", "vp")
#: JWT claims that travel next to the credential properties but are not part of the credential.
JWT_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "cnf", "nonce"})
#: Header parameters that would let the token choose its own verification key.
KEY_SOURCE_HEADERS = ("jwk", "jku", "x5u")
#: A presentation holds several credential JWTs, so it may be larger than one token.
MAX_PRESENTATION_BYTES = 8 * jose.MAX_TOKEN_BYTES
MAX_ENVELOPED_CREDENTIALS = 32
DEFAULT_PRESENTATION_MAX_AGE = 300
MAX_DATE_TIME_STAMP_LENGTH = 64

KeyResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], jose.Key]
"""``resolver(protected_header, unverified_payload) -> Key``; raise to refuse."""
SchemaValidator = Callable[[str, Mapping[str, Any]], None]
"""``validator(schema_id, credential_subject)``; raises ``ValueError`` when invalid."""

# RFC 3986 §3.1 scheme followed by something; no whitespace or controls anywhere.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+")
# XSD 1.1 Part 2 §3.3.7 dateTime lexical space with the timezone made mandatory
# (§3.3.8 dateTimeStamp), restricted to four-digit years, which Python can represent.
_DATE_TIME_STAMP = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})"
)
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")


class VCDMError(ValueError):
    """A credential or presentation was refused; the message is safe to show."""


@contextmanager
def _as_vcdm_error() -> Iterator[None]:
    """One exception type for callers: JOSE refusals become :class:`VCDMError`."""
    try:
        yield
    except jose.JoseError as exc:
        raise VCDMError(str(exc)) from exc


# -- dateTimeStamp (VCDM 2.0 §4.9, XSD 1.1 §3.3.8) ----------------------------------------


def parse_date_time_stamp(value: Any, name: str = "value") -> datetime:
    """Parse an XSD ``dateTimeStamp`` strictly into an aware :class:`datetime`.

    The timezone (``Z`` or ``±hh:mm``, at most 14:00) is required; ``24:00:00`` means the
    next midnight (XSD §3.3.7.2); fractions beyond microseconds are truncated. Everything
    else ``datetime.fromisoformat`` tolerates (spaces, week dates, missing seconds,
    ``+0100``, non-ASCII digits) is refused.
    """
    if not isinstance(value, str) or len(value) > MAX_DATE_TIME_STAMP_LENGTH:
        raise VCDMError(f"{name} must be an XSD dateTimeStamp string")
    match = _DATE_TIME_STAMP.fullmatch(value)
    if match is None:
        raise VCDMError(f"{name} is not an XSD dateTimeStamp (timezone required)")
    hour, minute, second = (int(match[part]) for part in ("hour", "minute", "second"))
    fraction = match["fraction"] or ""
    end_of_day = hour == 24 and minute == 0 and second == 0 and not fraction.strip("0")
    if not (hour < 24 or end_of_day) or minute > 59 or second > 59:
        raise VCDMError(f"{name} has an out-of-range time of day")
    try:
        parsed = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            0 if end_of_day else hour,
            minute,
            second,
            int(fraction[:6].ljust(6, "0")),
            tzinfo=_timezone(match["tz"], name),
        )
        return parsed + timedelta(days=1) if end_of_day else parsed
    except (ValueError, OverflowError) as exc:
        raise VCDMError(f"{name} is not a valid calendar date-time") from exc


def _timezone(text: str, name: str) -> timezone:
    if text == "Z":
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59 or hours > 14 or (hours == 14 and minutes):
        raise VCDMError(f"{name} has an out-of-range timezone offset")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def format_date_time_stamp(value: datetime) -> str:
    """An aware datetime as a UTC ``dateTimeStamp`` (``2026-11-27T10:00:00Z``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise VCDMError("a dateTimeStamp needs a timezone-aware datetime")
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise VCDMError("date-time outside the years 0001-9999 in UTC") from exc
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


# -- data model (VCDM 2.0 §4) -------------------------------------------------------------


def is_url(value: Any) -> bool:
    """VCDM 2.0 §4.4: identifiers are absolute URLs (any scheme: https, did, urn, ...)."""
    return isinstance(value, str) and _URL.fullmatch(value) is not None


def _objects(value: Any, name: str, *, allow_empty: bool = False) -> list[Mapping[str, Any]]:
    """A property that holds one object or an array of objects (VCDM 2.0 §4.8, §4.10)."""
    items = value if isinstance(value, list) else [value]
    if not items and not allow_empty:
        raise VCDMError(f"{name} must not be an empty array")
    if not all(isinstance(item, Mapping) for item in items):
        raise VCDMError(f"{name} must be an object or an array of objects")
    return items


def _types(document: Mapping[str, Any], name: str = "type") -> list[str]:
    """VCDM 2.0 §4.5: ``type`` is one string or an array of strings."""
    value = document.get("type")
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise VCDMError(f"{name} must be a string or a non-empty array of strings")
    return items


def check_context(document: Mapping[str, Any], *, allow_string: bool = False) -> None:
    """VCDM 2.0 §4.3: ``@context`` is an ordered set whose first item is the v2 context."""
    context = document.get("@context")
    if allow_string and context == CREDENTIALS_V2_CONTEXT:
        return
    if not isinstance(context, list) or not context:
        raise VCDMError("@context must be an array starting with " + CREDENTIALS_V2_CONTEXT)
    if context[0] != CREDENTIALS_V2_CONTEXT:
        raise VCDMError("the first @context item must be " + CREDENTIALS_V2_CONTEXT)
    if not all(isinstance(item, str | Mapping) for item in context[1:]):
        raise VCDMError("@context items must be URLs or objects")


def _check_optional_id(document: Mapping[str, Any], name: str) -> None:
    """VCDM 2.0 §4.4: an ``id``, when present, is a URL."""
    if "id" in document and not is_url(document["id"]):
        raise VCDMError(f"{name} id must be a URL")


def issuer_id(credential: Mapping[str, Any]) -> str:
    """VCDM 2.0 §4.7: ``issuer`` is a URL or an object whose ``id`` is a URL."""
    if "issuer" not in credential:
        raise VCDMError("issuer is required")
    issuer = credential["issuer"]
    value = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if not is_url(value):
        raise VCDMError("issuer must be a URL or an object with an id URL")
    return value


def holder_id(presentation: Mapping[str, Any]) -> str | None:
    """VCDM 2.0 §4.13: the optional ``holder`` is a URL or an object with an ``id`` URL."""
    if "holder" not in presentation:
        return None
    holder = presentation["holder"]
    value = holder.get("id") if isinstance(holder, Mapping) else holder
    if not is_url(value):
        raise VCDMError("holder must be a URL or an object with an id URL")
    return value


def credential_subjects(credential: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """VCDM 2.0 §4.8: one or more subject objects, each the subject of at least one claim."""
    if "credentialSubject" not in credential:
        raise VCDMError("credentialSubject is required")
    subjects = _objects(credential["credentialSubject"], "credentialSubject")
    for subject in subjects:
        _check_optional_id(subject, "credentialSubject")
        if not any(name != "id" for name in subject):
            raise VCDMError("each credentialSubject must make at least one claim")
    return subjects


def validity_period(credential: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """VCDM 2.0 §4.9: ``validFrom`` and ``validUntil``, with ``validFrom`` ≤ ``validUntil``."""
    valid_from = valid_until = None
    if "validFrom" in credential:
        valid_from = parse_date_time_stamp(credential["validFrom"], "validFrom")
    if "validUntil" in credential:
        valid_until = parse_date_time_stamp(credential["validUntil"], "validUntil")
    if valid_from and valid_until and valid_from > valid_until:
        raise VCDMError("validFrom is later than validUntil")
    return valid_from, valid_until


def check_validity_period(
    valid_from: datetime | None,
    valid_until: datetime | None,
    *,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
) -> None:
    """VCDM 2.0 §4.9: the credential must be valid at ``now`` (Unix seconds) ± ``leeway``."""
    instant = time.time() if now is None else now
    if valid_from is not None and valid_from.timestamp() > instant + leeway:
        raise VCDMError("credential is not yet valid (validFrom)")
    if valid_until is not None and valid_until.timestamp() < instant - leeway:
        raise VCDMError("credential has expired (validUntil)")


def status_entries(credential: Mapping[str, Any]) -> list[BitstringStatusEntry]:
    """VCDM 2.0 §4.10: each ``credentialStatus`` entry has a ``type`` and maybe an ``id`` URL.

    ``BitstringStatusListEntry`` entries are checked by :mod:`intyg.status` (Bitstring
    Status List v1.0 §2.1) and returned; entries of other types are ignored as the
    extension rules require (VCDM 2.0 §5.2).
    """
    if "credentialStatus" not in credential:
        return []
    parsed = []
    for entry in _objects(credential["credentialStatus"], "credentialStatus"):
        if not isinstance(entry.get("type"), str) or not entry["type"]:
            raise VCDMError("each credentialStatus entry needs a type")
        _check_optional_id(entry, "credentialStatus")
        if entry["type"] == BITSTRING_STATUS_LIST_ENTRY:
            try:
                parsed.append(status.parse_bitstring_status_entry(entry))
            except ValueError as exc:
                raise VCDMError(f"credentialStatus: {exc}") from exc
    return parsed


def schema_entries(credential: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """VCDM 2.0 §4.11: each ``credentialSchema`` entry has an ``id`` URL and a ``type``."""
    if "credentialSchema" not in credential:
        return []
    entries = _objects(credential["credentialSchema"], "credentialSchema")
    for entry in entries:
        if not is_url(entry.get("id")):
            raise VCDMError("each credentialSchema entry needs an id URL")
        if not isinstance(entry.get("type"), str) or not entry["type"]:
            raise VCDMError("each credentialSchema entry needs a type")
    return entries


def check_schemas(
    credential: Mapping[str, Any],
    subjects: Sequence[Mapping[str, Any]],
    schema_validator: SchemaValidator | None,
) -> None:
    """VCDM 2.0 §4.11 with VC-JSON-SCHEMA: every subject must satisfy each ``JsonSchema``."""
    entries = schema_entries(credential)
    if schema_validator is None:
        return
    for entry in entries:
        if entry["type"] != JSON_SCHEMA:
            continue
        for subject in subjects:
            try:
                schema_validator(entry["id"], subject)
            except ValueError as exc:
                raise VCDMError(f"credentialSubject fails schema {entry['id']}: {exc}") from exc


@dataclass(frozen=True)
class CredentialModel:
    """What :func:`validate_credential` learnt while checking a credential."""

    issuer: str
    subjects: list[Mapping[str, Any]]
    valid_from: datetime | None
    valid_until: datetime | None
    bitstring_status: list[BitstringStatusEntry]


def validate_credential(
    credential: Any,
    *,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    check_validity: bool = True,
    schema_validator: SchemaValidator | None = None,
) -> CredentialModel:
    """VCDM 2.0 §4 conformance of a credential, then its validity window at ``now``."""
    if not isinstance(credential, Mapping):
        raise VCDMError("credential must be a JSON object")
    check_context(credential)
    if VERIFIABLE_CREDENTIAL not in _types(credential):
        raise VCDMError("type must include VerifiableCredential")
    _check_optional_id(credential, "credential")
    issuer = issuer_id(credential)
    subjects = credential_subjects(credential)
    valid_from, valid_until = validity_period(credential)
    bitstring = status_entries(credential)
    check_schemas(credential, subjects, schema_validator)
    if check_validity:
        check_validity_period(valid_from, valid_until, now=now, leeway=leeway)
    return CredentialModel(issuer, subjects, valid_from, valid_until, bitstring)


def enveloped_credential_jwt(item: Any) -> str:
    """VCDM 2.0 §4.13.1: the ``vc+jwt`` inside an ``EnvelopedVerifiableCredential``.

    Credentials in a presentation must be secured (VC-JOSE-COSE §3.1.2), so a plain
    credential object is refused, as is any envelope other than ``application/vc+jwt``.
    """
    if not isinstance(item, Mapping):
        raise VCDMError("verifiableCredential items must be objects")
    if ENVELOPED_VERIFIABLE_CREDENTIAL not in _types(item, "verifiableCredential type"):
        raise VCDMError("verifiableCredential items must be EnvelopedVerifiableCredential")
    check_context(item, allow_string=True)
    data_url = item.get("id")
    if not isinstance(data_url, str) or not data_url.startswith(VC_JWT_DATA_URL_PREFIX):
        raise VCDMError("EnvelopedVerifiableCredential id must be a data:application/vc+jwt URL")
    token = data_url[len(VC_JWT_DATA_URL_PREFIX) :]
    if not _COMPACT_JWS.fullmatch(token):
        raise VCDMError("EnvelopedVerifiableCredential does not hold a compact JWS")
    return token


def validate_presentation(presentation: Any) -> list[str]:
    """VCDM 2.0 §4.13 conformance; returns the enveloped ``vc+jwt`` tokens in order."""
    if not isinstance(presentation, Mapping):
        raise VCDMError("presentation must be a JSON object")
    check_context(presentation)
    if VERIFIABLE_PRESENTATION not in _types(presentation):
        raise VCDMError("type must include VerifiablePresentation")
    _check_optional_id(presentation, "presentation")
    holder_id(presentation)
    if "verifiableCredential" not in presentation:
        return []
    items = presentation["verifiableCredential"]
    items = items if isinstance(items, list) else [items]
    if len(items) > MAX_ENVELOPED_CREDENTIALS:
        raise VCDMError(f"more than {MAX_ENVELOPED_CREDENTIALS} credentials in a presentation")
    return [enveloped_credential_jwt(item) for item in items]


# -- builders -----------------------------------------------------------------------------


def credential(
    *,
    issuer: str,
    credential_subject: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    types: Sequence[str] = (),
    issuer_name: str | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    credential_id: str | None = None,
    contexts: Sequence[str | Mapping[str, Any]] = (),
    credential_schema: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    credential_status: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A VCDM 2.0 credential (§4) from parameters, checked before it is returned.

    ``valid_from`` defaults to now (whole seconds, UTC).
    """
    issued: dict[str, Any] = {
        "@context": [CREDENTIALS_V2_CONTEXT, *contexts],
        "type": [VERIFIABLE_CREDENTIAL, *(t for t in types if t != VERIFIABLE_CREDENTIAL)],
    }
    if credential_id is not None:
        issued["id"] = credential_id
    issued["issuer"] = {"id": issuer, "name": issuer_name} if issuer_name else {"id": issuer}
    for key, value in (("name", name), ("description", description)):
        if value is not None:
            issued[key] = value
    start = valid_from or datetime.now(UTC).replace(microsecond=0)
    issued["validFrom"] = format_date_time_stamp(start)
    if valid_until is not None:
        issued["validUntil"] = format_date_time_stamp(valid_until)
    issued["credentialSubject"] = (
        dict(credential_subject)
        if isinstance(credential_subject, Mapping)
        else [dict(subject) for subject in credential_subject]
    )
    if credential_schema is not None:
        issued["credentialSchema"] = _plain(credential_schema)
    if credential_status is not None:
        issued["credentialStatus"] = _plain(credential_status)
    validate_credential(issued, check_validity=False)
    return issued


def _plain(value: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
    return dict(value) if isinstance(value, Mapping) else [dict(item) for item in value]


def enveloped_credential(credential_jwt: str) -> dict[str, str]:
    """VCDM 2.0 §4.13.1: wrap a ``vc+jwt`` for a presentation's ``verifiableCredential``."""
    if not isinstance(credential_jwt, str) or not _COMPACT_JWS.fullmatch(credential_jwt):
        raise VCDMError("only a compact vc+jwt can be enveloped")
    return {
        "@context": CREDENTIALS_V2_CONTEXT,
        "id": VC_JWT_DATA_URL_PREFIX + credential_jwt,
        "type": ENVELOPED_VERIFIABLE_CREDENTIAL,
    }


# -- securing with JOSE (VC-JOSE-COSE §3.1) -----------------------------------------------


def _check_forbidden_claims(claims: Mapping[str, Any]) -> None:
    """VC-JOSE-COSE §3.1.1, §3.1.2: the JWT claim names ``vc`` and ``vp`` MUST NOT be present."""
    for name in FORBIDDEN_CLAIMS:
        if name in claims:
            raise VCDMError(f"the JWT claim {name!r} must not be present (VC-JOSE-COSE)")


def _identifier_hint(value: Any) -> str | None:
    """The unverified ``issuer`` / ``holder`` id, only to decide whether ``kid`` is needed."""
    value = value.get("id") if isinstance(value, Mapping) else value
    return value if isinstance(value, str) else None


def _requires_kid(identifier: str | None) -> bool:
    """VC-JOSE-COSE §3.3: ``kid`` MUST be present when the key is a DID URL."""
    return identifier is not None and identifier.startswith("did:")


def check_claim_agreement(
    claims: Mapping[str, Any],
    issuer: str,
    valid_from: datetime | None,
    valid_until: datetime | None,
) -> None:
    """JWT claims must not contradict the credential (VC-JOSE-COSE §3.3, security.md T052).

    ``iss`` MUST equal ``issuer`` / ``issuer.id``; ``jti`` and ``sub`` must not conflict
    with ``id`` and ``credentialSubject.id``; the signature lifetime ``nbf``..``exp`` must
    lie inside ``validFrom``..``validUntil`` so it never vouches outside that period.
    """
    if "iss" in claims and claims["iss"] != issuer:
        raise VCDMError("iss does not match the credential issuer")
    if "jti" in claims and "id" in claims and claims["jti"] != claims["id"]:
        raise VCDMError("jti conflicts with the credential id")
    if "sub" in claims:
        subject = claims.get("credentialSubject")
        subject_id = subject.get("id") if isinstance(subject, Mapping) else None
        if subject_id is not None and claims["sub"] != subject_id:
            raise VCDMError("sub conflicts with credentialSubject.id")
    with _as_vcdm_error():
        exp = jose.numeric_date(claims, "exp")
        nbf = jose.numeric_date(claims, "nbf")
    if exp is not None and valid_until is not None and exp > valid_until.timestamp():
        raise VCDMError("exp is later than validUntil")
    if nbf is not None and valid_from is not None and nbf < int(valid_from.timestamp()):
        raise VCDMError("nbf is earlier than validFrom")


def _signing_header(
    typ: str, key: jose.Key, kid: str | None, header: Mapping[str, Any] | None
) -> dict[str, Any]:
    extras = dict(header or {})
    refused = {"alg", "typ", "crit", *KEY_SOURCE_HEADERS}.intersection(extras)
    if refused:
        raise VCDMError(f"header parameter {sorted(refused)[0]!r} cannot be set by the caller")
    full = {"typ": typ, **extras}
    kid = kid or key.kid
    if kid:
        full["kid"] = kid
    return full


def sign_credential(
    credential: Mapping[str, Any],
    key: jose.Key,
    *,
    kid: str | None = None,
    header: Mapping[str, Any] | None = None,
    iat: int | None = None,
    exp: int | None = None,
    nbf: int | None = None,
    holder_jwk: Mapping[str, Any] | None = None,
) -> str:
    """Secure a credential as a ``vc+jwt`` (VC-JOSE-COSE §3.1.1).

    The payload is the credential itself plus ``iss`` (= issuer id), ``iat`` (default
    now), optional ``exp`` / ``nbf`` (signature lifetime) and ``cnf.jwk`` for holder
    binding (RFC 7800). ``header`` adds parameters such as ``x5c``.
    """
    model = validate_credential(credential, check_validity=False)
    _check_forbidden_claims(credential)
    for name in ("iat", "exp", "nbf", "cnf"):
        if name in credential:
            raise VCDMError(f"credential must not contain the JWT claim {name!r}")
    signed_header = _signing_header(VC_JWT_TYP, key, kid, header)
    if _requires_kid(model.issuer) and "kid" not in signed_header:
        raise VCDMError("kid is required when the issuer is a DID")
    claims = dict(credential)
    claims.setdefault("iss", model.issuer)
    claims["iat"] = int(time.time()) if iat is None else iat
    for name, value in (("exp", exp), ("nbf", nbf)):
        if value is not None:
            claims[name] = value
    if holder_jwk is not None:
        with _as_vcdm_error():
            claims["cnf"] = {"jwk": jose.key_from_jwk(holder_jwk).public_jwk()}
    with _as_vcdm_error():
        for name in ("iat", "exp", "nbf"):
            jose.numeric_date(claims, name)
    check_claim_agreement(claims, model.issuer, model.valid_from, model.valid_until)
    with _as_vcdm_error():
        return jose.encode_jws(claims, key, signed_header)


def _check_secured_header(jws: jose.CompactJWS, typ: str, cty: str, require_typ: bool) -> None:
    """VC-JOSE-COSE §3.1: explicit ``typ``, optional ``cty``, and no key from the token."""
    with _as_vcdm_error():
        jose.check_header(jws, typ=typ if require_typ or "typ" in jws.header else None)
    if "cty" in jws.header and jose.normalise_typ(jws.header["cty"]) != cty:
        raise VCDMError(f"cty must be {cty!r}")
    for name in KEY_SOURCE_HEADERS:
        if name in jws.header:
            raise VCDMError(f"header parameter {name!r} is not accepted as a key source")
    if "kid" in jws.header and not isinstance(jws.header["kid"], str):
        raise VCDMError("kid must be a string")


def _resolve_and_verify(
    jws: jose.CompactJWS, claims: Mapping[str, Any], resolver: KeyResolver
) -> jose.Key:
    key = resolver(jws.header, claims)
    if not isinstance(key, jose.Key):
        raise VCDMError("no verification key for this token")
    with _as_vcdm_error():
        jose.verify_signature(jws, key)
    return key


def _holder_key(claims: Mapping[str, Any]) -> jose.Key | None:
    """RFC 7800 §3.2: ``cnf.jwk`` is the holder's public key (no private members)."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, Mapping) or not isinstance(cnf.get("jwk"), Mapping):
        raise VCDMError("cnf must be an object holding a jwk")
    with _as_vcdm_error():
        return jose.key_from_jwk(cnf["jwk"])


@dataclass(frozen=True)
class VerifiedCredential:
    """A ``vc+jwt`` whose signature, data model, JWT claims and validity all checked out."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    issuer: str
    key: jose.Key
    holder_key: jose.Key | None
    valid_from: datetime | None
    valid_until: datetime | None
    bitstring_status: tuple[BitstringStatusEntry, ...]

    @property
    def credential(self) -> dict[str, Any]:
        """The credential without the JWT claims that travelled next to it."""
        return {name: value for name, value in self.claims.items() if name not in JWT_CLAIMS}

    @property
    def credential_subjects(self) -> list[Mapping[str, Any]]:
        return credential_subjects(self.claims)


def verify_credential(
    token: str,
    key_resolver: KeyResolver,
    *,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    schema_validator: SchemaValidator | None = None,
    require_typ: bool = True,
) -> VerifiedCredential:
    """Verify a ``vc+jwt`` (VC-JOSE-COSE §3.1.1, §3.3; VCDM 2.0 §4; security.md T052).

    Header: allowed ``alg`` only, ``typ`` ``vc+jwt`` (required unless ``require_typ`` is
    false, and never anything else), ``cty`` ``vc`` if present, no ``jwk``/``jku``/``x5u``,
    ``kid`` when the issuer is a DID. Then signature with the resolved key, no ``vc``/``vp``
    claims, data model, claim agreement, ``iat``/``nbf``/``exp`` and ``validFrom``/
    ``validUntil`` at ``now`` (Unix seconds) ± ``leeway``, and ``cnf``.
    """
    with _as_vcdm_error():
        jws = jose.parse_jws(token)
        claims = jws.claims()
    _check_secured_header(jws, VC_JWT_TYP, "vc", require_typ)
    _check_forbidden_claims(claims)
    if _requires_kid(_identifier_hint(claims.get("issuer"))) and "kid" not in jws.header:
        raise VCDMError("kid is required when the issuer key is a DID URL")
    key = _resolve_and_verify(jws, claims, key_resolver)
    model = validate_credential(claims, check_validity=False, schema_validator=schema_validator)
    check_claim_agreement(claims, model.issuer, model.valid_from, model.valid_until)
    with _as_vcdm_error():
        jose.check_time_claims(claims, now=now, leeway=leeway)
    check_validity_period(model.valid_from, model.valid_until, now=now, leeway=leeway)
    return VerifiedCredential(
        token=token,
        header=jws.header,
        claims=claims,
        issuer=model.issuer,
        key=key,
        holder_key=_holder_key(claims),
        valid_from=model.valid_from,
        valid_until=model.valid_until,
        bitstring_status=tuple(model.bitstring_status),
    )


def sign_presentation(
    credentials_jwts: Sequence[str],
    holder_key: jose.Key,
    *,
    audience: str,
    nonce: str,
    holder: str | None = None,
    kid: str | None = None,
    iat: int | None = None,
    presentation_id: str | None = None,
) -> str:
    """Secure a presentation as a ``vp+jwt`` (VC-JOSE-COSE §3.1.2).

    Each credential is carried as an ``EnvelopedVerifiableCredential``; ``aud`` and
    ``nonce`` bind the presentation to one verifier request.
    """
    if not isinstance(audience, str) or not audience:
        raise VCDMError("audience must be a non-empty string")
    if not isinstance(nonce, str) or not nonce:
        raise VCDMError("nonce must be a non-empty string")
    if len(credentials_jwts) > MAX_ENVELOPED_CREDENTIALS:
        raise VCDMError(f"more than {MAX_ENVELOPED_CREDENTIALS} credentials in a presentation")
    claims: dict[str, Any] = {
        "@context": [CREDENTIALS_V2_CONTEXT],
        "type": [VERIFIABLE_PRESENTATION],
    }
    if presentation_id is not None:
        claims["id"] = presentation_id
    if holder is not None:
        claims["holder"] = holder
    claims["verifiableCredential"] = [enveloped_credential(jwt) for jwt in credentials_jwts]
    validate_presentation(claims)
    claims.update(aud=audience, nonce=nonce, iat=int(time.time()) if iat is None else iat)
    signed_header = _signing_header(VP_JWT_TYP, holder_key, kid, None)
    if _requires_kid(holder) and "kid" not in signed_header:
        raise VCDMError("kid is required when the holder is a DID")
    with _as_vcdm_error():
        return jose.encode_jws(claims, holder_key, signed_header)


@dataclass(frozen=True)
class VerifiedPresentation:
    """A ``vp+jwt`` bound to this verifier's request, with every credential verified."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    holder: str | None
    key: jose.Key
    credentials: tuple[VerifiedCredential, ...]


def _check_nonce(claims: Mapping[str, Any], nonce: str) -> None:
    value = claims.get("nonce")
    if not isinstance(value, str) or not hmac.compare_digest(
        value.encode("utf-8"), nonce.encode("utf-8")
    ):
        raise VCDMError("nonce does not match")


def check_holder_binding(
    holder_key: jose.Key,
    credentials: Sequence[VerifiedCredential],
    *,
    require: bool = False,
) -> None:
    """RFC 7800 proof of possession: the presentation key must be each credential's ``cnf``."""
    thumbprint = holder_key.thumbprint()
    for index, verified in enumerate(credentials):
        if verified.holder_key is None:
            if require:
                raise VCDMError(f"verifiableCredential[{index}] has no holder binding (cnf)")
            continue
        if verified.holder_key.thumbprint() != thumbprint:
            raise VCDMError(
                f"verifiableCredential[{index}]: presentation key is not the cnf holder key"
            )


def verify_presentation(
    token: str,
    holder_key_resolver: KeyResolver,
    *,
    audience: str,
    nonce: str,
    credential_key_resolver: KeyResolver,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int = DEFAULT_PRESENTATION_MAX_AGE,
    schema_validator: SchemaValidator | None = None,
    require_holder_binding: bool = False,
) -> VerifiedPresentation:
    """Verify a ``vp+jwt`` (VC-JOSE-COSE §3.1.2; VCDM 2.0 §4.13).

    Checks ``typ`` ``vp+jwt``, the holder signature, no ``vc``/``vp`` claims, the
    presentation data model (only enveloped ``vc+jwt`` credentials), ``iss`` = holder when
    both are present, ``aud`` exactly ``audience``, ``nonce``, a fresh ``iat`` (at most
    ``max_age`` seconds old), every credential, and holder binding to each ``cnf``.
    """
    with _as_vcdm_error():
        jws = jose.parse_jws(token, max_bytes=MAX_PRESENTATION_BYTES)
        claims = jws.claims()
    _check_secured_header(jws, VP_JWT_TYP, "vp", require_typ=True)
    _check_forbidden_claims(claims)
    if _requires_kid(_identifier_hint(claims.get("holder"))) and "kid" not in jws.header:
        raise VCDMError("kid is required when the holder key is a DID URL")
    key = _resolve_and_verify(jws, claims, holder_key_resolver)
    credential_jwts = validate_presentation(claims)
    holder = holder_id(claims)
    if "iss" in claims and holder is not None and claims["iss"] != holder:
        raise VCDMError("iss does not match the presentation holder")
    with _as_vcdm_error():
        jose.check_audience(claims, audience)
        jose.check_time_claims(
            claims, now=now, leeway=leeway, require=("iat",), max_iat_age=max_age
        )
    _check_nonce(claims, nonce)
    credentials = []
    for index, credential_jwt in enumerate(credential_jwts):
        try:
            credentials.append(
                verify_credential(
                    credential_jwt,
                    credential_key_resolver,
                    now=now,
                    leeway=leeway,
                    schema_validator=schema_validator,
                )
            )
        except VCDMError as exc:
            raise VCDMError(f"verifiableCredential[{index}]: {exc}") from exc
    check_holder_binding(key, credentials, require=require_holder_binding)
    return VerifiedPresentation(
        token=token,
        header=jws.header,
        claims=claims,
        holder=holder,
        key=key,
        credentials=tuple(credentials),
    )


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a ``vc+jwt`` / ``vp+jwt`` for display only: NOTHING is verified."""
    with _as_vcdm_error():
        jws = jose.parse_jws(token, max_bytes=MAX_PRESENTATION_BYTES)
        return jws.header, jws.claims()
