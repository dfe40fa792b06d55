"""Decode any token intyg meets, for people: JWT, SD-JWT, SD-JWT+KB, vc+jwt, vp+jwt.

:func:`inspect_token` never raises for a malformed token; it returns a :class:`Report`
whose ``checks`` say, one by one, what was verified, what failed and what could not be
verified (no issuer key given, no expected audience or nonce), so that nobody mistakes a
decoded token for a verified one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intyg import jose, sdjwt, vcdm

VERIFIED, FAILED, NOT_VERIFIED = "verified", "FAILED", "not verified"


@dataclass
class Check:
    name: str
    outcome: str
    detail: str = ""


@dataclass
class Report:
    kind: str
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    disclosures: list[dict[str, Any]] = field(default_factory=list)
    key_binding: dict[str, Any] | None = None
    embedded: list[Report] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, outcome: str, detail: str = "") -> None:
        self.checks.append(Check(name, outcome, detail))

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": self.kind, "header": self.header, "claims": self.claims}
        if self.disclosures:
            result["disclosures"] = self.disclosures
        if self.key_binding is not None:
            result["key_binding"] = self.key_binding
        if self.embedded:
            result["embedded"] = [report.as_dict() for report in self.embedded]
        result["checks"] = [vars(check) for check in self.checks]
        return result


def inspect_token(text: str, issuer_key: jose.Key | None = None, now: int | None = None) -> Report:
    """Decode ``text`` and verify what can be verified with what was given."""
    text = text.strip()
    now = int(time.time()) if now is None else now
    if "~" in text:
        return _inspect_sd_jwt(text, issuer_key, now)
    if text.count(".") == 4:
        return _inspect_jwe(text)
    return _inspect_jws(text, issuer_key, now)


def _inspect_sd_jwt(text: str, issuer_key: jose.Key | None, now: int) -> Report:
    has_kb = not text.endswith("~")
    report = Report("SD-JWT+KB" if has_kb else "SD-JWT")
    try:
        decoded = sdjwt.decode_unverified(text)
    except sdjwt.SDJWTError as exc:
        report.add("structure (RFC 9901 §7.1 steps 3-5)", FAILED, str(exc))
        return report
    parsed = sdjwt.parse(text)
    report.header, report.claims = decoded.header, decoded.claims
    report.disclosures = [_disclosure_entry(d) for d in parsed.disclosures]
    report.add(
        "structure (RFC 9901 §7.1 steps 3-5)",
        VERIFIED,
        "every disclosure is referenced exactly once; no digest repeats",
    )
    _check_signature(report, lambda key: sdjwt.verify_issuer_jwt(parsed.jws, key), issuer_key)
    _check_times(report, decoded.claims, now)
    if has_kb:
        report.key_binding = {"header": decoded.kb_header, "claims": decoded.kb_claims}
        _check_key_binding(report, parsed, decoded, now)
    return report


def _disclosure_entry(disclosure: sdjwt.Disclosure) -> dict[str, Any]:
    entry: dict[str, Any] = {"digest": disclosure.digest, "value": disclosure.value}
    if disclosure.name is not None:
        entry["name"] = disclosure.name
    return entry


def _check_key_binding(
    report: Report, parsed: sdjwt.SDJWT, decoded: sdjwt.Decoded, now: int
) -> None:
    """KB-JWT signature and sd_hash can be checked from the token alone; aud/nonce cannot."""
    kb_claims = decoded.kb_claims or {}
    try:
        sdjwt.verify_key_binding(
            parsed,
            decoded.claims,
            audience=str(kb_claims.get("aud")),
            nonce=str(kb_claims.get("nonce")),
            now=now,
            max_age=10**9,
        )
    except sdjwt.SDJWTError as exc:
        report.add("KB-JWT (signature by cnf key, sd_hash)", FAILED, str(exc))
        return
    report.add(
        "KB-JWT (signature by cnf key, sd_hash)",
        VERIFIED,
        "the cnf key is only as trustworthy as the issuer signature",
    )
    report.add("KB-JWT aud and nonce", NOT_VERIFIED, "no expected audience or nonce given")


def _inspect_jws(text: str, issuer_key: jose.Key | None, now: int) -> Report:
    report = Report("JWT")
    try:
        jws = jose.parse_jws(text, max_bytes=1_000_000)
        claims = jws.claims()
    except jose.JoseError as exc:
        report.add("structure (RFC 7515 compact serialization)", FAILED, str(exc))
        return report
    report.header, report.claims = jws.header, claims
    typ = jose.normalise_typ(jws.header.get("typ"))
    report.kind = {"vc+jwt": "W3C VC (vc+jwt)", "vp+jwt": "W3C VP (vp+jwt)"}.get(typ or "", "JWT")
    report.add("structure (RFC 7515 compact serialization)", VERIFIED)
    _check_signature(report, lambda key: jose.verify_jws(jws, key), issuer_key)
    _check_times(report, claims, now)
    if typ == "vp+jwt":
        for item in claims.get("verifiableCredential") or []:
            try:
                inner = vcdm.enveloped_credential_jwt(item)
            except vcdm.VCDMError as exc:
                report.add("enveloped credential", FAILED, str(exc))
                continue
            report.embedded.append(_inspect_jws(inner, None, now))
    return report


def _inspect_jwe(text: str) -> Report:
    report = Report("JWE (encrypted)")
    try:
        header_segment = text.split(".", 1)[0]
        report.header = jose.parse_jws(f"{header_segment}.e30.AA").header
    except jose.JoseError as exc:
        report.add("structure", FAILED, str(exc))
        return report
    report.add("content", NOT_VERIFIED, "encrypted: the recipient's private key is needed")
    return report


def _check_signature(
    report: Report, verify: Callable[[jose.Key], Any], issuer_key: jose.Key | None
) -> None:
    name = "issuer signature"
    if issuer_key is None:
        report.add(name, NOT_VERIFIED, "no issuer key given (intyg decode --key FILE)")
        return
    try:
        verify(issuer_key)
    except (jose.JoseError, sdjwt.SDJWTError) as exc:
        report.add(name, FAILED, str(exc))
    else:
        report.add(name, VERIFIED, f"with key {issuer_key.thumbprint()}")


def _check_times(report: Report, claims: dict[str, Any], now: int) -> None:
    if not {"exp", "nbf", "iat"} & claims.keys():
        report.add("validity times (exp, nbf, iat)", NOT_VERIFIED, "none present")
        return
    try:
        jose.check_time_claims(claims, now=now)
    except jose.JoseError as exc:
        report.add("validity times (exp, nbf, iat)", FAILED, str(exc))
    else:
        report.add("validity times (exp, nbf, iat)", VERIFIED, "at the current time")
