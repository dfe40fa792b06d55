"""Answering requests: every rejection at the wallet level, with a loopback HTTP server
standing in for a (malicious) verifier that serves request objects and records what it
receives (security.md T057-T067, L09, T086); chain tamper detection; isolation A vs B;
SSRF on request_uri."""

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
import sqlalchemy as sa

from intyg import jose, oid4vp, x509
from intyg.web import db
from intyg.web.outbound import OutboundClient, OutboundPolicy
from wallet import consents, presentation
from wallet.models import Account, ConsentRecord

from .conftest import Running, csrf, running_services

VCT = "https://intyg.example/vct/af-inskrivningsintyg/1"
QUERY = {
    "credentials": [
        {
            "id": "registration",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [VCT]},
            "claims": [{"path": ["registered"]}],
        }
    ]
}


class FakeVerifier:
    """Serves request objects at /request/<name>; records every POST to /response."""

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}
        self.received: list[dict[str, list[str]]] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _object(self) -> None:
                body = owner.objects.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", oid4vp.REQUEST_OBJECT_MEDIA_TYPE)
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:
                self._object()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if self.path.startswith("/request/"):
                    self._object()
                    return
                owner.received.append(form)
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}" if owner.status == 200 else b'{"error":"invalid_request"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.ca_key, self.ca = x509.make_ca("Fake verifier CA")
        self.key = jose.generate_key("ES256")
        self.leaf = x509.make_leaf(
            self.ca_key, self.ca, self.key, common_name="Okänd AB", san_dns=["fake.test"]
        )
        self.client_id = oid4vp.client_id_x509_hash(self.leaf)

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = oid4vp.authorization_request(
            client_id=self.client_id,
            response_uri=f"{self.base}/response",
            dcql_query=QUERY,
            response_mode="direct_post",
        )
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def publish(
        self,
        name: str,
        claims: dict[str, Any],
        *,
        key: jose.Key | None = None,
        typ: str | None = "oauth-authz-req+jwt",
    ) -> str:
        header: dict[str, Any] = {"x5c": x509.x5c_from_certs([self.leaf])}
        if typ is not None:
            header["typ"] = typ
        self.objects[name] = jose.encode_jws(claims, key or self.key, header)
        return f"openid4vp://?client_id={quote(self.client_id)}&request_uri={quote(self.base)}/request/{name}"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake() -> Iterator[FakeVerifier]:
    verifier = FakeVerifier()
    yield verifier
    verifier.close()


@pytest.fixture
def services_with_fake(tmp_path: Path, database_url: str, fake: FakeVerifier) -> Iterator[Running]:
    anchor = tmp_path / "fake-ca.pem"
    anchor.write_text(x509.cert_to_pem(fake.ca))
    with running_services(tmp_path, database_url, verifier_trust_anchors=(anchor,)) as running:
        yield running


def _with_credential(services: Running, browser: httpx.Client, person: str = "anna") -> None:
    services.login(browser, person)
    created = services.offer(tx_code=False)
    offer = browser.get(f"{services.wallet_base}/offer?{created.link.split('?', 1)[1]}")
    page = browser.get(services.wallet_base + offer.headers["location"])
    action = re.search(r'action="(/issuance/[^"]+/accept)"', page.text)
    assert action
    browser.post(services.wallet_base + action[1], data={"csrf_token": csrf(page.text)})


def _paste(services: Running, browser: httpx.Client, link: str) -> httpx.Response:
    form = browser.get(f"{services.wallet_base}/present")
    return browser.post(
        f"{services.wallet_base}/present", data={"csrf_token": csrf(form.text), "link": link}
    )


INAUTHENTIC = {
    "no_typ (T057)": lambda f: f.publish("a", f.claims(), typ=None),
    "wrong_typ (T057)": lambda f: f.publish("a", f.claims(), typ="JWT"),
    "bad_signature": lambda f: f.publish("a", f.claims(), key=jose.generate_key("ES256")),
    "client_id_mismatch (T058)": lambda f: f.publish(
        "a", f.claims(client_id="x509_hash:" + "A" * 43)
    ),
    "expired": lambda f: f.publish("a", f.claims(exp=1_000_000, iat=999_000)),
}


def test_inauthentic_requests_get_nothing(services_with_fake: Running, fake: FakeVerifier) -> None:
    """T057/T058/T064/T067 at the wallet level: nothing is sent to the response_uri."""
    services = services_with_fake
    browser = httpx.Client()
    services.login(browser)
    for name, make in INAUTHENTIC.items():
        response = _paste(services, browser, make(fake))
        assert response.status_code == 400, name
        assert "Inget skickades" in response.text, name
    # Untrusted CA: a chain that does not reach our anchors.
    other_ca_key, other_ca = x509.make_ca("Other CA")
    fake.leaf = x509.make_leaf(other_ca_key, other_ca, fake.key, common_name="x")
    fake.client_id = oid4vp.client_id_x509_hash(fake.leaf)
    assert _paste(services, browser, fake.publish("b", fake.claims())).status_code == 400
    assert fake.received == []


AUTHENTIC_BUT_BAD = {
    "missing nonce (T061)": ({"nonce": None}, "invalid_request"),
    "transaction_data (T063)": ({"transaction_data": ["e30"]}, "invalid_transaction_data"),
    "direct_post.jwt without keys (T067)": (
        {"response_mode": "direct_post.jwt"},
        "invalid_request",
    ),
    "dcql_query and scope (T062)": ({"scope": "x"}, "invalid_request"),
    "redirect_uri with direct_post (T059)": (
        {"redirect_uri": "https://x.test/"},
        "invalid_request",
    ),
}


def test_authentic_but_unusable_requests_get_an_error_response(
    services_with_fake: Running, fake: FakeVerifier
) -> None:
    services = services_with_fake
    browser = httpx.Client()
    services.login(browser)
    for name, (changes, error) in AUTHENTIC_BUT_BAD.items():
        fake.received.clear()
        response = _paste(services, browser, fake.publish("c", fake.claims(**changes)))
        assert response.status_code == 400, name
        assert len(fake.received) == 1, name
        sent = fake.received[0]
        assert sent["error"] == [error], (name, sent)
        assert "vp_token" not in sent and "response" not in sent


def test_unknown_verifier_warning_consent_crash_and_decline(
    services_with_fake: Running, fake: FakeVerifier
) -> None:
    services = services_with_fake
    ctx = services.wallet
    anna, erik = httpx.Client(), httpx.Client()
    _with_credential(services, anna)
    services.login(erik, "erik")
    created = _paste(services, anna, fake.publish("d", fake.claims()))
    assert created.status_code == 303
    screen = anna.get(services.wallet_base + created.headers["location"])
    assert "VARNING" in screen.text and "fake.test" in screen.text
    session_id = created.headers["location"].rsplit("/", 1)[-1]

    # Erik can neither see nor answer Anna's request.
    erik_home = erik.get(f"{services.wallet_base}/")
    assert erik.get(services.wallet_base + created.headers["location"]).status_code == 404
    for verb in ("approve", "decline"):
        denied = erik.post(
            f"{services.wallet_base}/presentations/{session_id}/{verb}",
            data={"csrf_token": csrf(erik_home.text)},
        )
        assert denied.status_code == 404
    # No CSRF token: refused.
    assert (
        anna.post(
            f"{services.wallet_base}/presentations/{session_id}/approve", data={"x": "1"}
        ).status_code
        == 403
    )

    # L09: a crash between the committed consent and the POST.
    class Crash(BaseException):
        pass

    real = ctx.outbound

    class Crashing:
        def fetch(self, *a: Any, **k: Any) -> Any:
            return real.fetch(*a, **k)

        def post_form(self, url: str, *a: Any, **k: Any) -> Any:
            if url.endswith("/response"):
                raise Crash()
            return real.post_form(url, *a, **k)

        def post_json(self, *a: Any, **k: Any) -> Any:
            return real.post_json(*a, **k)

    with db.session(ctx.engine, write=False) as unit:
        anna_id = unit.scalars(sa.select(Account.id).order_by(Account.id)).first()
    assert anna_id is not None
    ctx.outbound = Crashing()  # type: ignore[assignment]
    try:
        with pytest.raises(Crash):
            presentation.approve(ctx, anna_id, session_id, {})
    finally:
        ctx.outbound = real
    with db.session(ctx.engine, write=False) as unit:
        rows = list(unit.scalars(sa.select(ConsentRecord)))
    assert [(r.kind, r.delivery_status) for r in rows] == [("consent", "pending")]
    # On reload: shown as interrupted, never offered again, nothing sent.
    reloaded = anna.get(services.wallet_base + created.headers["location"])
    assert "Svaret avbröts" in reloaded.text and "/approve" not in reloaded.text
    again = anna.post(
        f"{services.wallet_base}/presentations/{session_id}/approve",
        data={"csrf_token": csrf(screen.text)},
    )
    assert again.status_code == 409
    assert fake.received == []
    assert consents.verify_chain(ctx, anna_id).ok

    # Erik cannot see Anna's consent record.
    record_id = rows[0].public_id
    assert erik.get(f"{services.wallet_base}/consents/{record_id}").status_code == 404
    assert anna.get(f"{services.wallet_base}/consents/{record_id}").status_code == 200
    assert record_id not in erik.get(f"{services.wallet_base}/consents").text

    # A new request from the same verifier: approved and delivered (direct_post).
    second = _paste(services, anna, fake.publish("e", fake.claims()))
    screen = anna.get(services.wallet_base + second.headers["location"])
    done = anna.post(
        services.wallet_base + second.headers["location"] + "/approve",
        data={"csrf_token": csrf(screen.text)},
    )
    assert done.status_code == 200 and "Uppgifterna har skickats" in done.text
    assert len(fake.received) == 1
    token = json.loads(fake.received[0]["vp_token"][0])
    presented = token["registration"][0]
    kb = jose.parse_jws(presented.rsplit("~", 1)[1]).claims()
    assert kb["aud"] == fake.client_id  # full client id, prefix included
    # Only the requested claim's disclosure (plus none other) is in the presentation.
    assert presented.count("~") == 2

    # Rejected by the verifier: recorded as rejected with its error.
    fake.status = 400
    third = _paste(services, anna, fake.publish("f", fake.claims()))
    screen = anna.get(services.wallet_base + third.headers["location"])
    rejected = anna.post(
        services.wallet_base + third.headers["location"] + "/approve",
        data={"csrf_token": csrf(screen.text)},
    )
    assert "Avvisad av mottagaren" in rejected.text and "invalid_request" in rejected.text

    # Tamper detection: a record, then the status column.
    assert consents.verify_chain(ctx, anna_id).ok
    with db.session(ctx.engine) as unit:
        row = unit.scalars(sa.select(ConsentRecord).where(ConsentRecord.seq == 2)).one()
        original = dict(row.record)
        row.record = {**original, "purpose": {"sv": "ändrat"}}
    report = consents.verify_chain(ctx, anna_id)
    assert not report.ok and report.broken_at == 2 and "changed" in (report.reason or "")
    page = anna.get(f"{services.wallet_base}/consents/verify")
    assert "Historiken har ändrats" in page.text
    with db.session(ctx.engine) as unit:
        row = unit.scalars(sa.select(ConsentRecord).where(ConsentRecord.seq == 2)).one()
        row.record = original
    assert consents.verify_chain(ctx, anna_id).ok
    with db.session(ctx.engine) as unit:
        unit.execute(
            sa.update(ConsentRecord)
            .where(ConsentRecord.seq == 1, ConsentRecord.account_id == anna_id)
            .values(delivery_status="delivered")
        )
    assert consents.verify_chain(ctx, anna_id).reason == "the delivery status was changed"


def test_request_uri_ssrf_refused_outside_development(
    services_with_fake: Running, fake: FakeVerifier
) -> None:
    ctx = services_with_fake.wallet
    real = ctx.outbound
    ctx.outbound = OutboundClient(OutboundPolicy(development=False))  # type: ignore[assignment]
    try:
        for target in ("https://127.0.0.1/request/x", "https://10.0.0.1/r", "https://[::1]/r"):
            link = f"openid4vp://?client_id={quote(fake.client_id)}&request_uri={quote(target)}"
            with pytest.raises(presentation.PresentationError) as caught:
                presentation.receive(ctx, 1, link)
            assert caught.value.reason == "fetch"
    finally:
        ctx.outbound = real
