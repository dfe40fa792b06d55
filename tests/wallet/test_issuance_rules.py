"""In-process rules of the wallet's OpenID4VCI client: SSRF refusal (T085), offers and
metadata refused (T081), received credentials refused before storage (T082), tx_code,
provider keys and account isolation in the data layer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from intyg import jose, sdjwt_vc, strict_json, x509
from intyg.fetch import FetchResponse
from intyg.web.outbound import OutboundClient, OutboundError, OutboundPolicy
from wallet import credentials, issuance
from wallet.app import WalletContext, build_context, startup

from .conftest import make_wallet_settings

ISSUER = "https://issuer.example"


class FakeOutbound:
    """Documents by URL; records every call (the guarded client is tested in tests/web)."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.calls: list[str] = []

    def fetch(self, url: str, accept: str = "application/json") -> FetchResponse:
        self.calls.append(url)
        if url not in self.documents:
            raise OutboundError("HTTP status 404", reason="status", status_code=404)
        return FetchResponse(strict_json.dumps(self.documents[url]).encode())

    def post_form(self, url: str, data: Any, **_: Any) -> FetchResponse:
        raise AssertionError("nothing may be posted in these tests")

    post_json = post_form


def _metadata(**extra: Any) -> dict[str, Any]:
    return {
        "credential_issuer": ISSUER,
        "credential_endpoint": f"{ISSUER}/credential",
        "nonce_endpoint": f"{ISSUER}/nonce",
        "display": [{"name": "Testutfärdaren", "locale": "sv"}],
        "credential_configurations_supported": {
            "c1": {
                "format": "dc+sd-jwt",
                "vct": "https://example/vct",
                "cryptographic_binding_methods_supported": ["jwk"],
                "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["ES256"]}},
            }
        },
        **extra,
    }


def _offer(**grant: Any) -> dict[str, Any]:
    return {
        "credential_issuer": ISSUER,
        "credential_configuration_ids": ["c1"],
        "grants": {
            "urn:ietf:params:oauth:grant-type:pre-authorized_code": {
                "pre-authorized_code": "code-123",
                **grant,
            }
        },
    }


AS_DOC = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"}


def _documents(metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        f"{ISSUER}/offers/1": _offer(tx_code={"length": 6}),
        f"{ISSUER}/.well-known/openid-credential-issuer": metadata or _metadata(),
        f"{ISSUER}/.well-known/oauth-authorization-server": AS_DOC,
    }


@pytest.fixture
def anchor() -> tuple[jose.Key, Any]:
    return x509.make_ca("Test issuer CA", organization="Test", country="SE")


@pytest.fixture
def ctx(tmp_path: Path, database_url: str, anchor: Any) -> WalletContext:
    path = tmp_path / "anchor.pem"
    path.write_text(x509.cert_to_pem(anchor[1]))
    settings = make_wallet_settings(
        database_url,
        tmp_path / "w",
        public_base_url="https://wallet.example",
        issuer_trust_anchors=(path,),
    )
    context = build_context(settings, outbound=FakeOutbound(_documents()))
    startup(context)
    return context


def _link(uri: str) -> str:
    from urllib.parse import quote

    return f"openid-credential-offer://?credential_offer_uri={quote(uri, safe='')}"


# -- SSRF (T085) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/offer",
        "https://10.0.0.5/offer",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/offer",
        "https://localhost/offer",
        "http://issuer.example/offer",
    ],
)
def test_offer_uri_to_private_or_loopback_refused_outside_development(
    ctx: WalletContext, target: str
) -> None:
    ctx.outbound = OutboundClient(
        OutboundPolicy(development=False, resolver=lambda host, port: ["127.0.0.1"])
    )
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.resolve_offer(ctx, _link(target))
    assert caught.value.reason in ("fetch_policy", "invalid_credential_offer")


def test_issuer_metadata_host_resolving_to_private_address_refused(ctx: WalletContext) -> None:
    offer = strict_json.dumps(_offer())
    from urllib.parse import quote

    ctx.outbound = OutboundClient(
        OutboundPolicy(development=False, resolver=lambda host, port: ["192.168.1.10"])
    )
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.resolve_offer(ctx, f"openid-credential-offer://?credential_offer={quote(offer)}")
    assert caught.value.reason == "fetch_policy"


def test_development_policy_allows_loopback_http() -> None:
    from intyg.web.outbound import check_url

    check_url("http://127.0.0.1:8100/offers/1", OutboundPolicy(development=True))
    with pytest.raises(OutboundError):
        check_url("http://127.0.0.1:8100/offers/1", OutboundPolicy(development=False))


# -- offers and metadata (§4.1, §12.2; T081) -----------------------------------------------


def test_offer_by_reference_resolved_and_started(ctx: WalletContext) -> None:
    resolved = issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1"))
    assert resolved.offer.credential_issuer == ISSUER
    session = issuance.start(ctx, _account(ctx, "a"), resolved)
    assert session.tx_code == {"input_mode": "numeric", "length": 6, "description": None}
    assert "code-123" not in session.sealed_offer  # sealed (T084)


def test_metadata_naming_another_issuer_refused(ctx: WalletContext) -> None:
    ctx.outbound = FakeOutbound(_documents(_metadata(credential_issuer="https://evil.example")))
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1"))
    assert caught.value.reason == "invalid_issuer_metadata"


def test_offer_for_unknown_configuration_refused(ctx: WalletContext) -> None:
    documents = _documents()
    documents[f"{ISSUER}/offers/1"]["credential_configuration_ids"] = ["nope"]
    ctx.outbound = FakeOutbound(documents)
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1"))
    assert caught.value.reason == "invalid_credential_offer"


def test_unsupported_format_and_no_binding_refused(ctx: WalletContext) -> None:
    for change, reason in (
        ({"format": "mso_mdoc", "doctype": "org.iso.18013.5.1.mDL"}, "unsupported_format"),
        (
            {"proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["ES384"]}}},
            "unsupported_binding",
        ),
    ):
        metadata = _metadata()
        metadata["credential_configurations_supported"]["c1"].update(change)
        ctx.outbound = FakeOutbound(_documents(metadata))
        with pytest.raises(issuance.IssuanceError) as caught:
            issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1"))
        assert caught.value.reason == reason


def test_as_metadata_mismatch_refused(ctx: WalletContext) -> None:
    documents = _documents()
    documents[f"{ISSUER}/.well-known/oauth-authorization-server"] = {
        **AS_DOC,
        "issuer": "https://other.example",
    }
    ctx.outbound = FakeOutbound(documents)
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1"))
    assert caught.value.reason == "invalid_issuer_metadata"


def test_offer_link_with_two_parameters_refused(ctx: WalletContext) -> None:
    with pytest.raises(issuance.IssuanceError):
        issuance.resolve_offer(ctx, _link(f"{ISSUER}/offers/1") + "&credential_offer=%7B%7D")


def test_tx_code_rules() -> None:
    spec = {"input_mode": "numeric", "length": 6}
    assert issuance.check_tx_code(None, "123") is None
    assert issuance.check_tx_code(spec, " 123456 ") == "123456"
    for bad, reason in (
        ("", "tx_code_required"),
        ("12a456", "tx_code_format"),
        ("123", "tx_code_format"),
    ):
        with pytest.raises(issuance.IssuanceError) as caught:
            issuance.check_tx_code(spec, bad)
        assert caught.value.reason == reason


# -- received credentials (T082) -----------------------------------------------------------


def _account(ctx: WalletContext, name: str) -> int:
    from wallet.accounts import account_for

    return account_for(ctx, name * 64)


def _issue(
    anchor: Any,
    holder: jose.Key,
    *,
    vct: str = "https://example/vct",
    iss: str = ISSUER,
    san_uri: str = ISSUER,
    signer_ca: Any = None,
) -> str:
    ca_key, ca_cert = signer_ca or anchor
    key = jose.generate_key("ES256")
    leaf = x509.make_leaf(ca_key, ca_cert, key, common_name="Issuer", san_uri=[san_uri])
    now = int(time.time())
    return sdjwt_vc.issue_vc(
        {"iss": iss, "iat": now, "exp": now + 3600, "vct": vct, "name": "Anna"},
        key,
        holder_jwk=holder.public_jwk(),
        header={"x5c": x509.x5c_from_certs([leaf])},
    )


CONFIG = {"format": "dc+sd-jwt", "vct": "https://example/vct"}


def test_good_credential_accepted(ctx: WalletContext, anchor: Any) -> None:
    holder = jose.generate_key("ES256")
    received = issuance.verify_received(ctx, _issue(anchor, holder), CONFIG, ISSUER, [(7, holder)])
    assert received.key_id == 7 and received.vct == "https://example/vct"


@pytest.mark.parametrize(
    "variant",
    [
        "untrusted_ca",
        "wrong_vct",
        "other_key",
        "other_issuer",
        "cert_not_issuer",
        "with_kb",
        "tampered",
        "extra_disclosure",
    ],
)
def test_bad_credential_refused_before_storage(
    ctx: WalletContext, anchor: Any, variant: str
) -> None:
    holder = jose.generate_key("ES256")
    other = jose.generate_key("ES256")
    text = {
        "untrusted_ca": lambda: _issue(anchor, holder, signer_ca=x509.make_ca("Evil CA")),
        "wrong_vct": lambda: _issue(anchor, holder, vct="https://example/other"),
        "other_key": lambda: _issue(anchor, other),
        "other_issuer": lambda: _issue(
            anchor, holder, iss="https://evil.example", san_uri="https://evil.example"
        ),
        "cert_not_issuer": lambda: _issue(anchor, holder, san_uri="https://evil.example"),
        "with_kb": lambda: sdjwt_vc.present_vc(
            _issue(anchor, holder), [], holder_key=holder, aud="x", nonce="n"
        ),
        "tampered": lambda: _issue(anchor, holder).replace(".", ".A", 1),
        "extra_disclosure": lambda: _issue(anchor, holder) + "WyJzYWx0IiwgIngiLCAxXQ~",
    }[variant]()
    with pytest.raises(issuance.IssuanceError) as caught:
        issuance.verify_received(ctx, text, CONFIG, ISSUER, [(1, holder)])
    assert caught.value.reason == "invalid_credential"


def test_provider_key_generated_once_and_attestation_signed(ctx: WalletContext) -> None:
    from intyg import client_attestation

    pem = ctx.keys.trust_anchor_pem()
    assert pem and (ctx.settings.data_dir / "wallet-provider-ca.pem").read_text() == pem
    instance = jose.generate_key("ES256")
    attestation = ctx.keys.wallet_attestation(instance)
    jws = jose.parse_jws(attestation)
    assert jws.header["typ"] == client_attestation.ATTESTATION_TYP
    chain = x509.validate_x5c(jws.header["x5c"], x509.certs_from_pem(pem))
    jose.verify_signature(jws, chain.key)
    claims = jws.claims()
    assert claims["sub"] == "https://wallet.example"
    assert jose.jwk_thumbprint(claims["cnf"]["jwk"]) == instance.thumbprint()
    ctx.keys.ensure()  # a restart keeps the same CA
    assert ctx.keys.trust_anchor_pem() == pem


def test_list_is_scoped_to_the_account(ctx: WalletContext) -> None:
    from intyg.web import db
    from wallet.models import WalletCredential

    a, b = _account(ctx, "a"), _account(ctx, "b")
    with db.session(ctx.engine) as unit:
        for account in (a, a, b):
            unit.add(
                WalletCredential(
                    account_id=account,
                    format="dc+sd-jwt",
                    configuration_id="c1",
                    credential_issuer=ISSUER,
                    issuer_display={},
                    display={"sv": {"name": "X"}},
                    received_at=1,
                    instance_count=1,
                )
            )
    assert len(credentials.list_credentials(ctx, a)) == 2
    mine = credentials.list_credentials(ctx, b)
    assert len(mine) == 1
    theirs = credentials.list_credentials(ctx, a)[0].public_id
    assert credentials.detail(ctx, b, theirs, "sv") is None
    assert credentials.delete_credential(ctx, b, theirs) is False
    assert len(credentials.list_credentials(ctx, a)) == 2
