"""Digital Credentials Query Language (DCQL), OpenID4VP 1.0 §6, and claims path pointers (§7).

Three parts, one per party:

- :func:`parse_query` checks a DCQL query against every rule of §6 and returns an immutable
  :class:`DCQLQuery`; anything malformed is a :class:`DCQLError` (the wallet answers
  ``invalid_request``). Unknown properties are ignored (§6), and never copied.
- The wallet side, :func:`match`, evaluates the query against the credentials a person holds
  (§6.4): per Credential Query the matching candidates and, per candidate, exactly the claim
  paths to disclose (never an unrequested selectively disclosable claim, §6.4), then the
  ``credential_sets`` combination (§6.4.2).
- The verifier side, :func:`check_presentation_set`, checks what came back against the query
  (§8.6 steps 2.2 and 3): requested claims present, ``values`` met, ``multiple`` respected,
  credential sets satisfied, and which disclosed claims were never asked for.

Claims path pointers (§7 = OpenID4VCI Appendix C) are evaluated by :func:`select`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from intyg import strict_json

FORMAT_SD_JWT_VC = "dc+sd-jwt"
FORMAT_MSO_MDOC = "mso_mdoc"
FORMAT_JWT_VC_JSON = "jwt_vc_json"
FORMAT_LDP_VC = "ldp_vc"
TRUSTED_AUTHORITY_TYPES = frozenset({"aki", "etsi_tl", "openid_federation"})

#: Bounds on untrusted queries (DoS): bytes, counts, lengths.
MAX_QUERY_BYTES = 64 * 1024
MAX_CREDENTIAL_QUERIES = 32
MAX_CLAIMS = 64
MAX_PATH_LENGTH = 16
MAX_LIST_LENGTH = 64
MAX_STRING_LENGTH = 1024

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: A claims path pointer: strings, ``None`` (all array elements), non-negative indices.
ClaimsPath = tuple[str | int | None, ...]
#: A concrete path to one claim (what :mod:`intyg.sdjwt` reports as disclosed).
ClaimPath = tuple[str | int, ...]
ClaimValue = str | int | bool


class DCQLError(ValueError):
    """A DCQL query or claims path pointer was refused; the message is safe to show."""


class ClaimsPathError(DCQLError):
    """Processing a claims path pointer aborted (§7.1.1): the claim is not there."""


# -- data model (§6.1-§6.3) --------------------------------------------------------------


@dataclass(frozen=True)
class ClaimsQuery:
    """§6.3 Claims Query."""

    path: ClaimsPath
    id: str | None = None
    values: tuple[ClaimValue, ...] | None = None
    intent_to_retain: bool | None = None  # mso_mdoc only (§B.2.4)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": list(self.path)}
        if self.id is not None:
            out["id"] = self.id
        if self.values is not None:
            out["values"] = list(self.values)
        if self.intent_to_retain is not None:
            out["intent_to_retain"] = self.intent_to_retain
        return out


@dataclass(frozen=True)
class TrustedAuthority:
    """§6.1.1 Trusted Authorities Query."""

    type: str
    values: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "values": list(self.values)}


@dataclass(frozen=True)
class CredentialQuery:
    """§6.1 Credential Query."""

    id: str
    format: str
    meta: Mapping[str, Any]
    multiple: bool = False
    require_cryptographic_holder_binding: bool = True
    claims: tuple[ClaimsQuery, ...] | None = None
    claim_sets: tuple[tuple[str, ...], ...] | None = None
    trusted_authorities: tuple[TrustedAuthority, ...] | None = None

    @property
    def vct_values(self) -> tuple[str, ...]:
        return tuple(self.meta.get("vct_values", ()))

    @property
    def type_values(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(inner) for inner in self.meta.get("type_values", ()))

    @property
    def doctype_value(self) -> str | None:
        return self.meta.get("doctype_value")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "format": self.format, "meta": _meta_json(self)}
        if self.multiple:
            out["multiple"] = True
        if not self.require_cryptographic_holder_binding:
            out["require_cryptographic_holder_binding"] = False
        if self.trusted_authorities is not None:
            out["trusted_authorities"] = [ta.to_json() for ta in self.trusted_authorities]
        if self.claims is not None:
            out["claims"] = [claim.to_json() for claim in self.claims]
        if self.claim_sets is not None:
            out["claim_sets"] = [list(option) for option in self.claim_sets]
        return out


def _meta_json(query: CredentialQuery) -> dict[str, Any]:
    meta = dict(query.meta)
    if "vct_values" in meta:
        meta["vct_values"] = list(query.vct_values)
    if "type_values" in meta:
        meta["type_values"] = [list(inner) for inner in query.type_values]
    return meta


@dataclass(frozen=True)
class CredentialSetQuery:
    """§6.2 Credential Set Query."""

    options: tuple[tuple[str, ...], ...]
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"options": [list(option) for option in self.options]}
        if not self.required:
            out["required"] = False
        return out


@dataclass(frozen=True)
class DCQLQuery:
    """A checked DCQL query (§6)."""

    credentials: tuple[CredentialQuery, ...]
    credential_sets: tuple[CredentialSetQuery, ...] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(query.id for query in self.credentials)

    def credential(self, query_id: str) -> CredentialQuery:
        for query in self.credentials:
            if query.id == query_id:
                return query
        raise KeyError(query_id)

    def to_json(self) -> dict[str, Any]:
        """The query as a JSON object (what goes into ``dcql_query``)."""
        out: dict[str, Any] = {"credentials": [query.to_json() for query in self.credentials]}
        if self.credential_sets is not None:
            out["credential_sets"] = [s.to_json() for s in self.credential_sets]
        return out


# -- parsing (§6) ------------------------------------------------------------------------


def parse_query(obj: Mapping[str, Any] | str | bytes) -> DCQLQuery:
    """Check a DCQL query (a JSON object, or its JSON text) and return it (§6)."""
    if isinstance(obj, str | bytes):
        try:
            obj = strict_json.loads(obj, max_bytes=MAX_QUERY_BYTES)
        except strict_json.StrictJSONError as exc:
            raise DCQLError(f"dcql_query: {exc}") from exc
    query = _object(obj, "dcql_query")
    credentials = _array(query.get("credentials"), "credentials", MAX_CREDENTIAL_QUERIES)
    parsed = tuple(_credential_query(item) for item in credentials)
    ids = [item.id for item in parsed]
    if len(set(ids)) != len(ids):
        raise DCQLError("credential query ids must be unique")
    sets = None
    if "credential_sets" in query:
        items = _array(query["credential_sets"], "credential_sets", MAX_LIST_LENGTH)
        sets = tuple(_credential_set_query(item, frozenset(ids)) for item in items)
    return DCQLQuery(parsed, sets)


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DCQLError(f"{what} must be a JSON object")
    return value


def _array(value: Any, what: str, limit: int = MAX_LIST_LENGTH) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        raise DCQLError(f"{what} must be a non-empty array")
    if len(value) > limit:
        raise DCQLError(f"{what} has more than {limit} entries")
    return list(value)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise DCQLError(f"{what} must be a non-empty string")
    if len(value) > MAX_STRING_LENGTH:
        raise DCQLError(f"{what} is too long")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    return tuple(_string(item, f"{what} entries") for item in _array(value, what))


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise DCQLError(f"{what} must be a non-empty string of A-Z a-z 0-9 _ -")
    return value


def _boolean(obj: Mapping[str, Any], name: str, default: bool) -> bool:
    value = obj.get(name, default)
    if type(value) is not bool:
        raise DCQLError(f"{name} must be a boolean")
    return value


def _credential_query(value: Any) -> CredentialQuery:
    """§6.1 with the per-format ``meta`` rules of Appendix B."""
    obj = _object(value, "credential query")
    query_id = _identifier(obj.get("id"), "credential query id")
    fmt = _string(obj.get("format"), "format")
    if "meta" not in obj:
        raise DCQLError("meta is required")
    meta = _meta(fmt, _object(obj["meta"], "meta"))
    authorities = None
    if "trusted_authorities" in obj:
        items = _array(obj["trusted_authorities"], "trusted_authorities")
        authorities = tuple(_trusted_authority(item) for item in items)
    claims = claim_sets = None
    if "claims" in obj:
        claims = _claims(fmt, obj["claims"], with_sets="claim_sets" in obj)
    if "claim_sets" in obj:
        if claims is None:
            raise DCQLError("claim_sets must not be present without claims")
        claim_sets = _claim_sets(obj["claim_sets"], claims)
    return CredentialQuery(
        id=query_id,
        format=fmt,
        meta=meta,
        multiple=_boolean(obj, "multiple", False),
        require_cryptographic_holder_binding=_boolean(
            obj, "require_cryptographic_holder_binding", True
        ),
        claims=claims,
        claim_sets=claim_sets,
        trusted_authorities=authorities,
    )


def _meta(fmt: str, meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """Appendix B: only the members this format defines are kept (unknown ones ignored)."""
    if fmt == FORMAT_SD_JWT_VC:
        if "vct_values" not in meta:
            raise DCQLError("meta.vct_values is required for dc+sd-jwt")
        return {"vct_values": _strings(meta["vct_values"], "vct_values")}
    if fmt == FORMAT_MSO_MDOC:
        return {"doctype_value": _string(meta.get("doctype_value"), "meta.doctype_value")}
    if fmt in (FORMAT_JWT_VC_JSON, FORMAT_LDP_VC):
        if "type_values" not in meta:
            raise DCQLError(f"meta.type_values is required for {fmt}")
        outer = _array(meta["type_values"], "type_values")
        return {"type_values": tuple(_strings(inner, "type_values entry") for inner in outer)}
    return {}  # a format we do not know: nothing we could check or match on


def _trusted_authority(value: Any) -> TrustedAuthority:
    obj = _object(value, "trusted authority")
    kind = obj.get("type")
    if kind not in TRUSTED_AUTHORITY_TYPES:
        raise DCQLError("trusted_authorities type must be aki, etsi_tl or openid_federation")
    return TrustedAuthority(kind, _strings(obj.get("values"), "trusted_authorities values"))


def _claims(fmt: str, value: Any, *, with_sets: bool) -> tuple[ClaimsQuery, ...]:
    items = _array(value, "claims", MAX_CLAIMS)
    claims = tuple(_claims_query(fmt, item, id_required=with_sets) for item in items)
    ids = [claim.id for claim in claims if claim.id is not None]
    if len(set(ids)) != len(ids):
        raise DCQLError("claim ids must be unique within a credential query")
    paths = [claim.path for claim in claims]
    if len(set(paths)) != len(paths):
        raise DCQLError("the same claim is requested twice in a credential query")
    return claims


def _claims_query(fmt: str, value: Any, *, id_required: bool) -> ClaimsQuery:
    """§6.3; for mso_mdoc the path is namespace + element identifier (§7.2)."""
    obj = _object(value, "claims query")
    claim_id = None
    if "id" in obj or id_required:
        claim_id = _identifier(obj.get("id"), "claim id (required with claim_sets)")
    path = check_claims_path(obj.get("path"))
    if fmt == FORMAT_MSO_MDOC and (len(path) != 2 or not all(isinstance(p, str) for p in path)):
        raise DCQLError("an mso_mdoc claims path is a namespace and an element identifier")
    values = None
    if "values" in obj:
        values = tuple(_claim_value(item) for item in _array(obj["values"], "values"))
    intent = None
    if fmt == FORMAT_MSO_MDOC and "intent_to_retain" in obj:
        intent = _boolean(obj, "intent_to_retain", False)
    return ClaimsQuery(path, claim_id, values, intent)


def _claim_value(value: Any) -> ClaimValue:
    if type(value) not in (str, int, bool):
        raise DCQLError("values entries must be strings, integers or booleans")
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise DCQLError("values entry is too long")
    return value


def _claim_sets(value: Any, claims: tuple[ClaimsQuery, ...]) -> tuple[tuple[str, ...], ...]:
    known = {claim.id for claim in claims}
    options = []
    for option in _array(value, "claim_sets"):
        ids = tuple(_identifier(item, "claim_sets entry") for item in _array(option, "claim set"))
        if not known.issuperset(ids):
            raise DCQLError("claim_sets refers to an unknown claim id")
        options.append(ids)
    return tuple(options)


def _credential_set_query(value: Any, known: frozenset[str]) -> CredentialSetQuery:
    obj = _object(value, "credential set query")
    options = []
    for option in _array(obj.get("options"), "options"):
        ids = tuple(_identifier(item, "options entry") for item in _array(option, "option"))
        if not known.issuperset(ids):
            raise DCQLError("credential_sets refers to an unknown credential query id")
        options.append(ids)
    return CredentialSetQuery(tuple(options), _boolean(obj, "required", True))


# -- claims path pointers (§7) -----------------------------------------------------------


def check_claims_path(path: Any) -> ClaimsPath:
    """§7: a non-empty array of strings, nulls and non-negative integers."""
    if not isinstance(path, list | tuple) or not path:
        raise DCQLError("claims path must be a non-empty array")
    if len(path) > MAX_PATH_LENGTH:
        raise DCQLError(f"claims path longer than {MAX_PATH_LENGTH}")
    for component in path:
        if component is None or type(component) is str:
            if component is not None and len(component) > MAX_STRING_LENGTH:
                raise DCQLError("claims path component is too long")
            continue
        if type(component) is int and component >= 0:
            continue
        raise DCQLError("claims path components must be strings, null or integers >= 0")
    return tuple(path)


def select_with_paths(path: Sequence[Any], document: Any) -> list[tuple[ClaimPath, Any]]:
    """§7.1.1 processing, keeping the concrete path of every selected element."""
    pointer = check_claims_path(path)
    selected: list[tuple[ClaimPath, Any]] = [((), document)]
    for component in pointer:
        if isinstance(component, str):
            if any(not isinstance(node, Mapping) for _, node in selected):
                raise ClaimsPathError("claims path: a string step met a non-object")
            selected = [
                ((*at, component), node[component]) for at, node in selected if component in node
            ]
        else:
            if any(not isinstance(node, list) for _, node in selected):
                raise ClaimsPathError("claims path: an array step met a non-array")
            if component is None:
                selected = [
                    ((*at, i), item) for at, node in selected for i, item in enumerate(node)
                ]
            else:
                selected = [
                    ((*at, component), node[component])
                    for at, node in selected
                    if component < len(node)
                ]
    if not selected:
        raise ClaimsPathError("claims path selects nothing")
    return selected


def select(path: Sequence[Any], document: Any) -> list[Any]:
    """§7.1.1: the JSON elements ``path`` selects in ``document``; an error if none."""
    return [value for _, value in select_with_paths(path, document)]


def value_matches(value: Any, expected: Iterable[ClaimValue]) -> bool:
    """§6.3 ``values``: type and value both match exactly (``1`` is not ``True``)."""
    return any(type(value) is type(item) and value == item for item in expected)


def _pattern_covers(pattern: ClaimsPath, path: ClaimPath) -> bool:
    """Whether disclosing ``path`` is needed for, or part of, the claim ``pattern`` names:
    ``path`` is an ancestor of it, the claim itself, or something inside it."""
    for component, step in zip(pattern, path, strict=False):
        if component is None:
            if type(step) is not int:
                return False
        elif component != step:
            return False
    return True


# -- wallet side: matching (§6.4) -----------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A credential the wallet holds, as DCQL matching sees it.

    ``types``: for ``dc+sd-jwt`` the ``vct`` (and any type it extends); for W3C formats the
    fully expanded ``type`` values; for ``mso_mdoc`` the doctype. ``claims`` is the fully
    disclosed credential; ``disclosable`` the paths of its selectively disclosable claims
    (:func:`intyg.sdjwt.disclosable_paths`). ``authority_key_ids`` are the base64url AKIs of
    the issuer's ``x5c`` chain (:func:`intyg.x509.aki`); ``authorities`` other trusted
    authority types the wallet could establish (``{"etsi_tl": (...)}``).
    """

    credential_id: str
    format: str
    types: tuple[str, ...]
    claims: Mapping[str, Any]
    disclosable: tuple[ClaimPath, ...] = ()
    authority_key_ids: tuple[str, ...] = ()
    authorities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    holder_binding: bool = True


@dataclass(frozen=True)
class CredentialMatch:
    """One candidate answering one Credential Query, and what to disclose from it."""

    query_id: str
    candidate: Candidate
    #: Concrete paths of the requested claims (pass them to :func:`intyg.sdjwt.present`).
    claim_paths: tuple[ClaimPath, ...]
    #: The selectively disclosable claims that presenting ``claim_paths`` releases.
    disclosed: tuple[ClaimPath, ...]
    #: Which ``claim_sets`` option was used (index), or ``None`` without claim_sets.
    claim_set: int | None = None


@dataclass(frozen=True)
class SetChoice:
    """A Credential Set Query (or the implicit "all of them") and how it can be met."""

    required: bool
    satisfiable_options: tuple[tuple[str, ...], ...]

    @property
    def chosen(self) -> tuple[str, ...] | None:
        """The first satisfiable option: the Verifier's preference (§6.4.2)."""
        return self.satisfiable_options[0] if self.satisfiable_options else None


@dataclass(frozen=True)
class Selection:
    """Result of :func:`match`."""

    matches: Mapping[str, tuple[CredentialMatch, ...]]
    sets: tuple[SetChoice, ...]

    @property
    def satisfied(self) -> bool:
        """All required sets can be met; otherwise the wallet returns nothing (§6.4.2)."""
        return all(s.chosen is not None for s in self.sets if s.required)

    @property
    def requested(self) -> tuple[str, ...]:
        """Query ids to answer by default: the chosen option of every satisfiable set."""
        if not self.satisfied:
            return ()
        ids: dict[str, None] = {}
        for choice in self.sets:
            for query_id in choice.chosen or ():
                ids[query_id] = None
        return tuple(ids)


def match(query: DCQLQuery, candidates: Iterable[Candidate]) -> Selection:
    """§6.4: which held credentials answer which Credential Query, and with which claims."""
    pool = tuple(candidates)
    matches: dict[str, tuple[CredentialMatch, ...]] = {}
    for credential_query in query.credentials:
        found = tuple(m for m in (_match_one(credential_query, c) for c in pool) if m is not None)
        if found:
            matches[credential_query.id] = found
    if query.credential_sets is None:
        everything = (query.ids,) if all(i in matches for i in query.ids) else ()
        return Selection(matches, (SetChoice(True, everything),))
    sets = tuple(
        SetChoice(s.required, tuple(o for o in s.options if all(i in matches for i in o)))
        for s in query.credential_sets
    )
    return Selection(matches, sets)


def _match_one(query: CredentialQuery, candidate: Candidate) -> CredentialMatch | None:
    if candidate.format != query.format or not _meta_matches(query, candidate.types):
        return None
    if query.require_cryptographic_holder_binding and not candidate.holder_binding:
        return None
    if query.trusted_authorities is not None and not _authority_matches(query, candidate):
        return None
    chosen = _claims_to_disclose(query, candidate.claims)
    if chosen is None:
        return None
    claim_set, paths = chosen
    disclosed = tuple(d for d in candidate.disclosable if any(_pattern_covers(p, d) for p in paths))
    return CredentialMatch(query.id, candidate, paths, disclosed, claim_set)


def _meta_matches(query: CredentialQuery, types: Collection[str]) -> bool:
    if query.format == FORMAT_SD_JWT_VC:
        return any(vct in types for vct in query.vct_values)
    if query.format == FORMAT_MSO_MDOC:
        return query.doctype_value in types
    if query.format in (FORMAT_JWT_VC_JSON, FORMAT_LDP_VC):
        present = set(types)
        return any(present.issuperset(inner) for inner in query.type_values)
    return True


def _authority_matches(query: CredentialQuery, candidate: Candidate) -> bool:
    """§6.1.1: a match with one value of one of the trusted authorities."""
    for authority in query.trusted_authorities or ():
        held = (
            candidate.authority_key_ids
            if authority.type == "aki"
            else candidate.authorities.get(authority.type, ())
        )
        if any(value in held for value in authority.values):
            return True
    return False


def _claim_paths(claim: ClaimsQuery, claims: Mapping[str, Any]) -> tuple[ClaimPath, ...]:
    """Concrete paths of one requested claim; empty if absent or no value matches."""
    try:
        selected = select_with_paths(claim.path, claims)
    except ClaimsPathError:
        return ()
    if claim.values is not None:
        # §6.4.1: a claim whose value does not match is treated as if it did not exist.
        selected = [(at, value) for at, value in selected if value_matches(value, claim.values)]
    return tuple(at for at, _ in selected)


def _claims_to_disclose(
    query: CredentialQuery, claims: Mapping[str, Any]
) -> tuple[int | None, tuple[ClaimPath, ...]] | None:
    """§6.4.1: no claims -> only the mandatory parts; claims -> all of them; claim_sets ->
    the first option that can be met. ``None`` when the credential cannot answer."""
    if query.claims is None:
        return None, ()
    found = {claim: _claim_paths(claim, claims) for claim in query.claims}
    if query.claim_sets is None:
        if not all(found.values()):
            return None
        return None, tuple(p for paths in found.values() for p in paths)
    by_id = {claim.id: claim for claim in query.claims}
    for index, option in enumerate(query.claim_sets):
        if all(found[by_id[claim_id]] for claim_id in option):
            return index, tuple(p for claim_id in option for p in found[by_id[claim_id]])
    return None


# -- verifier side (§8.6) -----------------------------------------------------------------


class Presented(NamedTuple):
    """One verified presentation as :func:`check_presentation_set` sees it.

    ``claims`` is the processed payload; ``disclosed_paths`` the paths that came from
    Disclosures (:attr:`intyg.sdjwt_vc.VerifiedVC.disclosed_paths`); ``types`` the
    credential's types (default: ``vct`` for SD-JWT VC, ``type`` for W3C formats).
    """

    claims: Mapping[str, Any]
    disclosed_paths: tuple[ClaimPath, ...] = ()
    types: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PresentationReport:
    """How one presentation measured up to its Credential Query."""

    query_id: str
    index: int
    meta_mismatch: bool
    missing_claims: tuple[ClaimsPath, ...]
    value_mismatches: tuple[ClaimsPath, ...]
    #: Disclosed claims no claim query asked for: report them and drop them (§6.4).
    extra_claims: tuple[ClaimPath, ...]

    @property
    def ok(self) -> bool:
        return not (self.meta_mismatch or self.missing_claims or self.value_mismatches)


@dataclass(frozen=True)
class PresentationCheck:
    """Result of :func:`check_presentation_set`."""

    reports: tuple[PresentationReport, ...]
    answered: frozenset[str]
    sets_satisfied: tuple[bool, ...]
    required_sets_satisfied: bool
    multiple_violations: tuple[str, ...]
    unknown_ids: tuple[str, ...]

    @property
    def satisfied(self) -> bool:
        return (
            self.required_sets_satisfied
            and not self.multiple_violations
            and not self.unknown_ids
            and all(report.ok for report in self.reports)
        )


def check_presentation_set(
    query: DCQLQuery, presented: Mapping[str, Sequence[Presented | Mapping[str, Any]]]
) -> PresentationCheck:
    """§8.6 steps 2.2 and 3 on already verified presentations, keyed by query id.

    Never relies on the wallet: every requested claim and ``values`` constraint is checked
    again (§14.x "Security Checks on the Returned Credentials").
    """
    known = set(query.ids)
    unknown = tuple(query_id for query_id in presented if query_id not in known)
    reports: list[PresentationReport] = []
    violations: list[str] = []
    answered: set[str] = set()
    for credential_query in query.credentials:
        items = presented.get(credential_query.id)
        if items is None:
            continue
        if not items or (len(items) > 1 and not credential_query.multiple):
            violations.append(credential_query.id)
        own = [_check_one(credential_query, i, _presented(p)) for i, p in enumerate(items)]
        reports.extend(own)
        if own and all(report.ok for report in own):
            answered.add(credential_query.id)
    if query.credential_sets is None:
        sets_ok: tuple[bool, ...] = (known <= answered,)
        required_ok = sets_ok[0]
    else:
        sets_ok = tuple(
            any(answered.issuperset(option) for option in s.options) for s in query.credential_sets
        )
        required_ok = all(
            ok for ok, s in zip(sets_ok, query.credential_sets, strict=True) if s.required
        )
    return PresentationCheck(
        tuple(reports), frozenset(answered), sets_ok, required_ok, tuple(violations), unknown
    )


def _presented(item: Presented | Mapping[str, Any]) -> Presented:
    return item if isinstance(item, Presented) else Presented(item)


def _check_one(query: CredentialQuery, index: int, item: Presented) -> PresentationReport:
    missing: list[ClaimsPath] = []
    mismatched: list[ClaimsPath] = []
    status = {claim: _claim_status(claim, item.claims) for claim in query.claims or ()}
    if query.claim_sets is not None:
        by_id = {claim.id: claim for claim in query.claims or ()}
        options = [[by_id[claim_id] for claim_id in option] for option in query.claim_sets]
        met = next((o for o in options if all(status[c] == "ok" for c in o)), None)
        # None met: report against the Verifier's preferred option.
        considered = met if met is not None else options[0]
    else:
        considered = list(query.claims or ())
    for claim in considered:
        if status[claim] == "missing":
            missing.append(claim.path)
        elif status[claim] == "mismatch":
            mismatched.append(claim.path)
    requested = [claim.path for claim in query.claims or ()]
    extra = tuple(
        d for d in item.disclosed_paths if not any(_pattern_covers(p, d) for p in requested)
    )
    return PresentationReport(
        query.id,
        index,
        not _meta_matches(query, _types_of(query, item)),
        tuple(missing),
        tuple(mismatched),
        extra,
    )


def _claim_status(claim: ClaimsQuery, claims: Mapping[str, Any]) -> str:
    try:
        values = select(claim.path, claims)
    except ClaimsPathError:
        return "missing"
    if claim.values is not None and not any(value_matches(v, claim.values) for v in values):
        return "mismatch"
    return "ok"


def _types_of(query: CredentialQuery, item: Presented) -> tuple[str, ...]:
    if item.types is not None:
        return item.types
    if query.format == FORMAT_SD_JWT_VC:
        vct = item.claims.get("vct")
        return (vct,) if isinstance(vct, str) else ()
    if query.format in (FORMAT_JWT_VC_JSON, FORMAT_LDP_VC):
        types = item.claims.get("type")
        if isinstance(types, str):
            return (types,)
        return tuple(t for t in types if isinstance(t, str)) if isinstance(types, list) else ()
    return ()
