"""The verification pipeline: every check named and reported (issue 5 item 4).

Checks, in order (OpenID4VP 1.0 §8.6; RFC 9901 §7.1, §7.3; SD-JWT VC draft -18 §3.5; TSL §8.3)::

    parse, vp_token_shape,
    per presentation: issuer_trusted, issuer_trusted_for_type, issuer_signature,
                      disclosures, validity_times, key_binding,
    nonce_once, requested_claims, value_constraints,
    per presentation: status, schema

Each check is ``ok``, ``failed`` or ``skipped`` with a reason that never contains a claim
value (T111). The pipeline does not stop at the first failure: a later check runs whenever
its input is still meaningful (e.g. an expired credential's key binding is still checked),
so a rejection names **every** failing check. Checks that need verified claims are skipped
once the issuer signature has failed.

The pipeline is pure apart from the status list fetch (through the guarded client, see
:mod:`verifier.status`); it stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intyg import dcql, jose, oid4vp, schemas, sdjwt, sdjwt_vc
from intyg import status as core_status

from .status import StatusChecker, StatusRejected, StatusUnknown
from .templates import MinimumValue
from .trust import ISSUER_TRUSTED, ISSUER_TRUSTED_FOR_TYPE, IssuerKey, TrustError, TrustList

__all__ = [
    "CHECK_NAMES",
    "Check",
    "Pipeline",
    "PipelineResult",
    "PresentationRequest",
    "VerifiedCredential",
]

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
PARSE = "parse"
VP_TOKEN_SHAPE = "vp_token_shape"  # noqa: S105 - a check name
ISSUER_SIGNATURE = "issuer_signature"
DISCLOSURES = "disclosures"
VALIDITY_TIMES = "validity_times"
KEY_BINDING = "key_binding"
NONCE_ONCE = "nonce_once"
REQUESTED_CLAIMS = "requested_claims"
VALUE_CONSTRAINTS = "value_constraints"
STATUS = "status"
SCHEMA = "schema"
CHECK_NAMES = (
    PARSE,
    VP_TOKEN_SHAPE,
    ISSUER_TRUSTED,
    ISSUER_TRUSTED_FOR_TYPE,
    ISSUER_SIGNATURE,
    DISCLOSURES,
    VALIDITY_TIMES,
    KEY_BINDING,
    NONCE_ONCE,
    REQUESTED_CLAIMS,
    VALUE_CONSTRAINTS,
    STATUS,
    SCHEMA,
)
#: Claims of the token itself, not of the subject (never validated against the subject schema).
TOKEN_CLAIMS = frozenset(
    {"iss", "sub", "iat", "nbf", "exp", "jti", "cnf", "vct", "vct#integrity", "status", "aka_vcts"}
)
_STATUS_NAMES = {core_status.INVALID: "revoked", core_status.SUSPENDED: "suspended"}
_NOT_VERIFIED = "the issuer signature was not verified"
REPLAY_REASON = "the transaction's nonce was already used (replay)"


@dataclass(frozen=True)
class Check:
    """One named check; ``credential`` is ``<query id>[<index>]`` for per-presentation checks."""

    name: str
    status: str
    reason: str | None = None
    credential: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "credential": self.credential,
        }


@dataclass(frozen=True)
class PresentationRequest:
    """What a transaction asked for, as the pipeline needs it."""

    client_id: str
    nonce: str
    query: dcql.DCQLQuery
    constraints: tuple[MinimumValue, ...] = ()
    status_unknown_policy: str = "reject"
    #: False when the transaction had already been consumed (a replayed response).
    fresh: bool = True


@dataclass
class VerifiedCredential:
    """What the pipeline learnt about one presentation."""

    query_id: str
    index: int
    vct: str | None = None
    trusted: IssuerKey | None = None
    signature_ok: bool = False
    claims: dict[str, Any] | None = None
    disclosed_paths: tuple[sdjwt.ClaimPath, ...] = ()
    status_reference: core_status.StatusListReference | None = None
    holder_thumbprint: str | None = None

    @property
    def label(self) -> str:
        return f"{self.query_id}[{self.index}]"


@dataclass(frozen=True)
class PipelineResult:
    checks: tuple[Check, ...]
    credentials: tuple[VerifiedCredential, ...] = ()
    #: Disclosed claims nobody asked for (paths only): dropped, never stored.
    dropped: tuple[dict[str, Any], ...] = ()

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(check.status != FAILED for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        """Names of the failed checks, each once, in pipeline order."""
        failed = {check.name for check in self.checks if check.status == FAILED}
        return [name for name in CHECK_NAMES if name in failed]

    def checks_json(self) -> list[dict[str, Any]]:
        return [check.as_dict() for check in self.checks]

    def as_replay(self) -> PipelineResult:
        """The same result for a response whose transaction was already consumed: the
        ``nonce_once`` check failed (added when the pipeline did not get that far)."""
        replayed = Check(NONCE_ONCE, FAILED, REPLAY_REASON)
        if not any(check.name == NONCE_ONCE for check in self.checks):
            return PipelineResult((*self.checks, replayed), self.credentials, self.dropped)
        checks = tuple(replayed if c.name == NONCE_ONCE else c for c in self.checks)
        return PipelineResult(checks, self.credentials, self.dropped)

    def requested_claims(self, query: dcql.DCQLQuery) -> dict[str, list[dict[str, Any]]]:
        """Per query id, the requested claims of each presentation (extra ones left out)."""
        kept: dict[str, list[dict[str, Any]]] = {}
        for credential in self.credentials:
            if credential.claims is None:
                continue
            paths = [claim.path for claim in query.credential(credential.query_id).claims or ()]
            kept.setdefault(credential.query_id, []).append(
                {
                    "vct": credential.vct,
                    "issuer": credential.trusted.issuer.summary() if credential.trusted else None,
                    "claims": _keep(credential.claims, paths),
                }
            )
        return kept


def _keep(claims: Mapping[str, Any], paths: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """Only the claims at ``paths`` (nested objects rebuilt; other paths as JSON-path keys)."""
    kept: dict[str, Any] = {}
    for path in paths:
        try:
            found = dcql.select_with_paths(path, claims)
        except dcql.ClaimsPathError:
            continue
        for concrete, value in found:
            if all(isinstance(part, str) for part in concrete):
                target = kept
                for part in concrete[:-1]:
                    target = target.setdefault(part, {})
                target[concrete[-1]] = value
            else:
                kept[schemas.json_path(concrete)] = value
    return kept


def failure(name: str, reason: str) -> PipelineResult:
    """A result for a response refused before the pipeline could run (e.g. ``parse``)."""
    return PipelineResult((Check(name, FAILED, reason),))


class Pipeline:
    """Runs the checks for one ``vp_token``."""

    def __init__(
        self,
        trust: TrustList,
        status_checker: StatusChecker,
        clock: Callable[[], int],
        *,
        leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
        kb_max_age: int = sdjwt.DEFAULT_KB_MAX_AGE_SECONDS,
    ) -> None:
        self.trust = trust
        self.status_checker = status_checker
        self.clock = clock
        self.leeway = leeway
        self.kb_max_age = kb_max_age

    def run(self, vp_token: Any, request: PresentationRequest) -> PipelineResult:
        now = self.clock()
        checks: list[Check] = [Check(PARSE, OK)]
        try:
            shaped = oid4vp.check_vp_token_shape(vp_token, request.query)
        except oid4vp.OID4VPError as exc:
            checks.append(Check(VP_TOKEN_SHAPE, FAILED, exc.description))
            checks.append(self._nonce_check(request))
            return PipelineResult(tuple(checks))
        checks.append(Check(VP_TOKEN_SHAPE, OK))
        credentials: list[VerifiedCredential] = []
        for query_id, items in shaped.items():
            credential_query = request.query.credential(query_id)
            for index, text in enumerate(items):
                credential = VerifiedCredential(query_id, index)
                checks.extend(self._presentation(text, credential, credential_query, request, now))
                credentials.append(credential)
        checks.append(self._nonce_check(request))
        presented = self._presented(request.query, credentials)
        requested, dropped = self._requested_claims(presented, credentials)
        checks.append(requested)
        checks.append(self._value_constraints(request, credentials, presented))
        for credential in credentials:
            checks.append(self._status(credential, request))
            checks.append(self._schema(credential))
        return PipelineResult(tuple(checks), tuple(credentials), tuple(dropped))

    # -- one presentation ------------------------------------------------------------------

    def _presentation(
        self,
        text: str,
        credential: VerifiedCredential,
        query: dcql.CredentialQuery,
        request: PresentationRequest,
        now: int,
    ) -> list[Check]:
        label = credential.label
        checks: list[Check] = []

        def add(name: str, status: str, reason: str | None = None) -> None:
            checks.append(Check(name, status, reason, label))

        try:
            sd_jwt = sdjwt.parse(text)
            payload = sd_jwt.jws.claims()
        except (sdjwt.SDJWTError, jose.JoseError) as exc:
            add(PARSE, FAILED, str(exc))
            return checks
        vct = payload.get("vct")
        credential.vct = vct if isinstance(vct, str) else None
        self._trust(sd_jwt, payload, credential, add, now)
        if credential.trusted is None:
            add(ISSUER_SIGNATURE, SKIPPED, "no trusted issuer key")
        else:
            try:
                sdjwt.verify_issuer_jwt(
                    sd_jwt.jws, credential.trusted.key, typ=sdjwt_vc.SD_JWT_VC_TYP
                )
                credential.signature_ok = True
                add(ISSUER_SIGNATURE, OK)
            except sdjwt.SDJWTError as exc:
                add(ISSUER_SIGNATURE, FAILED, str(exc))
        if not credential.signature_ok:
            for name in (DISCLOSURES, VALIDITY_TIMES, KEY_BINDING):
                add(name, SKIPPED, _NOT_VERIFIED)
            return checks
        self._disclosures(sd_jwt, payload, credential, add)
        try:
            jose.check_time_claims(payload, now=now, leeway=self.leeway)
            add(VALIDITY_TIMES, OK)
        except jose.JoseError as exc:
            add(VALIDITY_TIMES, FAILED, str(exc))
        self._key_binding(sd_jwt, payload, credential, query, request, add, now)
        return checks

    def _trust(
        self,
        sd_jwt: sdjwt.SDJWT,
        payload: Mapping[str, Any],
        credential: VerifiedCredential,
        add: Callable[..., None],
        now: int,
    ) -> None:
        try:
            credential.trusted = self.trust.identify(sd_jwt.jws.header, payload, now=now)
        except TrustError as exc:
            add(ISSUER_TRUSTED, FAILED, str(exc))
            add(ISSUER_TRUSTED_FOR_TYPE, SKIPPED, "the issuer is not trusted")
            return
        add(ISSUER_TRUSTED, OK, credential.trusted.issuer.id)
        try:
            self.trust.check_type(credential.trusted.issuer, payload.get("vct"))
            add(ISSUER_TRUSTED_FOR_TYPE, OK)
        except TrustError as exc:
            add(ISSUER_TRUSTED_FOR_TYPE, FAILED, str(exc))

    @staticmethod
    def _disclosures(
        sd_jwt: sdjwt.SDJWT,
        payload: Mapping[str, Any],
        credential: VerifiedCredential,
        add: Callable[..., None],
    ) -> None:
        """RFC 9901 §7.1 steps 3-5 and the SD-JWT VC claim rules (§3.2.2, T094)."""
        try:
            claims, paths = sdjwt.process(payload, sd_jwt.disclosures)
            for path in paths:
                if path[0] in sdjwt_vc.NON_SELECTIVELY_DISCLOSABLE:
                    raise sdjwt.SDJWTError(f"{path[0]!r} must not be delivered in a disclosure")
            # The verifier-side SD-JWT VC claim rules; one owner (intyg.sdjwt_vc).
            reference = sdjwt_vc.check_vc_claims(claims, check_times=False)
        except sdjwt.SDJWTError as exc:
            add(DISCLOSURES, FAILED, str(exc))
            return
        credential.claims = claims
        credential.disclosed_paths = paths
        credential.status_reference = reference
        add(DISCLOSURES, OK)

    def _key_binding(
        self,
        sd_jwt: sdjwt.SDJWT,
        payload: Mapping[str, Any],
        credential: VerifiedCredential,
        query: dcql.CredentialQuery,
        request: PresentationRequest,
        add: Callable[..., None],
        now: int,
    ) -> None:
        # Policy decides, not the presence of a KB-JWT (RFC 9901 §7.3, T091); one that is
        # present anyway is still checked.
        if not query.require_cryptographic_holder_binding and sd_jwt.kb_jws is None:
            add(KEY_BINDING, SKIPPED, "the query does not require holder binding")
            return
        try:
            sdjwt.verify_key_binding(
                sd_jwt,
                payload,  # cnf is never selectively disclosable
                audience=request.client_id,
                nonce=request.nonce,
                now=now,
                leeway=self.leeway,
                max_age=self.kb_max_age,
            )
            credential.holder_thumbprint = sdjwt.holder_key_from_cnf(payload).thumbprint()
            add(KEY_BINDING, OK)
        except sdjwt.SDJWTError as exc:
            add(KEY_BINDING, FAILED, str(exc))

    # -- the whole response ----------------------------------------------------------------

    @staticmethod
    def _nonce_check(request: PresentationRequest) -> Check:
        if request.fresh:
            return Check(NONCE_ONCE, OK)
        return Check(NONCE_ONCE, FAILED, REPLAY_REASON)

    @staticmethod
    def _presented(
        query: dcql.DCQLQuery, credentials: Sequence[VerifiedCredential]
    ) -> dcql.PresentationCheck | None:
        """DCQL §8.6 on the processed presentations (None if none could be processed): one
        evaluation for both ``requested_claims`` and ``value_constraints``."""
        presented: dict[str, list[dcql.Presented]] = {}
        for credential in credentials:
            if credential.claims is not None:
                presented.setdefault(credential.query_id, []).append(
                    dcql.Presented(credential.claims, credential.disclosed_paths)
                )
        return dcql.check_presentation_set(query, presented) if presented else None

    @staticmethod
    def _requested_claims(
        result: dcql.PresentationCheck | None, credentials: Sequence[VerifiedCredential]
    ) -> tuple[Check, list[dict[str, Any]]]:
        if result is None:
            return Check(REQUESTED_CLAIMS, SKIPPED, "no presentation could be processed"), []
        processed = [c for c in credentials if c.claims is not None]
        problems: list[str] = []
        dropped: list[dict[str, Any]] = []
        for report in result.reports:
            label = f"{report.query_id}[{report.index}]"
            if report.meta_mismatch:
                problems.append(f"{label}: credential type was not requested")
            if report.missing_claims:
                names = ", ".join(schemas.json_path(p) for p in report.missing_claims)
                problems.append(f"{label}: requested claims missing: {names}")
            if report.extra_claims:
                dropped.append(
                    {"credential": label, "paths": [list(p) for p in report.extra_claims]}
                )
        problems.extend(f"{qid}: more than one presentation" for qid in result.multiple_violations)
        if len(processed) == len(credentials) and not result.required_sets_satisfied:
            problems.append("a required credential set is not answered")
        if problems:
            return Check(REQUESTED_CLAIMS, FAILED, "; ".join(problems)), dropped
        reason = None
        if dropped:
            count = sum(len(item["paths"]) for item in dropped)
            reason = f"{count} disclosed claim(s) not requested were dropped"
        return Check(REQUESTED_CLAIMS, OK, reason), dropped

    @staticmethod
    def _value_constraints(
        request: PresentationRequest,
        credentials: Sequence[VerifiedCredential],
        presented: dcql.PresentationCheck | None,
    ) -> Check:
        if presented is None:
            return Check(VALUE_CONSTRAINTS, SKIPPED, "no presentation could be processed")
        processed = [c for c in credentials if c.claims is not None]
        problems: list[str] = []
        for report in presented.reports:
            for path in report.value_mismatches:
                problems.append(
                    f"{report.query_id}: {schemas.json_path(path)} has a value not accepted"
                )
        for constraint in request.constraints:
            for credential in processed:
                if credential.query_id == constraint.credential_id:
                    problems.extend(_minimum(constraint, credential))
        if problems:
            return Check(VALUE_CONSTRAINTS, FAILED, "; ".join(problems))
        return Check(VALUE_CONSTRAINTS, OK)

    def _status(self, credential: VerifiedCredential, request: PresentationRequest) -> Check:
        label = credential.label
        if credential.claims is None or credential.trusted is None:
            return Check(STATUS, SKIPPED, _NOT_VERIFIED, label)
        reference = credential.status_reference
        if reference is None:
            return Check(STATUS, SKIPPED, "the credential has no status", label)
        try:
            value = self.status_checker.status(reference, credential.trusted.issuer)
        except StatusUnknown:
            if request.status_unknown_policy == "accept":
                return Check(STATUS, OK, "status unknown; accepted by the template policy", label)
            return Check(STATUS, FAILED, "status unknown: the status list is unreachable", label)
        except StatusRejected as exc:
            return Check(STATUS, FAILED, str(exc), label)
        if value == core_status.VALID:
            return Check(STATUS, OK, None, label)
        name = _STATUS_NAMES.get(value, f"status 0x{value:02x}")
        return Check(STATUS, FAILED, f"the credential is {name}", label)

    @staticmethod
    def _schema(credential: VerifiedCredential) -> Check:
        label = credential.label
        if credential.claims is None:
            return Check(SCHEMA, SKIPPED, _NOT_VERIFIED, label)
        if credential.vct not in schemas.CREDENTIAL_TYPES.values():
            return Check(SCHEMA, SKIPPED, "no schema for this credential type", label)
        subject = {k: v for k, v in credential.claims.items() if k not in TOKEN_CLAIMS}
        try:
            schemas.validate_subject(credential.vct or "", subject, partial=True)
        except schemas.SchemaError as exc:
            return Check(SCHEMA, FAILED, str(exc), label)
        return Check(SCHEMA, OK, None, label)


def _minimum(constraint: MinimumValue, credential: VerifiedCredential) -> list[str]:
    try:
        values = dcql.select(constraint.path, credential.claims or {})
    except dcql.ClaimsPathError:
        return [f"{constraint.describe()}: claim not disclosed"]
    if not values:
        return [f"{constraint.describe()}: claim not disclosed"]
    if all(type(value) is int and value >= constraint.minimum for value in values):
        return []
    return [f"{constraint.describe()}: not met"]
