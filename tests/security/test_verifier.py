"""The live verifier's response endpoint: SD-JWT VC presentations tampered in every way the
catalogue names, JOSE attacks in the credential and KB-JWT slots, encrypted-response
attacks, sessions, response codes and status lists (security.md §1.1 for those slots,
§1.7, §1.8, T111).

Credentials are real (the live AF issuer) or crafted with the AF issuer's own signing key
(read from its database: a trusted issuer that misbehaves), so every refusal is the check
under test and not an unknown issuer. A rejected presentation leaves one rejection record
and the transaction ``rejected`` (docs/verifier.md); never a result or disclosed claims.
"""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from intyg import jose, jwe, sdjwt, status, strict_json, x509
from intyg.schemas import REGISTRATION_CERTIFICATE_VCT

from .actors import Asking, Issuing, failed_checks
from .fakes import Loopback, Reply, b64, flip_signature_bit, public_key_secrets, raw_jws
from .live import (
    TIMEOUT,
    VERIFIER_RESULTS,
    VERIFIER_STATE,
    Live,
    Unchanged,
    refused,
)

#: Claim values of the credentials used here: never in a verifier's error body (T111).
VALUES = ("2025-09-01", "2026-01-12", "Anna", "Andersson", "Mallory", "Öppet")


@dataclass
class Held:
    """A real AF SD-JWT VC and the holder key it is bound to."""

    credential: str
    key: jose.Key


@dataclass
class Signer:
    """A trusted issuer's signing key with the header its credentials carry."""

    iss: str
    key: jose.Key
    header: dict[str, Any]


@pytest.fixture(scope="module")
def held(af: Issuing) -> Held:
    issued = af.credential()
    return Held(issued.credentials[0], issued.keys[0])


def _signer(live: Live, agency: str, real_credential: str) -> Signer:
    key, _ = live.sealed_key(agency, "signing_keys", "issuer", "signing_key")
    header = dict(jose.parse_jws(sdjwt.parse(real_credential).issuer_jwt).header)
    assert (
        jose.jwk_thumbprint(key.public_jwk())
        == x509.validate_x5c(
            header["x5c"],
            [x509.cert_from_pem((live.data / "trust" / f"{agency[7:]}-dev-ca.pem").read_text())],
        ).key.thumbprint()
    )
    return Signer(live.url(agency), key, header)


@pytest.fixture(scope="module")
def af_signer(live: Live, held: Held) -> Signer:
    return _signer(live, "issuer-af", held.credential)


@pytest.fixture(scope="module")
def myh_signer(live: Live, myh: Issuing) -> Signer:
    return _signer(live, "issuer-myh", myh.credential().credentials[0])


# -- crafting --------------------------------------------------------------------------------


def disclosure(name: str | None, value: Any, salt: str | None = None) -> str:
    """An encoded Disclosure (``name`` None: an array element)."""
    salt = salt or sdjwt.new_salt()
    return b64([salt, value] if name is None else [salt, name, value])


REGISTRATION = {
    "registered": True,
    "registered_since": "2026-01-12",
    "registration_category": {"code": "11", "label": "Öppet arbetslös"},
}


def craft(
    signer: Signer,
    holder: jose.Key,
    *,
    clear: dict[str, Any] | None = None,
    disclosures: Sequence[str] | None = None,
    extra_digests: Sequence[str] = (),
    header: dict[str, Any] | None = None,
    payload_text: Callable[[str], str] | None = None,
) -> str:
    """An SD-JWT VC signed by ``signer``: the registration claims as disclosures, plus
    whatever the attack adds. -> ``issuer-jwt~d1~...~`` (no KB-JWT)."""
    if disclosures is None:
        disclosures = [disclosure(k, v) for k, v in REGISTRATION.items()]
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": signer.iss,
        "vct": REGISTRATION_CERTIFICATE_VCT,
        "iat": now - 60,
        "exp": now + 86400,
        "cnf": {"jwk": holder.public_jwk()},
        "_sd_alg": "sha-256",
        "_sd": sorted([sdjwt.digest(d) for d in disclosures] + list(extra_digests)),
    }
    payload.update(clear or {})
    text = strict_json.dumps(payload)
    if payload_text is not None:
        text = payload_text(text)
    jwt = raw_jws(header or signer.header, text, signer.key)
    return "~".join([jwt, *disclosures]) + "~"


def with_kb(
    presentation_prefix: str,
    holder: jose.Key,
    asking: Asking,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    payload_text: Callable[[str], str] | None = None,
    hmac_secret: bytes | None = None,
    key: jose.Key | None = None,
) -> str:
    """``prefix`` + a KB-JWT over it, with whatever the attack changes."""
    body: dict[str, Any] = {
        "iat": int(time.time()),
        "aud": asking.request.client_id,
        "nonce": asking.request.nonce,
        "sd_hash": sdjwt.sd_hash(presentation_prefix),
    }
    body.update(claims or {})
    body = {k: v for k, v in body.items() if v is not None}
    text = (
        strict_json.dumps(body) if payload_text is None else payload_text(strict_json.dumps(body))
    )
    kb_header = header or {"alg": "ES256", "typ": "kb+jwt"}
    signing_key = None if hmac_secret else (key or holder)
    return presentation_prefix + raw_jws(kb_header, text, signing_key, hmac_secret=hmac_secret)


def prefix_of(presentation: str) -> str:
    return presentation[: presentation.rindex("~") + 1]


def reject(live: Live, asking: Asking, vp: Any, check: str | tuple[str, ...]) -> list[str]:
    """400 ``invalid_request`` naming ``check`` (or one of them); one rejection record, no
    result, no claims."""
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        response = asking.post(vp)
        refused(live, response, 400, "invalid_request")
    for value in VALUES:
        assert value not in response.text, value  # T111
    checks = failed_checks(response)
    assert set(checks) & ({check} if isinstance(check, str) else set(check)), checks
    assert asking.stored() == {"results": 0, "claims": 0, "rejections": 1, "status": "rejected"}
    return checks


def honest(asking: Asking, held: Held) -> str:
    return asking.present(held.credential, held.key)


# -- real revocation first (before the verifier caches the AF status list) ---------------


def test_t106_revoked_and_suspended_credentials(live: Live, af: Issuing) -> None:
    """Revoked and suspended through the AF back office: rejected by the ``status`` check
    once the verifier's cached list is refreshed (at most ``status_cache_min_seconds``; first
    in this module, so usually before the verifier has cached the AF list at all)."""
    changed = {}
    for action in ("revoke", "suspend"):
        issued = af.credential()
        issuance = live.scalar(
            af.agency,
            "SELECT id FROM issuances WHERE notification_id = :n",
            n=issued.notification_id,
        )
        response = af.back_office.client.post(
            f"{af.url}/backoffice/v1/issuances/{issuance}/{action}"
        )
        assert response.status_code == 200, response.text
        changed[action] = issued
    for action, issued in changed.items():
        deadline = time.monotonic() + 60
        while True:
            asking = Asking.start(live)
            response = asking.post(asking.present(issued.credentials[0], issued.keys[0]))
            if response.status_code == 400 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert "status" in failed_checks(response), action
        assert asking.stored() == {"results": 0, "claims": 0, "rejections": 1, "status": "rejected"}


# -- controls: the honest and the crafted credential both verify ---------------------------


def test_controls_real_and_crafted_credentials_verify(
    live: Live, held: Held, af_signer: Signer
) -> None:
    asking = Asking.start(live)
    response = asking.post(honest(asking, held))
    assert response.status_code == 200, response.text
    assert asking.view()["status"] == "verified"
    crafted = Asking.start(live)
    ok = crafted.post(with_kb(craft(af_signer, held.key), held.key, crafted))
    assert ok.status_code == 200, ok.text


# -- JOSE in the credential slot (T001-T016) -------------------------------------------------


def _resigned(signer: Signer, held: Held, header: dict[str, Any], **kw: Any) -> str:
    return craft(signer, held.key, header=header, **kw)


CREDENTIAL_JOSE: dict[str, Callable[[Signer, Held], str]] = {
    "T001_alg_none": lambda s, h: (
        lambda c: c.split(".")[0] + "." + c.split(".")[1] + ".~" + c.split("~", 1)[1]
    )(_resigned(s, h, {**s.header, "alg": "none"})),
    "T001_alg_None": lambda s, h: _resigned(s, h, {**s.header, "alg": "None"}),
    "T001_alg_NONE": lambda s, h: _resigned(s, h, {**s.header, "alg": "NONE"}),
    "T003_es384_header": lambda s, h: _resigned(s, h, {**s.header, "alg": "ES384"}),
    "T003_eddsa_header": lambda s, h: _resigned(s, h, {**s.header, "alg": "EdDSA"}),
    "T004_crit_unknown": lambda s, h: _resigned(s, h, {**s.header, "crit": ["x"], "x": 1}),
    "T016_duplicate_header_alg": lambda s, h: _dup_header(s, h),
    "T038_flipped_signature_bit": lambda s, h: (
        lambda c: flip_signature_bit(c.split("~")[0]) + "~" + c.split("~", 1)[1]
    )(craft(s, h.key)),
}


def _dup_header(signer: Signer, held: Held) -> str:
    good = craft(signer, held.key)
    jwt, rest = good.split("~", 1)
    _, payload, _ = jwt.split(".")
    header_text = strict_json.dumps(signer.header)[:-1] + ',"alg":"ES256"}'
    signing_input = f"{b64(header_text)}.{payload}"
    return f"{signing_input}.{jose.b64url_encode(signer.key.sign(signing_input.encode()))}~{rest}"


def _hmac_credential(form: str) -> Callable[[Signer, Held], str]:
    def make(signer: Signer, held: Held) -> str:
        good = craft(signer, held.key)
        jwt, rest = good.split("~", 1)
        _, payload, _ = jwt.split(".")
        secret = public_key_secrets(signer.key)[form]
        forged = raw_jws(
            {**signer.header, "alg": "HS256"},
            jose.b64url_decode(payload).decode(),
            hmac_secret=secret,
        )
        return f"{forged}~{rest}"

    return make


for _form in ("pem", "der", "jwk", "openssh"):
    CREDENTIAL_JOSE[f"T002_hs256_issuer_key_{_form}"] = _hmac_credential(_form)


@pytest.mark.parametrize("case", sorted(CREDENTIAL_JOSE))
def test_credential_jose_attacks(live: Live, held: Held, af_signer: Signer, case: str) -> None:
    asking = Asking.start(live)
    forged = CREDENTIAL_JOSE[case](af_signer, held)
    reject(
        live, asking, with_kb(prefix_of(forged), held.key, asking), ("parse", "issuer_signature")
    )


def _garble(asking: Asking, held: Held, case: str) -> Any:
    good = honest(asking, held)
    jwt, rest = good.split("~", 1)
    head, payload, signature = jwt.split(".")
    from intyg import jwe as jwe_module

    _, public = jwe_module.new_encryption_key()
    return {
        "T006_jwe_instead_of_sd_jwt": jwe_module.encrypt({"a": 1}, public, enc="A256GCM"),
        "T009_json_serialization": strict_json.dumps(
            {
                "protected": head,
                "payload": payload,
                "signature": signature,
                "header": {"alg": "none"},
            }
        ),
        "T014_padding": f"{head}=.{payload}.{signature}~{rest}",
        "T014_plus_slash": f"{head}.{payload}.{signature[:-2]}+/~{rest}",
        "T014_whitespace": f"{head}. {payload}.{signature}~{rest}",
        "T014_non_ascii": f"{head}.{payload}ö.{signature}~{rest}",
        "T014_two_segments": f"{head}.{payload}~{rest}",
        "T014_four_dots": f"{head}.{payload}.{signature}..~{rest}",
        "T014_empty_segments": f"..~{rest}",
        "T014_not_a_string": {"a": 1},
    }[case]


GARBLED = [
    "T006_jwe_instead_of_sd_jwt",
    "T009_json_serialization",
    "T014_padding",
    "T014_plus_slash",
    "T014_whitespace",
    "T014_non_ascii",
    "T014_two_segments",
    "T014_four_dots",
    "T014_empty_segments",
    "T014_not_a_string",
]


@pytest.mark.parametrize("case", GARBLED)
def test_garbled_presentation_is_a_clean_400(live: Live, held: Held, case: str) -> None:
    asking = Asking.start(live)
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        response = asking.post({"registration": [_garble(asking, held, case)]})
        refused(live, response, 400, "invalid_request")
    assert asking.stored()["status"] == "rejected"


# -- the KB-JWT slot (T001-T018, T092) -------------------------------------------------------


def _kb(asking: Asking, held: Held, **kw: Any) -> str:
    return with_kb(prefix_of(honest(asking, held)), held.key, asking, **kw)


def _kb_dup(asking: Asking, held: Held) -> str:
    nonce = asking.request.nonce
    return _kb(asking, held, payload_text=lambda t: t[:-1] + f',"nonce":"{nonce}"}}')


def _kb_time(literal: str) -> Callable[[Asking, Held], str]:
    def make(asking: Asking, held: Held) -> str:
        return _kb(
            asking,
            held,
            claims={"iat": None},
            payload_text=lambda t: t[:-1] + f',"iat":{literal}}}',
        )

    return make


KB_CASES: dict[str, Callable[[Asking, Held], str]] = {
    "T001_alg_none": lambda a, h: (lambda p: p[: p.rindex(".") + 1])(
        _kb(a, h, header={"alg": "none", "typ": "kb+jwt"})
    ),
    "T002_hs256_holder_key_pem": lambda a, h: _kb(
        a, h, header={"alg": "HS256", "typ": "kb+jwt"}, hmac_secret=public_key_secrets(h.key)["pem"]
    ),
    "T002_hs256_holder_key_jwk": lambda a, h: _kb(
        a, h, header={"alg": "HS256", "typ": "kb+jwt"}, hmac_secret=public_key_secrets(h.key)["jwk"]
    ),
    "T003_es384_header": lambda a, h: _kb(a, h, header={"alg": "ES384", "typ": "kb+jwt"}),
    "T003_eddsa_key": lambda a, h: _kb(
        a, h, header={"alg": "EdDSA", "typ": "kb+jwt"}, key=jose.generate_key("EdDSA")
    ),
    "T004_crit_unknown": lambda a, h: _kb(
        a, h, header={"alg": "ES256", "typ": "kb+jwt", "crit": ["x"], "x": 1}
    ),
    "T016_duplicate_nonce": _kb_dup,
    "T017_aud_without_prefix": lambda a, h: _kb(
        a, h, claims={"aud": a.request.client_id.split(":", 1)[1]}
    ),
    "T017_aud_trailing_slash": lambda a, h: _kb(a, h, claims={"aud": a.request.client_id + "/"}),
    "T017_aud_array_extra": lambda a, h: _kb(
        a, h, claims={"aud": [a.request.client_id, "x509_hash:other"]}
    ),
    "T018_iat_string": lambda a, h: _kb(a, h, claims={"iat": str(int(time.time()))}),
    "T018_iat_float": lambda a, h: _kb(a, h, claims={"iat": time.time()}),
    "T018_iat_negative": lambda a, h: _kb(a, h, claims={"iat": -int(time.time())}),
    "T018_iat_1e309": _kb_time("1e309"),
    "T018_iat_5000_digits": _kb_time("9" * 5000),
    "T092_aud_of_another_verifier": lambda a, h: _kb(a, h, claims={"aud": "x509_hash:" + "A" * 43}),
    "T092_nonce_of_another_session": lambda a, h: _kb(a, h, claims={"nonce": "old-" + "n" * 40}),
    "T092_bad_signature": lambda a, h: flip_signature_bit(_kb(a, h).split("~")[-1]).join(
        [_kb(a, h).rsplit("~", 1)[0] + "~", ""]
    ),
    "T092_key_other_than_cnf": lambda a, h: _kb(a, h, key=jose.generate_key("ES256")),
    "T092_typ_not_kb_jwt": lambda a, h: _kb(a, h, header={"alg": "ES256", "typ": "JWT"}),
    "T092_iat_in_the_future": lambda a, h: _kb(a, h, claims={"iat": int(time.time()) + 3600}),
    "T092_iat_too_old": lambda a, h: _kb(a, h, claims={"iat": int(time.time()) - 3600}),
    "T092_sd_hash_mismatch": lambda a, h: _kb(a, h, claims={"sd_hash": sdjwt.sd_hash("x~")}),
    "T092_disclosure_added_after_signing": lambda a, h: (
        lambda p: (
            p.rsplit("~", 1)[0]
            + "~"
            + disclosure("given_name", "Mallory")
            + "~"
            + p.rsplit("~", 1)[1]
        )
    )(_kb(a, h)),
    "T092_disclosure_removed_after_signing": lambda a, h: (
        lambda parts: "~".join(parts[:1] + parts[2:])
    )(_kb(a, h).split("~")),
    "T091_no_kb_jwt": lambda a, h: prefix_of(honest(a, h)),
}


@pytest.mark.parametrize("case", sorted(KB_CASES))
def test_key_binding_attacks(live: Live, held: Held, case: str) -> None:
    asking = Asking.start(live)
    expected = ("parse", "key_binding") if case == "T001_alg_none" else "key_binding"
    checks = reject(live, asking, KB_CASES[case](asking, held), expected)
    assert "issuer_signature" not in checks


# -- disclosures (T086-T089, T094) -----------------------------------------------------------


def _altered_disclosure(asking: Asking, held: Held) -> str:
    """One disclosure changed by one byte, still valid JSON (the salt's first character)."""
    parts = prefix_of(honest(asking, held)).split("~")
    decoded = jose.b64url_decode(parts[1]).decode()
    salt_start = decoded.index('"') + 1
    changed = (
        decoded[:salt_start]
        + ("A" if decoded[salt_start] != "A" else "B")
        + decoded[salt_start + 1 :]
    )
    parts[1] = jose.b64url_encode(changed.encode())
    return with_kb("~".join(parts), held.key, asking)


def _invalid_utf8_disclosure(asking: Asking, held: Held) -> str:
    parts = prefix_of(honest(asking, held)).split("~")
    parts[1] = jose.b64url_encode(jose.b64url_decode(parts[1])[:-3] + b'\xff"]')
    return with_kb("~".join(parts), held.key, asking)


def _crafted(**craft_kw: Any) -> Callable[[Asking, Held, Signer], str]:
    def make(asking: Asking, held: Held, signer: Signer) -> str:
        kw = {k: (v() if callable(v) else v) for k, v in craft_kw.items()}
        return with_kb(craft(signer, held.key, **kw), held.key, asking)

    return make


def _base() -> list[str]:
    return [disclosure(k, v) for k, v in REGISTRATION.items()]


def _array_slot_craft(asking: Asking, held: Held, signer: Signer) -> str:
    named = disclosure("code", "11")
    base = _base()
    jwt_and = craft(
        signer, held.key, clear={"nationalities": [{"...": sdjwt.digest(named)}]}, disclosures=base
    )
    return with_kb(jwt_and + named + "~", held.key, asking)


def _named_sd_craft(name: str) -> Callable[[Asking, Held, Signer], str]:
    def make(asking: Asking, held: Held, signer: Signer) -> str:
        return with_kb(
            craft(signer, held.key, disclosures=[*_base(), disclosure(name, ["x"])]),
            held.key,
            asking,
        )

    return make


def _same_digest_twice(asking: Asking, held: Held, signer: Signer) -> str:
    base = _base()
    return with_kb(
        craft(signer, held.key, disclosures=base, extra_digests=[sdjwt.digest(base[0])]),
        held.key,
        asking,
    )


def _disclosure_sent_twice(asking: Asking, held: Held, signer: Signer) -> str:
    prefix = prefix_of(honest(asking, held))
    first = prefix.split("~")[1]
    return with_kb(prefix + first + "~", held.key, asking)


def _security_claim(name: str, value: Any) -> Callable[[Asking, Held, Signer], str]:
    def make(asking: Asking, held: Held, signer: Signer) -> str:
        def drop(text: str) -> str:
            payload = json.loads(text)
            payload.pop(name, None)
            return strict_json.dumps(payload)

        extra = disclosure(name, value)
        crafted = craft(signer, held.key, disclosures=[*_base(), extra], payload_text=drop)
        return with_kb(crafted, held.key, asking)

    return make


DISCLOSURE_CASES: dict[str, Callable[[Asking, Held, Signer], str]] = {
    "T086_one_byte_altered": lambda a, h, s: _altered_disclosure(a, h),
    "T086_invalid_utf8": lambda a, h, s: _invalid_utf8_disclosure(a, h),
    "T087_two_elements_under_sd": _crafted(disclosures=lambda: [*_base(), b64(["salt" * 6, True])]),
    "T087_four_elements": _crafted(disclosures=lambda: [*_base(), b64(["s" * 22, "a", 1, 2])]),
    "T087_not_an_array": _crafted(disclosures=lambda: [*_base(), b64({"a": 1})]),
    "T087_object_disclosure_in_array_slot": _array_slot_craft,
    "T087_name_sd": _named_sd_craft("_sd"),
    "T087_name_ellipsis": _named_sd_craft("..."),
    "T088_redefines_clear_claim": _crafted(clear={"registered": False}),
    "T088_redefines_iss": _crafted(disclosures=lambda: [*_base(), disclosure("iss", "https://x")]),
    "T089_same_digest_twice": _same_digest_twice,
    "T089_disclosure_sent_twice": _disclosure_sent_twice,
    "T089_unreferenced_disclosure": lambda a, h, s: (
        lambda p: with_kb(p + disclosure("given_name", "Mallory") + "~", h.key, a)
    )(prefix_of(honest(a, h))),
}
for _name, _value in (
    ("iss", None),
    ("exp", None),
    ("nbf", None),
    ("cnf", None),
    ("vct", None),
    ("status", None),
):
    DISCLOSURE_CASES[f"T094_{_name}_in_a_disclosure"] = _security_claim(_name, _value or 1)


@pytest.mark.parametrize("case", sorted(DISCLOSURE_CASES))
def test_disclosure_attacks(live: Live, held: Held, af_signer: Signer, case: str) -> None:
    asking = Asking.start(live)
    vp = DISCLOSURE_CASES[case](asking, held, af_signer)
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        response = asking.post(vp)
        refused(live, response, 400, "invalid_request")
    for value in VALUES:
        assert value not in response.text
    assert asking.stored()["status"] == "rejected"
    checks = failed_checks(response)
    assert {
        "disclosures",
        "issuer_signature",
        "parse",
        "validity_times",
        "key_binding",
        "requested_claims",
    } & set(checks), checks


# -- issuer trust (T093, T096) --------------------------------------------------------------


def test_t093_untrusted_and_self_signed_issuers(live: Live, held: Held, af_signer: Signer) -> None:
    rogue_ca_key, rogue_ca = x509.make_ca("Rogue CA", organization="Rogue", country="SE")
    rogue_key = jose.generate_key("ES256")
    leaf = x509.make_leaf(
        rogue_ca_key, rogue_ca, rogue_key, common_name="rogue", san_uri=[af_signer.iss]
    )
    cases = {
        "rogue_ca": Signer(
            af_signer.iss,
            rogue_key,
            {"alg": "ES256", "typ": "dc+sd-jwt", "x5c": x509.x5c_from_certs([leaf])},
        ),
        "self_signed": Signer(
            af_signer.iss,
            rogue_ca_key,
            {"alg": "ES256", "typ": "dc+sd-jwt", "x5c": x509.x5c_from_certs([rogue_ca])},
        ),
        "jwk_in_header": Signer(
            af_signer.iss,
            rogue_key,
            {"alg": "ES256", "typ": "dc+sd-jwt", "jwk": rogue_key.public_jwk()},
        ),
        "real_x5c_other_key": Signer(af_signer.iss, rogue_key, dict(af_signer.header)),
    }
    for name, signer in cases.items():
        asking = Asking.start(live)
        checks = reject(
            live,
            asking,
            with_kb(craft(signer, held.key), held.key, asking),
            {
                "real_x5c_other_key": "issuer_signature",
                "jwk_in_header": ("parse", "issuer_trusted"),
            }.get(name, "issuer_trusted"),
        )
        assert checks, name


def test_t096_issuer_not_authorized_for_the_type(
    live: Live, held: Held, myh_signer: Signer
) -> None:
    """MYH (trusted, for qualifications only) signs a registration certificate."""
    asking = Asking.start(live)
    reject(
        live,
        asking,
        with_kb(craft(myh_signer, held.key), held.key, asking),
        "issuer_trusted_for_type",
    )


# -- sessions, state, response codes (T099-T104, T109) --------------------------------------


def test_t101_presentation_of_session_one_with_the_state_of_session_two(
    live: Live, held: Held
) -> None:
    one, two = Asking.start(live), Asking.start(live)
    vp = honest(one, held)
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        response = two.post({"registration": [vp]})
        refused(live, response, 400, "invalid_request")
    assert "key_binding" in failed_checks(response)


def test_t102_unknown_state_stores_nothing(live: Live, held: Held) -> None:
    asking = Asking.start(live)
    vp = {"registration": [honest(asking, held)]}
    _, other_public = jwe.new_encryption_key(kid="unknown-kid")
    with Unchanged(live, {"verifier": VERIFIER_STATE}):
        for form in (
            {"vp_token": strict_json.dumps(vp), "state": "unknown-" + "s" * 40},
            {"vp_token": strict_json.dumps(vp)},
            {
                "response": jwe.encrypt(
                    {"vp_token": vp, "state": asking.request.state}, other_public, enc="A256GCM"
                )
            },
            {"response": "not-a-jwe"},
            {"response": "a.b.c.d.e", "state": asking.request.state},
        ):
            refused(live, asking.post_form(form), 400, "invalid_request")
    assert asking.stored()["status"] == "pending"


def test_t102_state_right_but_cleartext_for_an_encrypted_request(live: Live, held: Held) -> None:
    """A direct_post in clear for a direct_post.jwt request: rejected, never verified."""
    asking = Asking.start(live)
    form = {
        "vp_token": strict_json.dumps({"registration": [honest(asking, held)]}),
        "state": asking.request.state,
    }
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        refused(live, asking.post_form(form), 400, "invalid_request")


def test_t109_request_uri_fetched_twice_response_accepted_once(live: Live, held: Held) -> None:
    asking = Asking.start(live)
    again = httpx.get(asking.created["request_uri"], timeout=TIMEOUT)
    assert again.status_code == 200
    assert jose.parse_jws(again.text).claims()["nonce"] == asking.request.nonce
    vp = honest(asking, held)
    assert asking.post(vp).status_code == 200
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        replay = asking.post(vp)
        refused(live, replay, 400, "invalid_request")
    assert "nonce_once" in failed_checks(replay)
    assert asking.view()["status"] == "verified"
    assert httpx.get(asking.created["request_uri"], timeout=TIMEOUT).status_code == 404


def _same_device(live: Live, held: Held) -> tuple[Asking, str]:
    redirect = live.url("verifier") + "/return"
    asking = Asking.start(live, same_device_redirect=redirect)
    response = asking.post(honest(asking, held))
    assert response.status_code == 200, response.text
    code = response.json()["redirect_uri"].split("#response_code=", 1)[1]
    return asking, code


def _redeem(live: Live, asking: Asking, code: Any) -> httpx.Response:
    return live.employer().client.post(
        f"{live.url('verifier')}/api/v1/transactions/{asking.id}/result",
        json={"response_code": code},
    )


def test_t103_result_needs_the_response_code(live: Live, held: Held) -> None:
    asking, code = _same_device(live, held)
    view = asking.view()
    assert view["status"] == "verified" and view.get("result") is None
    _, other_code = _same_device(live, held)
    refused(live, _redeem(live, asking, other_code), 400, "invalid_grant")
    refused(live, _redeem(live, asking, "x" * 43), 400, "invalid_grant")
    assert _redeem(live, asking, code).status_code == 200


def test_t104_response_code_once_and_long(live: Live, held: Held) -> None:
    asking, code = _same_device(live, held)
    assert len(jose.b64url_decode(code)) >= 16
    first = _redeem(live, asking, code)
    assert first.status_code == 200 and first.json()["result"]["claims"]
    second = _redeem(live, asking, code)
    refused(live, second, 400, "invalid_grant")


def test_t098_t099_vcdm_presentations_are_not_accepted(live: Live, af: Issuing) -> None:
    """This verifier takes ``dc+sd-jwt`` queries only: a ``jwt_vc_json`` query is refused
    at the API, and a VP JWT (with a real VCDM credential) posted to an SD-JWT
    transaction is rejected, never verified (README: T098/T099)."""
    from intyg import vcdm

    issued = af.credential(configuration_id=af.vcdm_id)
    credential, holder = issued.credentials[0], issued.keys[0]
    _, payload = vcdm.decode_unverified(credential)
    query = {
        "credentials": [
            {
                "id": "registration",
                "format": "jwt_vc_json",
                "meta": {"type_values": [payload["type"]]},
            }
        ]
    }
    employer = live.employer()
    with Unchanged(live, {"verifier": VERIFIER_STATE}):
        response = employer.client.post(
            live.url("verifier") + "/api/v1/transactions",
            json={"dcql_query": query, "purpose": "test"},
        )
        refused(live, response, 400, "invalid_request")
    asking = Asking.start(live)
    for changes in ({}, {"nonce": None}, {"aud": None}):
        vp = vcdm.sign_presentation(
            [credential], holder, audience=asking.request.client_id, nonce=asking.request.nonce
        )
        if changes:
            jws = jose.parse_jws(vp)
            body = {k: v for k, v in {**jws.claims(), **changes}.items() if v is not None}
            vp = raw_jws(jws.header, body, holder)
        with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
            refused(live, asking.post(vp), 400, "invalid_request")


# -- encrypted responses (T011, T012, T013) --------------------------------------------------


def _jwe_with_header(asking: Asking, **header: Any) -> str:
    kid = asking.request.claims["client_metadata"]["jwks"]["keys"][0]["kid"]
    protected = b64({"kid": kid, "enc": "A128GCM", **header})
    return f"{protected}.{b64(b'k' * 40)}.{b64(b'i' * 12)}.{b64(b'c' * 30)}.{b64(b't' * 16)}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "PBES2-HS256+A128KW", "p2s": b64(b"salt-salt"), "p2c": 2**31},  # T011
        {"alg": "RSA1_5"},  # T012
        {"alg": "dir"},
        {"alg": "ECDH-ES", "zip": "DEF"},
        {"alg": "none"},
    ],
    ids=["T011_pbes2_p2c_2e31", "T012_rsa1_5", "dir", "zip_def", "alg_none"],
)
def test_encrypted_response_with_a_refused_algorithm(live: Live, header: dict[str, Any]) -> None:
    asking = Asking.start(live)
    with Unchanged(live, {"verifier": VERIFIER_STATE}):
        response = asking.post_form({"response": _jwe_with_header(asking, **header)})
        refused(live, response, 400, "invalid_request")
    assert asking.stored()["status"] == "pending"


def test_t013_oversized_responses(live: Live, held: Held) -> None:
    asking = Asking.start(live)
    prefix = prefix_of(honest(asking, held))
    many = prefix + "~".join(["WyJhIiwiYiIsMV0"] * 10_000) + "~"
    with Unchanged(live, {"verifier": VERIFIER_STATE}):
        huge = httpx.post(
            live.url("verifier") + "/response",
            timeout=TIMEOUT,
            data={"response": "e" * (10 * 1024 * 1024)},
        )
        refused(live, huge, 413, "invalid_request")
    with Unchanged(live, {"verifier": VERIFIER_RESULTS}):
        response = asking.post(with_kb(many, held.key, asking))
        assert response.status_code in (400, 413), response.text
        refused(live, response, response.status_code, "invalid_request")


# -- status lists (T106-T108) ----------------------------------------------------------------


@pytest.fixture
def status_host(server: Loopback) -> Loopback:
    return server


def _status_token(
    signer: Signer, uri: str, *, lst: status.StatusList | None = None, **changes: Any
) -> str:
    now = int(time.time())
    token = status.sign_status_list_token(
        lst or status.StatusList.create(16, bits=2),
        uri=uri,
        key=signer.key,
        now=now,
        ttl=60,
        header={k: v for k, v in signer.header.items() if k in ("x5c", "kid")},
    )
    if not changes:
        return token
    jws = jose.parse_jws(token)
    header = {**jws.header, **changes.pop("header", {})}
    claims = {**jws.claims(), **changes}
    return raw_jws(header, {k: v for k, v in claims.items() if v is not None}, signer.key)


@functools.cache
def _zeros_deflated(megabytes: int) -> str:
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    compressed = b"".join(compressor.compress(chunk) for _ in range(megabytes))
    return jose.b64url_encode(compressed + compressor.flush())


def _bomb(signer: Signer, uri: str) -> str:
    """``lst`` inflating to 128 MB (8x the verifier's cap) from ~130 KB of zlib."""
    return _status_token(signer, uri, status_list={"bits": 1, "lst": _zeros_deflated(128)})


STATUS_CASES: dict[str, Callable[[Signer, str], Reply]] = {
    "T106_index_past_the_end": lambda s, u: Reply(
        200, _status_token(s, u), "application/statuslist+jwt"
    ),
    "T106_sub_not_uri": lambda s, u: Reply(
        200, _status_token(s, u, sub=u + "x"), "application/statuslist+jwt"
    ),
    "T106_bad_signature": lambda s, u: Reply(
        200, flip_signature_bit(_status_token(s, u)), "application/statuslist+jwt"
    ),
    "T106_expired": lambda s, u: Reply(
        200,
        _status_token(s, u, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "application/statuslist+jwt",
    ),
    "T106_wrong_typ": lambda s, u: Reply(
        200, _status_token(s, u, header={"typ": "JWT"}), "application/statuslist+jwt"
    ),
    "T106_alg_none": lambda s, u: Reply(
        200,
        (lambda t: t[: t.rindex(".") + 1])(_status_token(s, u, header={"alg": "none"})),
        "application/statuslist+jwt",
    ),
    "T107_zlib_bomb": lambda s, u: Reply(200, _bomb(s, u), "application/statuslist+jwt"),
    "T107_redirect_loop": lambda s, u: Reply(302, b"", "text/plain", {"Location": u}),
    "T107_redirect_to_http": lambda s, u: Reply(
        302, b"", "text/plain", {"Location": "http://example.com/x"}
    ),
    "status_host_down": lambda s, u: Reply(503, b"", "text/plain"),
}


@pytest.mark.parametrize("case", sorted(STATUS_CASES))
def test_status_list_attacks_fail_closed(
    live: Live, held: Held, af_signer: Signer, status_host: Loopback, case: str
) -> None:
    uri = f"{status_host.base}/statuslists/{case}"
    status_host.routes[f"/statuslists/{case}"] = lambda _: STATUS_CASES[case](af_signer, uri)
    idx = 100 if case == "T106_index_past_the_end" else 3
    asking = Asking.start(live)
    crafted = craft(
        af_signer, held.key, clear={"status": {"status_list": {"idx": idx, "uri": uri}}}
    )
    checks = reject(live, asking, with_kb(crafted, held.key, asking), "status")
    assert checks
    assert len(status_host.to(f"/statuslists/{case}")) <= 3  # bounded: no request storm


def test_t108_tiny_ttl_is_clamped_no_request_storm(
    live: Live, held: Held, af_signer: Signer, status_host: Loopback
) -> None:
    """``ttl`` = 1 s: three verifications in a row fetch the list once (cache clamped to
    ``status_cache_min_seconds``). ``ttl`` = 0 is not a positive number: fail closed."""
    for name, ttl in (("ttl1", 1), ("ttl0", 0)):
        uri = f"{status_host.base}/statuslists/{name}"
        status_host.routes[f"/statuslists/{name}"] = lambda _, u=uri, t=ttl: Reply(
            200, _status_token(af_signer, u, ttl=t), "application/statuslist+jwt"
        )
        for _ in range(3):
            asking = Asking.start(live)
            crafted = craft(
                af_signer, held.key, clear={"status": {"status_list": {"idx": 3, "uri": uri}}}
            )
            vp = with_kb(crafted, held.key, asking)
            if ttl:
                assert asking.post(vp).status_code == 200
            else:
                reject(live, asking, vp, "status")
        if ttl:
            assert len(status_host.to(f"/statuslists/{name}")) == 1


def _iss(value: Any) -> Callable[[Signer, Held], str]:
    return lambda s, h: craft(Signer(value, s.key, s.header), h.key)


def _time(name: str, literal: str) -> Callable[[Signer, Held], str]:
    def make(signer: Signer, held: Held) -> str:
        def replace(text: str) -> str:
            payload = json.loads(text)
            payload.pop(name, None)
            return strict_json.dumps(payload)[:-1] + f',"{name}":{literal}}}'

        return craft(signer, held.key, payload_text=replace)

    return make


CREDENTIAL_CLAIMS: dict[str, Callable[[Signer, Held], str]] = {
    "T017_iss_trailing_slash": lambda s, h: _iss(s.iss + "/")(s, h),
    "T017_iss_prefix": lambda s, h: _iss(s.iss[:-1])(s, h),
    "T017_iss_without_scheme": lambda s, h: _iss(s.iss.split("//", 1)[1])(s, h),
    "T017_iss_array": lambda s, h: _iss([s.iss])(s, h),
    "T018_exp_string": _time("exp", '"9999999999"'),
    "T018_exp_float": _time("exp", "9999999999.5"),
    "T018_exp_negative": _time("exp", "-1"),
    "T018_exp_1e309": _time("exp", "1e309"),
    "T018_exp_5000_digits": _time("exp", "9" * 5000),
    "T018_iat_in_the_future": _time("iat", str(int(time.time()) + 86400)),
    "T018_nbf_in_the_future": _time("nbf", str(int(time.time()) + 86400)),
    "expired": _time("exp", str(int(time.time()) - 3600)),
    "T096_other_vct_with_aka_vcts": lambda s, h: craft(
        s,
        h.key,
        clear={
            "vct": "https://intyg.example/vct/annat/1",
            "aka_vcts": [REGISTRATION_CERTIFICATE_VCT],
        },
    ),
    "T096_vct_extending_the_trusted_type": lambda s, h: craft(
        s, h.key, clear={"vct": REGISTRATION_CERTIFICATE_VCT + "/utokad"}
    ),
}


@pytest.mark.parametrize("case", sorted(CREDENTIAL_CLAIMS))
def test_credential_claim_attacks(live: Live, held: Held, af_signer: Signer, case: str) -> None:
    """``iss`` near-misses, time claims of the wrong type or range, types that only claim
    to extend the trusted one: rejected with the credential's claims never accepted."""
    asking = Asking.start(live)
    forged = CREDENTIAL_CLAIMS[case](af_signer, held)
    checks = reject(
        live,
        asking,
        with_kb(forged, held.key, asking),
        (
            "parse",
            "issuer_trusted",
            "issuer_signature",
            "validity_times",
            "disclosures",
            "requested_claims",
            "issuer_trusted_for_type",
        ),
    )
    assert "nonce_once" not in checks
