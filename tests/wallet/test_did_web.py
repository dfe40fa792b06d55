"""did:web verifiers (OpenID4VP 1.0 ``decentralized_identifier`` client identifier prefix):
the wallet resolves the DID document through its guarded outbound client (a real
``OutboundClient``; a loopback HTTP server plays the verifier) and verifies the request
object with the verification method the JWS ``kid`` names. Every refusal stops before
anything is sent to the ``response_uri`` (security.md T057/T058): ``kid`` of another DID,
``kid`` not in the document or not under authentication/assertionMethod, a document of
another DID, an unreachable host, an oversize document, a redirect, a bad signature, a
did:jwk verifier, http or loopback outside development. The cache keeps a document for
``did_cache_seconds``. Then end to end: the REAL verifier service with a did:web client id
-> the wallet's consent screen (registry match by DID, or the unknown-verifier warning)
-> ``verified``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest

from intyg import did, jose, oid4vp
from tests.eid.servers import free_port
from tests.issuer.conftest import Clock
from wallet import presentation
from wallet.accounts import account_for
from wallet.app import WalletContext, build_context, startup

from .conftest import csrf, make_wallet_settings, make_world, receive_and_authorize, verifier_result
from .test_presentation_rules import QUERY

VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"


class DidVerifier:
    """A verifier on loopback whose client id is ``decentralized_identifier:did:web:127.0.0.1
    %3A<port>``: serves its DID document, request objects, and records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.key = jose.generate_key("ES256")
        self.document_body: bytes | None = None
        self.document_type = "application/did+json"
        self.redirect_document = False
        self.objects: dict[str, str] = {}
        self.received: list[dict[str, list[str]]] = []
        self.document_fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/did.json":
                    owner.document_fetches += 1
                    if owner.redirect_document:
                        self.send_response(302)
                        self.send_header("Location", "/elsewhere/did.json")
                        self.end_headers()
                        return
                    body = owner.document_body or json.dumps(owner.document()).encode()
                    self._send(200, owner.document_type, body)
                    return
                body = owner.objects.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self._send(404, "text/plain", b"")
                    return
                self._send(200, oid4vp.REQUEST_OBJECT_MEDIA_TYPE, body.encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.received.append(parse_qs(self.rfile.read(length).decode()))
                self._send(200, "application/json", b"{}")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{port}"
        self.did = f"did:web:{host}%3A{port}"
        self.client_id = oid4vp.client_id_did(self.did)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def document(self, **changes: Any) -> dict[str, Any]:
        method = self.did + "#key-1"
        document: dict[str, Any] = {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": self.did,
            "verificationMethod": [
                {
                    "id": method,
                    "type": "JsonWebKey2020",
                    "controller": self.did,
                    "publicKeyJwk": self.key.public_jwk(),
                }
            ],
            "authentication": [method],
        }
        document.update(changes)
        return document

    def link(
        self,
        name: str = "r",
        *,
        kid: str | None = None,
        key: jose.Key | None = None,
        by_value: bool = False,
    ) -> str:
        claims = oid4vp.authorization_request(
            client_id=self.client_id,
            response_uri=f"{self.base}/response",
            dcql_query=QUERY,
            response_mode="direct_post",
        )
        header = {"typ": oid4vp.REQUEST_OBJECT_TYP, "kid": kid or self.did + "#key-1"}
        jwt = jose.encode_jws(
            {k: v for k, v in claims.items() if v is not None}, key or self.key, header
        )
        if by_value:
            return f"openid4vp://?client_id={quote(self.client_id)}&request={jwt}"
        self.objects[name] = jwt
        return (
            f"openid4vp://?client_id={quote(self.client_id)}"
            f"&request_uri={quote(self.base, safe='')}%2Frequest%2F{name}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def verifier() -> Iterator[DidVerifier]:
    running = DidVerifier()
    yield running
    running.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _wallet(tmp_path: Path, database_url: str, clock: Clock, **overrides: Any) -> WalletContext:
    settings = make_wallet_settings(database_url, tmp_path / "w", **overrides)
    ctx = build_context(settings, clock=clock)  # the real guarded OutboundClient
    startup(ctx)
    return ctx


@pytest.fixture
def ctx(tmp_path: Path, database_url: str, clock: Clock) -> WalletContext:
    return _wallet(tmp_path, database_url, clock)


def _refused(ctx: WalletContext, verifier: DidVerifier, link: str) -> str:
    account = account_for(ctx, "a" * 64)
    with pytest.raises(presentation.PresentationError) as caught:
        presentation.receive(ctx, account, link)
    assert not caught.value.told_verifier
    assert verifier.received == []  # nothing sent to the response_uri
    return str(caught.value)


def test_did_web_request_verified_and_verifier_identified(
    ctx: WalletContext, verifier: DidVerifier
) -> None:
    account = account_for(ctx, "a" * 64)
    session = presentation.receive(ctx, account, verifier.link())
    assert session.client_id == verifier.client_id
    pending = presentation.load_pending(ctx, account, session.public_id)
    assert pending is not None
    identity = pending.identity
    assert identity.prefix == "decentralized_identifier" and identity.did == verifier.did
    assert identity.did_document_url == f"{verifier.base}/.well-known/did.json"
    # Not in the registry: unknown (the consent screen warns), named by its host.
    assert not identity.known and identity.display_name("sv") == verifier.base[7:]
    controller = identity.to_json()
    assert controller["identified_by"]["did"] == verifier.did
    assert controller["identified_by"]["did_document"] == identity.did_document_url


def test_registry_matches_a_did_web_verifier_by_its_did(
    tmp_path: Path, database_url: str, clock: Clock, verifier: DidVerifier
) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "verifiers": [
                    {
                        "match": [verifier.did],
                        "name": {"sv": "DID-arbetsgivaren AB", "en": "DID Employer"},
                        "organisation_number": "556000-0001",
                        "needs": [{"vct": VCT, "claims": [["given_name"]]}],
                    }
                ]
            }
        )
    )
    ctx = _wallet(tmp_path, database_url, clock, verifier_registry_file=registry)
    account = account_for(ctx, "a" * 64)
    session = presentation.receive(ctx, account, verifier.link())
    pending = presentation.load_pending(ctx, account, session.public_id)
    assert pending is not None and pending.identity.known
    assert pending.identity.display_name("en") == "DID Employer"
    assert pending.identity.registry_key == verifier.did
    # QUERY asks for "registered", beyond the registered need: flagged.
    assert pending.beyond == {"registration": [("registered",)]}


def test_kid_of_another_did_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    message = _refused(ctx, verifier, verifier.link(kid="did:web:other.example#key-1"))
    assert "kid is not a verification method of the client DID" in message
    assert verifier.document_fetches == 0


def test_kid_not_in_the_document_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    message = _refused(ctx, verifier, verifier.link(kid=verifier.did + "#key-9"))
    assert "verification method not found" in message


def test_kid_outside_authentication_and_assertion_refused(
    ctx: WalletContext, verifier: DidVerifier
) -> None:
    document = verifier.document(authentication=[], keyAgreement=[verifier.did + "#key-1"])
    verifier.document_body = json.dumps(document).encode()
    message = _refused(ctx, verifier, verifier.link())
    assert "not listed under authentication or assertionMethod" in message


def test_assertion_method_is_accepted_too(ctx: WalletContext, verifier: DidVerifier) -> None:
    document = verifier.document(authentication=[], assertionMethod=["#key-1"])
    verifier.document_body = json.dumps(document).encode()
    presentation.receive(ctx, account_for(ctx, "a" * 64), verifier.link())


def test_document_of_another_did_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    verifier.document_body = json.dumps(verifier.document(id="did:web:other.example")).encode()
    assert "id does not match the DID" in _refused(ctx, verifier, verifier.link())


def test_bad_signature_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    message = _refused(ctx, verifier, verifier.link(key=jose.generate_key("ES256")))
    assert "signature" in message


def test_unreachable_host_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    closed = f"did:web:127.0.0.1%3A{free_port()}"
    verifier.did, verifier.client_id = closed, oid4vp.client_id_did(closed)
    assert "could not retrieve the did:web DID document" in _refused(ctx, verifier, verifier.link())


def test_oversize_document_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    padding = "x" * (did.MAX_DID_DOCUMENT_BYTES + 1)
    verifier.document_body = json.dumps(verifier.document(padding=padding)).encode()
    assert "could not retrieve the did:web DID document" in _refused(ctx, verifier, verifier.link())


def test_redirected_document_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    verifier.redirect_document = True
    assert "could not retrieve" in _refused(ctx, verifier, verifier.link())


def test_wrong_media_type_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    verifier.document_type = "text/html"
    assert "media type" in _refused(ctx, verifier, verifier.link())


def test_did_jwk_verifier_refused(ctx: WalletContext, verifier: DidVerifier) -> None:
    own = did.encode_did_jwk(verifier.key)
    verifier.did, verifier.client_id = own, oid4vp.client_id_did(own)
    assert "only did:web verifiers" in _refused(ctx, verifier, verifier.link(kid=own + "#0"))


def test_outside_development_no_http_and_no_loopback(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    ctx = _wallet(
        tmp_path,
        database_url,
        clock,
        environment="production",
        public_base_url="https://wallet.example",
    )
    for host in ("localhost", "127.0.0.1"):
        named = DidVerifier(host)
        try:
            # By value: only the DID document would be fetched, and it must not be.
            message = _refused(ctx, named, named.link(by_value=True))
            assert "DID" in message and named.document_fetches == 0
        finally:
            named.close()


def test_documents_cached_for_the_configured_time(
    ctx: WalletContext, verifier: DidVerifier, clock: Clock
) -> None:
    account = account_for(ctx, "a" * 64)
    presentation.receive(ctx, account, verifier.link("a"))
    presentation.receive(ctx, account, verifier.link("b"))
    assert verifier.document_fetches == 1
    # The verifier rotates its key: the cached document still names the old one ...
    verifier.key = jose.generate_key("ES256")
    _refused(ctx, verifier, verifier.link("c"))
    # ... until the cache time has passed.
    clock.advance(ctx.settings.did_cache_seconds + 1)
    presentation.receive(ctx, account, verifier.link("d"))
    assert verifier.document_fetches == 2


# -- end to end: the real verifier service with a did:web client id ------------------------


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "unknown"])
def test_real_verifier_with_did_web_client_id(
    tmp_path: Path, database_url: str, registered: bool
) -> None:
    with make_world(
        tmp_path,
        database_url,
        verifier_overrides={"client_id_prefix": "decentralized_identifier"},
        registry_match=lambda v: [v.settings.did_web if registered else "did:web:nobody.example"],
    ) as world:
        assert (
            world.verifier.keys.client_id
            == f"decentralized_identifier:{world.verifier.settings.did_web}"
        )
        services = world.services
        browser = httpx.Client()
        consent_path, transaction = receive_and_authorize(world, browser)
        assert transaction["client_id"].startswith("decentralized_identifier:did:web:127.0.0.1")
        screen = browser.get(services.wallet_base + consent_path)
        assert screen.status_code == 200, screen.text
        assert "Identifierad genom DID-dokument (did:web)" in screen.text
        assert world.verifier.settings.did_web in screen.text
        if registered:
            assert "Utvecklingsarbetsgivaren AB" in screen.text and "VARNING" not in screen.text
        else:
            assert "VARNING: Mottagaren finns inte i plånbokens register" in screen.text
        approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
        assert approve
        done = browser.post(
            services.wallet_base + approve[1], data={"csrf_token": csrf(screen.text)}
        )
        assert done.status_code == 200 and "Uppgifterna har skickats" in done.text
        view = verifier_result(world, transaction["transaction_id"])
        assert view["status"] == "verified", view
        history = browser.get(f"{services.wallet_base}/consents")
        assert history.status_code == 200
        record_link = re.search(r'href="(/consents/[A-Za-z0-9_-]{20,})"', history.text)
        assert record_link
        record_page = browser.get(services.wallet_base + record_link[1])
        assert world.verifier.settings.did_web in record_page.text
