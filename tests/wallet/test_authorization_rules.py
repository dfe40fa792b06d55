"""Wallet-initiated issuance (OpenID4VCI 1.0 §5, authorization code flow) in-process: the
wallet's protocol module against the REAL issuer app (PAR, PKCE, wallet attestation, DPoP,
``iss``) and the REAL development eID (a loopback server) for the person's login at the
issuer. Every rule of wallet/authorization.py has a test here: what is sent (PAR with
S256, attestation, DPoP binding; scope vs authorization_details; dpop_jkt without PAR),
what is stored (state only as a digest, verifier and key sealed), and every refusal of the
authorization response (state missing / unknown / another person's / another browser
session's / expired / replayed, iss missing or wrong, repeated parameters, error codes,
no code) with nothing stored.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from eid.app import create_app as create_eid_app
from eid.settings import EidClient, EidSettings
from intyg import jose, oid4vci, strict_json
from intyg.fetch import FetchResponse
from intyg.web import db
from intyg.web.crypto_store import record_aad
from intyg.web.oidc import OidcConfig
from intyg.web.outbound import OutboundError
from issuer.app import IssuerContext
from issuer.app import create_app as create_issuer_app
from issuer.models import AuthorizationRequest, Person, digest
from issuer.records import RegistrationInput, upsert_registration
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import Clock
from tests.issuer.conftest import make_settings as make_issuer_settings
from wallet import authorization, issuance
from wallet.accounts import account_for
from wallet.app import WalletContext, build_context, startup
from wallet.models import CredentialInstance, HolderKey, IssuanceSession, KeyState, WalletCredential

from .conftest import ANNA, make_wallet_settings

ISSUER = "https://issuer.test"
WALLET = "https://wallet.example"
EID_CLIENT = "intyg-issuer"
EID_SECRET = "issuer-eid-secret-0123456789"
SD_JWT = "RegistrationCertificate_dc+sd-jwt"
VCDM = "RegistrationCertificate_jwt_vc_json"


class IssuerOutbound:
    """The wallet's outbound client answered by the real issuer app in-process, with the
    guarded client's contract: 2xx -> FetchResponse (with the passed headers), anything
    else -> OutboundError(reason="status") carrying the response. Posts are recorded."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    @staticmethod
    def _answer(response: httpx.Response) -> FetchResponse:
        headers = {k: v for k, v in response.headers.items() if k in ("dpop-nonce",)}
        result = FetchResponse(response.content, response.headers.get("content-type", ""), headers)
        if 200 <= response.status_code < 300:
            return result
        raise OutboundError(
            f"HTTP status {response.status_code}",
            reason="status",
            status_code=response.status_code,
            response=result,
        )

    def _check(self, url: str) -> None:
        if not url.startswith(ISSUER + "/"):
            raise OutboundError("not the issuer", reason="network")

    def fetch(self, url: str, accept: str = "application/json") -> FetchResponse:
        self._check(url)
        return self._answer(self.client.get(url, headers={"Accept": accept}))

    def post_form(
        self, url: str, data: Mapping[str, str], *, accept: str = "", headers: Any = None
    ) -> FetchResponse:
        self._check(url)
        self.posts.append((url, dict(data), dict(headers or {})))
        return self._answer(self.client.post(url, data=dict(data), headers=headers or {}))

    def post_json(
        self, url: str, payload: Any, *, accept: str = "", headers: Any = None
    ) -> FetchResponse:
        self._check(url)
        self.posts.append((url, payload, dict(headers or {})))
        sent = {**(headers or {}), "Content-Type": "application/json"}
        return self._answer(
            self.client.post(url, content=strict_json.dumps(payload).encode(), headers=sent)
        )


@dataclass
class CodeFlow:
    """A started wallet context, the real issuer behind :class:`IssuerOutbound`, and the
    person's browser (eID on loopback)."""

    wallet: WalletContext
    issuer: IssuerContext
    outbound: IssuerOutbound
    browser: TestClient
    op_base: str
    clock: Clock
    accounts: dict[str, int] = field(default_factory=dict)

    def account(self, name: str) -> int:
        if name not in self.accounts:
            self.accounts[name] = account_for(self.wallet, (name * 64)[:64])
        return self.accounts[name]

    def start(
        self, person: str = "anna", sid: str = "sid-anna", configuration: str = SD_JWT
    ) -> str:
        return authorization.start(self.wallet, self.account(person), sid, ISSUER, configuration)

    def login(self, authorize_url: str, person: str = "anna") -> list[tuple[str, str]]:
        """The person's browser: issuer /authorize -> eID picker -> issuer callback; the
        authorization response's query (the redirect to the wallet is not followed)."""
        started = self.browser.get(authorize_url, follow_redirects=False)
        assert started.status_code == 303, started.text
        with httpx.Client() as eid:
            picker = eid.get(started.headers["location"])
            transaction = re.search(r'name="transaction" value="([^"]+)"', picker.text)
            assert transaction
            decided = eid.post(
                f"{self.op_base}/authorize",
                data={"transaction": transaction[1], "person": person},
            )
        assert decided.status_code == 302
        back = self.browser.get(decided.headers["location"], follow_redirects=False)
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        assert location.startswith(authorization.redirect_uri(self.wallet) + "?")
        return parse_qsl(urlsplit(location).query, keep_blank_values=True)

    def par_form(self) -> dict[str, Any]:
        _, form, _ = next(p for p in reversed(self.outbound.posts) if p[0].endswith("/par"))
        return form

    def cards(self, account: int) -> list[WalletCredential]:
        with db.session(self.wallet.engine, write=False) as unit:
            return list(
                unit.scalars(
                    sa.select(WalletCredential).where(WalletCredential.account_id == account)  # type: ignore[arg-type]
                )
            )


def _register(issuer: IssuerContext, number: str) -> None:
    """An AF registration for ``number`` (the person logs in with eID at the issuer)."""
    now = issuer.clock()
    with db.session(issuer.engine) as unit:
        issuer.person_vault().upsert(
            unit,
            number,
            given_name="Anna",
            family_name="Andersson",
            birthdate="1981-12-18",
            now=now,
        )
        person = unit.scalars(
            sa.select(Person).where(Person.lookup_key == issuer.person_vault().lookup_key(number))
        ).one()
        upsert_registration(
            unit,
            person,
            RegistrationInput(
                registered=True,
                category_code="11",
                category_label="Arbetslös",
                registered_since=datetime.date(2026, 1, 12),
                office="Arbetsförmedlingen Malmö",
            ),
            now,
        )


@pytest.fixture
def flow(tmp_path: Path, database_url: str) -> Iterator[CodeFlow]:
    clock = Clock()
    op_socket, op_base = bound_socket()
    eid_settings = EidSettings(
        environment="development",
        public_base_url=op_base,
        clients=[
            EidClient(
                client_id=EID_CLIENT,
                client_secret=EID_SECRET,
                redirect_uris=(f"{ISSUER}/authorize/callback",),
            )
        ],
    )
    wallet_ca = tmp_path / "wallet" / "wallet-provider-ca.pem"
    issuer_settings = make_issuer_settings(
        f"sqlite:///{tmp_path / 'af-issuer.sqlite3'}",
        tmp_path / "issuer",
        public_base_url=ISSUER,
        trusted_wallet_providers=(wallet_ca,),
        eid=OidcConfig(
            discovery_url=f"{op_base}/.well-known/openid-configuration",
            client_id=EID_CLIENT,
            client_secret=EID_SECRET,
            redirect_uri=f"{ISSUER}/login/callback",
        ),
    )
    issuer_engine = db.create_engine(issuer_settings.sqlalchemy_url())
    issuer_app = create_issuer_app(issuer_settings, engine=issuer_engine)
    wallet_engine = db.create_engine(database_url)
    try:
        with (
            serve(create_eid_app(eid_settings), op_socket),
            TestClient(issuer_app, base_url=ISSUER) as backchannel,
        ):
            outbound = IssuerOutbound(backchannel)
            issuer: IssuerContext = issuer_app.state.issuer
            anchor = tmp_path / "issuer-ca.pem"
            anchor.write_text(issuer.keys.trust_anchor_pem() or "")
            wallet_settings = make_wallet_settings(
                database_url,
                tmp_path / "wallet",
                public_base_url=WALLET,
                credential_issuers=(ISSUER,),
                issuer_trust_anchors=(anchor,),
            )
            wallet = build_context(
                wallet_settings, clock=clock, engine=wallet_engine, outbound=outbound
            )
            startup(wallet)  # writes wallet-provider-ca.pem, which the issuer trusts
            _register(issuer, ANNA)
            browser = TestClient(issuer_app, base_url=ISSUER)
            yield CodeFlow(wallet, issuer, outbound, browser, op_base, clock)
    finally:
        issuer_engine.dispose()
        wallet_engine.dispose()


# -- the catalogue (§12.2, RFC 8414) ---------------------------------------------------------


def test_catalogue_lists_the_issuer_and_its_credentials(flow: CodeFlow) -> None:
    (listed,) = authorization.catalogue(flow.wallet)
    assert listed.problem is None and listed.credential_issuer == ISSUER
    names = issuance.issuer_display(listed.metadata_document)
    assert names["sv"]["name"] == "Arbetsförmedlingen"
    assert {o.configuration_id for o in listed.offered} == {SD_JWT, VCDM}
    for offered in listed.offered:
        shown = issuance.credential_display(offered.configuration)
        assert shown["sv"]["name"] and shown["en"]["name"]
        # The issuer lists openid_credential: the wallet asks by authorization_details
        # (which win, §5.1) and by the configuration's scope (HAIP).
        assert offered.request["scope"] == offered.configuration["scope"]
        (detail,) = strict_json.loads(offered.request["authorization_details"])
        assert detail == {
            "type": "openid_credential",
            "credential_configuration_id": offered.configuration_id,
        }


def test_start_refuses_an_issuer_not_on_the_list(flow: CodeFlow) -> None:
    for issuer, configuration, reason in (
        ("https://evil.example", SD_JWT, "unknown_issuer"),
        (ISSUER + "/", SD_JWT, "unknown_issuer"),  # exact identifiers only
        (ISSUER, "Nonexistent", "unknown_configuration"),
    ):
        with pytest.raises(issuance.IssuanceError) as caught:
            authorization.start(flow.wallet, flow.account("anna"), "sid", issuer, configuration)
        assert caught.value.reason == reason
    assert flow.outbound.posts == []
    with db.session(flow.wallet.engine, write=False) as unit:
        assert unit.scalars(sa.select(IssuanceSession)).first() is None


# -- starting: PAR with PKCE S256, attestation, DPoP (RFC 9126, RFC 7636, HAIP) ---------------


def test_start_pushes_the_request_and_stores_secrets_sealed(flow: CodeFlow) -> None:
    url = flow.start()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ISSUER}/authorize"
    assert set(query) == {"client_id", "request_uri"} and query["client_id"] == WALLET
    par_url, form, headers = flow.outbound.posts[-1]
    assert par_url == f"{ISSUER}/par"
    assert form["response_type"] == "code" and form["code_challenge_method"] == "S256"
    assert form["redirect_uri"] == f"{WALLET}/get/callback" and form["client_id"] == WALLET
    assert len(form["state"]) >= 43  # 256 bits
    # Wallet attestation (HAIP) and a DPoP proof: the code is bound to the DPoP key.
    assert {"OAuth-Client-Attestation", "OAuth-Client-Attestation-PoP", "DPoP"} <= set(headers)
    dpop_jwk = jose.parse_jws(headers["DPoP"]).header["jwk"]
    with db.session(flow.issuer.engine, write=False) as unit:
        pushed = unit.scalars(
            sa.select(AuthorizationRequest).where(
                AuthorizationRequest.request_uri_hash == digest(query["request_uri"])  # type: ignore[arg-type]
            )
        ).one()
    assert pushed.params["dpop_jkt"] == jose.jwk_thumbprint(dpop_jwk)
    with db.session(flow.wallet.engine, write=False) as unit:
        (session,) = unit.scalars(sa.select(IssuanceSession))
    assert session.state == "authorizing" and session.configuration_ids == [SD_JWT]
    # The state only as a digest; the verifier and the DPoP key sealed to the row (T084).
    assert session.authorization_state_hash == authorization._digest(form["state"])
    assert form["state"] not in str(session.model_dump())
    assert session.sealed_pkce_verifier is not None and session.sealed_dpop_key is not None
    verifier = flow.wallet.store.open(
        session.sealed_pkce_verifier, record_aad(authorization.VERIFIER_PURPOSE, session.public_id)
    ).decode()
    assert verifier not in session.sealed_pkce_verifier
    assert oid4vci.pkce_challenge(verifier) == form["code_challenge"]
    key = flow.wallet.store.open_key(
        session.sealed_dpop_key, record_aad(issuance.DPOP_KEY_PURPOSE, session.public_id)
    )
    assert key.thumbprint() == jose.jwk_thumbprint(dpop_jwk)
    assert session.expires_at == flow.clock() + flow.wallet.settings.authorization_ttl


def test_par_refused_by_the_issuer_fails_the_session(flow: CodeFlow) -> None:
    # An issuer that does not trust this wallet provider answers 401 invalid_client.
    flow.issuer.extras["wallet_anchors"] = ()
    with pytest.raises(issuance.IssuanceError) as caught:
        flow.start()
    assert caught.value.reason == "invalid_client"
    with db.session(flow.wallet.engine, write=False) as unit:
        (session,) = unit.scalars(sa.select(IssuanceSession))
    assert session.state == "failed" and session.authorized_at is None


# -- the whole flow, and a replayed callback -------------------------------------------------


def test_code_flow_stores_verified_credentials_and_refuses_a_replay(flow: CodeFlow) -> None:
    anna = flow.account("anna")
    response = flow.login(flow.start())
    params = dict(response)
    assert params["iss"] == ISSUER and "code" in params
    stored = authorization.complete(flow.wallet, anna, "sid-anna", response)
    cards = flow.cards(anna)
    assert [c.public_id for c in cards] == stored and len(stored) == 1
    assert cards[0].configuration_id == SD_JWT and cards[0].name_sv
    batch = flow.issuer.settings.batch_size
    assert cards[0].instance_count == batch
    with db.session(flow.wallet.engine, write=False) as unit:
        keys = list(unit.scalars(sa.select(HolderKey)))
        (session,) = unit.scalars(sa.select(IssuanceSession))
        instances = list(unit.scalars(sa.select(CredentialInstance)))
    assert len(instances) == batch and {k.state for k in keys} == {KeyState.BOUND}
    assert session.state == "done" and session.authorized_at is not None
    # The token was asked with the code, the pushed redirect_uri, the verifier, client
    # authentication and DPoP; the credential requests named the granted identifier.
    token_form = next(p for p in flow.outbound.posts if p[0].endswith("/token"))
    assert token_form[1]["grant_type"] == "authorization_code"
    assert token_form[1]["redirect_uri"] == f"{WALLET}/get/callback"
    assert {"DPoP", "OAuth-Client-Attestation"} <= set(token_form[2])
    credential_request = next(p for p in flow.outbound.posts if p[0].endswith("/credential"))
    assert credential_request[1]["credential_identifier"].startswith(SD_JWT + ":")
    assert credential_request[2]["Authorization"].startswith("DPoP ")

    posts = len(flow.outbound.posts)
    with pytest.raises(authorization.AuthorizationError) as caught:
        authorization.complete(flow.wallet, anna, "sid-anna", response)
    assert caught.value.reason == "unknown_state"
    assert len(flow.outbound.posts) == posts  # nothing sent for a replay
    assert len(flow.cards(anna)) == 1


def test_scope_when_the_as_has_no_authorization_details(flow: CodeFlow) -> None:
    flow.wallet.extras.pop(authorization.CATALOGUE_KEY, None)
    original = flow.outbound.fetch

    def without_details(url: str, accept: str = "application/json") -> FetchResponse:
        answer = original(url, accept)
        if url.endswith("/.well-known/oauth-authorization-server"):
            document = strict_json.loads(answer.body)
            del document["authorization_details_types_supported"]
            return FetchResponse(strict_json.dumps(document).encode(), answer.content_type)
        return answer

    flow.outbound.fetch = without_details  # type: ignore[method-assign]
    response = flow.login(flow.start(configuration=VCDM))
    form = flow.par_form()
    assert "authorization_details" not in form
    assert form["scope"] == next(c.scope for c in flow.issuer.agency.configurations if c.id == VCDM)
    stored = authorization.complete(flow.wallet, flow.account("anna"), "sid-anna", response)
    (card,) = flow.cards(flow.account("anna"))
    assert card.public_id == stored[0] and card.format == "jwt_vc_json"


def test_access_denied_is_reported_and_nothing_stored(flow: CodeFlow) -> None:
    erik = flow.account("erik")
    response = flow.login(flow.start("erik", "sid-erik"), person="erik")  # no AF record
    assert dict(response)["error"] == "access_denied"
    with pytest.raises(authorization.AuthorizationError) as caught:
        authorization.complete(flow.wallet, erik, "sid-erik", response)
    assert caught.value.reason == "authorization_error"
    assert caught.value.error == "access_denied"
    assert flow.cards(erik) == []
    assert not any(p[0].endswith("/token") for p in flow.outbound.posts)
    with db.session(flow.wallet.engine, write=False) as unit:
        (session,) = unit.scalars(sa.select(IssuanceSession))
    assert session.state == "failed"


# -- refusals of the authorization response (RFC 6749 §4.1.2, RFC 9207, T076) ---------------


def _pending(flow: CodeFlow, person: str = "anna", sid: str = "sid-anna") -> dict[str, str]:
    """A started flow and a well-formed response to it (the code is never redeemed)."""
    flow.start(person, sid)
    return {"code": "not-redeemed", "state": flow.par_form()["state"], "iss": ISSUER}


def _refused(
    flow: CodeFlow, params: Any, account: int, sid: str = "sid-anna"
) -> authorization.AuthorizationError:
    items = list(params.items()) if isinstance(params, dict) else params
    posts = len(flow.outbound.posts)
    with pytest.raises(authorization.AuthorizationError) as caught:
        authorization.complete(flow.wallet, account, sid, items)
    assert len(flow.outbound.posts) == posts  # nothing went to the issuer
    assert flow.cards(account) == []
    return caught.value


def _state(flow: CodeFlow) -> str:
    with db.session(flow.wallet.engine, write=False) as unit:
        return unit.scalars(sa.select(IssuanceSession.state)).one()


def test_missing_state_refused_and_the_flow_stays_open(flow: CodeFlow) -> None:
    params = _pending(flow)
    del params["state"]
    assert _refused(flow, params, flow.account("anna")).reason == "state_missing"
    assert _state(flow) == "authorizing"


def test_mismatched_state_refused(flow: CodeFlow) -> None:
    params = _pending(flow)
    params["state"] = oid4vci.new_opaque_value()
    assert _refused(flow, params, flow.account("anna")).reason == "unknown_state"
    assert _state(flow) == "authorizing"


def test_state_of_another_person_refused(flow: CodeFlow) -> None:
    params = _pending(flow)  # Anna's
    erik = flow.account("erik")
    assert _refused(flow, params, erik, "sid-anna").reason == "unknown_state"
    assert _state(flow) == "authorizing"


def test_state_of_another_browser_session_refused(flow: CodeFlow) -> None:
    params = _pending(flow)
    assert _refused(flow, params, flow.account("anna"), "sid-other").reason == "unknown_state"


def test_expired_authorization_refused(flow: CodeFlow) -> None:
    params = _pending(flow)
    flow.clock.advance(flow.wallet.settings.authorization_ttl + 1)
    assert _refused(flow, params, flow.account("anna")).reason == "unknown_state"


def test_mismatched_iss_refused_and_the_flow_burnt(flow: CodeFlow) -> None:
    params = _pending(flow)
    for wrong in ("https://evil.example", ISSUER + "/", "https://issuer.tes"):
        flow.start()
        forged = {**params, "state": flow.par_form()["state"], "iss": wrong}
        assert _refused(flow, forged, flow.account("anna")).reason == "iss_mismatch"
    # The first flow is untouched; a refused one cannot be finished with the right iss.
    retried = {**forged, "iss": ISSUER}
    assert _refused(flow, retried, flow.account("anna")).reason == "unknown_state"


def test_missing_iss_refused_when_announced(flow: CodeFlow) -> None:
    params = _pending(flow)
    del params["iss"]
    assert _refused(flow, params, flow.account("anna")).reason == "iss_missing"


def test_repeated_parameters_refused(flow: CodeFlow) -> None:
    params = _pending(flow)
    for name in ("state", "code", "iss"):
        items = [*params.items(), (name, params[name])]
        assert _refused(flow, items, flow.account("anna")).reason == "repeated_parameter"
    assert _state(flow) == "authorizing"


def test_error_codes_reported(flow: CodeFlow) -> None:
    for error, shown in (
        ("access_denied", "access_denied"),
        ("temporarily_unavailable", "temporarily_unavailable"),
        ("<script>", "other"),
    ):
        params = _pending(flow)
        params.pop("code")
        refused = _refused(flow, {**params, "error": error}, flow.account("anna"))
        assert refused.reason == "authorization_error" and refused.error == shown


def test_missing_code_refused(flow: CodeFlow) -> None:
    params = _pending(flow)
    del params["code"]
    assert _refused(flow, params, flow.account("anna")).reason == "code_missing"


def test_wrong_code_refused_by_the_issuer_and_nothing_stored(flow: CodeFlow) -> None:
    params = _pending(flow)
    anna = flow.account("anna")
    with pytest.raises(issuance.IssuanceError) as caught:
        authorization.complete(flow.wallet, anna, "sid-anna", list(params.items()))
    assert caught.value.reason == "invalid_grant"
    assert flow.cards(anna) == [] and _state(flow) == "failed"


# -- metadata shapes (documents served by a stand-in; nothing is posted) ---------------------

OTHER = "https://other-issuer.example"


def _documents(as_changes: Mapping[str, Any], **metadata_changes: Any) -> dict[str, Any]:
    metadata = {
        "credential_issuer": OTHER,
        "credential_endpoint": f"{OTHER}/credential",
        "nonce_endpoint": f"{OTHER}/nonce",
        "display": [{"name": "Annan utfärdare", "locale": "sv"}],
        "credential_configurations_supported": {
            "c1": {
                "format": "dc+sd-jwt",
                "vct": "https://example/vct",
                "scope": "c1_scope",
                "cryptographic_binding_methods_supported": ["jwk"],
                "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["ES256"]}},
            },
            "mdoc": {"format": "mso_mdoc", "doctype": "org.iso.18013.5.1.mDL", "scope": "m"},
        },
        **metadata_changes,
    }
    server = metadata.get("authorization_servers", [OTHER])[0]
    as_metadata = {
        "issuer": server,
        "authorization_endpoint": f"{server}/authorize?tenant=1",
        "token_endpoint": f"{server}/token",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": ["ES256"],
        **as_changes,
    }
    return {
        f"{OTHER}/.well-known/openid-credential-issuer": metadata,
        f"{server}/.well-known/oauth-authorization-server": {
            k: v for k, v in as_metadata.items() if v is not None
        },
    }


def _plain_ctx(
    tmp_path: Path, database_url: str, documents: dict[str, Any], clock: Clock | None = None
) -> WalletContext:
    from .test_issuance_rules import FakeOutbound

    settings = make_wallet_settings(
        database_url, tmp_path / "w", public_base_url=WALLET, credential_issuers=(OTHER,)
    )
    ctx = build_context(settings, outbound=FakeOutbound(documents), clock=clock or Clock())
    startup(ctx)
    return ctx


@pytest.mark.parametrize(
    ("as_changes", "problem"),
    [
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE"),
        ({"code_challenge_methods_supported": None}, "PKCE"),
        ({"authorization_endpoint": None}, "authorization endpoint"),
        ({"response_types_supported": ["token"]}, "authorization codes"),
        ({"require_pushed_authorization_requests": True}, "requires PAR"),
        ({"issuer": "https://evil.example"}, "issuer does not match"),
    ],
)
def test_issuer_unusable_for_the_code_flow(
    tmp_path: Path, database_url: str, as_changes: dict[str, Any], problem: str
) -> None:
    ctx = _plain_ctx(tmp_path, database_url, _documents(as_changes))
    (listed,) = authorization.catalogue(ctx)
    assert listed.problem is not None and problem in listed.problem
    with pytest.raises(issuance.IssuanceError) as caught:
        authorization.start(ctx, account_for(ctx, "a" * 64), "sid", OTHER, "c1")
    assert caught.value.reason == "issuer_unavailable"
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalars(sa.select(IssuanceSession)).first() is None


def test_without_par_the_request_goes_in_the_url_bound_by_dpop_jkt(
    tmp_path: Path, database_url: str
) -> None:
    ctx = _plain_ctx(tmp_path, database_url, _documents({}))
    (listed,) = authorization.catalogue(ctx)
    # Only what the wallet can hold is offered (mso_mdoc is not).
    assert [o.configuration_id for o in listed.offered] == ["c1"]
    url = authorization.start(ctx, account_for(ctx, "a" * 64), "sid", OTHER, "c1")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert url.startswith(f"{OTHER}/authorize?tenant=1&")
    assert query["scope"] == "c1_scope" and "authorization_details" not in query
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == f"{WALLET}/get/callback"
    with db.session(ctx.engine, write=False) as unit:
        (session,) = unit.scalars(sa.select(IssuanceSession))
    assert session.sealed_dpop_key is not None
    key = ctx.store.open_key(
        session.sealed_dpop_key, record_aad(issuance.DPOP_KEY_PURPOSE, session.public_id)
    )
    assert query["dpop_jkt"] == key.thumbprint()
    assert session.authorization_state_hash == authorization._digest(query["state"])


def test_authorization_details_name_the_issuer_when_it_has_its_own_server(
    tmp_path: Path, database_url: str
) -> None:
    server = "https://as.example"
    documents = _documents(
        {"authorization_details_types_supported": ["openid_credential"]},
        authorization_servers=[server],
    )
    ctx = _plain_ctx(tmp_path, database_url, documents)
    (listed,) = authorization.catalogue(ctx)
    (offered,) = listed.offered
    (detail,) = strict_json.loads(offered.request["authorization_details"])
    assert detail["locations"] == [OTHER]  # §5.1.1
    url = authorization.start(ctx, account_for(ctx, "a" * 64), "sid", OTHER, "c1")
    assert url.startswith(f"{server}/authorize?")


def test_metadata_is_cached_and_failures_retried_soon(tmp_path: Path, database_url: str) -> None:
    clock = Clock()
    ctx = _plain_ctx(tmp_path, database_url, {}, clock)
    (listed,) = authorization.catalogue(ctx)
    assert listed.problem is not None  # nothing served yet
    outbound = ctx.outbound
    outbound.documents.update(_documents({}))  # type: ignore[attr-defined]
    assert authorization.catalogue(ctx)[0].problem is not None  # cached failure
    clock.advance(authorization.FAILURE_CACHE_SECONDS + 1)
    assert authorization.catalogue(ctx)[0].problem is None
    calls = len(outbound.calls)  # type: ignore[attr-defined]
    authorization.catalogue(ctx)
    assert len(outbound.calls) == calls  # type: ignore[attr-defined]


def test_credential_issuers_setting_is_checked(tmp_path: Path, database_url: str) -> None:
    from pydantic import ValidationError

    def production(issuers: tuple[str, ...]) -> object:
        return make_wallet_settings(
            database_url,
            tmp_path,
            environment="production",
            public_base_url=WALLET,
            credential_issuers=issuers,
        )

    assert production((OTHER, ISSUER))  # the same settings are fine with good identifiers
    for bad in (("http://issuer.example",), ("https://a.example?x=1",), (OTHER, OTHER)):
        with pytest.raises(ValidationError, match="credential"):
            production(bad)
