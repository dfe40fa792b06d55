"""intyg.web.oidc: the eID relying party (OIDC Core §3.1.3.7, RFC 9207, security.md T076,
T077). Negative tests use a stub OP on a real loopback port whose ID tokens each test crafts;
the full login runs against the development eID (uvicorn) through the guarded client."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from eid.app import create_app
from eid.settings import EidClient, EidSettings
from intyg import jose, strict_json
from intyg.web import db
from intyg.web.accounts import AccountKeyer
from intyg.web.oidc import (
    COORDINATION_NUMBER_CLAIM,
    LOA3,
    PERSONAL_IDENTITY_NUMBER_CLAIM,
    MemoryReplayCache,
    OidcConfig,
    OidcError,
    OidcRelyingParty,
    SqlReplayCache,
    safe_return_path,
)
from intyg.web.outbound import OutboundClient, OutboundPolicy
from tests.eid.servers import bound_socket, serve
from tests.web.conftest import LoopbackServer, reply

NUMBER = "198112189884"
CLIENT_ID = "intyg-wallet"
SECRET = "rp-secret-0123456789"
REDIRECT = "http://127.0.0.1:8200/login/callback"
LOA2 = "http://id.elegnamnden.se/loa/1.0/loa2"
#: Claim names as keyword overrides ("/" spelled "__").
PIN = PERSONAL_IDENTITY_NUMBER_CLAIM.replace("/", "__")
COORD = COORDINATION_NUMBER_CLAIM.replace("/", "__")


def b64(data: bytes) -> str:
    return jose.b64url_encode(data)


class StubOp:
    """Discovery, JWKS, token and userinfo of an OP whose next ID token the test sets."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.issuer = server.url("").rstrip("/")
        self.key = jose.generate_key("ES256", kid="es-1")
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed = jose.generate_key("EdDSA", kid="ed-1")
        self.id_token = ""
        self.access_token = "access-token-1"
        self.userinfo: dict[str, Any] | None = None
        self.token_status = 200
        self.discovery: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }
        server.routes["/.well-known/openid-configuration"] = lambda h: reply(
            h, 200, json.dumps(self.discovery).encode()
        )
        server.routes["/jwks"] = lambda h: reply(h, 200, json.dumps(self.jwks()).encode())
        server.routes["/token"] = self._token
        server.routes["/userinfo"] = lambda h: reply(
            h, 200 if self.userinfo else 401, json.dumps(self.userinfo or {}).encode()
        )

    def jwks(self) -> dict[str, Any]:
        numbers = self.rsa.public_key().public_numbers()
        rsa_jwk = {
            "kty": "RSA",
            "kid": "rsa-1",
            "use": "sig",
            "n": b64(numbers.n.to_bytes(256, "big")),
            "e": b64(numbers.e.to_bytes(3, "big")),
        }
        enc_key = {**jose.generate_key().public_jwk(), "use": "enc", "kid": "enc"}
        return {"keys": [self.key.public_jwk(), rsa_jwk, self.ed.public_jwk(), enc_key]}

    def _token(self, handler: Any) -> None:
        body = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "id_token": self.id_token,
        }
        if self.token_status != 200:
            body = {"error": "invalid_grant"}
        reply(handler, self.token_status, json.dumps(body).encode())

    def token_requests(self) -> list[tuple[dict[str, str], dict[str, list[str]]]]:
        return [
            (headers, parse_qs(body.decode()))
            for method, path, headers, body in self.server.requests
            if path == "/token"
        ]

    def claims(self, nonce_value: str, /, **overrides: Any) -> dict[str, Any]:
        now = int(__import__("time").time())
        claims = {
            "iss": self.issuer,
            "sub": "pseudonym-1",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce_value,
            "acr": LOA3,
            PERSONAL_IDENTITY_NUMBER_CLAIM: NUMBER,
            "given_name": "Anna",
            "family_name": "Andersson",
            "birthdate": "1981-12-18",
        }
        for name, value in overrides.items():
            name = name.replace("__", "/")
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any], alg: str = "ES256", header: dict | None = None) -> str:
        if alg == "RS256":
            head = {"alg": "RS256", "kid": "rsa-1", **(header or {})}
            signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
            signature = self.rsa.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
            return f"{signing_input}.{b64(signature)}"
        key = self.ed if alg == "EdDSA" else self.key
        return jose.encode_jws(claims, key, {"kid": key.kid, **(header or {})})


@pytest.fixture
def stub(http_server: LoopbackServer) -> StubOp:
    return StubOp(http_server)


def make_rp(stub: StubOp, cache: Any = None, **overrides: Any) -> OidcRelyingParty:
    config = OidcConfig(
        discovery_url=f"{stub.issuer}/.well-known/openid-configuration",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        redirect_uri=REDIRECT,
        **overrides,
    )
    return OidcRelyingParty(
        config,
        OutboundClient(OutboundPolicy(development=True)),
        login_key=b"L" * 32,
        replay_cache=cache or MemoryReplayCache(),
        development=True,
    )


def start(rp: OidcRelyingParty) -> tuple[Any, dict[str, str]]:
    login = rp.begin_login("/credentials")
    query = {k: v[0] for k, v in parse_qs(urlsplit(login.authorization_url).query).items()}
    return login, query


def login(
    rp: OidcRelyingParty,
    stub: StubOp,
    *,
    alg: str = "ES256",
    header: dict | None = None,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    **claim_overrides: Any,
) -> Any:
    started, query = start(rp)
    stub.id_token = token or stub.sign(stub.claims(query["nonce"], **claim_overrides), alg, header)
    callback = {"state": query["state"], "code": "code-1", "iss": stub.issuer, **(params or {})}
    callback = {k: v for k, v in callback.items() if v is not None}
    return rp.complete_login(callback, started.cookie_value)


def refused(reason: str, rp: OidcRelyingParty, stub: StubOp, **kwargs: Any) -> OidcError:
    with pytest.raises(OidcError) as caught:
        login(rp, stub, **kwargs)
    assert caught.value.reason == reason, caught.value
    return caught.value


# -- success paths -----------------------------------------------------------------------


def test_login_returns_the_identity(stub: StubOp) -> None:
    result = login(make_rp(stub), stub)
    identity = result.identity
    assert identity.personal_number.twelve_digits == NUMBER
    assert (identity.given_name, identity.family_name) == ("Anna", "Andersson")
    assert identity.birthdate.isoformat() == "1981-12-18"
    assert identity.acr == LOA3 and identity.provider == "eid"
    assert result.return_to == "/credentials"
    assert NUMBER not in repr(result)


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_login_with_rs256_and_eddsa_id_tokens(stub: StubOp, alg: str) -> None:
    assert login(make_rp(stub), stub, alg=alg).identity.personal_number.twelve_digits == NUMBER


def test_authorization_request_has_state_nonce_and_pkce_s256(stub: StubOp) -> None:
    rp = make_rp(stub, request_acr_values=(LOA3,))
    started, query = start(rp)
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert len(jose.b64url_decode(query["state"])) >= 16
    assert len(jose.b64url_decode(query["nonce"])) >= 16
    assert query["acr_values"] == LOA3 and query["redirect_uri"] == REDIRECT
    assert query["scope"].split()[0] == "openid"
    stub.id_token = stub.sign(stub.claims(query["nonce"]))
    rp.complete_login(
        {"state": query["state"], "code": "c", "iss": stub.issuer}, started.cookie_value
    )
    headers, form = stub.token_requests()[-1]
    assert jose.sha256_b64url(form["code_verifier"][0]) == query["code_challenge"]
    assert headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in form


def test_client_secret_post(stub: StubOp) -> None:
    login(make_rp(stub, token_endpoint_auth_method="client_secret_post"), stub)
    headers, form = stub.token_requests()[-1]
    assert "Authorization" not in headers
    assert form["client_id"] == [CLIENT_ID] and form["client_secret"] == [SECRET]


def test_broker_ssn_claim_and_freja_plus(stub: StubOp) -> None:
    rp = make_rp(
        stub,
        personal_number_claim="ssn",
        accepted_acr_values=(),
        freja_level_claim="freja_registration_level",
    )
    result = login(
        rp,
        stub,
        ssn=NUMBER,
        freja_registration_level="PLUS",
        acr=None,
        **{PIN: None},
    )
    assert result.identity.personal_number.twelve_digits == NUMBER


def test_personal_number_from_userinfo(stub: StubOp) -> None:
    stub.userinfo = {"sub": "pseudonym-1", "nin": "19811218-9884", "given_name": "Anna"}
    rp = make_rp(stub, personal_number_claim="nin")
    result = login(rp, stub, **{PIN: None})
    assert result.identity.personal_number.twelve_digits == NUMBER


def test_userinfo_for_another_subject_is_refused(stub: StubOp) -> None:
    stub.userinfo = {"sub": "someone-else", "nin": NUMBER}
    rp = make_rp(stub, personal_number_claim="nin")
    refused("userinfo_invalid", rp, stub)


def test_coordination_number_accepted_when_allowed(stub: StubOp) -> None:
    rp = make_rp(stub, allow_coordination_numbers=True)
    overrides = {
        PIN: None,
        COORD: "197010632391",
    }
    result = login(rp, stub, **overrides)
    assert result.identity.is_coordination_number


# -- state, cookie and mix-up (T076, T077) ------------------------------------------------


def test_state_missing(stub: StubOp) -> None:
    refused("state_missing", make_rp(stub), stub, params={"state": None})


def test_state_wrong(stub: StubOp) -> None:
    refused("state_mismatch", make_rp(stub), stub, params={"state": "attacker-state"})


def test_state_from_another_browser_session(stub: StubOp) -> None:
    rp = make_rp(stub)
    victim, _ = start(rp)
    _, attacker = start(rp)
    stub.id_token = stub.sign(stub.claims(attacker["nonce"]))
    # The attacker's code and state, delivered to the victim's browser (login CSRF).
    callback = {"state": attacker["state"], "code": "attacker-code", "iss": stub.issuer}
    with pytest.raises(OidcError) as caught:
        rp.complete_login(callback, victim.cookie_value)
    assert caught.value.reason == "state_mismatch"
    assert stub.token_requests() == []


def test_state_reused(stub: StubOp) -> None:
    rp = make_rp(stub)
    started, query = start(rp)
    stub.id_token = stub.sign(stub.claims(query["nonce"]))
    callback = {"state": query["state"], "code": "c", "iss": stub.issuer}
    rp.complete_login(callback, started.cookie_value)
    with pytest.raises(OidcError) as caught:
        rp.complete_login(callback, started.cookie_value)
    assert caught.value.reason == "state_reused"
    assert len(stub.token_requests()) == 1


def test_failed_login_burns_the_state(stub: StubOp) -> None:
    rp = make_rp(stub)
    started, query = start(rp)
    stub.id_token = stub.sign(stub.claims("wrong-nonce"))
    callback = {"state": query["state"], "code": "c", "iss": stub.issuer}
    with pytest.raises(OidcError):
        rp.complete_login(callback, started.cookie_value)
    stub.id_token = stub.sign(stub.claims(query["nonce"]))
    with pytest.raises(OidcError) as caught:
        rp.complete_login(callback, started.cookie_value)
    assert caught.value.reason == "state_reused"


def test_no_login_cookie(stub: StubOp) -> None:
    rp = make_rp(stub)
    _, query = start(rp)
    with pytest.raises(OidcError) as caught:
        rp.complete_login({"state": query["state"], "code": "c"}, None)
    assert caught.value.reason == "login_expired"


def test_expired_login_cookie(stub: StubOp) -> None:
    now = [1_800_000_000.0]
    rp = make_rp(stub)
    rp._clock = lambda: now[0]  # type: ignore[method-assign]
    started, query = start(rp)
    now[0] += rp.config.login_lifetime_seconds + 1
    with pytest.raises(OidcError) as caught:
        rp.complete_login({"state": query["state"], "code": "c"}, started.cookie_value)
    assert caught.value.reason == "login_expired"


def test_cookie_of_another_provider_does_not_open(stub: StubOp) -> None:
    rp = make_rp(stub)
    other = make_rp(stub, name="freja")
    started, query = start(other)
    with pytest.raises(OidcError) as caught:
        rp.complete_login({"state": query["state"], "code": "c"}, started.cookie_value)
    assert caught.value.reason == "login_expired"


def test_iss_parameter_of_another_op(stub: StubOp) -> None:
    refused("issuer_mismatch", make_rp(stub), stub, params={"iss": "https://op.example"})


def test_iss_parameter_missing_when_announced(stub: StubOp) -> None:
    refused("issuer_mismatch", make_rp(stub), stub, params={"iss": None})


def test_provider_error_response(stub: StubOp) -> None:
    error = refused("provider_error", make_rp(stub), stub, params={"error": "access_denied"})
    assert "avbröts" in error.user_message("sv") and "cancelled" in error.user_message("en")


def test_code_missing(stub: StubOp) -> None:
    refused("code_missing", make_rp(stub), stub, params={"code": None})


# -- ID token rules (OIDC Core §3.1.3.7) ---------------------------------------------------


def test_nonce_mismatch(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, nonce="another-nonce")


def test_nonce_missing(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, nonce=None)


def test_iss_mismatch(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, iss="https://other-op.example")


def test_aud_mismatch(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, aud="another-client")


def test_aud_with_untrusted_extra_audience(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, aud=[CLIENT_ID, "evil"], azp=CLIENT_ID)


def test_several_audiences_need_azp(stub: StubOp) -> None:
    rp = make_rp(stub, trusted_audiences=("api",))
    refused("id_token_invalid", rp, stub, aud=[CLIENT_ID, "api"])
    assert login(
        make_rp(stub, trusted_audiences=("api",)), stub, aud=[CLIENT_ID, "api"], azp=CLIENT_ID
    )


def test_azp_of_another_client(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, azp="another-client")


def test_expired_id_token(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, exp=1_000_000_000)


def test_iat_in_the_future_or_too_old(stub: StubOp) -> None:
    now = int(__import__("time").time())
    refused("id_token_invalid", make_rp(stub), stub, iat=now + 3600)
    refused("id_token_invalid", make_rp(stub), stub, iat=now - 7200)


def test_exp_missing(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, exp=None)


def test_bad_signature(stub: StubOp) -> None:
    _, _query = start(make_rp(stub))
    token = stub.sign(stub.claims("x"))
    head, _body, signature = token.split(".")
    forged = f"{head}.{b64(json.dumps({'sub': 'x'}).encode())}.{signature}"
    refused("id_token_invalid", make_rp(stub), stub, token=forged)


def test_signed_by_a_key_not_in_the_jwks(stub: StubOp) -> None:
    rp = make_rp(stub)
    _, query = start(rp)
    intruder = jose.generate_key("ES256", kid="es-1")
    token = jose.encode_jws(stub.claims(query["nonce"]), intruder, {"kid": "es-1"})
    refused("id_token_invalid", rp, stub, token=token)


def test_alg_none(stub: StubOp) -> None:
    head = b64(json.dumps({"alg": "none"}).encode())
    token = f"{head}.{b64(json.dumps(stub.claims('n')).encode())}."
    refused("id_token_invalid", make_rp(stub), stub, token=token)
    token = f"{head}.{b64(json.dumps(stub.claims('n')).encode())}.AAAA"
    refused("id_token_invalid", make_rp(stub), stub, token=token)


def test_hs256_with_public_key_as_secret(stub: StubOp) -> None:
    import hashlib
    import hmac

    head = b64(json.dumps({"alg": "HS256", "kid": "es-1"}).encode())
    body = b64(json.dumps(stub.claims("n")).encode())
    secret = json.dumps(stub.key.public_jwk()).encode()
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    refused("id_token_invalid", make_rp(stub), stub, token=f"{head}.{body}.{b64(signature)}")


def test_alg_outside_configured_allow_list(stub: StubOp) -> None:
    rp = make_rp(stub, id_token_algorithms=("ES256",))
    refused("id_token_invalid", rp, stub, alg="RS256")


def test_critical_header(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, header={"crit": ["exp"], "exp": 1})


def test_typ_other_than_jwt(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, header={"typ": "at+jwt"})


def test_at_hash_mismatch(stub: StubOp) -> None:
    refused("id_token_invalid", make_rp(stub), stub, at_hash="AAAAAAAAAAAAAAAAAAAAAA")


# -- assurance and the personal number (protocols.md §7.2, §7.6) ---------------------------


def test_acr_too_low(stub: StubOp) -> None:
    error = refused("assurance_too_low", make_rp(stub), stub, acr=LOA2)
    assert "BankID" in error.user_message()


def test_acr_missing(stub: StubOp) -> None:
    refused("assurance_too_low", make_rp(stub), stub, acr=None)


def test_freja_level_not_plus(stub: StubOp) -> None:
    rp = make_rp(stub, accepted_acr_values=(), freja_level_claim="freja_registration_level")
    refused("assurance_too_low", rp, stub, freja_registration_level="EXTENDED")


def test_personal_number_claim_missing(stub: StubOp) -> None:
    rp = make_rp(stub, userinfo="never")
    refused("personal_number_missing", rp, stub, **{PIN: None})


def test_luhn_invalid_number(stub: StubOp) -> None:
    rp = make_rp(stub)
    refused("personal_number_invalid", rp, stub, **{PIN: "198112189885"})


def test_ten_digit_number_refused(stub: StubOp) -> None:
    rp = make_rp(stub)
    refused("personal_number_invalid", rp, stub, **{PIN: "8112189884"})


def test_number_not_a_string(stub: StubOp) -> None:
    rp = make_rp(stub)
    refused("personal_number_invalid", rp, stub, **{PIN: 198112189884})


def test_coordination_number_refused_when_not_allowed(stub: StubOp) -> None:
    key = PIN
    refused("coordination_number_not_allowed", make_rp(stub), stub, **{key: "197010632391"})
    overrides = {key: None, COORD: "197010632391"}
    refused("coordination_number_not_allowed", make_rp(stub), stub, **overrides)


# -- provider failures ----------------------------------------------------------------------


def test_token_endpoint_error(stub: StubOp) -> None:
    stub.token_status = 400
    refused("token_error", make_rp(stub), stub)


def test_discovery_issuer_mismatch(stub: StubOp) -> None:
    stub.discovery["issuer"] = "https://op.example"
    with pytest.raises(OidcError) as caught:
        make_rp(stub).begin_login()
    assert caught.value.reason == "provider_metadata"


def test_discovery_without_s256(stub: StubOp) -> None:
    stub.discovery["code_challenge_methods_supported"] = ["plain"]
    with pytest.raises(OidcError) as caught:
        make_rp(stub).begin_login()
    assert caught.value.reason == "provider_metadata"


def test_provider_unreachable() -> None:
    config = OidcConfig(
        discovery_url="http://127.0.0.1:9/.well-known/openid-configuration",
        client_id="c",
        client_secret="s",
        redirect_uri=REDIRECT,
    )
    rp = OidcRelyingParty(
        config,
        OutboundClient(OutboundPolicy(development=True, connect_timeout=1, total_timeout=2)),
        login_key=b"L" * 32,
        replay_cache=MemoryReplayCache(),
        development=True,
    )
    with pytest.raises(OidcError) as caught:
        rp.begin_login()
    assert caught.value.reason == "provider_unreachable"


def test_loopback_op_refused_outside_development(stub: StubOp) -> None:
    config = make_rp(stub).config
    rp = OidcRelyingParty(
        config,
        OutboundClient(OutboundPolicy()),
        login_key=b"L" * 32,
        replay_cache=MemoryReplayCache(),
    )
    with pytest.raises(OidcError) as caught:
        rp.begin_login()
    assert caught.value.reason == "provider_unreachable"


# -- configuration and helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"scopes": ("profile",)},
        {"accepted_acr_values": ()},
        {"discovery_url": "https://op.example/config"},
        {"id_token_algorithms": ("HS256",)},
        {"extra_authorization_params": {"state": "fixed"}},
    ],
)
def test_config_rules(overrides: dict[str, Any]) -> None:
    base = {
        "discovery_url": "https://op.example/.well-known/openid-configuration",
        "client_id": "c",
        "client_secret": "s",
        "redirect_uri": REDIRECT,
    }
    with pytest.raises(ValueError):
        OidcConfig(**{**base, **overrides})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/credentials?x=1", "/credentials?x=1"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/a b", "/"),
        (None, "/"),
    ],
)
def test_safe_return_path(value: str | None, expected: str) -> None:
    assert safe_return_path(value) == expected


def test_sql_replay_cache(tmp_path: Any) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'rp.sqlite3'}")
    cache = SqlReplayCache(engine)
    cache.create_table()
    assert cache.use_once("a", 2_000_000_000)
    assert not cache.use_once("a", 2_000_000_000)
    assert cache.use_once("b", 2_000_000_000)
    engine.dispose()


def test_login_over_sql_replay_cache(stub: StubOp, tmp_path: Any) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'rp.sqlite3'}")
    cache = SqlReplayCache(engine)
    cache.create_table()
    rp = make_rp(stub, cache=cache)
    started, query = start(rp)
    stub.id_token = stub.sign(stub.claims(query["nonce"]))
    callback = {"state": query["state"], "code": "c", "iss": stub.issuer}
    rp.complete_login(callback, started.cookie_value)
    with pytest.raises(OidcError):
        rp.complete_login(callback, started.cookie_value)
    engine.dispose()


def test_personal_number_never_logged(stub: StubOp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    login(make_rp(stub), stub)
    key = PIN
    with pytest.raises(OidcError):
        login(make_rp(stub), stub, **{key: "198112189885"})
    assert NUMBER not in caplog.text and "198112189885" not in caplog.text
    assert "811218" not in caplog.text


# -- full login against the development eID over real loopback HTTP -----------------------


def rp_app(rp: OidcRelyingParty, accounts: AccountKeyer, seen: list[Any]) -> FastAPI:
    """A minimal service: /login and /login/callback, as the wallet and issuer will have."""
    app = FastAPI()

    @app.get("/login")
    def start_login(return_to: str = "/") -> Response:
        return rp.login_response(return_to)

    @app.get("/login/callback")
    def callback(request: Request) -> Response:
        try:
            result = rp.callback(request)
        except OidcError as exc:
            response: Response = JSONResponse(
                {"error": exc.reason, "message": exc.user_message()}, 400
            )
        else:
            seen.append(result.identity)
            account = accounts(result.identity.personal_number)
            response = JSONResponse({"account": account, "return_to": result.return_to})
        rp.clear_login_cookie(response)
        return response

    return app


@pytest.fixture
def eid_login() -> Iterator[Any]:
    """The eid app and an RP service, both on loopback ports; yields a login driver."""
    op_socket, op_base = bound_socket()
    rp_socket, rp_base = bound_socket()
    redirect = f"{rp_base}/login/callback"
    settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[EidClient(client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=(redirect,))],
    )
    config = OidcConfig(
        discovery_url=f"{op_base}/.well-known/openid-configuration",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        redirect_uri=redirect,
    )
    rp = OidcRelyingParty.from_master_key(
        config,
        OutboundClient(OutboundPolicy(development=True)),
        jose.b64url_encode(b"M" * 32),
        replay_cache=MemoryReplayCache(),
        development=True,
    )
    seen: list[Any] = []
    accounts = AccountKeyer(b"A" * 32)

    def drive(
        person: str | None, browser: httpx.Client | None = None
    ) -> tuple[httpx.Response, list[str]]:
        browser = browser or httpx.Client()
        urls: list[str] = []
        started = browser.get(f"{rp_base}/login", params={"return_to": "/credentials"})
        assert started.status_code == 303
        picker = browser.get(started.headers["location"])
        urls += [started.headers["location"]]
        assert picker.status_code == 200
        assert "Utvecklings-eID — endast för test" in picker.text
        transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
        assert transaction
        choice = {"transaction": transaction.group(1)}
        choice.update({"person": person} if person else {"cancel": "1"})
        decided = browser.post(f"{op_base}/authorize", data=choice)
        assert decided.status_code == 302
        urls.append(decided.headers["location"])
        return browser.get(decided.headers["location"]), urls

    with serve(create_app(settings), op_socket), serve(rp_app(rp, accounts, seen), rp_socket):
        yield drive, seen, rp, accounts


def test_full_login_against_the_development_eid(
    eid_login: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    drive, seen, rp, accounts = eid_login
    response, urls = drive("anna")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"account": accounts("198112189884"), "return_to": "/credentials"}
    assert seen[0].personal_number.twelve_digits == "198112189884"
    assert seen[0].acr == LOA3 and seen[0].given_name == "Anna"
    assert all("198112189884" not in url and "8112189884" not in url for url in urls)
    assert "198112189884" not in caplog.text
    # The login cookie is cleared and the callback cannot be replayed.
    assert (
        rp.login_cookie.name not in response.cookies or response.cookies[rp.login_cookie.name] == ""
    )


def test_callback_replay_after_full_login(eid_login: Any) -> None:
    drive, seen, _rp, _ = eid_login
    browser = httpx.Client()
    response, urls = drive("erik", browser)
    assert response.status_code == 200
    replay = httpx.get(urls[-1])
    assert replay.status_code == 400 and replay.json()["error"] == "login_expired"
    assert len(seen) == 1


def test_full_login_low_loa_person_refused(eid_login: Any) -> None:
    drive, seen, _, _ = eid_login
    response, _ = drive("maja")
    assert response.status_code == 400 and response.json()["error"] == "assurance_too_low"
    assert seen == []


def test_full_login_coordination_number_refused_by_default(eid_login: Any) -> None:
    drive, seen, _, _ = eid_login
    response, _ = drive("lars-olof")
    assert response.json()["error"] == "coordination_number_not_allowed"
    assert seen == []


def test_full_login_cancelled(eid_login: Any) -> None:
    drive, seen, _, _ = eid_login
    response, _ = drive(None)
    assert response.json()["error"] == "provider_error"
    assert seen == []


def test_full_login_centenarian(eid_login: Any) -> None:
    drive, seen, _, _ = eid_login
    response, _ = drive("tolvan")
    assert response.status_code == 200
    assert seen[0].personal_number.ten_digits() == "121212+1212"


def test_strict_json_used_for_discovery(stub: StubOp) -> None:
    stub.server.routes["/.well-known/openid-configuration"] = lambda h: reply(
        h, 200, b'{"issuer": "a", "issuer": "b"}'
    )
    with pytest.raises(OidcError) as caught:
        make_rp(stub).begin_login()
    assert caught.value.reason == "provider_metadata"
    assert strict_json  # the parser that refuses duplicate members
